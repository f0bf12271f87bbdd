//! Real checks for the stacks whose consumers are not in Debian (Slackware's rc.inet1, FreeBSD's
//! rc.conf, OpenWrt's netifd): the files the real `osconf apply` writes are read by real parsers —
//! bash and sh source them, a strict UCI grammar parses /etc/config/network — and Slackware's
//! addresses, gateway and rc.local routes are installed by `ip` in a network namespace.
//!
//! What is NOT proven here: rc.inet1, rc.d/routing and netifd themselves never run; the loop below
//! that hands rc.inet1.conf's values to `ip` stands in for rc.inet1 (its static-IPv4 path).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::real::{CLASSIC_ROUTES, Netns, cannot_run, check_prerequisites, run};
use crate::common::{example_root, osconf_apply, repo};

/// Applies an os.conf to a scratch copy of an example root with the real binary; the scratch
/// directory and the root in it.
fn apply(rootfs: &str, conf: &Path) -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::tempdir().unwrap();
    let root = example_root(scratch.path(), rootfs);
    osconf_apply(&root, &fs::read_to_string(conf).unwrap());
    assert!(
        root.join("var/lib/osconf/last-applied.conf").exists(),
        "apply did nothing"
    );
    (scratch, root)
}

fn example(name: &str) -> PathBuf {
    repo().join("examples").join(name).join("os.conf")
}

fn onlink_conf() -> PathBuf {
    repo().join("tests/cases/slackware15-onlink/os.conf")
}

/// Runs a shell on a script and returns its stdout lines.
fn shell(prog: &str, script: &str) -> Vec<String> {
    let out = run(Command::new(prog).args(["-ec", script]));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What rc.inet1 does for a static IPv4 interface, from the values bash reads in rc.inet1.conf:
/// `ip address add` each of IPADDRS[n] on IFNAME[n] (default ethN), up; then the default route via
/// GATEWAY; then rc.M's last step, rc.local.
const RC_INET1_STATIC: &str = r#"
. "$ROOT/etc/rc.d/rc.inet1.conf"
for i in 0 1 2 3 4 5; do
  name=${IFNAME[$i]:-eth$i}
  [ "${USE_DHCP[$i]}" = yes ] && { echo "USE_DHCP[$i] still yes"; exit 1; }
  [ -n "${IPADDR[$i]}${HWADDR[$i]}${BRNICS[$i]}" ] && { echo "legacy key left for $i"; exit 1; }
  for a in ${IPADDRS[$i]}; do ip address add "$a" dev "$name"; ip link set dev "$name" up; done
done
[ -n "$GATEWAY" ] && ip -4 route add default via "$GATEWAY"
bash "$ROOT/etc/rc.d/rc.local"
"#;

fn slackware_in_netns(test: &str, conf: &Path, nics: &[(&str, &str)]) -> Option<Netns> {
    if let Err(why) = check_prerequisites(&["bash"]) {
        cannot_run(test, &why);
        return None;
    }
    let (_scratch, root) = apply("slackware15", conf);
    let ns = Netns::new("slack");
    for (name, mac) in nics {
        ns.add_nic(name, mac);
    }
    let script = root.join("rc-inet1-static.sh");
    fs::write(&script, RC_INET1_STATIC).unwrap();
    ns.sh(&format!(
        "ROOT='{}' bash -e '{}'",
        root.display(),
        script.display()
    ));
    Some(ns)
}

#[test]
fn slackware_classic_addresses_gateway_and_rc_local_routes_reach_the_kernel() {
    let nics = [("eth0", "00:8c:fa:5e:14:23"), ("eth1", "00:8c:fa:5e:14:24")];
    let test = "slackware_classic_addresses_gateway_and_rc_local_routes_reach_the_kernel";
    let Some(ns) = slackware_in_netns(test, &example("classic"), &nics) else {
        return;
    };
    assert_eq!(ns.ipv4_addrs("eth0"), ["10.171.254.123/24"]);
    assert_eq!(ns.ipv4_addrs("eth1"), ["42.120.74.105/24"]);
    assert_eq!(ns.ipv4_routes(), CLASSIC_ROUTES);
}

#[test]
fn slackware_onlink_gateway_is_reachable_through_rc_local() {
    let test = "slackware_onlink_gateway_is_reachable_through_rc_local";
    let Some(ns) = slackware_in_netns(test, &onlink_conf(), &[("eth0", "00:8c:fa:5e:14:23")]) else {
        return;
    };
    assert_eq!(ns.ipv4_addrs("eth0"), ["10.171.254.200/25"]);
    assert_eq!(
        ns.ipv4_routes(),
        [
            "10.0.0.0/8 via 10.171.254.1 dev eth0",
            "10.171.254.1 dev eth0",
            "default via 10.171.254.1 dev eth0",
        ]
    );
}

#[test]
fn slackware_udev_rule_names_each_mac() {
    let (_scratch, root) = apply("slackware15", &example("classic"));
    let rules = fs::read_to_string(root.join("etc/udev/rules.d/70-osconf-net.rules")).unwrap();
    let named: Vec<(String, String)> = rules
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let field = |k: &str| l.split(k).nth(1).unwrap().split('"').nth(1).unwrap().to_owned();
            (field("ATTR{address}=="), field("NAME:="))
        })
        .collect();
    assert_eq!(
        named,
        [
            ("00:8c:fa:5e:14:23".into(), "eth0".into()),
            ("00:8c:fa:5e:14:24".into(), "eth1".into())
        ]
    );
}

#[test]
fn freebsd_rc_conf_as_sh_reads_it() {
    if !Path::new("/bin/sh").exists() {
        return cannot_run("freebsd_rc_conf_as_sh_reads_it", "no /bin/sh");
    }
    for (conf, routes, default) in [
        (
            example("classic"),
            vec!["-net 10.0.0.0/8 10.171.254.1", "-net 172.16.0.0/12 10.171.254.1"],
            "42.120.74.1",
        ),
        (
            onlink_conf(),
            vec![
                "-host 10.171.254.1 -interface vtnet0",
                "-net 10.0.0.0/8 10.171.254.1",
            ],
            "10.171.254.1",
        ),
    ] {
        let (_scratch, root) = apply("freebsd14", &conf);
        let rc = root.join("etc/rc.conf");
        // rc.d/routing: every static route in order, then `defaultrouter` last.
        let got = shell(
            "sh",
            &format!(
                ". '{}'; for r in $static_routes; do eval echo \"\\$route_$r\"; done; echo \"default $defaultrouter\"; \
                 echo \"$hostname\"; echo \"$ifconfig_vtnet0\"",
                rc.display()
            ),
        );
        let mut want: Vec<String> = routes.iter().map(|r| r.to_string()).collect();
        want.push(format!("default {default}"));
        want.push("iZ23r29djmjZ".into());
        assert_eq!(got[..want.len()], want[..], "{}", conf.display());
        assert!(got.last().unwrap().starts_with("inet 10.171.254."), "{got:?}");
    }
}

/// `(type, name, [(option|list, key, value)])`.
type UciSection = (String, Option<String>, Vec<(String, String, String)>);

/// A strict reading of UCI: every line is blank, a comment, `config TYPE ['NAME']`,
/// `option KEY 'VALUE'` or `list KEY 'VALUE'` with single-quoted values and valid identifiers.
fn parse_uci(text: &str) -> Vec<UciSection> {
    let ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let quoted = |s: &str| {
        s.strip_prefix('\'')
            .and_then(|s| s.strip_suffix('\''))
            .map(str::to_owned)
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (verb, rest) = t
            .split_once(' ')
            .unwrap_or_else(|| panic!("line {}: {line:?}", n + 1));
        match verb {
            "config" => {
                let (kind, name) = rest.split_once(' ').map_or((rest, None), |(k, v)| (k, Some(v)));
                assert!(ident(kind), "line {}: {line:?}", n + 1);
                let name = name.map(|v| quoted(v).unwrap_or_else(|| panic!("line {}: {line:?}", n + 1)));
                assert!(name.as_deref().is_none_or(ident), "line {}: {line:?}", n + 1);
                out.push((kind.to_owned(), name, Vec::new()));
            }
            "option" | "list" => {
                let (key, value) = rest
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("line {}: {line:?}", n + 1));
                let value = quoted(value).unwrap_or_else(|| panic!("line {}: {line:?}", n + 1));
                assert!(ident(key) && !value.contains('\''), "line {}: {line:?}", n + 1);
                let section = out
                    .last_mut()
                    .unwrap_or_else(|| panic!("line {}: outside a section", n + 1));
                section.2.push((verb.to_owned(), key.to_owned(), value));
            }
            _ => panic!("line {}: not UCI: {line:?}", n + 1),
        }
    }
    out
}

#[test]
fn openwrt_network_is_strict_uci_with_one_default_route() {
    for conf in [example("vpc"), example("classic"), onlink_conf()] {
        let (_scratch, root) = apply("openwrt23", &conf);
        let text = fs::read_to_string(root.join("etc/config/network")).unwrap();
        let sections = parse_uci(&text);
        let get = |s: &[(String, String, String)], k: &str| {
            s.iter()
                .rfind(|(v, key, _)| v == "option" && key == k)
                .map(|(_, _, x)| x.clone())
        };
        let ifaces: Vec<_> = sections.iter().filter(|(k, _, _)| k == "interface").collect();
        let names: Vec<String> = ifaces.iter().filter_map(|(_, n, _)| n.clone()).collect();
        let gateways = ifaces
            .iter()
            .filter(|(_, _, o)| get(o, "gateway").is_some())
            .count();
        let default_routes = sections
            .iter()
            .filter(|(k, _, o)| k == "route" && get(o, "target").as_deref() == Some("0.0.0.0"))
            .count();
        assert_eq!(
            gateways + default_routes,
            1,
            "{}: one default route\n{text}",
            conf.display()
        );
        for (kind, _, opts) in &sections {
            if kind == "route" {
                assert!(
                    names.contains(&get(opts, "interface").unwrap()),
                    "route to an unknown interface\n{text}"
                );
            }
        }
        let lan = ifaces
            .iter()
            .find(|(_, n, _)| n.as_deref() == Some("lan"))
            .unwrap();
        assert_eq!(get(&lan.2, "device").as_deref(), Some("eth0"));
        assert_eq!(get(&lan.2, "proto").as_deref(), Some("static"));
        let system = parse_uci(&fs::read_to_string(root.join("etc/config/system")).unwrap());
        let sys = system.iter().find(|(k, _, _)| k == "system").unwrap();
        assert_eq!(get(&sys.2, "hostname").as_deref(), Some("iZ23r29djmjZ"));
    }
}
