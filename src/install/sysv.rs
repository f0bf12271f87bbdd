//! sysvinit: `/etc/init.d/osconf` with an LSB header that orders it after the local file systems
//! and before the network scripts (`X-Start-Before`, not the vendor sample's `$network`, which
//! would run it after the network it then reconfigures), enabled by start links as insserv or
//! update-rc.d would make them: in rcS.d where the system has one (Debian), else in rc2.d–rc5.d
//! (Red Hat's layout), numbered just below the first network script's link ([`start_link`]). Where `/lib/init/rc`
//! boots makefile-style (Debian with insserv: `startpar -M` starts only what `.depend.boot` lists),
//! osconf's lines go into that file too, as insserv would write them ([`super::insserv`]); Red
//! Hat's rc (chkconfig, read from the `# chkconfig:` line) and Debian's `CONCURRENCY=none` start
//! the links in name order.

use super::insserv::{self, DEPEND_BOOT, DEPEND_START};
use super::{INSTALL_MARKERS, Init, Service, shell_run};
use crate::error::Error;
use crate::plan::{FileOp, Mode};
use crate::render::common::blocks::replace_block_with;
use crate::system::System;

pub const INIT: Init = Init {
    name: "sysv",
    systems: "sysvinit with LSB headers (Debian without systemd, Devuan, old RHEL/CentOS 6)",
    files,
    paths: &PATHS,
};

/// The script, its start links as `files` makes them (in one of RC_BASES, runlevel S or 2-5, two
/// digits, or `S00Aosconf`) and insserv's dependency files (runit on Debian installs these too).
pub const PATHS: [&str; 7] = [
    SCRIPT,
    "/etc/rc[S2345].d/S[0-9][0-9]osconf",
    "/etc/rc.d/rc[S2345].d/S[0-9][0-9]osconf",
    "/etc/rc[S2345].d/S00Aosconf",
    "/etc/rc.d/rc[S2345].d/S00Aosconf",
    DEPEND_BOOT,
    DEPEND_START,
];

const SCRIPT: &str = "/etc/init.d/osconf";
/// The scripts that bring the network up on the distributions sysvinit serves.
const NETWORK_SCRIPTS: [&str; 8] = [
    "networking",
    "network",
    "NetworkManager",
    "network-manager",
    "ifupdown",
    "wicked",
    "connman",
    "dhcpcd",
];
/// Where the runlevel directories are, Debian's first.
const RC_BASES: [&str; 2] = ["/etc", "/etc/rc.d"];

/// True when runlevel directories exist (rcS.d or rc3.d, under /etc or /etc/rc.d).
pub fn has_rc_dirs(sys: &System) -> crate::system::Result<bool> {
    Ok(rc_base(sys)?.is_some())
}

/// The first of [`RC_BASES`] holding runlevel directories (rcS.d or rc3.d).
fn rc_base(sys: &System) -> crate::system::Result<Option<&'static str>> {
    for b in RC_BASES {
        if sys.is_dir(&format!("{b}/rcS.d"))? || sys.is_dir(&format!("{b}/rc3.d"))? {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

fn files(sys: &System) -> Result<Service, Error> {
    let base = rc_base(sys)?.unwrap_or("/etc");
    let levels: &[&str] = if sys.is_dir(&format!("{base}/rcS.d"))? {
        &["S"]
    } else {
        &["2", "3", "4", "5"]
    };
    let mut notes = Vec::new();
    let mut ops = vec![FileOp::Write {
        path: SCRIPT.to_owned(),
        contents: script(levels).into_bytes(),
        mode: Mode::Exact(0o755),
        secret: false,
    }];
    for level in levels {
        let dir = format!("{base}/rc{level}.d");
        let (link, why) = start_link(&sys.list(&dir)?);
        notes.push(format!("{dir}/{link}: {why}"));
        ops.push(FileOp::Symlink {
            path: format!("{dir}/{link}"),
            target: "../init.d/osconf".to_owned(),
        });
    }
    let mut shared = Vec::new();
    if insserv::makefile_boot(sys)? {
        let depend = if levels == ["S"] {
            DEPEND_BOOT
        } else {
            DEPEND_START
        };
        let text = sys.read_text(depend)?.unwrap_or_default();
        let mut new = replace_block_with(&text, INSTALL_MARKERS, "");
        match insserv::block(sys, &new, &NETWORK_SCRIPTS)? {
            Some(block) => {
                if !new.is_empty() && !new.ends_with('\n') {
                    new.push('\n');
                }
                new.push_str(INSTALL_MARKERS.begin);
                new.push_str(&block);
                new.push_str(INSTALL_MARKERS.end);
                notes.push(format!(
                    "{depend}: osconf listed as insserv lists it (/lib/init/rc boots makefile-style: \
                     startpar starts only what this file names)"
                ));
            }
            None => notes.push(format!("{depend} already lists osconf (insserv ran)")),
        }
        ops.push(FileOp::write(depend, new));
        shared.push(depend.to_owned());
    }
    Ok(Service { ops, shared, notes })
}

/// The name of osconf's start link among the links `names` of a runlevel directory: numbered one
/// below the first network script's, so that it runs before it. rc starts `S??*` in name order
/// (dash and busybox sh glob in byte order), and Debian's rc starts the links of one number
/// together (`CONCURRENCY=shell`): a lower number is the only order every rc keeps. Below `S00`
/// there is none, so there osconf's link is `S00Aosconf`: a capital `A` sorts before every script
/// name that starts with another letter, in byte order and in any locale's. Buildroot's numbered
/// scripts in /etc/init.d follow the same rule.
pub fn start_link(names: &[String]) -> (String, String) {
    let start = |n: &String| -> Option<(u32, String)> {
        let rest = n.strip_prefix('S')?;
        let number = rest.get(..2)?.parse().ok()?;
        Some((number, rest[2..].to_owned()))
    };
    let first_network = names
        .iter()
        .filter_map(start)
        .filter(|(_, name)| NETWORK_SCRIPTS.contains(&name.as_str()))
        .min();
    match first_network {
        Some((n, name)) if n > 0 => (
            format!("S{:02}osconf", n - 1),
            format!("just before S{n:02}{name}"),
        ),
        Some((n, name)) => (
            "S00Aosconf".to_owned(),
            format!("S{n:02}{name} is first: no number is lower, and S00A sorts before it"),
        ),
        None => (
            "S10osconf".to_owned(),
            "no network script linked here; 10 as Red Hat's network uses".to_owned(),
        ),
    }
}

fn script(levels: &[&str]) -> String {
    format!(
        "\
#!/bin/sh
# Installed by osconf install; osconf uninstall removes it.
### BEGIN INIT INFO
# Provides:          osconf
# Required-Start:    $local_fs
# Required-Stop:
# X-Start-Before:    {before}
# Default-Start:     {levels}
# Default-Stop:
# Short-Description: Configure this ECS instance from aliyun_custom_image/os.conf
# Description:       Runs osconf apply before the network starts. A failure is reported and
#                    the boot goes on; osconf=off on the kernel command line skips it.
### END INIT INFO
# chkconfig: 2345 09 91

case \"$1\" in
start)
{run};;
stop|restart|force-reload|status)
    ;;
*)
    echo \"Usage: $0 start\" >&2
    exit 3
    ;;
esac
exit 0
",
        before = NETWORK_SCRIPTS.join(" "),
        levels = levels.join(" "),
        run = shell_run("    "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_links() {
        let link = |v: &[&str]| start_link(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).0;
        assert_eq!(
            link(&["S01mountkernfs.sh", "S05mountall.sh", "S07networking"]),
            "S06osconf"
        );
        assert_eq!(link(&["S10network", "S25NetworkManager"]), "S09osconf");
        assert_eq!(link(&["S01networking"]), "S00osconf");
        assert_eq!(link(&[]), "S10osconf");
    }

    /// A network script at S00 left no lower number: `S00osconf` sorted after `S00networking`
    /// (and `S00NetworkManager`), so osconf ran after the network it configures. The link osconf
    /// takes there sorts first in byte order, as rc's glob runs the links.
    #[test]
    fn regression_a_network_script_at_s00_is_still_preceded_by_osconf() {
        for network in ["networking", "NetworkManager", "connman", "dhcpcd"] {
            let mut names = vec![format!("S00{network}"), "S00bootlogd".to_owned()];
            let (link, _) = start_link(&names);
            assert!(PATHS.iter().any(|p| crate::render::common::glob::matches(
                p,
                &format!("/etc/rcS.d/{link}"),
                true
            )));
            names.push(link.clone());
            names.sort();
            let at = |n: &str| names.iter().position(|x| x == n).unwrap();
            assert!(at(&link) < at(&format!("S00{network}")), "{names:?}");
        }
    }
}
