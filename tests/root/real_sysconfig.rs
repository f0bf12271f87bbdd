//! sysconfig output replayed in a network namespace the way initscripts read it: `ifcfg-*` sourced by
//! `sh` (ifup-eth adds IPADDR/PREFIX and, with DEFROUTE=yes, `default via GATEWAY`), then every
//! non-comment line of `route-*` given to `ip route add` (ifup-routes' handle_ip_file). initscripts
//! are not packaged by Debian, so this replays their rules rather than running them; the kernel still
//! judges every address and route (an on-link gateway without its device route is refused).

use std::fs;
use std::path::Path;

use crate::common::real::{
    CLASSIC_ON_LINK_ROUTES, CLASSIC_ROUTES, Netns, cannot_run, check_prerequisites, sourced,
};
use crate::common::{CLASSIC_ON_LINK, example_conf, example_root, osconf_apply};

/// Brings up every ifcfg/route pair under `root` inside `ns` as initscripts would.
fn replay(ns: &Netns, root: &Path) {
    let dir = root.join("etc/sysconfig/network-scripts");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .into_string()
                .ok()?
                .strip_prefix("ifcfg-")
                .map(String::from)
        })
        .collect();
    names.sort();
    for name in &names {
        let ifcfg = dir.join(format!("ifcfg-{name}"));
        let var = |v: &str| sourced(&ifcfg, &format!("${v}"));
        if var("ONBOOT") != "yes" || var("BOOTPROTO") != "none" {
            continue;
        }
        let dev = var("DEVICE");
        let mut script = format!(
            "ip addr add {}/{} dev {dev}\nip link set {dev} up\n",
            var("IPADDR"),
            var("PREFIX")
        );
        if var("DEFROUTE") == "yes" && !var("GATEWAY").is_empty() {
            script.push_str(&format!(
                "ip route add default via {} dev {dev}\n",
                var("GATEWAY")
            ));
        }
        ns.sh(&script);
    }
    for name in &names {
        let Ok(text) = fs::read_to_string(dir.join(format!("route-{name}"))) else {
            continue;
        };
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            ns.sh(&format!("ip route add {line}"));
        }
    }
}

fn check(test: &str, conf: &str, eth1: &str, routes: &[&str]) {
    if let Err(why) = check_prerequisites(&[]) {
        return cannot_run(test, &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let root = example_root(dir.path(), "centos7");
    osconf_apply(&root, conf);
    let ns = Netns::new("sysconfig");
    ns.add_nic("eth0", "00:8c:fa:5e:14:23");
    ns.add_nic("eth1", "00:8c:fa:5e:14:24");
    replay(&ns, &root);
    assert_eq!(ns.ipv4_addrs("eth0"), ["10.171.254.123/24"]);
    assert_eq!(ns.ipv4_addrs("eth1"), [eth1]);
    assert_eq!(ns.ipv4_routes(), routes);
}

#[test]
fn classic_sample_gives_every_route_and_one_default() {
    let conf = example_conf("classic");
    check(
        "classic_sample_gives_every_route_and_one_default",
        &conf,
        "42.120.74.105/24",
        &CLASSIC_ROUTES,
    );
}

#[test]
fn on_link_gateway_is_reached_through_its_device_route() {
    check(
        "on_link_gateway_is_reached_through_its_device_route",
        CLASSIC_ON_LINK,
        "42.120.74.205/25",
        &CLASSIC_ON_LINK_ROUTES,
    );
}
