//! OpenRC's own `network` service reading the `openrc-network` rendering. osconf applies os.conf to
//! a scratch copy of the buildroot-openrc example root, which carries OpenRC 0.45.2's own
//! `init.d/network` (from OpenRC's sources: Debian's openrc package does not ship that script).
//! The root becomes a chroot holding Debian's openrc (unpacked, `common::debs`) and static busybox
//! with its applets (`ip` is busybox's, as on Buildroot); then Debian's `openrc-run` runs the
//! script's `start` there, inside a network namespace whose veth NICs carry os.conf's MACs.
//! Addresses, routes and the single default route are read back from the kernel; `stop` must leave
//! none. Everything the service writes (its state under /run/openrc) stays in the scratch root;
//! /proc and /dev are mounted into it only in the namespace's private mount namespace.

use std::fs;
use std::path::Path;

use crate::common::debs::{openrc_debs, openrc_in};
use crate::common::real::{CLASSIC_ON_LINK_ROUTES, CLASSIC_ROUTES, Netns};
use crate::common::{CLASSIC_ON_LINK, example_conf, example_root, osconf_apply};

/// The scratch root with os.conf applied, made a chroot OpenRC runs in, its state as after a boot
/// (`softlevel`: openrc-run refuses to run a service on a system OpenRC did not boot).
fn openrc_root(dir: &Path, openrc: &Path, conf: &str) -> std::path::PathBuf {
    let root = example_root(dir, "buildroot-openrc");
    osconf_apply(&root, conf);
    openrc_in(&root, openrc, &["sbin/openrc-run", "lib/rc/bin/ebegin"]);
    let state = root.join("run/openrc");
    for dir in [
        "started",
        "starting",
        "stopping",
        "inactive",
        "failed",
        "options",
        "exclusive",
    ] {
        fs::create_dir_all(state.join(dir)).unwrap();
    }
    fs::write(state.join("softlevel"), "default\n").unwrap();
    for dir in ["proc", "dev", "tmp"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    let out = std::process::Command::new("chroot")
        .arg(&root)
        .args(["/bin/busybox", "--install", "-s", "/bin"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    root
}

/// Runs `openrc-run /etc/init.d/network ACTION` in the chroot (`--nodeps`: the script needs
/// localmount, which this chroot has no script for); its output.
fn service(ns: &Netns, root: &Path, action: &str) -> String {
    let r = root.display();
    let out = ns.sh(&format!(
        "mount -t proc proc {r}/proc\nmount --bind /dev {r}/dev\n\
         chroot {r} /sbin/openrc-run /etc/init.d/network --nodeps {action} 2>&1"
    ));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn namespace() -> Netns {
    let ns = Netns::new("openrc-net");
    ns.add_nic("eth0", "00:8c:fa:5e:14:23");
    ns.add_nic("eth1", "00:8c:fa:5e:14:24");
    ns
}

#[test]
fn openrc_network_service_configures_the_nics() {
    let test = "openrc_network_service_configures_the_nics";
    let Some(openrc) = openrc_debs(test) else {
        return;
    };
    // (name, os.conf, eth0's addresses, eth1's, the routes)
    type Sample<'a> = (&'a str, String, &'a [&'a str], &'a [&'a str], &'a [&'a str]);
    let samples: [Sample; 3] = [
        (
            "vpc",
            example_conf("vpc"),
            &["10.171.254.123/24"],
            &[],
            &["default via 10.171.254.1 dev eth0"],
        ),
        (
            "classic",
            example_conf("classic"),
            &["10.171.254.123/24"],
            &["42.120.74.105/24"],
            &CLASSIC_ROUTES,
        ),
        (
            "on-link gateway",
            CLASSIC_ON_LINK.to_owned(),
            &["10.171.254.123/24"],
            &["42.120.74.205/25"],
            &CLASSIC_ON_LINK_ROUTES,
        ),
    ];
    for (name, conf, eth0, eth1, routes) in samples {
        let dir = tempfile::tempdir().unwrap();
        let root = openrc_root(dir.path(), &openrc, &conf);
        let ns = namespace();
        let log = service(&ns, &root, "start");
        assert!(
            fs::symlink_metadata(root.join("run/openrc/started/network")).is_ok(),
            "{name}: not started\n{log}"
        );
        assert_eq!(ns.ipv4_addrs("eth0"), eth0, "{name}: eth0\n{log}");
        assert_eq!(ns.ipv4_addrs("eth1"), eth1, "{name}: eth1\n{log}");
        assert_eq!(ns.ipv4_routes(), routes, "{name}: routes\n{log}");

        let log = service(&ns, &root, "stop");
        assert!(ns.ipv4_addrs("eth0").is_empty(), "{name}: eth0 after stop\n{log}");
        assert!(ns.ipv4_addrs("eth1").is_empty(), "{name}: eth1 after stop\n{log}");
        assert_eq!(
            ns.ipv4_routes(),
            [] as [&str; 0],
            "{name}: routes after stop\n{log}"
        );
    }
}

/// The classic os.conf, then the vpc one. `rc-service network restart` (osconf's step when the
/// service runs) leaves one default route, eth0's; the script takes down only the interfaces its
/// file names now, so eth1 keeps its address until the next boot — which (a fresh namespace)
/// configures eth0 alone.
#[test]
fn openrc_network_after_classic_then_vpc_leaves_one_nic_and_one_default_route() {
    let test = "openrc_network_after_classic_then_vpc_leaves_one_nic_and_one_default_route";
    let Some(openrc) = openrc_debs(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = openrc_root(dir.path(), &openrc, &example_conf("classic"));
    let ns = namespace();
    let log = service(&ns, &root, "start");
    assert_eq!(ns.ipv4_routes(), CLASSIC_ROUTES, "{log}");
    osconf_apply(&root, &example_conf("vpc"));
    let vpc = ["default via 10.171.254.1 dev eth0"];
    let log = service(&ns, &root, "restart");
    assert_eq!(ns.ipv4_addrs("eth0"), ["10.171.254.123/24"], "{log}");
    assert_eq!(ns.ipv4_routes(), vpc, "{log}");

    let boot = namespace();
    let log = service(&boot, &root, "restart");
    assert_eq!(boot.ipv4_addrs("eth0"), ["10.171.254.123/24"], "{log}");
    assert!(boot.ipv4_addrs("eth1").is_empty(), "{log}");
    assert_eq!(boot.ipv4_routes(), vpc, "{log}");
}
