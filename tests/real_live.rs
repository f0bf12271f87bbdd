//! Live actions on a real kernel: `osconf apply --live` inside a network namespace (and a UTS namespace
//! for the host name) configures NICs found by MAC under other names, and a live failure rolls back
//! the files and the host name.

mod common;

use std::path::Path;

use common::real::{Netns, cannot_run, check_prerequisites};
use common::{copy_tree, snapshot};

const OSCONF: &str = env!("CARGO_BIN_EXE_osconf");

fn scratch_root(sample: &str) -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&repo.join("examples/rootfs/centos7"), dir.path()).unwrap();
    let conf_dir = dir.path().join("boot/aliyun_custom_image");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::copy(
        repo.join("examples").join(sample).join("os.conf"),
        conf_dir.join("os.conf"),
    )
    .unwrap();
    dir
}

#[test]
fn live_apply_configures_nics_by_mac_and_sets_hostname() {
    if let Err(why) = check_prerequisites(&[]) {
        return cannot_run("live_apply_configures_nics_by_mac_and_sets_hostname", &why);
    }
    let root = scratch_root("classic");
    let ns = Netns::new("live");
    // Kernel names differ from os.conf's: the NICs must be found by MAC.
    ns.add_nic("ens5", "00:8c:fa:5e:14:23");
    ns.add_nic("ens6", "00:8c:fa:5e:14:24");
    let out = ns.sh(&format!(
        "unshare -u sh -ec '{OSCONF} apply --live --root {} 2>&1; hostname'",
        root.path().display()
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().last(), Some("iZ23r29djmjZ"), "{text}");
    assert_eq!(ns.ipv4_addrs("ens5"), ["10.171.254.123/24"]);
    assert_eq!(ns.ipv4_addrs("ens6"), ["42.120.74.105/24"]);
    assert_eq!(
        ns.ipv4_routes(),
        [
            "10.0.0.0/8 via 10.171.254.1 dev ens5",
            "172.16.0.0/12 via 10.171.254.1 dev ens5",
            "default via 42.120.74.1 dev ens6",
        ]
    );
    assert!(!root.path().join("boot/aliyun_custom_image/os.conf").exists());
}

#[test]
fn live_failure_rolls_back_files_and_hostname() {
    if let Err(why) = check_prerequisites(&[]) {
        return cannot_run("live_failure_rolls_back_files_and_hostname", &why);
    }
    let root = scratch_root("vpc");
    let before = snapshot(root.path());
    let ns = Netns::new("livefail");
    ns.add_nic("eth0", "02:00:00:00:00:99"); // not os.conf's MAC
    let script = format!(
        "unshare -u sh -c 'hostname before-osconf; {OSCONF} apply --live --root {}; echo status=$?; hostname'",
        root.path().display()
    );
    let out = ns.sh_unchecked(&script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("status=1"), "{stdout}{stderr}");
    assert_eq!(
        stdout.lines().last(),
        Some("before-osconf"),
        "host name not restored"
    );
    assert!(stderr.contains("no NIC with MAC 00:8c:fa:5e:14:23"), "{stderr}");
    assert_eq!(snapshot(root.path()), before, "files not rolled back");
    assert!(ns.ipv4_addrs("eth0").is_empty());
}

#[test]
fn live_failure_restores_the_addresses_and_routes_it_replaced() {
    if let Err(why) = check_prerequisites(&[]) {
        return cannot_run("live_failure_restores_the_addresses_and_routes_it_replaced", &why);
    }
    let root = scratch_root("classic");
    let ns = Netns::new("liverestore");
    // eth0 is there with an address of its own; eth1's MAC is missing, so the live step fails after
    // eth0 was reconfigured.
    ns.add_nic("ens5", "00:8c:fa:5e:14:23");
    ns.sh("ip link set ens5 up; ip addr add 192.168.9.9/24 dev ens5; ip route add 10.9.0.0/16 via 192.168.9.1 dev ens5");
    let before = (ns.ipv4_addrs("ens5"), ns.ipv4_routes());
    let out = ns.sh_unchecked(&format!(
        "unshare -u {OSCONF} apply --live --root {}",
        root.path().display()
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no NIC with MAC 00:8c:fa:5e:14:24"), "{stderr}");
    assert_eq!((ns.ipv4_addrs("ens5"), ns.ipv4_routes()), before, "{stderr}");
    assert_eq!(before.1, ["10.9.0.0/16 via 192.168.9.1 dev ens5"]);
}

#[test]
fn live_nics_are_found_by_mac_among_devices_that_share_it() {
    if let Err(why) = check_prerequisites(&[]) {
        return cannot_run("live_nics_are_found_by_mac_among_devices_that_share_it", &why);
    }
    // A bridge carrying eth0's MAC and a macvlan on eth1 are not the NICs os.conf means.
    let root = scratch_root("classic");
    let ns = Netns::new("livemac");
    ns.add_nic("ens5", "00:8c:fa:5e:14:23");
    ns.add_nic("ens6", "00:8c:fa:5e:14:24");
    ns.sh("ip link add a0 address 00:8c:fa:5e:14:23 type bridge; ip link add a1 link ens6 address 00:8c:fa:5e:14:24 type macvlan");
    let out = ns.sh(&format!(
        "unshare -u {OSCONF} apply --live --root {} 2>&1",
        root.path().display()
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(ns.ipv4_addrs("ens5"), ["10.171.254.123/24"], "{text}");
    assert_eq!(ns.ipv4_addrs("ens6"), ["42.120.74.105/24"], "{text}");
    assert!(
        ns.ipv4_addrs("a0").is_empty() && ns.ipv4_addrs("a1").is_empty(),
        "{text}"
    );

    // Two NICs with one MAC: refused, not guessed.
    let root = scratch_root("classic");
    let ns = Netns::new("livedupmac");
    ns.add_nic("ens5", "00:8c:fa:5e:14:23");
    ns.add_nic("ens7", "00:8c:fa:5e:14:23");
    ns.add_nic("ens6", "00:8c:fa:5e:14:24");
    let out = ns.sh_unchecked(&format!(
        "unshare -u {OSCONF} apply --live --root {}",
        root.path().display()
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("several NICs have MAC 00:8c:fa:5e:14:23: ens5, ens7"),
        "{stderr}"
    );
    assert!(ns.ipv4_addrs("ens5").is_empty() && ns.ipv4_addrs("ens7").is_empty());
    assert!(root.path().join("boot/aliyun_custom_image/os.conf").exists());
}
