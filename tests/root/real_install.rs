//! What `osconf install` writes, read by the programs that read it at boot or enable it: systemd's
//! own verifier and `systemctl --root` (its view of the enablement must be the one install made),
//! insserv (the LSB header must parse, and insserv must enable the script with the very link
//! install made), OpenRC's rc-depend and rc-update (Debian's packages unpacked into a chroot of the
//! image: its deptree must order osconf before net and sshd), busybox init itself (booted in a PID
//! namespace: it runs osconf's entry after the mounts, before the network, and goes on when osconf
//! fails), runit itself (Debian's package as PID 1 of a PID namespace with Debian's stage 1: the
//! same order and the same going on), and `sh -n` for every script. The OpenRC, busybox and runit
//! tests need root; a missing tool is a loud skip (a failure under CI=true).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::real::cannot_run;
use crate::common::{copy_tree, entries, example_root};

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

/// Debian's `packages`, unpacked once into the test scratch directory `name` (their root), ready
/// when it holds `probe`: installing openrc or runit would make them the host's init.
fn unpacked_debs(name: &str, packages: &[&str], probe: &str) -> Result<PathBuf, String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let unpacked = dir.join("root");
    if unpacked.join(probe).is_file() {
        return Ok(unpacked);
    }
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (ok, said) = output(
        Command::new("apt-get")
            .current_dir(&dir)
            .args(["download", "-q"])
            .args(packages),
    );
    if !ok {
        return Err(format!("apt-get download {} failed: {said}", packages.join(" ")));
    }
    for deb in fs::read_dir(&dir).map_err(|e| e.to_string())? {
        let deb = deb.map_err(|e| e.to_string())?.path();
        if deb.extension().is_some_and(|e| e == "deb") {
            let (ok, said) = output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked));
            if !ok {
                return Err(format!("dpkg-deb -x {}: {said}", deb.display()));
            }
        }
    }
    Ok(unpacked)
}

/// Copies `program`'s shared libraries (as ldd lists them) into `root`, at the same paths.
fn copy_libraries(program: &Path, root: &Path) {
    let (_, said) = output(Command::new("ldd").arg(program));
    for word in said.split_whitespace().filter(|w| w.starts_with('/')) {
        let dest = root.join(word.trim_start_matches('/'));
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(word, dest).unwrap();
    }
}

#[test]
fn openrc_orders_the_service_before_net_and_sshd_and_rc_update_agrees() {
    const TEST: &str = "openrc_orders_the_service_before_net_and_sshd_and_rc_update_agrees";
    if !rustix::process::geteuid().is_root() {
        return cannot_run(TEST, "needs root (chroot)");
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() || program("apt-get").is_none() || program("ldd").is_none() {
        return cannot_run(TEST, "needs busybox-static, apt-get and ldd");
    }
    let openrc = match unpacked_debs(
        "openrc-debs",
        &["openrc", "librc1", "libeinfo1"],
        "lib/rc/bin/rc-depend",
    ) {
        Ok(dir) => dir,
        Err(why) => return cannot_run(TEST, &why),
    };
    let dir = tempfile::tempdir().unwrap();
    let root = example_root(dir.path(), "alpine3");
    fs::create_dir(root.join("boot")).unwrap();
    osconf_install(&root, "openrc");
    let installed = entries(&root);

    // A chroot: the image, OpenRC's programs with their libraries, busybox as /bin/sh, and the
    // services osconf names (as Alpine's provide them).
    copy_tree(&openrc, &root).unwrap();
    copy_libraries(&openrc.join("lib/rc/bin/rc-depend"), &root);
    copy_libraries(&openrc.join("sbin/rc-update"), &root);
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy(busybox, root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    fs::create_dir_all(root.join("run/openrc")).unwrap();
    for (name, depend) in [
        ("root", ":"),
        ("localmount", "need root"),
        ("networking", "provide net; need localmount"),
        ("sshd", "need net"),
    ] {
        let path = root.join("etc/init.d").join(name);
        fs::write(&path, format!("#!/sbin/openrc-run\ndepend() {{ {depend}; }}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let chroot = |args: &[&str]| {
        let (ok, said) = output(Command::new("chroot").arg(&root).args(args));
        assert!(ok, "chroot {args:?}:\n{said}");
        said
    };
    // OpenRC sources the script's depend() and resolves the tree itself.
    chroot(&["/lib/rc/bin/rc-depend", "-u"]);
    let deptree = fs::read_to_string(root.join("run/openrc/deptree")).unwrap();
    let service = |name: &str| -> Vec<String> {
        let index = deptree
            .lines()
            .find_map(|l| {
                l.strip_suffix(&format!("_service='{name}'"))
                    .and_then(|p| p.strip_prefix("depinfo_"))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("{name} not in the deptree:\n{deptree}"));
        let prefix = format!("depinfo_{index}_");
        deptree
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(str::to_owned)
            .collect()
    };
    let osconf = service("osconf");
    assert!(osconf.contains(&"ineed_0='localmount'".to_owned()), "{osconf:?}");
    for after in [service("net"), service("sshd")] {
        assert!(
            after
                .iter()
                .any(|l| l.ends_with("='osconf'") && l.starts_with("iafter")),
            "{after:?}"
        );
    }
    // rc-update's own removal and addition give back the very link install made.
    chroot(&["/sbin/rc-update", "del", "osconf", "boot"]);
    assert!(fs::symlink_metadata(root.join("etc/runlevels/boot/osconf")).is_err());
    chroot(&["/sbin/rc-update", "add", "osconf", "boot"]);
    let runlevels = |e: &std::collections::BTreeMap<String, String>| {
        e.iter()
            .filter(|(k, _)| k.starts_with("etc/runlevels/boot"))
            .map(|(k, v)| format!("{k}{v}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(runlevels(&entries(&root)), runlevels(&installed));
}

#[test]
fn busybox_init_runs_the_entry_before_the_network_and_boots_on_when_it_fails() {
    const TEST: &str = "busybox_init_runs_the_entry_before_the_network_and_boots_on_when_it_fails";
    if !rustix::process::geteuid().is_root() {
        return cannot_run(TEST, "needs root (a PID namespace and chroot)");
    }
    let Some(busybox) = static_busybox() else {
        return cannot_run(TEST, NO_STATIC_BUSYBOX);
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for d in ["bin", "sbin", "etc", "usr/sbin", "boot", "proc"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy(busybox, root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("/bin/busybox", root.join("sbin/init")).unwrap();
    // The network entry is recognised by its `ifup`; poweroff ends the PID namespace.
    fs::write(
        root.join("etc/inittab"),
        "::sysinit:/bin/busybox mount -t proc proc /proc\n\
         ::sysinit:/bin/sh -c 'echo mounted >> /log'\n\
         ::sysinit:/bin/sh -c 'echo network >> /log' # stands for ifup -a\n\
         ::once:/bin/busybox poweroff\n",
    )
    .unwrap();
    osconf_install(&root, "busybox");
    boot_failing_osconf(&root, "", "/sbin/init", &["mounted", "osconf apply", "network"]);
}

const NO_STATIC_BUSYBOX: &str = "needs a static /bin/busybox (Debian package busybox-static)";

/// `/bin/busybox` when it is static, so that it runs in a chroot holding nothing else.
fn static_busybox() -> Option<&'static Path> {
    let busybox = Path::new("/bin/busybox");
    let (_, ldd) = output(Command::new("ldd").arg(busybox));
    (busybox.is_file() && ldd.contains("not a dynamic executable")).then_some(busybox)
}

/// The real runit (Debian's package) as PID 1 of a PID namespace, with Debian's own stage 1, on a
/// root where install found Debian's layout: stage 1 starts /etc/rcS.d's scripts, so osconf must
/// be one of them, between the file systems and the network, and a failing osconf must not stop
/// stage 1 or the boot (stage 2 and 3 stand for the services and the shutdown).
#[test]
fn runit_stage_1_runs_osconf_before_the_network_and_boots_on_when_it_fails() {
    const TEST: &str = "runit_stage_1_runs_osconf_before_the_network_and_boots_on_when_it_fails";
    if !rustix::process::geteuid().is_root() {
        return cannot_run(TEST, "needs root (a PID namespace and chroot)");
    }
    let Some(busybox) = static_busybox() else {
        return cannot_run(TEST, NO_STATIC_BUSYBOX);
    };
    let runit = match unpacked_debs("runit-debs", &["runit"], "sbin/runit") {
        Ok(dir) => dir,
        Err(why) => return cannot_run(TEST, &why),
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for d in [
        "bin",
        "sbin",
        "etc/init.d",
        "etc/rcS.d",
        "etc/runit",
        "usr/sbin",
        "boot",
        "dev",
        "run",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for tool in ["sh", "cat", "realpath", "install"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(tool)).unwrap();
    }
    fs::copy(runit.join("sbin/runit"), root.join("sbin/runit")).unwrap();
    copy_libraries(&runit.join("sbin/runit"), &root);
    fs::copy(runit.join("etc/runit/1"), root.join("etc/runit/1")).unwrap();
    fs::write(root.join("dev/null"), "").unwrap();
    let script = |path: &str, text: &str| {
        fs::write(root.join(path), format!("#!/bin/sh\n{text}\n")).unwrap();
        fs::set_permissions(
            root.join(path),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    };
    // Stage 2 exits at once (runit goes on to stage 3), stage 3 too: then runit halts, which ends
    // the PID namespace.
    script("etc/runit/2", "echo 'stage 2' >> /log");
    script("etc/runit/3", "echo 'stage 3' >> /log");
    for (name, link) in [("mountall.sh", "S02mountall.sh"), ("networking", "S05networking")] {
        script(
            &format!("etc/init.d/{name}"),
            &format!("echo \"{name} $1\" >> /log"),
        );
        std::os::unix::fs::symlink(format!("../init.d/{name}"), root.join("etc/rcS.d").join(link)).unwrap();
    }
    osconf_install(&root, "runit");
    assert!(
        root.join("etc/rcS.d/S04osconf").exists(),
        "{:?}",
        entries(&root.join("etc"))
    );
    // runit writes /run/runit.stopit from /dev/null in stage 1.
    let setup = format!(
        "mount --bind /dev/null '{r}/dev/null' && mount -t tmpfs tmpfs '{r}/run' &&",
        r = root.display()
    );
    boot_failing_osconf(
        &root,
        &setup,
        "/sbin/runit",
        &[
            "mountall.sh start",
            "osconf apply",
            "networking start",
            "stage 2",
            "stage 3",
        ],
    );
}

/// Boots `root` with `init` as PID 1 of a new PID and mount namespace (after the shell commands
/// `setup` ran there) with a stand-in for osconf that fails, as a broken os.conf would make it,
/// and checks what the boot appended to /log: `expected`, so the boot went on after osconf.
fn boot_failing_osconf(root: &Path, setup: &str, init: &str, expected: &[&str]) {
    let stand_in = root.join("usr/sbin/osconf");
    fs::write(&stand_in, "#!/bin/sh\necho \"osconf $*\" >> /log\nexit 1\n").unwrap();
    fs::set_permissions(&stand_in, fs::Permissions::from_mode(0o755)).unwrap();
    let shell = format!("{setup} exec chroot '{}' {init}", root.display());
    let (_, said) = output(
        Command::new("timeout")
            .args([
                "60",
                "unshare",
                "--pid",
                "--fork",
                "--mount",
                "--mount-proc",
                "sh",
                "-c",
            ])
            .arg(&shell),
    );
    let log = fs::read_to_string(root.join("log")).unwrap_or_default();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        expected,
        "{init}'s output:\n{said}"
    );
    assert!(said.contains("osconf: exit status 1; the boot goes on"), "{said}");
}
