//! What makes new SSH host keys when an instance first boots, read from its root: said by
//! `image prepare --remove-host-keys`, which warns when nothing does (sshd then refuses to
//! start). What the distributions do, as their packages ship it:
//! - RHEL 8/9, Fedora, Alibaba Cloud Linux, Rocky, Alma: `sshd.service` wants `sshd-keygen.target`,
//!   which wants `sshd-keygen@rsa|ecdsa|ed25519.service`, running `/usr/libexec/openssh/sshd-keygen`
//!   (RHEL 7: `sshd-keygen.service`); Arch: `sshdgenkeys.service` runs `ssh-keygen -A`; openSUSE:
//!   `sshd.service`'s `ExecStartPre=/usr/sbin/sshd-gen-keys-start`.
//! - Alpine's and Gentoo's OpenRC `sshd` script run `ssh-keygen -A` before starting sshd; RHEL 6's
//!   sysvinit script runs ssh-keygen too.
//! - Debian and Ubuntu: neither `ssh.service` (`ExecStartPre=/usr/sbin/sshd -t`) nor
//!   `/etc/init.d/ssh` makes keys — openssh-server's postinst made them once (read in Debian 12's
//!   openssh-server 9.2p1). Their cloud images rely on cloud-init's ssh module; Raspberry Pi OS on
//!   an enabled `regenerate_ssh_host_keys.service`.
//!
//! So the answer is found, not looked up by distribution: a unit of sshd (or one it wants, two
//! levels deep: the target, its template instances), any enabled unit, or an init script a
//! runlevel starts, whose commands run a key maker; or cloud-init enabled with its ssh module.

use crate::system::{self, System, UNIT_DIRS};

/// What a line runs when it makes host keys: ssh-keygen itself, RHEL's and openSUSE's wrappers,
/// and Debian's way of rerunning openssh-server's postinst.
const MAKERS: [&str; 4] = [
    "ssh-keygen",
    "sshd-keygen",
    "sshd-gen-keys-start",
    "dpkg-reconfigure openssh-server",
];

/// sshd's units (Debian's `ssh.service` aliased `sshd.service`) and init scripts.
const SSHD_UNITS: [&str; 2] = ["sshd.service", "ssh.service"];
const SCRIPT_DIRS: [&str; 2] = ["/etc/init.d", "/etc/rc.d/init.d"];

/// Units an enabled-units scan or one unit's dependencies look at, at most.
const MAX_UNITS: usize = 2000;
const MAX_DEPS: usize = 32;

/// What to do when nothing makes new host keys.
pub const ADVICE: &str = "Keep the keys out and add what makes them before sshd starts: a oneshot \
    unit or init script running ssh-keygen -A (Debian's and Ubuntu's ssh unit and /etc/init.d/ssh \
    do not; their package made the keys once, at install), or cloud-init with its ssh module; or \
    build the image without --remove-host-keys";

/// How new host keys get made at first boot, or `None` when nothing in the root does.
pub fn maker(sys: &System) -> system::Result<Option<String>> {
    for unit in SSHD_UNITS {
        if let Some(how) = by_unit(sys, unit, 2)? {
            return Ok(Some(how));
        }
    }
    if let Some(how) = enabled_unit(sys)? {
        return Ok(Some(how));
    }
    if let Some(how) = init_script(sys)? {
        return Ok(Some(how));
    }
    cloud_init(sys)
}

/// The text of the unit `name` where systemd would find it (a template instance `a@b.service`
/// by `a@.service` when it has no file of its own), and that file's path.
fn unit_text(sys: &System, name: &str) -> system::Result<Option<(String, String)>> {
    let template = name
        .split_once('@')
        .and_then(|(head, tail)| tail.rsplit_once('.').map(|(_, kind)| format!("{head}@.{kind}")));
    for candidate in std::iter::once(name.to_owned()).chain(template) {
        for dir in UNIT_DIRS {
            let path = format!("{dir}/{candidate}");
            // A unit that is no regular file (masked: a link to /dev/null) runs nothing.
            if let Ok(Some(text)) = sys.read_text(&path) {
                return Ok(Some((path, text)));
            }
        }
    }
    Ok(None)
}

/// The line of `text` (comments left out) that runs a key maker; for a unit, only its `Exec…=`
/// lines count (`Wants=sshd-keygen.target` names one, it runs nothing).
fn making_line(text: &str, unit: bool) -> Option<&str> {
    text.lines().map(str::trim).find(|l| {
        !l.starts_with('#')
            && !l.starts_with(';')
            && (!unit || l.starts_with("Exec"))
            && MAKERS.iter().any(|m| l.contains(m))
    })
}

/// The unit `name` runs a key maker itself, or a unit it wants or requires does (`depth` levels
/// down).
fn by_unit(sys: &System, name: &str, depth: u32) -> system::Result<Option<String>> {
    let Some((path, text)) = unit_text(sys, name)? else {
        return Ok(None);
    };
    if let Some(line) = making_line(&text, true) {
        return Ok(Some(format!("{name} ({path}) runs {line}")));
    }
    if depth == 0 {
        return Ok(None);
    }
    let deps = text
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("Wants=").or_else(|| l.strip_prefix("Requires=")))
        .flat_map(str::split_whitespace)
        .take(MAX_DEPS);
    for dep in deps {
        if let Some(how) = by_unit(sys, dep, depth - 1)? {
            return Ok(Some(format!("{name} wants {how}")));
        }
    }
    Ok(None)
}

/// An enabled unit (a link in a `.wants`/`.requires` directory) that runs a key maker.
fn enabled_unit(sys: &System) -> system::Result<Option<String>> {
    for dir in sys.systemd_wants_dirs()? {
        for name in sys.list(&dir)?.into_iter().take(MAX_UNITS) {
            if let Some((path, text)) = unit_text(sys, &name)?
                && let Some(line) = making_line(&text, true)
            {
                return Ok(Some(format!("{name} ({path}), enabled in {dir}, runs {line}")));
            }
        }
    }
    Ok(None)
}

/// An init script that a runlevel link starts and that runs a key maker (Alpine's and Gentoo's
/// OpenRC sshd, RHEL 6's sysvinit sshd).
fn init_script(sys: &System) -> system::Result<Option<String>> {
    for dir in SCRIPT_DIRS {
        for name in sys.list(dir)?.into_iter().take(MAX_UNITS) {
            let path = format!("{dir}/{name}");
            let Ok(Some(text)) = sys.read_text(&path) else {
                continue;
            };
            if let Some(line) = making_line(&text, false)
                && let Some(link) = sys.init_script_link(&name)?
            {
                return Ok(Some(format!("{path}, started by {link}, runs {line}")));
            }
        }
    }
    Ok(None)
}

/// cloud-init enabled with its ssh module in /etc/cloud/cloud.cfg: the module deletes the keys
/// and makes new ones on an instance's first boot (`ssh_deletekeys`, `ssh_genkeytypes`) — once
/// cloud-init has found a datasource (on ECS, Alibaba Cloud's metadata service).
fn cloud_init(sys: &System) -> system::Result<Option<String>> {
    let mut how = None;
    for unit in [
        "cloud-init-local.service",
        "cloud-init.service",
        "cloud-config.service",
    ] {
        if let Some(link) = sys.systemd_unit_link(unit)? {
            how = Some(link);
            break;
        }
    }
    if how.is_none() {
        for script in ["cloud-init-local", "cloud-init", "cloud-config"] {
            if let Some(link) = sys.init_script_link(script)? {
                how = Some(link);
                break;
            }
        }
    }
    let Some(link) = how else {
        return Ok(None);
    };
    let cfg = "/etc/cloud/cloud.cfg";
    let has_ssh = sys
        .read_text(cfg)?
        .is_some_and(|t| t.lines().any(|l| l.trim() == "- ssh"));
    Ok(has_ssh.then(|| {
        format!(
            "cloud-init (enabled: {link}) runs its ssh module ({cfg}), once it finds a datasource \
             (on ECS, the instance's metadata)"
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::maker;
    use crate::render::common::testing::fake_root;
    use crate::system::System;

    fn found(files: &[(&str, &str)], links: &[(&str, &str)]) -> Option<String> {
        let root = fake_root(files, links);
        maker(&System::probe(root.path()).unwrap()).unwrap()
    }

    /// RHEL 9's own units (openssh-server-8.7p1): sshd wants the target, which wants the template.
    const RHEL_SSHD: &str = "[Unit]\nDescription=OpenSSH server daemon\n\
        Documentation=man:sshd(8) man:sshd_config(5)\nAfter=network.target sshd-keygen.target\n\
        Wants=sshd-keygen.target\n\n[Service]\nType=notify\nEnvironmentFile=-/etc/sysconfig/sshd\n\
        ExecStart=/usr/sbin/sshd -D $OPTIONS\nExecReload=/bin/kill -HUP $MAINPID\n";
    const RHEL_TARGET: &str = "[Unit]\nWants=sshd-keygen@rsa.service\nWants=sshd-keygen@ecdsa.service\n\
        Wants=sshd-keygen@ed25519.service\nPartOf=sshd.service\n";
    const RHEL_KEYGEN: &str = "[Unit]\nDescription=OpenSSH %i Server Key Generation\n\
        ConditionFileNotEmpty=|!/etc/ssh/ssh_host_%i_key\n\n[Service]\nType=oneshot\n\
        EnvironmentFile=-/etc/sysconfig/sshd\nExecStart=/usr/libexec/openssh/sshd-keygen %i\n\n\
        [Install]\nWantedBy=sshd-keygen.target\n";
    /// Debian 12's (openssh-server 1:9.2p1-2+deb12u10): checks the config, makes no key.
    const DEBIAN_SSH: &str = "[Unit]\nDescription=OpenBSD Secure Shell server\n\
        After=network.target auditd.service\nConditionPathExists=!/etc/ssh/sshd_not_to_be_run\n\n\
        [Service]\nEnvironmentFile=-/etc/default/ssh\nExecStartPre=/usr/sbin/sshd -t\n\
        ExecStart=/usr/sbin/sshd -D $SSHD_OPTS\nExecReload=/usr/sbin/sshd -t\n\n[Install]\n\
        WantedBy=multi-user.target\nAlias=sshd.service\n";

    #[test]
    fn rhel_makes_them_through_sshd_keygen_at() {
        let how = found(
            &[
                ("usr/lib/systemd/system/sshd.service", RHEL_SSHD),
                ("usr/lib/systemd/system/sshd-keygen.target", RHEL_TARGET),
                ("usr/lib/systemd/system/sshd-keygen@.service", RHEL_KEYGEN),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            how,
            "sshd.service wants sshd-keygen.target wants sshd-keygen@rsa.service \
             (/usr/lib/systemd/system/sshd-keygen@.service) runs \
             ExecStart=/usr/libexec/openssh/sshd-keygen %i"
        );
    }

    /// The unit directories were a list of three here and one of eight for the agent: a key maker
    /// in /usr/local/lib/systemd/system (where a locally built OpenSSH installs its units), which
    /// systemd loads, was not found, and prepare warned that sshd would not start.
    #[test]
    fn regression_a_unit_in_usr_local_is_found_as_systemd_finds_it() {
        let sshd = (
            "usr/local/lib/systemd/system/sshd.service",
            "[Service]\nExecStartPre=/usr/local/bin/ssh-keygen -A\nExecStart=/usr/local/sbin/sshd -D\n",
        );
        let how = found(&[sshd], &[]).unwrap();
        assert!(
            how.contains("/usr/local/lib/systemd/system/sshd.service"),
            "{how}"
        );
        // The administrator's copy in /etc wins over it, as in systemd.
        let overridden = (
            "etc/systemd/system/sshd.service",
            "[Service]\nExecStart=/usr/local/sbin/sshd -D\n",
        );
        assert_eq!(found(&[sshd, overridden], &[]), None);
    }

    #[test]
    fn debian_alone_makes_none_and_cloud_init_or_a_unit_does() {
        let ssh = ("lib/systemd/system/ssh.service", DEBIAN_SSH);
        let init = (
            "etc/init.d/ssh",
            "#!/bin/sh\ncheck_config() {\n\t/usr/sbin/sshd -t\n}\n",
        );
        let wants = (
            "etc/systemd/system/multi-user.target.wants/ssh.service",
            "/lib/systemd/system/ssh.service",
        );
        assert_eq!(
            found(&[ssh, init], &[wants, ("etc/rc2.d/S01ssh", "../init.d/ssh")]),
            None
        );
        // cloud-init enabled with its ssh module; enabled without it, or with it but disabled, is none.
        let cfg = (
            "etc/cloud/cloud.cfg",
            "cloud_init_modules:\n - seed_random\n - ssh\n",
        );
        let ci = (
            "lib/systemd/system/cloud-init.service",
            "[Service]\nExecStart=/usr/bin/cloud-init init\n",
        );
        let ci_on = (
            "etc/systemd/system/cloud-init.target.wants/cloud-init.service",
            "/lib/systemd/system/cloud-init.service",
        );
        let how = found(&[ssh, cfg, ci], &[wants, ci_on]).unwrap();
        assert!(
            how.starts_with(
                "cloud-init (enabled: /etc/systemd/system/cloud-init.target.wants/cloud-init.service)"
            ),
            "{how}"
        );
        let no_module = ("etc/cloud/cloud.cfg", "cloud_init_modules:\n - seed_random\n");
        assert_eq!(found(&[ssh, no_module, ci], &[wants, ci_on]), None);
        assert_eq!(found(&[ssh, cfg, ci], &[wants]), None);
        // Raspberry Pi OS's way: an enabled oneshot unit of its own.
        let regen = (
            "lib/systemd/system/regenerate_ssh_host_keys.service",
            "[Unit]\nBefore=ssh.service\n[Service]\nType=oneshot\n\
             ExecStart=/usr/lib/raspberrypi-sys-mods/regenerate_ssh_host_keys\n\
             ExecStartPost=/bin/sh -c \"ssh-keygen -A\"\n",
        );
        let regen_on = (
            "etc/systemd/system/multi-user.target.wants/regenerate_ssh_host_keys.service",
            "/lib/systemd/system/regenerate_ssh_host_keys.service",
        );
        let how = found(&[ssh, regen], &[wants, regen_on]).unwrap();
        assert!(how.starts_with("regenerate_ssh_host_keys.service"), "{how}");
    }

    #[test]
    fn alpine_openrc_sshd_runs_ssh_keygen() {
        let script = (
            "etc/init.d/sshd",
            "#!/sbin/openrc-run\nstart_pre() {\n\tssh-keygen -A\n}\n",
        );
        let how = found(&[script], &[("etc/runlevels/default/sshd", "/etc/init.d/sshd")]).unwrap();
        assert_eq!(
            how,
            "/etc/init.d/sshd, started by /etc/runlevels/default/sshd, runs ssh-keygen -A"
        );
        // Not started by any runlevel: it makes nothing at boot. A comment is no command.
        assert_eq!(found(&[script], &[]), None);
        let comment = (
            "etc/init.d/sshd",
            "#!/sbin/openrc-run\n# ssh-keygen -A was here\n",
        );
        assert_eq!(
            found(&[comment], &[("etc/runlevels/default/sshd", "/etc/init.d/sshd")]),
            None
        );
    }
}
