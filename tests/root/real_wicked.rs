//! wicked (SUSE) output checked as far as Debian allows: wicked is not packaged, so the generated
//! ifcfg and `config` files are sourced by `sh` (wicked reads them as shell variable files), and the
//! ifroute/routes lines are read the way routes(5) defines their columns (destination, gateway,
//! netmask, interface; `-` for none; an empty interface in ifroute-X means X) and installed with
//! `ip route add` in a network namespace whose NICs carry os.conf's MACs: per-interface routes
//! first, then the global routes file, as wicked merges them.

use std::fs;
use std::path::Path;

use crate::common::real::{CLASSIC_ON_LINK_ROUTES, Netns, cannot_run, check_prerequisites, sourced};
use crate::common::{CLASSIC_ON_LINK, example_root, osconf_apply};

/// One routes(5) line as `ip route add` arguments; `ifname` fills an empty interface column.
fn routes5_to_ip(line: &str, ifname: Option<&str>) -> Option<String> {
    let line = line.split('#').next().unwrap().trim();
    if line.is_empty() {
        return None;
    }
    let cols: Vec<&str> = line.split_whitespace().collect();
    let col = |i: usize| cols.get(i).copied().filter(|c| *c != "-");
    let dest = col(0).expect("destination column");
    assert!(
        col(2).is_none(),
        "netmask column is deprecated, expected '-': {line}"
    );
    assert!(cols.len() <= 4, "no options expected: {line}");
    let dev = col(3).or(ifname).expect("interface column");
    Some(match col(1) {
        Some(gw) => format!("{dest} via {gw} dev {dev}"),
        None => format!("{dest} dev {dev} scope link"),
    })
}

fn route_commands(path: &Path, ifname: Option<&str>) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|l| routes5_to_ip(l, ifname)).collect()
}

#[test]
fn wicked_files_configure_nics_in_a_namespace() {
    if let Err(why) = check_prerequisites(&["sh"]) {
        return cannot_run("wicked_files_configure_nics_in_a_namespace", &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let root = example_root(dir.path(), "opensuse15");
    osconf_apply(&root, CLASSIC_ON_LINK);
    let net = root.join("etc/sysconfig/network");
    let ifcfg = |n: &str| {
        sourced(
            &net.join(format!("ifcfg-{n}")),
            "$BOOTPROTO|$STARTMODE|$IPADDR|${LLADDR-unset}",
        )
    };
    assert_eq!(ifcfg("eth0"), "static|auto|10.171.254.123/24|unset");
    assert_eq!(ifcfg("eth1"), "static|auto|42.120.74.205/25|unset");
    assert_eq!(
        sourced(&net.join("config"), "$NETCONFIG_DNS_STATIC_SERVERS"),
        "7.7.7.7 8.8.8.8"
    );

    let mut commands = Vec::new();
    for n in ["eth0", "eth1"] {
        commands.extend(route_commands(&net.join(format!("ifroute-{n}")), Some(n)));
    }
    let global = route_commands(&net.join("routes"), None);
    assert_eq!(
        global,
        ["default via 42.120.74.1 dev eth1"],
        "one default route, in the global file"
    );
    commands.extend(global);

    let ns = Netns::new("wicked");
    ns.add_nic("eth0", "00:8c:fa:5e:14:23");
    ns.add_nic("eth1", "00:8c:fa:5e:14:24");
    let mut script = String::new();
    for n in ["eth0", "eth1"] {
        let ifcfg = net.join(format!("ifcfg-{n}"));
        script.push_str(&format!(
            "(. '{}'; ip addr add \"$IPADDR\" dev {n})\nip link set {n} up\n",
            ifcfg.display()
        ));
    }
    for c in &commands {
        script.push_str(&format!("ip route add {c}\n"));
    }
    ns.sh(&script);
    assert_eq!(ns.ipv4_addrs("eth1"), ["42.120.74.205/25"]);
    assert_eq!(ns.ipv4_routes(), CLASSIC_ON_LINK_ROUTES);
}
