//! What `osconf install` writes, read by the programs that read it at boot or enable it: systemd's
//! own verifier and `systemctl --root` (its view of the enablement must be the one install made),
//! insserv and startpar (in a chroot of the scratch root: insserv must make from the LSB header the
//! very link and boot graph install made, startpar must start osconf between mountall and
//! networking as Debian's makefile-style boot does), OpenRC's rc-depend and rc-update (Debian's
//! packages unpacked into a chroot of the image: its deptree must order osconf before the network,
//! on an Alpine-like root and on Debian's OpenRC of LSB scripts), busybox init itself (booted in a
//! PID namespace: it runs osconf's entry — or Buildroot's rcS its S39osconf — after the mounts,
//! before the network, and goes on when osconf fails), runit itself (Debian's package as PID 1 of
//! a PID namespace with Debian's stage 1: the same order and the same going on), and `sh -n` for
//! every script. All but systemd's need root; a missing tool is a loud skip (a failure under
//! CI=true). Tools that write to fixed paths run in a chroot of the scratch directory, never on
//! the host.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::debs::{
    copy_libraries, cp, openrc_debs, openrc_in, output, static_busybox, unpacked_debs,
};
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

/// An LSB init script that insserv accepts, appending `NAME start` to /log when run.
fn lsb_script(provides: &str, required: &str) -> String {
    format!(
        "#!/bin/sh\n### BEGIN INIT INFO\n# Provides:          {provides}\n# Required-Start:    {required}\n\
         # Required-Stop:\n# Default-Start:     S\n# Default-Stop:\n### END INIT INFO\n\
         echo \"${{0##*/}} $1\" >> /log\n"
    )
}

/// startpar's reading of a `.depend.*` file: every `TARGETS =` line and every `target: deps` line
/// adds up (`#` lines skipped); target → its dependencies, sorted.
fn makefile_graph(text: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut graph = std::collections::BTreeMap::<String, Vec<String>>::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(rest) = line.strip_prefix("TARGETS =") {
            for t in rest.split_whitespace() {
                graph.entry(t.to_owned()).or_default();
            }
        } else if let Some((target, deps)) = line.split_once(':')
            && !line.starts_with("INTERACTIVE")
        {
            let entry = graph.entry(target.trim().to_owned()).or_default();
            entry.extend(deps.split_whitespace().map(str::to_owned));
            entry.sort();
            entry.dedup();
        }
    }
    graph
}

/// Debian's sysvinit boot as insserv leaves it, checked by the programs that read it: insserv (run
/// in a chroot of the scratch root, so that its `.depend.*` files land there and nowhere on the
/// host) must make from osconf's LSB header the very link install made and the same boot graph as
/// osconf's block in `.depend.boot`; Debian's startpar, as `/lib/init/rc` runs it with
/// `CONCURRENCY=makefile`, must start osconf after the local file systems and before networking,
/// and no more once osconf is uninstalled (which puts `.depend.boot` back byte for byte).
#[test]
fn insserv_and_startpar_boot_osconf_between_mountall_and_networking() {
    const TEST: &str = "insserv_and_startpar_boot_osconf_between_mountall_and_networking";
    if !rustix::process::geteuid().is_root() {
        return cannot_run(TEST, "needs root (chroot, a PID namespace)");
    }
    let (Some(insserv), Some(busybox)) = (program("insserv"), static_busybox()) else {
        return cannot_run(
            TEST,
            "needs insserv and a static /bin/busybox (packages insserv, busybox-static)",
        );
    };
    let startpar = match unpacked_debs("startpar-debs", &["startpar"], "bin/startpar") {
        Ok(dir) => dir.join("bin/startpar"),
        Err(why) => return cannot_run(TEST, &why),
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let etc = root.join("etc");
    for level in ["0", "1", "2", "3", "4", "5", "6", "S"] {
        fs::create_dir_all(etc.join(format!("rc{level}.d"))).unwrap();
    }
    for d in ["etc/init.d", "boot", "sbin", "bin", "proc", "dev"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    cp(&insserv, &root.join("sbin/insserv"));
    copy_libraries(&insserv, &root);
    cp(&startpar, &root.join("bin/startpar"));
    copy_libraries(&startpar, &root);
    cp(busybox, &root.join("bin/busybox"));
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
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
        ("mountall-bootclean.sh", "mountall-bootclean", "mountall"),
        ("urandom", "urandom", "$local_fs"),
        (
            "networking",
            "networking ifupdown",
            "mountkernfs $local_fs urandom",
        ),
        ("mountnfs.sh", "mountnfs", "$local_fs $network"),
    ];
    for (file, provides, required) in scripts {
        let path = etc.join("init.d").join(file);
        fs::write(&path, lsb_script(provides, required)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let in_chroot = |root: &Path, args: &[&str]| {
        let (ok, said) = output(Command::new("chroot").arg(root).args(args));
        assert!(ok && !said.contains("warning"), "{args:?}:\n{said}");
    };
    let mut args = vec!["/sbin/insserv"];
    args.extend(scripts.map(|(file, _, _)| file));
    in_chroot(&root, &args);
    let depend = |root: &Path| fs::read_to_string(root.join("etc/init.d/.depend.boot")).unwrap();
    let before = depend(&root);
    assert!(!before.contains("osconf"), "{before}");

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
    // One below networking's, as insserv numbered it.
    let at = |name: &str| {
        installed
            .iter()
            .position(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("{name} not linked: {installed:?}"))
    };
    assert!(
        at("mountall-bootclean.sh") < at("osconf") && at("osconf") < at("networking"),
        "{installed:?}"
    );

    // insserv itself, from the header alone, on a copy: it removes install's link and makes the
    // same again, and regenerates .depend.boot with the same graph as install's block gives.
    let copy = dir.path().join("copy");
    copy_tree(&root, &copy).unwrap();
    in_chroot(&copy, &["/sbin/insserv", "-r", "osconf"]);
    assert!(
        !rcs(&copy).iter().any(|l| l.contains("osconf")),
        "{:?}",
        rcs(&copy)
    );
    in_chroot(&copy, &["/sbin/insserv", "osconf"]);
    assert_eq!(
        rcs(&copy),
        installed,
        "insserv enables osconf elsewhere than install"
    );
    let ours = makefile_graph(&depend(&root));
    let theirs = makefile_graph(&depend(&copy));
    assert_eq!(
        ours,
        theirs,
        "install:\n{}\ninsserv:\n{}",
        depend(&root),
        depend(&copy)
    );
    assert_eq!(ours["osconf"], ["mountall-bootclean.sh", "mountall.sh"]);

    // startpar as /lib/init/rc runs it for runlevel S at boot, in a PID and mount namespace.
    let boot = |root: &Path| -> Vec<String> {
        let _ = fs::remove_file(root.join("log"));
        let shell = format!(
            "mount -t proc proc '{r}/proc' && mount --bind /dev '{r}/dev' && \
             chroot '{r}' /bin/startpar -p 4 -t 20 -T 3 -M boot -P N -R S",
            r = root.display()
        );
        let (ok, said) = output(Command::new("timeout").args([
            "60",
            "unshare",
            "--pid",
            "--fork",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &shell,
        ]));
        assert!(ok, "startpar:\n{said}");
        fs::read_to_string(root.join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let stand_in = root.join("usr/sbin/osconf");
    fs::write(&stand_in, "#!/bin/sh\necho \"osconf $*\" >> /log\n").unwrap();
    let started = boot(&root);
    let pos = |name: &str| {
        started
            .iter()
            .position(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not started: {started:?}"))
    };
    assert!(
        pos("mountall-bootclean.sh start") < pos("osconf apply")
            && pos("osconf apply") < pos("networking start"),
        "{started:?}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["uninstall", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(depend(&root), before);
    fs::create_dir_all(root.join("usr/sbin")).unwrap();
    fs::write(&stand_in, "#!/bin/sh\necho \"osconf $*\" >> /log\n").unwrap();
    fs::set_permissions(&stand_in, fs::Permissions::from_mode(0o755)).unwrap();
    let started = boot(&root);
    assert!(!started.iter().any(|l| l.starts_with("osconf")), "{started:?}");
    assert!(started.iter().any(|l| l == "networking start"), "{started:?}");
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

/// Makes `root` a chroot holding OpenRC's programs with their libraries and busybox as /bin/sh,
/// runs `rc-depend -u` there (OpenRC sources each script's depend(), or reads its LSB header with
/// lsb2rcconf) and returns, per service name, its lines of the deptree.
fn openrc_deptree(root: &Path, openrc: &Path) -> impl Fn(&str) -> Vec<String> {
    openrc_in(
        root,
        openrc,
        &["lib/rc/bin/rc-depend", "sbin/rc-update", "lib/rc/bin/lsb2rcconf"],
    );
    openrc_chroot(root, &["/lib/rc/bin/rc-depend", "-u"]);
    let deptree = fs::read_to_string(root.join("run/openrc/deptree")).unwrap();
    move |name: &str| -> Vec<String> {
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
    }
}

fn openrc_chroot(root: &Path, args: &[&str]) {
    let (ok, said) = output(Command::new("chroot").arg(root).args(args));
    assert!(ok, "chroot {args:?}:\n{said}");
}

/// The links under /etc/runlevels of `root`, as `path->target`.
fn runlevel_links(root: &Path) -> Vec<String> {
    entries(root)
        .into_iter()
        .filter(|(k, _)| k.starts_with("etc/runlevels/"))
        .map(|(k, v)| format!("{k}{v}"))
        .collect()
}

/// `rc-update del` then `add` in `level` gives back the very links install made.
fn rc_update_agrees(root: &Path, level: &str) {
    let installed = runlevel_links(root);
    openrc_chroot(root, &["/sbin/rc-update", "del", "osconf", level]);
    assert!(fs::symlink_metadata(root.join(format!("etc/runlevels/{level}/osconf"))).is_err());
    openrc_chroot(root, &["/sbin/rc-update", "add", "osconf", level]);
    assert_eq!(runlevel_links(root), installed);
}

#[test]
fn openrc_orders_the_service_before_net_and_sshd_and_rc_update_agrees() {
    let Some(openrc) = openrc_debs("openrc_orders_the_service_before_net_and_sshd_and_rc_update_agrees")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = example_root(dir.path(), "alpine3");
    fs::create_dir(root.join("boot")).unwrap();
    fs::create_dir_all(root.join("etc/init.d")).unwrap();
    // The services osconf names, as Alpine's provide them.
    for (name, depend) in [
        ("root", ":"),
        ("localmount", "need root"),
        ("networking", "provide net; need localmount"),
        ("sshd", "need net"),
    ] {
        let path = root.join("etc/init.d").join(name);
        fs::write(&path, format!("#!/sbin/openrc-run\ndepend() {{ {depend}; }}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    osconf_install(&root, "openrc");
    let service = openrc_deptree(&root, &openrc);
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
    assert!(root.join("etc/runlevels/boot/osconf").symlink_metadata().is_ok());
    rc_update_agrees(&root, "boot");
}

/// Debian's openrc runs the LSB scripts, sysvinit's rcS running `openrc sysinit`: no localmount
/// (a `need` of it fails the service), the file systems from mountall.sh and friends, networking
/// (providing ifupdown, not net) in the sysinit runlevel. install must detect OpenRC there, link
/// osconf in sysinit, and OpenRC's own deptree (LSB headers read by its lsb2rcconf) must order it
/// after mountall and before networking, needing nothing that is not there.
#[test]
fn openrc_on_debian_runs_osconf_in_sysinit_after_mountall_before_networking() {
    let Some(openrc) =
        openrc_debs("openrc_on_debian_runs_osconf_in_sysinit_after_mountall_before_networking")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // lsb2rcconf reads insserv.conf and scans insserv.conf.d, as Debian has them.
    for d in [
        "etc/init.d",
        "etc/insserv.conf.d",
        "etc/runlevels/sysinit",
        "etc/runlevels/boot",
        "etc/runlevels/default",
        "boot",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(
        root.join("etc/inittab"),
        "id:2:initdefault:\nsi::sysinit:/etc/init.d/rcS\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/init.d/rcS"),
        "#!/bin/sh\nset -e\nexec /sbin/openrc sysinit\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/insserv.conf"),
        "$local_fs +mountall +mountall-bootclean +mountoverflowtmp +umountfs\n$network +networking +ifupdown\n",
    )
    .unwrap();
    for (file, provides, required) in [
        ("mountall.sh", "mountall", ""),
        ("mountall-bootclean.sh", "mountall-bootclean", "mountall"),
        ("networking", "networking ifupdown", "$local_fs"),
    ] {
        let path = root.join("etc/init.d").join(file);
        fs::write(&path, lsb_script(provides, required)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(
            format!("/etc/init.d/{file}"),
            root.join("etc/runlevels/sysinit").join(file),
        )
        .unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["install", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.contains("init openrc detected"),
        "{said}"
    );
    assert!(
        root.join("etc/runlevels/sysinit/osconf")
            .symlink_metadata()
            .is_ok()
    );
    let service = openrc_deptree(&root, &openrc);
    let osconf = service("osconf");
    assert!(!osconf.iter().any(|l| l.starts_with("ineed")), "{osconf:?}");
    for dep in ["mountall", "mountall-bootclean"] {
        assert!(
            osconf
                .iter()
                .any(|l| l.starts_with("iuse") && l.ends_with(&format!("='{dep}'"))),
            "{osconf:?}"
        );
    }
    let networking = service("networking");
    assert!(
        networking
            .iter()
            .any(|l| l.starts_with("iafter") && l.ends_with("='osconf'")),
        "{networking:?}"
    );
    rc_update_agrees(&root, "sysinit");
}

#[test]
fn busybox_init_runs_the_entry_before_the_network_and_boots_on_when_it_fails() {
    let Some((_dir, root)) =
        busybox_init_root("busybox_init_runs_the_entry_before_the_network_and_boots_on_when_it_fails")
    else {
        return;
    };
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

/// Buildroot's layout: inittab mounts and runs rcS, whose loop starts /etc/init.d/S??* in order
/// (the network from S40network). busybox init itself boots it: osconf between the two.
#[test]
fn busybox_buildroot_rcs_starts_osconf_before_s40network_and_boots_on_when_it_fails() {
    buildroot_boot(
        "busybox_buildroot_rcs_starts_osconf_before_s40network_and_boots_on_when_it_fails",
        "S40network",
        "S39osconf",
    );
}

/// With the network at S00 no number is lower: osconf took `S00osconf`, which rcS's glob sorts
/// after `S00network`, so it ran after the network it configures.
#[test]
fn regression_buildroot_rcs_with_the_network_at_s00_starts_osconf_first() {
    buildroot_boot(
        "regression_buildroot_rcs_with_the_network_at_s00_starts_osconf_first",
        "S00network",
        "S00Aosconf",
    );
}

/// Boots a Buildroot-style root whose network script is /etc/init.d/`network`, after `osconf
/// install` made `/etc/init.d/`osconf``: inittab's mounts, then rcS's scripts in name order,
/// osconf just before the network.
fn buildroot_boot(test: &str, network: &str, osconf: &str) {
    let Some((_dir, root)) = busybox_init_root(test) else {
        return;
    };
    fs::create_dir_all(root.join("etc/init.d")).unwrap();
    fs::write(
        root.join("etc/inittab"),
        "::sysinit:/bin/busybox mount -t proc proc /proc\n::sysinit:/bin/sh -c 'echo mounted >> /log'\n\
         ::sysinit:/etc/init.d/rcS\n::once:/bin/busybox poweroff\n",
    )
    .unwrap();
    // Buildroot's skeleton rcS (its comments left out).
    let rcs = "#!/bin/sh\nfor i in /etc/init.d/S??* ;do\n     [ ! -f \"$i\" ] && continue\n     case \"$i\" in\n\
               \t*.sh)\n\t    (\n\t\ttrap - INT QUIT TSTP\n\t\tset start\n\t\t. $i\n\t    )\n\t    ;;\n\
               \t*)\n\t    $i start\n\t    ;;\n    esac\ndone\n";
    for (name, text) in [
        ("rcS", rcs.to_owned()),
        ("S01misc", "#!/bin/sh\necho S01misc >> /log\n".to_owned()),
        (network, "#!/bin/sh\necho network >> /log\n".to_owned()),
    ] {
        let path = root.join("etc/init.d").join(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let inittab = fs::read_to_string(root.join("etc/inittab")).unwrap();
    osconf_install(&root, "busybox");
    assert!(root.join("etc/init.d").join(osconf).is_file());
    assert_eq!(fs::read_to_string(root.join("etc/inittab")).unwrap(), inittab);
    let order: &[&str] = match network < "S01misc" {
        true => &["mounted", "osconf apply", "network", "S01misc"],
        false => &["mounted", "S01misc", "osconf apply", "network"],
    };
    boot_failing_osconf(&root, "", "/sbin/init", order);
}

/// A scratch root whose /sbin/init is a static busybox (its scratch directory kept alive by the
/// first value), or `None` after the loud skip of `test` when that cannot run.
fn busybox_init_root(test: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    if !rustix::process::geteuid().is_root() {
        cannot_run(test, "needs root (a PID namespace and chroot)");
        return None;
    }
    let Some(busybox) = static_busybox() else {
        cannot_run(test, NO_STATIC_BUSYBOX);
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for d in ["bin", "sbin", "etc", "usr/sbin", "boot", "proc"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    cp(busybox, &root.join("bin/busybox"));
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("/bin/busybox", root.join("sbin/init")).unwrap();
    Some((dir, root))
}

const NO_STATIC_BUSYBOX: &str = "needs a static /bin/busybox (Debian package busybox-static)";

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
    cp(busybox, &root.join("bin/busybox"));
    for tool in ["sh", "cat", "realpath", "install"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(tool)).unwrap();
    }
    cp(&runit.join("sbin/runit"), &root.join("sbin/runit"));
    copy_libraries(&runit.join("sbin/runit"), &root);
    cp(&runit.join("etc/runit/1"), &root.join("etc/runit/1"));
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
