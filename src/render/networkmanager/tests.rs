//! Unit tests of the NetworkManager renderer: keyfile text, profile neutralising, DNS placement.
use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::model::Config;
use crate::plan::Mode;
use crate::render::common::testing::{fake_root, from_text, render, written_with_mode};

const CLASSIC_OFF_SUBNET: &str = "eth0_ip_addr=10.0.0.5\neth0_mac_addr=00:16:3e:00:00:01\n\
    eth0_netmask=255.255.255.0\neth0_gateway=10.0.1.1\neth0_route=\"192.168.0.0/16 10.0.1.1\"\n\
    eth1_ip_addr=42.120.74.105\neth1_netmask=255.255.255.0\neth1_gateway=42.120.75.1\n\
    eth1_route=\"0.0.0.0/0 42.120.75.1\"\ndns_nameserver=\"7.7.7.7 2001:db8::1\"\n";

/// A target root holding `files` (path, contents), probed as a `System`.
fn root(files: &[(&str, &str)]) -> (tempfile::TempDir, System) {
    let dir = fake_root(files, &[]);
    let sys = System::probe(dir.path()).unwrap();
    (dir, sys)
}

fn enable_nm(dir: &Path) -> System {
    let wants = dir.join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(
        "/usr/lib/systemd/system/NetworkManager.service",
        wants.join("NetworkManager.service"),
    )
    .unwrap();
    System::probe(dir).unwrap()
}

#[test]
fn off_subnet_gateways_are_onlink_and_only_the_default_nic_routes_by_default() {
    let config = from_text(CLASSIC_OFF_SUBNET);
    let (_dir, sys) = root(&[]);
    let ifnames = BTreeMap::from([(1, "ens6".to_owned())]);
    let out = STACK
        .render(&Input {
            config: &config,
            sys: &sys,
            ifnames: &ifnames,
            running: None,
        })
        .unwrap();
    let (eth0, mode) = written_with_mode(
        &out,
        "/etc/NetworkManager/system-connections/osconf-eth0.nmconnection",
    )
    .unwrap();
    assert_eq!(mode, Mode::Exact(0o600));
    assert!(eth0.starts_with(HEADER));
    assert!(
        eth0.contains("\n[ethernet]\nmac-address=00:16:3E:00:00:01\n"),
        "{eth0}"
    );
    assert!(!eth0.contains("interface-name"), "{eth0}");
    assert!(
        eth0.contains("address1=10.0.0.5/24\nroute1=192.168.0.0/16,10.0.1.1\nroute1_options=onlink=true\n"),
        "{eth0}"
    );
    assert!(
        eth0.contains("never-default=true\n") && !eth0.contains("dns="),
        "{eth0}"
    );
    let (eth1, _) = written_with_mode(
        &out,
        "/etc/NetworkManager/system-connections/osconf-eth1.nmconnection",
    )
    .unwrap();
    assert!(eth1.contains("interface-name=ens6\n"), "{eth1}");
    assert!(
        eth1.contains(
            "address1=42.120.74.105/24\nroute1=0.0.0.0/0,42.120.75.1\nroute1_options=onlink=true\n"
        ),
        "{eth1}"
    );
    assert!(
        eth1.contains("dns=7.7.7.7;\nignore-auto-dns=true\n") && !eth1.contains("never-default"),
        "{eth1}"
    );
    assert!(
        out.notes.iter().any(|n| n.contains("2001:db8::1")),
        "{:?}",
        out.notes
    );
}

#[test]
fn uuids_are_stable_well_formed_and_distinct() {
    let a = uuid("mac:00:8c:fa:5e:14:23");
    assert_eq!(a, uuid("mac:00:8c:fa:5e:14:23"));
    assert_ne!(a, uuid("mac:00:8c:fa:5e:14:24"));
    let groups: Vec<usize> = a.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{a}");
    assert_eq!(&a[14..15], "8", "version 8: {a}");
    assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "RFC variant: {a}");
}

#[test]
fn autoconnect_disabled_in_place() {
    let cases: &[(&str, &str)] = &[
        // An existing key is replaced where it stands, in [connection] only.
        (
            "[connection]\nid=x\nautoconnect=true\n\n[ipv4]\nautoconnect=keep\n",
            "[connection]\nid=x\nautoconnect=false\n\n[ipv4]\nautoconnect=keep\n",
        ),
        // Else it goes right below the header; comments and blank lines stay.
        (
            "# c\n[connection]\nid=x\n\n[ethernet]\n",
            "# c\n[connection]\nautoconnect=false\nid=x\n\n[ethernet]\n",
        ),
        // No [connection] at all (and no final newline).
        (
            "[ipv4]\nmethod=auto",
            "[ipv4]\nmethod=auto\n\n[connection]\nautoconnect=false\n",
        ),
    ];
    for (old, want) in cases {
        let got = disable_autoconnect(old.as_bytes());
        assert_eq!(String::from_utf8(got).unwrap(), *want, "from {old:?}");
    }
}

#[test]
fn macs_in_every_form_other_tools_write() {
    let want = Some(Mac([0x00, 0x8c, 0xfa, 0x5e, 0x14, 0x23]));
    assert_eq!(parse_mac("00:8C:FA:5E:14:23"), want);
    assert_eq!(parse_mac("00-8c-fa-5e-14-23"), want);
    assert_eq!(
        parse_mac("0:8c:fa:5e:14:23"),
        want,
        "NetworkManager takes one-digit octets"
    );
    assert_eq!(parse_mac("0;140;250;94;20;35;"), want);
    assert_eq!(parse_mac("00:8c:fa:5e:14"), None);
    assert_eq!(parse_mac("bogus"), None);
}

#[test]
fn only_other_ethernet_profiles_of_our_nics_are_disabled() {
    let config = from_text(
        "eth0_ip_addr=10.0.0.5\neth0_mac_addr=00:8c:fa:5e:14:23\neth0_netmask=255.255.255.0\n\
        eth1_ip_addr=10.0.1.5\neth1_netmask=255.255.255.0\n",
    );
    let dir = "/etc/NetworkManager/system-connections";
    let root = fake_root(
        &[
            // Bound by the old byte-list MAC: disabled.
            (
                "/etc/NetworkManager/system-connections/old",
                "[connection]\ntype=802-3-ethernet\n[802-3-ethernet]\nmac-address=0;140;250;94;20;35;\n",
            ),
            // Bound by name to eth1 (no MAC in os.conf): disabled.
            (
                "/etc/NetworkManager/system-connections/Wired connection 1.nmconnection",
                "[connection]\nid=Wired connection 1\ntype=ethernet\ninterface-name=eth1\n",
            ),
            // Another NIC, already disabled, not Ethernet, an editor backup, osconf's own: left alone.
            (
                "/etc/NetworkManager/system-connections/ens9.nmconnection",
                "[connection]\ntype=ethernet\ninterface-name=ens9\n",
            ),
            (
                "/etc/NetworkManager/system-connections/off.nmconnection",
                "[connection]\ntype=ethernet\ninterface-name=eth1\nautoconnect=false\n",
            ),
            (
                "/etc/NetworkManager/system-connections/wifi.nmconnection",
                "[connection]\ntype=wifi\ninterface-name=eth1\n",
            ),
            (
                "/etc/NetworkManager/system-connections/x.nmconnection~",
                "[connection]\ntype=ethernet\ninterface-name=eth1\n",
            ),
            (
                "/etc/sysconfig/network-scripts/ifcfg-eth1",
                "DEVICE=\"eth1\"\nONBOOT=\"yes\"\nBOOTPROTO=dhcp\n",
            ),
            (
                "/etc/sysconfig/network-scripts/ifcfg-lo",
                "DEVICE=lo\nONBOOT=yes\n",
            ),
        ],
        &[],
    );
    let out = render(&STACK, &config, root.path());
    let (old, mode) = written_with_mode(&out, &format!("{dir}/old")).unwrap();
    assert_eq!(mode, Mode::Exact(0o600));
    assert!(
        old.starts_with("[connection]\nautoconnect=false\ntype=802-3-ethernet\n"),
        "{old}"
    );
    assert!(written_with_mode(&out, &format!("{dir}/Wired connection 1.nmconnection")).is_some());
    for name in [
        "ens9.nmconnection",
        "off.nmconnection",
        "wifi.nmconnection",
        "x.nmconnection~",
    ] {
        assert!(
            written_with_mode(&out, &format!("{dir}/{name}")).is_none(),
            "{name} must stay as it is"
        );
    }
    let (ifcfg, _) = written_with_mode(&out, "/etc/sysconfig/network-scripts/ifcfg-eth1").unwrap();
    assert_eq!(ifcfg, "DEVICE=\"eth1\"\nONBOOT=no\nBOOTPROTO=dhcp\n");
    assert!(written_with_mode(&out, "/etc/sysconfig/network-scripts/ifcfg-lo").is_none());
    assert_eq!(
        out.notes.iter().filter(|n| n.contains("disabled")).count(),
        3,
        "{:?}",
        out.notes
    );
}

#[test]
fn sysconfig_disables_competing_keyfiles_too() {
    let config =
        from_text("eth0_ip_addr=10.0.0.5\neth0_mac_addr=00:8c:fa:5e:14:23\neth0_netmask=255.255.255.0\n");
    let path = "/etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection";
    let dir = fake_root(
        &[(
            path,
            "[connection]\ntype=ethernet\n[ethernet]\nmac-address=00:8C:FA:5E:14:23\n",
        )],
        &[],
    );
    let out = render(&super::super::sysconfig::STACK, &config, dir.path());
    assert!(written_with_mode(&out, path).is_some_and(|(t, _)| t.contains("autoconnect=false")));
}

#[test]
fn detection_leaves_ifupdown_nics_and_ifcfg_setups_to_their_stacks() {
    let interfaces = "/etc/network/interfaces";
    let (dir, _) = root(&[(interfaces, "auto lo\niface lo inet loopback\n")]);
    assert_eq!(
        detect(&System::probe(dir.path()).unwrap()).unwrap(),
        None,
        "not enabled"
    );
    assert!(detect(&enable_nm(dir.path())).unwrap().is_some());
    std::fs::write(
        dir.path().join("etc/network/interfaces"),
        "auto eth0\niface eth0 inet dhcp\n",
    )
    .unwrap();
    assert_eq!(
        detect(&System::probe(dir.path()).unwrap()).unwrap(),
        None,
        "Debian: ifupdown owns eth0"
    );
    let conf = dir.path().join("etc/NetworkManager/conf.d/managed.conf");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    std::fs::write(&conf, "[ifupdown]\nmanaged=true\n").unwrap();
    assert!(detect(&System::probe(dir.path()).unwrap()).unwrap().is_some());

    // RHEL 9: the network-scripts directory with a readme only is NetworkManager's.
    let (dir, _) = root(&[("/etc/sysconfig/network-scripts/readme-ifcfg-rh.txt", "readme\n")]);
    let sys = enable_nm(dir.path());
    assert_eq!(crate::render::detect(&sys).unwrap().stack.name, "networkmanager");
    std::fs::write(
        dir.path().join("etc/sysconfig/network-scripts/ifcfg-eth0"),
        "DEVICE=eth0\n",
    )
    .unwrap();
    assert_eq!(
        crate::render::detect(&System::probe(dir.path()).unwrap())
            .unwrap()
            .stack
            .name,
        "sysconfig"
    );
}

/// Without a NIC the servers go to NetworkManager's global DNS (or to resolv.conf where it keeps
/// out); with NICs again the global DNS file goes, since it would override the keyfile's dns=.
#[test]
fn global_dns_without_nic_only() {
    let no_nic = from_text("dns_nameserver=\"1.1.1.1 8.8.8.8\"\n");
    let dir = fake_root(&[("/etc/resolv.conf", "nameserver 7.7.7.7\n")], &[]);
    let run = |config: &Config| render(&STACK, config, dir.path());
    let out = run(&no_nic);
    let (text, _) = written_with_mode(&out, GLOBAL_DNS).unwrap();
    assert_eq!(
        text,
        format!("{HEADER}[global-dns-domain-*]\nservers=1.1.1.1,8.8.8.8\n")
    );
    assert_eq!(out.ops.len(), 1, "{:?}", out.ops);
    std::fs::create_dir_all(dir.path().join("etc/NetworkManager/conf.d")).unwrap();
    std::fs::write(dir.path().join(GLOBAL_DNS.trim_start_matches('/')), text).unwrap();
    let nics = from_text("eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\ndns_nameserver=1.1.1.1\n");
    let out = run(&nics);
    assert!(out.ops.contains(&FileOp::Remove {
        path: GLOBAL_DNS.into()
    }));
    let none = dir.path().join("etc/NetworkManager/conf.d/90-dns-none.conf");
    std::fs::write(none, "[main]\ndns=none\n").unwrap();
    let out = run(&no_nic);
    assert!(written_with_mode(&out, GLOBAL_DNS).is_none());
    assert_eq!(
        written_with_mode(&out, "/etc/resolv.conf").map(|(t, _)| t),
        Some("nameserver 1.1.1.1\nnameserver 8.8.8.8\n")
    );
}

#[test]
fn resolv_conf_edited_only_where_networkmanager_keeps_out() {
    let config = from_text("eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\ndns_nameserver=7.7.7.7\n");
    let resolv = "/etc/resolv.conf";
    let run = |files: &[(&str, &str)]| {
        let mut all = vec![(resolv, "nameserver 1.1.1.1\n")];
        all.extend_from_slice(files);
        let (_d, sys) = root(&all);
        let out = dns(&Input {
            config: &config,
            sys: &sys,
            ifnames: &BTreeMap::new(),
            running: None,
        })
        .unwrap();
        written_with_mode(&out, resolv).map(|(t, _)| t.to_owned())
    };
    assert_eq!(run(&[]), None, "NetworkManager writes it");
    let none = [(
        "/etc/NetworkManager/conf.d/90-dns-none.conf",
        "[main]\ndns=none\n",
    )];
    assert_eq!(run(&none).as_deref(), Some("nameserver 7.7.7.7\n"));
    let unmanaged = [(
        "/etc/NetworkManager/NetworkManager.conf",
        "[main]\n#dns=none\nrc-manager=unmanaged\n",
    )];
    assert_eq!(run(&unmanaged).as_deref(), Some("nameserver 7.7.7.7\n"));
    // conf.d comes after NetworkManager.conf.
    let back = [
        ("/etc/NetworkManager/NetworkManager.conf", "[main]\ndns=none\n"),
        ("/etc/NetworkManager/conf.d/dns.conf", "[main]\ndns=default\n"),
    ];
    assert_eq!(run(&back), None);
    // A file in /etc/NetworkManager/conf.d hides the /usr/lib one of the same name, even when it
    // does not set the key.
    let shadowed = [
        ("/usr/lib/NetworkManager/conf.d/dns.conf", "[main]\ndns=none\n"),
        ("/etc/NetworkManager/conf.d/dns.conf", "[main]\nplugins=keyfile\n"),
    ];
    assert_eq!(run(&shadowed), None);
}
