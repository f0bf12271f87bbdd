//! `osconf install` and `osconf uninstall` with the real binary, for each init system, into scratch
//! roots: the files and links each init reads, the manifest, and an uninstall that gives back the
//! tree exactly (contents, links, modes, directories). The boot scripts' own logic (osconf=off, a
//! failing osconf not failing the boot) is run by `sh`; the real consumers (systemd-analyze,
//! systemctl, insserv) are in tests/root/real_install.rs.

use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{example_root, fingerprint, osconf_in as osconf};

fn ok(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

/// Files and links (path, content; content `->target` makes a link) under a new root.
fn make_root(scratch: &Path, entries: &[(&str, &str)]) -> PathBuf {
    let root = scratch.join("root");
    for (path, content) in entries {
        let host = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(host.parent().unwrap()).unwrap();
        match content.strip_prefix("->") {
            Some(target) => symlink(target, &host).unwrap(),
            None => fs::write(&host, content).unwrap(),
        }
    }
    fs::create_dir_all(root.join("boot")).unwrap();
    root
}

fn read(root: &Path, path: &str) -> String {
    fs::read_to_string(root.join(path.trim_start_matches('/'))).unwrap()
}

fn link(root: &Path, path: &str) -> String {
    fs::read_link(root.join(path.trim_start_matches('/')))
        .unwrap()
        .display()
        .to_string()
}

/// Installs for `init` (detected when `None`), checks the binary and the manifest, installs again
/// (nothing changes), uninstalls and checks the tree is back as it was; returns the installed root's
/// fingerprint for the caller's own checks (taken before uninstalling).
fn round_trip(root: &Path, init: Option<&str>, check: impl Fn(&Path)) {
    let before = fingerprint(root);
    let mut args = vec!["install"];
    if let Some(init) = init {
        args.extend(["--init", init]);
    }
    let said = ok(osconf(&args, root));
    let binary = root.join("usr/sbin/osconf");
    assert_eq!(
        fs::read(&binary).unwrap(),
        fs::read(env!("CARGO_BIN_EXE_osconf")).unwrap()
    );
    assert_eq!(fs::metadata(&binary).unwrap().permissions().mode() & 0o777, 0o755);
    assert!(root.join("boot/aliyun_custom_image").is_dir(), "{said}");
    let manifest = read(root, "/var/lib/osconf/installed");
    assert!(manifest.contains("/usr/sbin/osconf"), "{manifest}");
    check(root);

    let installed = fingerprint(root);
    ok(osconf(&args, root));
    assert_eq!(fingerprint(root), installed, "a second install changed the tree");

    let said = ok(osconf(&["uninstall"], root));
    assert_eq!(
        fingerprint(root),
        before,
        "uninstall left the tree changed:\n{said}"
    );
    let said = ok(osconf(&["uninstall"], root));
    assert!(said.contains("not installed"), "{said}");
}

#[test]
fn systemd_unit_and_its_wants_link() {
    let dir = tempfile::tempdir().unwrap();
    let root = example_root(dir.path(), "debian11");
    fs::create_dir(root.join("boot")).unwrap();
    round_trip(&root, None, |root| {
        let unit = read(root, "/etc/systemd/system/osconf.service");
        for line in [
            "DefaultDependencies=no",
            "After=systemd-remount-fs.service local-fs.target systemd-udev-trigger.service",
            "Wants=network-pre.target",
            "Conflicts=shutdown.target",
            "Type=oneshot",
            "RemainAfterExit=yes",
            "StandardOutput=journal+console",
            "ConditionKernelCommandLine=!osconf=off",
            "ExecStart=/usr/sbin/osconf apply",
            "WantedBy=sysinit.target",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
        }
        assert!(unit.contains("\nTimeoutStartSec="), "{unit}");
        let before = unit.lines().find(|l| l.starts_with("Before=")).unwrap();
        // netplan ≥ 1.2 configures in netplan-configure.service: osconf's YAML must be there first.
        for u in [
            "network-pre.target",
            "netplan-configure.service",
            "sysinit.target",
            "sshd.service",
            "systemd-user-sessions.service",
        ] {
            assert!(before.split(['=', ' ']).any(|w| w == u), "{before}");
        }
        assert_eq!(
            link(root, "/etc/systemd/system/sysinit.target.wants/osconf.service"),
            "/etc/systemd/system/osconf.service"
        );
    });
}

/// A Debian sysvinit root: runlevel links as insserv made them.
fn debian_sysv_root(scratch: &Path) -> PathBuf {
    make_root(
        scratch,
        &[
            ("/etc/inittab", "id:2:initdefault:\nsi::sysinit:/etc/init.d/rcS\n"),
            ("/etc/init.d/networking", "#!/bin/sh\n"),
            ("/etc/init.d/mountall.sh", "#!/bin/sh\n"),
            ("/etc/rcS.d/S03mountall.sh", "->../init.d/mountall.sh"),
            ("/etc/rcS.d/S05networking", "->../init.d/networking"),
            ("/etc/rc2.d/S01ssh", "->../init.d/ssh"),
        ],
    )
}

#[test]
fn sysv_script_linked_before_networking() {
    let dir = tempfile::tempdir().unwrap();
    let root = debian_sysv_root(dir.path());
    round_trip(&root, None, |root| {
        assert_eq!(link(root, "/etc/rcS.d/S04osconf"), "../init.d/osconf");
        let script = read(root, "/etc/init.d/osconf");
        assert!(script.contains("# Required-Start:    $local_fs\n"), "{script}");
        assert!(
            script.contains("# X-Start-Before:    networking network NetworkManager"),
            "{script}"
        );
        assert!(script.contains("# Default-Start:     S\n"), "{script}");
        assert!(!script.contains("$network"), "{script}");
        let mode = fs::metadata(root.join("etc/init.d/osconf"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    });
}

#[test]
fn sysv_on_red_hat_layout_links_rc2_to_rc5() {
    let dir = tempfile::tempdir().unwrap();
    let root = make_root(
        dir.path(),
        &[
            ("/etc/inittab", "id:3:initdefault:\n"),
            ("/etc/rc.d/init.d/network", "#!/bin/sh\n"),
            ("/etc/init.d", "->rc.d/init.d"),
            ("/etc/rc.d/rc3.d/S10network", "->../init.d/network"),
        ],
    );
    round_trip(&root, Some("sysv"), |root| {
        for level in ["2", "3", "4", "5"] {
            assert!(
                root.join(format!("etc/rc.d/rc{level}.d/S09osconf"))
                    .symlink_metadata()
                    .is_ok()
                    || level != "3",
                "rc{level}.d"
            );
        }
        assert_eq!(link(root, "/etc/rc.d/rc3.d/S09osconf"), "../init.d/osconf");
        assert!(read(root, "/etc/init.d/osconf").contains("# Default-Start:     2 3 4 5\n"));
    });
}

#[test]
fn openrc_script_in_the_boot_runlevel() {
    let dir = tempfile::tempdir().unwrap();
    let root = example_root(dir.path(), "alpine3");
    fs::create_dir(root.join("boot")).unwrap();
    // Alpine's localmount service (openrc's package).
    fs::create_dir_all(root.join("etc/init.d")).unwrap();
    fs::write(root.join("etc/init.d/localmount"), "#!/sbin/openrc-run\n").unwrap();
    round_trip(&root, None, |root| {
        let script = read(root, "/etc/init.d/osconf");
        assert!(script.starts_with("#!/sbin/openrc-run\n"), "{script}");
        assert!(
            script.contains("depend() {\n    need localmount\n    before net networking ifupdown"),
            "{script}"
        );
        assert_eq!(link(root, "/etc/runlevels/boot/osconf"), "/etc/init.d/osconf");
    });
}

#[test]
fn runit_core_service() {
    let dir = tempfile::tempdir().unwrap();
    let root = make_root(
        dir.path(),
        &[
            ("/sbin/init", "->runit-init"),
            ("/etc/runit/1", "#!/bin/sh\n"),
            ("/etc/runit/core-services/03-filesystems.sh", ": mount\n"),
        ],
    );
    round_trip(&root, None, |root| {
        let text = read(root, "/etc/runit/core-services/06-osconf.sh");
        assert!(text.contains("/usr/sbin/osconf apply ||"), "{text}");
        assert!(
            !text.replace("exit status", "").contains("exit"),
            "sourced by stage 1: must not exit\n{text}"
        );
    });
}

/// Debian's runit runs /etc/rcS.d's scripts in stage 1 (unless native.boot.run): osconf goes there,
/// and uninstall takes it back out. With native.boot.run, its boot-run directory.
#[test]
fn runit_on_debian_stage_1_runs_rcs_scripts() {
    let stage_1 = "#!/bin/sh\nfor script in /etc/rcS.d/S* ; do\n\t\"$script\" start --force-sysv\ndone\n";
    let dir = tempfile::tempdir().unwrap();
    let root = debian_sysv_root(&dir.path().join("rcs"));
    fs::create_dir_all(root.join("etc/runit/boot-run")).unwrap();
    fs::write(root.join("etc/runit/1"), stage_1).unwrap();
    fs::create_dir_all(root.join("sbin")).unwrap();
    symlink("/lib/runit/runit-init", root.join("sbin/init")).unwrap();
    round_trip(&root, None, |root| {
        assert_eq!(link(root, "/etc/rcS.d/S04osconf"), "../init.d/osconf");
        assert!(!root.join("etc/runit/boot-run/06-osconf.sh").exists());
    });
    fs::write(root.join("etc/runit/native.boot.run"), "").unwrap();
    round_trip(&root, None, |root| {
        assert!(read(root, "/etc/runit/boot-run/06-osconf.sh").contains("/usr/sbin/osconf apply ||"));
        assert!(root.join("etc/rcS.d/S04osconf").symlink_metadata().is_err());
    });
}

const BUSYBOX_INITTAB: &str =
    "::sysinit:/bin/mount -a\n::sysinit:/sbin/ifup -a\n::respawn:/sbin/getty -L 115200 ttyS0 vt100\n";

#[test]
fn busybox_inittab_entry_before_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let root = make_root(
        dir.path(),
        &[
            ("/sbin/init", "->/bin/busybox"),
            ("/etc/inittab", BUSYBOX_INITTAB),
        ],
    );
    round_trip(&root, None, |root| {
        let inittab = read(root, "/etc/inittab");
        let lines: Vec<&str> = inittab.lines().collect();
        assert_eq!(lines[0], "::sysinit:/bin/mount -a", "{inittab}");
        assert!(lines[1].starts_with("# BEGIN osconf install"), "{inittab}");
        assert!(lines[2].starts_with("::sysinit:/bin/sh -c '"), "{inittab}");
        assert_eq!(lines[4], "::sysinit:/sbin/ifup -a", "{inittab}");
    });
}

#[test]
fn what_was_there_is_put_back_mode_and_all() {
    let dir = tempfile::tempdir().unwrap();
    let root = debian_sysv_root(dir.path());
    let old = root.join("usr/sbin/osconf");
    fs::create_dir_all(old.parent().unwrap()).unwrap();
    fs::write(&old, "#!/bin/sh\necho an older osconf\n").unwrap();
    fs::set_permissions(&old, fs::Permissions::from_mode(0o700)).unwrap();
    symlink("/opt/osconf/init", root.join("etc/init.d/osconf")).unwrap();
    round_trip(&root, Some("sysv"), |root| {
        let manifest = read(root, "/var/lib/osconf/installed");
        assert!(
            manifest.contains("replaced 0700 /usr/sbin/osconf\n"),
            "{manifest}"
        );
        assert!(
            manifest.contains("link /etc/init.d/osconf /opt/osconf/init\n"),
            "{manifest}"
        );
    });
}

#[test]
fn an_edited_inittab_keeps_the_edit_after_uninstall() {
    let dir = tempfile::tempdir().unwrap();
    let root = make_root(
        dir.path(),
        &[
            ("/sbin/init", "->/bin/busybox"),
            ("/etc/inittab", BUSYBOX_INITTAB),
        ],
    );
    ok(osconf(&["install"], &root));
    let inittab = root.join("etc/inittab");
    let edited = fs::read_to_string(&inittab).unwrap() + "ttyS1::respawn:/sbin/getty ttyS1\n";
    fs::write(&inittab, edited).unwrap();
    ok(osconf(&["uninstall"], &root));
    assert_eq!(
        fs::read_to_string(&inittab).unwrap(),
        format!("{BUSYBOX_INITTAB}ttyS1::respawn:/sbin/getty ttyS1\n")
    );
}

#[test]
fn unknown_init_says_what_was_probed_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = make_root(dir.path(), &[("/etc/hostname", "h\n")]);
    let before = fingerprint(&root);
    let out = osconf(&["install"], &root);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("probed /sbin/init") && err.contains("--init"),
        "{err}"
    );
    assert_eq!(fingerprint(&root), before);
    let out = osconf(&["install", "--init", "upstart"], &root);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn installed_for_one_init_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let root = debian_sysv_root(dir.path());
    ok(osconf(&["install", "--init", "sysv"], &root));
    let installed = fingerprint(&root);
    for args in [
        &["install", "--init", "busybox"][..],
        &["uninstall", "--init", "openrc"],
    ] {
        let out = osconf(args, &root);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("installed for sysv"));
        assert_eq!(fingerprint(&root), installed);
    }
}

#[test]
fn a_forged_manifest_cannot_remove_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = debian_sysv_root(dir.path());
    ok(osconf(&["install", "--init", "sysv"], &root));
    let manifest = root.join("var/lib/osconf/installed");
    let forged = fs::read_to_string(&manifest).unwrap() + "new /etc/inittab\n";
    fs::write(&manifest, forged).unwrap();
    let before = fingerprint(&root);
    let out = osconf(&["uninstall"], &root);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/etc/inittab is not a file osconf install writes")
    );
    assert_eq!(fingerprint(&root), before);
}

#[test]
fn boot_dir_elsewhere_and_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = debian_sysv_root(dir.path());
    let esp = dir.path().join("esp");
    fs::create_dir(&esp).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["install", "--init", "sysv", "--root"])
        .arg(&root)
        .arg("--boot-dir")
        .arg(&esp)
        .output()
        .unwrap();
    ok(out);
    assert!(esp.join("aliyun_custom_image").is_dir());
    assert!(!root.join("boot/aliyun_custom_image").exists());

    let bare = make_root(
        &dir.path().join("bare"),
        &[("/etc/inittab", "id:2:initdefault:\n")],
    );
    fs::remove_dir(bare.join("boot")).unwrap();
    let before = fingerprint(&bare);
    let out = osconf(&["install"], &bare);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--boot-dir"));
    assert_eq!(fingerprint(&bare), before);
}

/// Runs a boot script's shell with `/usr/sbin/osconf apply` replaced by `osconf_stand_in` and
/// /proc/cmdline by a file holding `cmdline`; returns its exit status and stderr.
fn run_script(script: &str, osconf_stand_in: &str, cmdline: &str, dir: &Path) -> (i32, String) {
    let cmdline_file = dir.join("cmdline");
    fs::write(&cmdline_file, cmdline).unwrap();
    let text = script
        .replace("/usr/sbin/osconf apply", osconf_stand_in)
        .replace("/proc/cmdline", cmdline_file.to_str().unwrap());
    let out = Command::new("sh")
        .args(["-c", &text, "sh", "start"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn boot_scripts_go_on_when_osconf_fails_and_honour_osconf_off() {
    let dir = tempfile::tempdir().unwrap();
    let sysv = debian_sysv_root(&dir.path().join("sysv"));
    ok(osconf(&["install"], &sysv));
    let alpine = example_root(&dir.path().join("openrc"), "alpine3");
    fs::create_dir(alpine.join("boot")).unwrap();
    ok(osconf(&["install"], &alpine));
    let runit = make_root(&dir.path().join("runit"), &[("/etc/runit/1", "")]);
    ok(osconf(&["install"], &runit));
    let busybox = make_root(
        &dir.path().join("busybox"),
        &[
            ("/sbin/init", "->/bin/busybox"),
            ("/etc/inittab", BUSYBOX_INITTAB),
        ],
    );
    ok(osconf(&["install"], &busybox));
    let inittab = read(&busybox, "/etc/inittab");
    let entry = inittab.lines().find(|l| l.contains("osconf apply")).unwrap();
    let command = entry.splitn(4, ':').nth(3).unwrap().to_owned();

    let scripts = [
        ("sysv", format!("{}\n", read(&sysv, "/etc/init.d/osconf"))),
        // openrc-run calls start(); sourcing and calling it is what it does.
        (
            "openrc",
            format!(
                "{}\nstart\n",
                read(&alpine, "/etc/init.d/osconf").replacen("#!", "#", 1)
            ),
        ),
        ("runit", read(&runit, "/etc/runit/core-services/06-osconf.sh")),
        ("busybox", format!("{command}\n")),
    ];
    for (init, script) in &scripts {
        let (status, err) = run_script(script, "false", "ro quiet\n", dir.path());
        assert_eq!(status, 0, "{init}: {err}");
        assert!(
            err.contains("osconf: exit status 1; the boot goes on"),
            "{init}: {err}"
        );
        let (status, err) = run_script(script, "echo ran >&2", "ro osconf=off quiet\n", dir.path());
        assert_eq!(status, 0, "{init}: {err}");
        assert!(!err.contains("ran"), "{init} ran osconf with osconf=off: {err}");
        let (_, err) = run_script(script, "echo ran >&2", "ro quiet\n", dir.path());
        assert!(err.contains("ran"), "{init} did not run osconf: {err}");
    }
}
