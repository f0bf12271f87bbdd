//! netifrc (Gentoo/OpenRC) output checked by its real consumers as far as Debian allows: netifrc
//! itself is not packaged, so the generated /etc/conf.d/net and /etc/conf.d/hostname are sourced by
//! `sh` (dash), as openrc-run sources them, and every `routes_IFACE` line is handed to
//! `ip route append LINE dev IFACE` exactly as netifrc's iproute2 module does, inside a network
//! namespace whose NICs carry os.conf's MACs.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::real::{CLASSIC_ROUTES, Netns, cannot_run, check_prerequisites, sourced};
use crate::common::{CLASSIC_ON_LINK, example_conf, example_root, osconf_apply};

/// Applies `conf` to a scratch copy of the gentoo example root with the real binary.
fn apply_gentoo(dir: &Path, conf: &str) -> PathBuf {
    let root = example_root(dir, "gentoo");
    osconf_apply(&root, conf);
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

#[test]
fn netifrc_conf_d_net_configures_nics_in_a_namespace() {
    if let Err(why) = check_prerequisites(&["sh"]) {
        return cannot_run("netifrc_conf_d_net_configures_nics_in_a_namespace", &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let root = apply_gentoo(dir.path(), CLASSIC_ON_LINK);
    let net = root.join("etc/conf.d/net");
    // The DHCP line the image had is disabled; the static values win when sourced.
    assert_eq!(sourced(&net, "$config_eth0"), "10.171.254.123/24");
    assert_eq!(sourced(&net, "$dns_servers_eth1"), "7.7.7.7 8.8.8.8");
    assert_eq!(sourced(&net, "$dns_servers_eth0"), "");
    assert_eq!(
        sourced(&root.join("etc/conf.d/hostname"), "$hostname"),
        "iZ23r29djmjZ"
    );

    let ns = Netns::new("netifrc");
    ns.add_nic("eth0", "00:8c:fa:5e:14:23");
    ns.add_nic("eth1", "00:8c:fa:5e:14:24");
    netifrc_up(&ns, &root, &["eth0", "eth1"]);
    assert_eq!(ns.ipv4_addrs("eth0"), ["10.171.254.123/24"]);
    assert_eq!(ns.ipv4_addrs("eth1"), ["42.120.74.205/25"]);
    assert_eq!(ns.ipv4_routes(), CLASSIC_ROUTES);
}

#[test]
fn netifrc_reapply_vpc_leaves_one_nic_and_one_default_route() {
    if let Err(why) = check_prerequisites(&["sh"]) {
        return cannot_run("netifrc_reapply_vpc_leaves_one_nic_and_one_default_route", &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let root = apply_gentoo(dir.path(), CLASSIC_ON_LINK);
    let vpc = example_conf("vpc");
    osconf_apply(&root, &vpc);
    let net = root.join("etc/conf.d/net");
    assert_eq!(sourced(&net, "$config_eth1"), "", "eth1 left conf.d/net");
    assert!(!root.join("etc/init.d/net.eth1").exists());
    assert!(fs::symlink_metadata(root.join("etc/runlevels/default/net.eth1")).is_err());

    let ns = Netns::new("netifrc-re");
    ns.add_nic("eth0", "00:8c:fa:5e:14:23");
    netifrc_up(&ns, &root, &["eth0"]);
    assert_eq!(ns.ipv4_addrs("eth0"), ["10.171.254.123/24"]);
    assert_eq!(ns.ipv4_routes(), ["default via 10.171.254.1 dev eth0"]);
}
