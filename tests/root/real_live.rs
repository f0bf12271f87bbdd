//! Live actions on a real kernel: `osconf apply --live` inside a network namespace (and a UTS namespace
//! for the host name) configures NICs found by MAC under other names, and a live failure rolls back
//! the files, the host name, the addresses and every route the step replaced. osconf runs without
//! `ip` on its PATH: it configures the kernel by rtnetlink; the tests check with `ip` afterwards.
//! The root is Slackware's, whose rc scripts leave no trace of having run: there osconf configures
//! the NICs itself (a stack it can ask is left to do it, or told to: see real_ifupdown, real_networkd).
//! A MAC that no NIC has fails before anything changed; a live step fails here on an os.conf NIC
//! given without a MAC whose name no NIC has.

use crate::common::real::{Netns, cannot_run, check_prerequisites};
use crate::common::{copy_tree, example_conf, repo, snapshot};

const OSCONF: &str = env!("CARGO_BIN_EXE_osconf");

/// A Slackware 15 root with `conf` as its os.conf, in `boot/aliyun_custom_image/`.
fn scratch_root(conf: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("examples/rootfs/slackware15"), dir.path()).unwrap();
    crate::common::place_conf(dir.path(), conf);
    dir
}

#[test]
fn live_apply_configures_nics_by_mac_and_sets_hostname() {
    if let Err(why) = check_prerequisites(&[]) {
        return cannot_run("live_apply_configures_nics_by_mac_and_sets_hostname", &why);
    }
    let root = scratch_root(&example_conf("classic"));
    let ns = Netns::new("live");
    // Kernel names differ from os.conf's: the NICs must be found by MAC.
    ns.add_nic("ens5", "00:8c:fa:5e:14:23");
    ns.add_nic("ens6", "00:8c:fa:5e:14:24");
    // No `ip` (nor anything else) on PATH: osconf speaks rtnetlink itself.
    let out = ns.sh(&format!(
        "unshare -u sh -ec 'PATH=/nonexistent {OSCONF} apply --live --root {} 2>&1; cat /proc/sys/kernel/hostname'",
        root.path().display()
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().last(), Some("iZ23r29djmjZ"), "{text}");
    assert!(
        ns.sh("ip link show ens5").stdout.windows(4).any(|w| w == b",UP,"),
        "ens5 is up"
    );
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
    // Each live action has its own time in the status record, each NIC by its kernel name.
    let status = std::process::Command::new(OSCONF)
        .args(["status", "--json", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let live: Vec<&str> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["step"].as_str().filter(|n| n.starts_with("live: ")))
        .collect();
    assert_eq!(
        live,
        [
            "live: set the host name",
            "live: configure ens5",
            "live: configure ens6"
        ],
        "{json}"
    );
}

#[test]
fn live_failure_rolls_back_files_and_hostname() {
    if let Err(why) = check_prerequisites(&[]) {
        return cannot_run("live_failure_rolls_back_files_and_hostname", &why);
    }
    let root = scratch_root(&example_conf("vpc"));
    let before = snapshot(root.path());
    let ns = Netns::new("livefail");
    ns.add_nic("eth0", "02:00:00:00:00:99"); // not os.conf's MAC
    let script = format!(
        "unshare -u sh -c 'hostname before-osconf; {OSCONF} apply --live --wait 1 --root {}; echo status=$?; hostname'",
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
    let root = scratch_root(&without_eth1_mac(&example_conf("classic")));
    let ns = Netns::new("liverestore");
    // eth0 is there with an address of its own; eth1, given without a MAC, has no NIC of its name,
    // so the live step fails after eth0 was reconfigured.
    ns.add_nic("ens5", "00:8c:fa:5e:14:23");
    ns.sh("ip link set ens5 up; ip addr add 192.168.9.9/24 dev ens5; ip route add 10.9.0.0/16 via 192.168.9.1 dev ens5");
    let before = (ns.ipv4_addrs("ens5"), ns.ipv4_routes());
    let out = ns.sh_unchecked(&format!(
        "unshare -u {OSCONF} apply --live --root {}",
        root.path().display()
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no NIC named eth1"), "{stderr}");
    assert_eq!((ns.ipv4_addrs("ens5"), ns.ipv4_routes()), before, "{stderr}");
    assert_eq!(before.1, ["10.9.0.0/16 via 192.168.9.1 dev ens5"]);
}

#[test]
fn live_nics_are_found_by_mac_among_devices_that_share_it() {
    if let Err(why) = check_prerequisites(&[]) {
        return cannot_run("live_nics_are_found_by_mac_among_devices_that_share_it", &why);
    }
    // A bridge carrying eth0's MAC and a macvlan on eth1 are not the NICs os.conf means.
    let root = scratch_root(&example_conf("classic"));
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
    let root = scratch_root(&example_conf("classic"));
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

/// An os.conf giving eth0 the default route and an eth1 without MAC that no NIC is named: the
/// live step fails after eth0's default route went in.
const DEFAULT_ON_ETH0_ETH1_MISSING: &str = "hostname=iZ23r29djmjZ
eth0_ip_addr=10.171.254.123
eth0_mac_addr=00:8c:fa:5e:14:23
eth0_netmask=255.255.255.0
eth0_gateway=10.171.254.1
eth0_route=\"0.0.0.0/0 10.171.254.1\"
eth1_ip_addr=42.120.74.105
eth1_netmask=255.255.255.0
";

/// `conf` with eth1 given without a MAC: found by name only, and here no NIC has its name.
fn without_eth1_mac(conf: &str) -> String {
    conf.lines()
        .filter(|l| !l.starts_with("eth1_mac_addr"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A NIC that os.conf does not mention, carrying the machine's default routes (two metrics) and a
/// route of its own.
fn add_other_nic_with_defaults(ns: &Netns) {
    ns.add_nic("other0", "02:00:00:00:00:50");
    ns.sh("ip link set other0 up; ip addr add 192.168.50.2/24 dev other0
           ip route add default via 192.168.50.1 dev other0
           ip route add default via 192.168.50.254 dev other0 metric 100
           ip route add 10.50.0.0/16 via 192.168.50.1 dev other0");
}

#[test]
fn regression_live_failure_restores_a_default_route_on_a_nic_os_conf_does_not_mention() {
    let name = "regression_live_failure_restores_a_default_route_on_a_nic_os_conf_does_not_mention";
    if let Err(why) = check_prerequisites(&[]) {
        return cannot_run(name, &why);
    }
    let root = scratch_root(DEFAULT_ON_ETH0_ETH1_MISSING);
    let ns = Netns::new("livedefault");
    ns.add_nic("ens5", "00:8c:fa:5e:14:23");
    ns.sh("ip addr add 192.168.9.9/24 dev ens5"); // and the link down: both come back
    add_other_nic_with_defaults(&ns);
    let before = (ns.ipv4_addrs("ens5"), ns.ipv4_addrs("other0"), ns.ipv4_routes());
    let out = ns.sh_unchecked(&format!(
        "unshare -u env PATH=/nonexistent {OSCONF} apply --live --root {}",
        root.path().display()
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no NIC named eth1"), "{stderr}");
    let after = (ns.ipv4_addrs("ens5"), ns.ipv4_addrs("other0"), ns.ipv4_routes());
    assert_eq!(after, before, "{stderr}");
    assert_eq!(
        before.2,
        [
            "10.50.0.0/16 via 192.168.50.1 dev other0",
            "default via 192.168.50.1 dev other0",
            "default via 192.168.50.254 dev other0",
        ]
    );
    let link = ns.sh("ip -o link show ens5");
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(
        !link.contains(",UP") && !link.contains("<UP"),
        "ens5 set down again: {link}"
    );
    assert_eq!(before.0, ["192.168.9.9/24"]);
    // The metrics came back too.
    let metric = ns.sh("ip -4 route show default via 192.168.50.254");
    assert!(String::from_utf8_lossy(&metric.stdout).contains("metric 100"));
}

#[test]
fn live_apply_leaves_exactly_one_default_route() {
    if let Err(why) = check_prerequisites(&[]) {
        return cannot_run("live_apply_leaves_exactly_one_default_route", &why);
    }
    let root = scratch_root(&example_conf("classic"));
    let ns = Netns::new("liveonedefault");
    ns.add_nic("ens5", "00:8c:fa:5e:14:23");
    ns.add_nic("ens6", "00:8c:fa:5e:14:24");
    add_other_nic_with_defaults(&ns);
    // And an old default route on eth0's NIC, with an address os.conf replaces.
    ns.sh("ip link set ens5 up; ip addr add 192.168.9.9/24 dev ens5; ip route add default via 192.168.9.1 dev ens5 metric 50");
    let out = ns.sh(&format!(
        "unshare -u env PATH=/nonexistent {OSCONF} apply --live --root {} 2>&1",
        root.path().display()
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(ns.ipv4_addrs("ens5"), ["10.171.254.123/24"], "{text}");
    assert_eq!(
        ns.ipv4_routes(),
        [
            "10.0.0.0/8 via 10.171.254.1 dev ens5",
            "10.50.0.0/16 via 192.168.50.1 dev other0",
            "172.16.0.0/12 via 10.171.254.1 dev ens5",
            "default via 42.120.74.1 dev ens6",
        ],
        "{text}"
    );
    assert_eq!(ns.ipv4_addrs("other0"), ["192.168.50.2/24"]);
}

#[test]
fn live_apply_reaches_an_off_subnet_gateway_through_a_device_route() {
    let name = "live_apply_reaches_an_off_subnet_gateway_through_a_device_route";
    if let Err(why) = check_prerequisites(&[]) {
        return cannot_run(name, &why);
    }
    let root = scratch_root(crate::common::CLASSIC_ON_LINK);
    let ns = Netns::new("liveonlink");
    ns.add_nic("eth0", "00:8c:fa:5e:14:23");
    ns.add_nic("eth1", "00:8c:fa:5e:14:24");
    let out = ns.sh(&format!(
        "unshare -u env PATH=/nonexistent {OSCONF} apply --live --root {} 2>&1",
        root.path().display()
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        ns.ipv4_routes(),
        crate::common::real::CLASSIC_ON_LINK_ROUTES,
        "{text}"
    );
    let device_route = ns.sh("ip -4 route show 42.120.74.1/32");
    let device_route = String::from_utf8_lossy(&device_route.stdout);
    assert!(device_route.contains("scope link"), "{device_route}");
}

#[test]
fn regression_a_host_name_longer_than_the_kernel_holds_gives_the_kernel_its_first_label() {
    let name = "regression_a_host_name_longer_than_the_kernel_holds_gives_the_kernel_its_first_label";
    if let Err(why) = check_prerequisites(&[]) {
        return cannot_run(name, &why);
    }
    let first = format!("iz{}", "7".repeat(40));
    let fqdn = format!("{first}.cn-hangzhou.ecs.internal.example.com"); // 80 bytes
    assert!(fqdn.len() > 64);
    let root = scratch_root(&format!("hostname={fqdn}\n"));
    let ns = Netns::new("livehostname");
    let out = ns.sh(&format!(
        "unshare -u sh -ec 'hostname before-osconf; PATH=/nonexistent {OSCONF} apply --live --root {} 2>&1; cat /proc/sys/kernel/hostname'",
        root.path().display()
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().last(), Some(first.as_str()), "{text}");
    let file = std::fs::read_to_string(root.path().join("etc/HOSTNAME")).unwrap();
    assert_eq!(file, format!("{fqdn}\n"), "the files keep the whole name");
    assert!(!root.path().join("boot/aliyun_custom_image/os.conf").exists());

    // `plan` says so.
    let root = scratch_root(&format!("hostname={fqdn}\n"));
    let plan = std::process::Command::new(OSCONF)
        .args(["plan", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.contains(&format!("live, the kernel gets {first}")), "{plan}");
}

/// Under systemd a live run asks PID 1 whether the stack's services run with one `systemctl
/// is-active` for all of them (each systemctl costs a second and more of a boot under qemu TCG),
/// and reads which one runs from its output, whichever place that unit has; where systemd keeps
/// `/run/systemd/units` and none of the units has its `invocation:UNIT` link (never started, as at
/// boot) it asks nothing. A fake systemctl on PATH, in a private /run that holds
/// /run/systemd/system (and the unit directories emptied), logs each call and answers as the real
/// one does (a state per unit, in order); the plan shows what osconf concluded: NetworkManager's
/// reload, networkd's, dhcpcd's rebind (an instance for one NIC, `dhcpcd@eth1.service`, running),
/// or nothing.
#[test]
fn live_run_asks_systemd_once_for_all_of_the_stacks_units() {
    let name = "live_run_asks_systemd_once_for_all_of_the_stacks_units";
    if let Err(why) = check_prerequisites(&[]) {
        return cannot_run(name, &why);
    }
    let ns = Netns::new("liveunits");
    ns.add_nic("eth0", "00:8c:fa:5e:14:23");
    ns.add_nic("eth1", "00:8c:fa:5e:14:24");
    let netplan = "is-active systemd-networkd.service NetworkManager.service\n";
    let dhcpcd = "is-active dhcpcd.service dhcpcd@eth0.service dhcpcd@eth1.service\n";
    let tools = ["nmcli connection reload", "networkctl reload", "dhcpcd -n eth0"];
    let nm: &[&str] = &["NetworkManager.service"];
    // (root, invocation links: None for a systemd without /run/systemd/units, states systemctl
    // gives, the call osconf must make (None: no call), the tool the plan must hold)
    for (rootfs, links, states, asked, running) in [
        ("ubuntu22", None, "inactive\ninactive", Some(netplan), None),
        ("ubuntu22", None, "activating\nfailed", Some(netplan), None),
        (
            "ubuntu22",
            None,
            "inactive\nactive",
            Some(netplan),
            Some(tools[0]),
        ),
        (
            "ubuntu22",
            None,
            "active\ninactive",
            Some(netplan),
            Some(tools[1]),
        ),
        (
            "void-dhcpcd",
            None,
            "inactive\ninactive\ninactive",
            Some(dhcpcd),
            None,
        ),
        (
            "void-dhcpcd",
            None,
            "inactive\ninactive\nactive",
            Some(dhcpcd),
            Some(tools[2]),
        ),
        ("ubuntu22", Some(&[][..]), "inactive\nactive", None, None),
        (
            "ubuntu22",
            Some(nm),
            "inactive\nactive",
            Some(netplan),
            Some(tools[0]),
        ),
        (
            "void-dhcpcd",
            Some(&[][..]),
            "active\ninactive\ninactive",
            None,
            None,
        ),
    ] {
        let scratch = tempfile::tempdir().unwrap();
        let root = crate::common::example_root(scratch.path(), rootfs);
        crate::common::place_conf(&root, &example_conf("classic"));
        let (bin, log) = (scratch.path().join("bin"), scratch.path().join("calls"));
        std::fs::create_dir(&bin).unwrap();
        let any = states.lines().any(|s| s == "active");
        let fake = format!(
            "#!/bin/sh\necho \"$*\" >>'{}'\nprintf '{}\\n'\nexit {}\n",
            log.display(),
            states.replace('\n', "\\n"),
            if any { 0 } else { 3 }
        );
        std::fs::write(bin.join("systemctl"), fake).unwrap();
        crate::common::real::run(
            std::process::Command::new("chmod")
                .arg("+x")
                .arg(bin.join("systemctl")),
        );
        let units = match links {
            None => String::new(),
            Some(links) => std::iter::once("mkdir /run/systemd/units".to_owned())
                .chain(
                    links
                        .iter()
                        .map(|u| format!("ln -s 0123abcd /run/systemd/units/invocation:{u}")),
                )
                .collect::<Vec<_>>()
                .join("\n"),
        };
        // The host's unit directories hidden: no alias there may change what osconf asks.
        let out = ns.sh(&format!(
            "mount -t tmpfs tmpfs /run\nmkdir -p /run/systemd/system\n{units}\n\
             for d in /etc/systemd/system /usr/lib/systemd/system /lib/systemd/system; do\n\
             if [ -d $d ]; then mount -t tmpfs tmpfs $d; fi\ndone\n\
             PATH='{}':\"$PATH\" {OSCONF} plan --live --wait 5 --root '{}'",
            bin.display(),
            root.display()
        ));
        let plan = String::from_utf8_lossy(&out.stdout);
        let calls = std::fs::read_to_string(&log).ok();
        assert_eq!(calls.as_deref(), asked, "{rootfs}: {links:?} {states:?}");
        for tool in tools {
            assert_eq!(
                plan.contains(tool),
                running == Some(tool),
                "{rootfs}: {links:?} {states:?}: {tool}\n{plan}"
            );
        }
    }
}
