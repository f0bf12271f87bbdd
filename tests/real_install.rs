//! What `osconf install` writes, read by the programs that read it at boot or enable it: systemd's
//! own verifier and `systemctl --root` (its view of the enablement must be the one install made),
//! insserv (the LSB header must parse, and insserv must enable the script with the very link
//! install made), and `sh -n` for every script. They need no root; a missing tool is a loud skip
//! (a failure under CI=true).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::real::cannot_run;
use common::{copy_tree, entries, example_root};

fn osconf_install(root: &Path, init: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["install", "--init", init, "--root"])
        .arg(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn output(cmd: &mut Command) -> (bool, String) {
    let out: Output = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn systemd_verifies_the_unit_and_agrees_it_is_enabled() {
    let (Some(analyze), Some(systemctl)) = (program("systemd-analyze"), program("systemctl")) else {
        return cannot_run(
            "systemd_verifies_the_unit_and_agrees_it_is_enabled",
            "systemd-analyze or systemctl is not installed",
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let root = example_root(dir.path(), "debian11");
    fs::create_dir(root.join("boot")).unwrap();
    osconf_install(&root, "systemd");
    let root_arg = format!("--root={}", root.display());

    // Any warning (an unknown key, a bad value, a missing ExecStart binary) fails the test.
    let (ok, said) =
        output(Command::new(&analyze).args(["verify", &root_arg, "/etc/systemd/system/osconf.service"]));
    assert!(ok && said.trim().is_empty(), "systemd-analyze verify:\n{said}");

    let (ok, said) = output(Command::new(&systemctl).args([&root_arg, "is-enabled", "osconf.service"]));
    assert!(ok && said.trim() == "enabled", "is-enabled: {said}");

    // systemctl's own disable removes exactly install's link, and its enable makes the same again.
    let installed = entries(&root);
    let (ok, said) = output(Command::new(&systemctl).args([&root_arg, "disable", "osconf.service"]));
    assert!(ok, "disable: {said}");
    let wants = "etc/systemd/system/sysinit.target.wants/osconf.service";
    assert!(
        fs::symlink_metadata(root.join(wants)).is_err(),
        "disable left {wants}"
    );
    let (ok, said) = output(Command::new(&systemctl).args([&root_arg, "enable", "osconf.service"]));
    assert!(ok, "enable: {said}");
    assert_eq!(
        entries(&root),
        installed,
        "systemctl enable made other links than install"
    );
}

/// An LSB init script that insserv accepts.
fn lsb_script(provides: &str, required: &str) -> String {
    format!(
        "#!/bin/sh\n### BEGIN INIT INFO\n# Provides:          {provides}\n# Required-Start:    {required}\n\
         # Required-Stop:\n# Default-Start:     S\n# Default-Stop:\n### END INIT INFO\n"
    )
}

#[test]
fn insserv_reads_the_header_and_links_it_where_install_did() {
    let Some(insserv) = program("insserv") else {
        return cannot_run(
            "insserv_reads_the_header_and_links_it_where_install_did",
            "insserv is not installed (Debian package insserv)",
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let etc = root.join("etc");
    for level in ["0", "1", "2", "3", "4", "5", "6", "S"] {
        fs::create_dir_all(etc.join(format!("rc{level}.d"))).unwrap();
    }
    fs::create_dir_all(etc.join("init.d")).unwrap();
    fs::create_dir_all(root.join("boot")).unwrap();
    fs::write(etc.join("inittab"), "id:2:initdefault:\n").unwrap();
    // The facilities ($local_fs…) as Debian's insserv package defines them.
    fs::write(
        etc.join("insserv.conf"),
        "$local_fs +mountall +mountall-bootclean +mountoverflowtmp +umountfs\n$network +networking +ifupdown\n",
    )
    .unwrap();
    let scripts = [
        ("mountkernfs.sh", "mountkernfs", ""),
        ("mountall.sh", "mountall", "mountkernfs"),
        ("urandom", "urandom", "$local_fs"),
        (
            "networking",
            "networking ifupdown",
            "mountkernfs $local_fs urandom",
        ),
    ];
    for (file, provides, required) in scripts {
        let path = etc.join("init.d").join(file);
        fs::write(&path, lsb_script(provides, required)).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let init_d = etc.join("init.d");
    let insserv_run = |args: &[&str]| {
        let (ok, said) = output(Command::new(&insserv).arg("-p").arg(&init_d).args(args));
        assert!(ok && !said.contains("warning"), "insserv {args:?}:\n{said}");
    };
    insserv_run(&["mountkernfs.sh", "mountall.sh", "urandom", "networking"]);

    osconf_install(&root, "sysv");
    let rcs = |root: &Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(root.join("etc/rcS.d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let installed = rcs(&root);
    // One below networking's S04, as insserv numbered it.
    assert!(installed.contains(&"S03osconf".to_owned()), "{installed:?}");

    // insserv itself, from the header alone: it removes install's link and makes the same again,
    // osconf after the local file systems and before networking.
    let copy = dir.path().join("copy");
    copy_tree(&root, &copy).unwrap();
    let copy_init_d = copy.join("etc/init.d");
    let (ok, said) = output(
        Command::new(&insserv)
            .arg("-p")
            .arg(&copy_init_d)
            .args(["-r", "osconf"]),
    );
    assert!(ok, "insserv -r:\n{said}");
    assert!(
        !rcs(&copy).iter().any(|l| l.contains("osconf")),
        "{:?}",
        rcs(&copy)
    );
    let (ok, said) = output(Command::new(&insserv).arg("-p").arg(&copy_init_d).arg("osconf"));
    assert!(ok && !said.contains("warning"), "insserv osconf:\n{said}");
    assert_eq!(
        rcs(&copy),
        installed,
        "insserv enables osconf elsewhere than install"
    );
    let at = |name: &str| installed.iter().position(|l| l.ends_with(name)).unwrap();
    assert!(
        at("mountall.sh") < at("osconf") && at("osconf") < at("networking"),
        "{installed:?}"
    );
}

#[test]
fn every_boot_script_parses_with_sh() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 3] = [
        ("sysv", "debian11", "etc/init.d/osconf"),
        ("openrc", "alpine3", "etc/init.d/osconf"),
        ("runit", "debian11", "etc/runit/core-services/06-osconf.sh"),
    ];
    for (init, example, script) in cases {
        let root = example_root(&dir.path().join(init), example);
        fs::create_dir(root.join("boot")).unwrap();
        osconf_install(&root, init);
        let (ok, said) = output(Command::new("sh").arg("-n").arg(root.join(script)));
        assert!(ok, "{init}: sh -n {script}: {said}");
    }
}
