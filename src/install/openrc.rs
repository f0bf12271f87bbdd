//! OpenRC: `/etc/init.d/osconf`, ordered after the local file systems and before the network, in
//! the runlevel that starts the network, linked as `rc-update add osconf LEVEL` links it. The
//! distributions differ, so the root decides:
//! - Alpine and Gentoo: `localmount` mounts the file systems and the network (`networking`,
//!   `net.*`, providing `net`) starts in `default` or `boot`: `need localmount`, runlevel `boot`
//!   (`sysinit` runs before any file system beyond the root is mounted).
//! - Debian's OpenRC runs the LSB scripts: no `localmount` (needing it fails the service), the
//!   file systems are `mountall.sh` and friends (insserv.conf's `$local_fs`, as OpenRC's
//!   `lsb2rcconf` reads `Required-Start: $local_fs`: `use` them), and `networking`, providing
//!   `ifupdown` rather than `net`, starts in `sysinit`, before `boot`: osconf goes to `sysinit`.

use super::{Init, Service, insserv, shell_run};
use crate::error::Error;
use crate::plan::{FileOp, Mode};
use crate::system::System;

pub const INIT: Init = Init {
    name: "openrc",
    systems: "OpenRC (Alpine, Gentoo, Artix, Debian's openrc…), started by its own init, busybox's or sysvinit",
    files,
    paths: &[SCRIPT, LINKS[0], LINKS[1]],
};

const SCRIPT: &str = "/etc/init.d/osconf";
/// In the `boot` runlevel, or in `sysinit` where the network starts there (Debian).
const LINKS: [&str; 2] = ["/etc/runlevels/boot/osconf", "/etc/runlevels/sysinit/osconf"];
/// The service that mounts the local file systems on Alpine and Gentoo.
const LOCALMOUNT: &str = "/etc/init.d/localmount";
/// Services that bring the network up, by name (`net.*` too): osconf starts before each.
const NETWORK: [&str; 7] = [
    "net",
    "networking",
    "ifupdown",
    "network",
    "NetworkManager",
    "dhcpcd",
    "connman",
];

fn files(sys: &System) -> Result<Service, Error> {
    let mut notes = Vec::new();
    let (link, level_why) = match network_in(sys, "sysinit")? {
        Some(name) => (
            LINKS[1],
            format!("the sysinit runlevel, where {name} starts the network"),
        ),
        None => (LINKS[0], "the boot runlevel".to_owned()),
    };
    let mounts = if sys.exists(LOCALMOUNT)? {
        "need localmount".to_owned()
    } else {
        notes.push(format!(
            "no {LOCALMOUNT}: osconf uses what insserv.conf calls $local_fs (Debian's LSB scripts)"
        ));
        format!("use {}", insserv::local_fs(sys)?.join(" "))
    };
    notes.push(format!("{link}: osconf starts in {level_why}"));
    Ok(Service {
        ops: vec![
            FileOp::Write {
                path: SCRIPT.to_owned(),
                contents: script(&mounts).into_bytes(),
                mode: Mode::Exact(0o755),
                secret: false,
            },
            FileOp::Symlink {
                path: link.to_owned(),
                target: SCRIPT.to_owned(),
            },
        ],
        shared: Vec::new(),
        notes,
    })
}

/// The network service linked in runlevel `level`, if any.
fn network_in(sys: &System, level: &str) -> Result<Option<String>, Error> {
    Ok(sys
        .list(&format!("/etc/runlevels/{level}"))?
        .into_iter()
        .find(|n| NETWORK.contains(&n.as_str()) || n.starts_with("net.")))
}

fn script(mounts: &str) -> String {
    format!(
        "\
#!/sbin/openrc-run
# Installed by osconf install; osconf uninstall removes it.
description=\"Configure this ECS instance from aliyun_custom_image/os.conf\"

depend() {{
    {mounts}
    before {network} sshd
}}

# A failure is reported and the boot goes on; osconf=off on the kernel command line skips it.
start() {{
{run}    return 0
}}
",
        network = NETWORK.join(" "),
        run = shell_run("    ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::common::testing::fake_root;

    /// The link install makes on a root of `files`, and its script.
    fn installed(files: &[(&str, &str)]) -> (String, String) {
        let root = fake_root(files, &[]);
        let service = super::files(&System::probe(root.path()).unwrap()).unwrap();
        let FileOp::Write { contents, .. } = &service.ops[0] else {
            panic!("{:?}", service.ops)
        };
        (
            service.ops[1].path().to_owned(),
            String::from_utf8_lossy(contents).into_owned(),
        )
    }

    #[test]
    fn alpine_boot_runlevel_debian_sysinit() {
        let (link, text) = installed(&[
            ("/etc/init.d/localmount", ""),
            ("/etc/runlevels/boot/localmount", ""),
            ("/etc/runlevels/default/networking", ""),
        ]);
        assert_eq!(link, LINKS[0]);
        assert!(
            text.contains("    need localmount\n    before net networking ifupdown"),
            "{text}"
        );
        let (link, text) = installed(&[
            ("/etc/insserv.conf", "$local_fs\t+mountall +mountall-bootclean\n"),
            ("/etc/runlevels/sysinit/mountall.sh", ""),
            ("/etc/runlevels/sysinit/networking", ""),
        ]);
        assert_eq!(link, LINKS[1]);
        assert!(text.contains("    use mountall mountall-bootclean\n"), "{text}");
        assert!(!text.contains("localmount"), "{text}");
    }
}
