//! netifrc (Gentoo/OpenRC) output checked by its real consumers as far as Debian allows: netifrc
//! itself is not packaged, so the generated /etc/conf.d/net and /etc/conf.d/hostname are sourced by
//! `sh` (dash), as openrc-run sources them, and every `routes_IFACE` line is handed to
//! `ip route append LINE dev IFACE` exactly as netifrc's iproute2 module does, inside a network
//! namespace whose NICs carry os.conf's MACs.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::copy_tree;
use common::real::{Netns, cannot_run, check_prerequisites, run};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Classic network with eth1's gateway outside its /25: the default route needs `onlink`.
const CLASSIC_ON_LINK: &str = "hostname=iZ23r29djmjZ
eth0_ip_addr=10.171.254.123
eth0_mac_addr=00:8c:fa:5e:14:23
eth0_netmask=255.255.255.0
eth0_gateway=10.171.254.1
eth0_route=\"10.0.0.0/8 10.171.254.1;172.16.0.0/12 10.171.254.1\"
eth1_ip_addr=42.120.74.205
eth1_mac_addr=00:8c:fa:5e:14:24
eth1_netmask=255.255.255.128
eth1_gateway=42.120.74.1
eth1_route=\"0.0.0.0/0 42.120.74.1\"
dns_nameserver=\"7.7.7.7 8.8.8.8\"
";

/// Applies `conf` to a scratch copy of the gentoo example root with the real binary.
fn apply_gentoo(dir: &Path, conf: &str) -> PathBuf {
    let root = dir.join("root");
    copy_tree(&repo().join("examples/rootfs/gentoo"), &root).unwrap();
    let conf_path = dir.join("os.conf");
    fs::write(&conf_path, conf).unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_osconf")).args([
        "apply".as_ref(),
        "--root".as_ref(),
        root.as_os_str(),
        "--config".as_ref(),
        conf_path.as_os_str(),
        "--no-live".as_ref(),
    ]));
    root
}

/// Sources /etc/conf.d/net like openrc-run and brings each interface up the way netifrc's
/// iproute2 module does: `ip addr add $config_X dev X`, then each line of `routes_X`, split on
/// newlines, as `ip route append LINE dev X`.
fn netifrc_up(ns: &Netns, root: &Path, ifaces: &[&str]) {
    let net = root.join("etc/conf.d/net");
    let mut script = format!(". '{}'\nnl='\n'\n", net.display());
    for i in ifaces {
        script.push_str(&format!(
            "ip addr add $config_{i} dev {i}\nip link set {i} up\n\
             IFS=\"$nl\"; for r in $routes_{i}; do IFS=' '; ip route append $r dev {i}; done; unset IFS\n"
        ));
    }
    ns.sh(&script);
}

fn sourced(file: &Path, var: &str) -> String {
    let out = run(Command::new("sh").args(["-ec", &format!(". '{}'; printf %s \"${var}\"", file.display())]));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn netifrc_conf_d_net_configures_nics_in_a_namespace() {
    if let Err(why) = check_prerequisites(&["sh"]) {
        return cannot_run("netifrc_conf_d_net_configures_nics_in_a_namespace", &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let root = apply_gentoo(dir.path(), CLASSIC_ON_LINK);
    let net = root.join("etc/conf.d/net");
    // The DHCP line the image had is disabled; the static values win when sourced.
    assert_eq!(sourced(&net, "config_eth0"), "10.171.254.123/24");
    assert_eq!(sourced(&net, "dns_servers_eth1"), "7.7.7.7 8.8.8.8");
    assert_eq!(sourced(&net, "dns_servers_eth0"), "");
    assert_eq!(
        sourced(&root.join("etc/conf.d/hostname"), "hostname"),
        "iZ23r29djmjZ"
    );

    let ns = Netns::new("netifrc");
    ns.add_nic("eth0", "00:8c:fa:5e:14:23");
    ns.add_nic("eth1", "00:8c:fa:5e:14:24");
    netifrc_up(&ns, &root, &["eth0", "eth1"]);
    assert_eq!(ns.ipv4_addrs("eth0"), ["10.171.254.123/24"]);
    assert_eq!(ns.ipv4_addrs("eth1"), ["42.120.74.205/25"]);
    assert_eq!(
        ns.ipv4_routes(),
        [
            "10.0.0.0/8 via 10.171.254.1 dev eth0",
            "172.16.0.0/12 via 10.171.254.1 dev eth0",
            "default via 42.120.74.1 dev eth1",
        ]
    );
}

#[test]
fn netifrc_reapply_vpc_leaves_one_nic_and_one_default_route() {
    if let Err(why) = check_prerequisites(&["sh"]) {
        return cannot_run("netifrc_reapply_vpc_leaves_one_nic_and_one_default_route", &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let root = apply_gentoo(dir.path(), CLASSIC_ON_LINK);
    let vpc = fs::read_to_string(repo().join("examples/vpc/os.conf")).unwrap();
    let conf_path = dir.path().join("os.conf");
    fs::write(&conf_path, vpc).unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_osconf")).args([
        "apply".as_ref(),
        "--root".as_ref(),
        root.as_os_str(),
        "--config".as_ref(),
        conf_path.as_os_str(),
        "--no-live".as_ref(),
    ]));
    let net = root.join("etc/conf.d/net");
    assert_eq!(sourced(&net, "config_eth1"), "", "eth1 left conf.d/net");
    assert!(!root.join("etc/init.d/net.eth1").exists());
    assert!(fs::symlink_metadata(root.join("etc/runlevels/default/net.eth1")).is_err());

    let ns = Netns::new("netifrc-re");
    ns.add_nic("eth0", "00:8c:fa:5e:14:23");
    netifrc_up(&ns, &root, &["eth0"]);
    assert_eq!(ns.ipv4_addrs("eth0"), ["10.171.254.123/24"]);
    assert_eq!(ns.ipv4_routes(), ["default via 10.171.254.1 dev eth0"]);
}
