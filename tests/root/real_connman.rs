//! Real consumer for the `connman` stack: osconf applies os.conf to a copy of the yocto-connman
//! example root (whose installer provisioned the NIC for DHCP), then Debian's connmand 1.41
//! (`connman`, unpacked, never installed: installing it would start it on the host) runs with a
//! private D-Bus system bus on that root's /var/lib/connman, in a network namespace holding a veth
//! NIC with the os.conf MAC (its peer in a second namespace), and the test reads back from the
//! kernel the address and routes, and ConnMan's resolv.conf.
//!
//! connmand runs with a private /run and /var/lib, and a writable overlay of /etc whose upper layer
//! is in the scratch directory (connmand falls back to /etc/resolv.conf when /run/connman is not
//! there): nothing reaches the host. `-r` (no DNS proxy) makes it write the servers themselves.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::debs::unpacked_debs;
use crate::common::real::{
    DBUS_CONF, Netns, cannot_run, check_prerequisites, nameserver_lines, run_daemon_until,
};
use crate::common::{example_conf, example_root, osconf_apply};

const ETH0_MAC: &str = "00:8c:fa:5e:14:23";

/// The test's main.conf: no online check (its HTTP probe would only reach the peer namespace).
const MAIN_CONF: &str = "[General]\nEnableOnlineCheck = false\n";

/// One NIC whose gateway lies outside its /25.
const ON_LINK: &str = "eth0_ip_addr=42.120.74.205\neth0_mac_addr=00:8c:fa:5e:14:23\neth0_netmask=255.255.255.128\n\
eth0_gateway=42.120.74.1\neth0_route=\"0.0.0.0/0 42.120.74.1\"\ndns_nameserver=\"7.7.7.7 8.8.8.8\"\n";

/// Debian's connmand unpacked once, or `None` after the loud skip of `test`.
fn connman_debs(test: &str) -> Option<PathBuf> {
    if let Err(why) = check_prerequisites(&["mount", "dbus-daemon", "apt-get", "dpkg-deb"]) {
        cannot_run(test, &why);
        return None;
    }
    unpacked_debs("connman-debs", &["connman"], "usr/sbin/connmand")
        .map_err(|why| cannot_run(test, &why))
        .ok()
}

/// The script that runs connmand on `root`'s provisioning files (see the module's comment).
fn connman_script(debs: &Path, root: &Path) -> String {
    let dir = root.parent().unwrap();
    for sub in ["etc-upper", "etc-work"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    fs::write(dir.join("dbus.conf"), DBUS_CONF).unwrap();
    fs::write(dir.join("main.conf"), MAIN_CONF).unwrap();
    let (d, r, x) = (dir.display(), root.display(), debs.display());
    format!(
        r#"
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib
mount -t overlay overlay -o lowerdir=/etc,upperdir='{d}/etc-upper',workdir='{d}/etc-work' /etc
mkdir -p /run/dbus /run/connman /var/lib/connman
mount --bind '{r}/var/lib/connman' /var/lib/connman
dbus-daemon --config-file='{d}/dbus.conf' --fork
exec '{x}/usr/sbin/connmand' -n -r -d -c '{d}/main.conf'
"#
    )
}

/// eth0's addresses and the main table's routes, as [`Netns`] reads them.
fn state(ns: &Netns) -> (Vec<String>, Vec<String>) {
    (ns.ipv4_addrs("eth0"), ns.ipv4_routes())
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Runs connmand on `root`'s provisioning files until eth0 has `address` and the main table
/// `routes` (or 30 s passed); returns eth0's addresses, the routes, ConnMan's resolv.conf and its log.
fn run_connman(
    ns: &Netns,
    debs: &Path,
    root: &Path,
    address: &str,
    routes: &[&str],
) -> (Vec<String>, Vec<String>, String, String) {
    let want = (vec![address.to_owned()], strings(routes));
    let read = || (state(ns), read_resolv(ns));
    let log = root.parent().unwrap().join("connmand.log");
    let (((addrs, routes), resolv), log) =
        run_daemon_until(ns, &connman_script(debs, root), &log, || state(ns) == want, read);
    (addrs, routes, resolv, log)
}

/// ConnMan's resolv.conf, read through the /run of connmand's own mount namespace.
fn read_resolv(ns: &Netns) -> String {
    let Ok(out) = Command::new("ip").args(["netns", "pids", &ns.name]).output() else {
        return String::new();
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "connmand" {
            return fs::read_to_string(format!("/proc/{pid}/root/run/connman/resolv.conf"))
                .unwrap_or_default();
        }
    }
    String::new()
}

/// The VPC sample and one with an on-link gateway, each on a fresh copy of the root (and the
/// on-link one applied over the VPC one): the os.conf address, the one default route through the
/// gateway (with the host routes connmand adds to the gateway and through it to each name
/// server), the name servers in resolv.conf; the installer's DHCP file for the same MAC is moved
/// aside, so it does not win.
#[test]
fn connmand_provisions_the_nic_with_one_default_route() {
    let test = "connmand_provisions_the_nic_with_one_default_route";
    let Some(debs) = connman_debs(test) else {
        return;
    };
    let vpc = example_conf("vpc");
    let samples: [(&str, Vec<&str>, &str, Vec<&str>); 2] = [
        (
            "vpc",
            vec![&vpc],
            "10.171.254.123/24",
            vec![
                "10.171.254.1 dev eth0",
                "7.7.7.7 via 10.171.254.1 dev eth0",
                "8.8.8.8 via 10.171.254.1 dev eth0",
                "default via 10.171.254.1 dev eth0",
            ],
        ),
        (
            "on-link gateway after vpc",
            vec![&vpc, ON_LINK],
            "42.120.74.205/25",
            vec![
                "42.120.74.1 dev eth0",
                "7.7.7.7 via 42.120.74.1 dev eth0",
                "8.8.8.8 via 42.120.74.1 dev eth0",
                "default via 42.120.74.1 dev eth0",
            ],
        ),
    ];
    for (name, confs, address, routes) in samples {
        let scratch = tempfile::tempdir().unwrap();
        let root = example_root(scratch.path(), "yocto-connman");
        for conf in confs {
            osconf_apply(&root, conf);
        }
        let ns = Netns::new("connman");
        let peers = Netns::new("connman-peers");
        ns.add_nic_peer_in("eth0", ETH0_MAC, &peers);
        let (addrs, got_routes, resolv, log) = run_connman(&ns, &debs, &root, address, &routes);
        assert_eq!(addrs, [address], "{name}: eth0\n{log}");
        assert_eq!(got_routes, routes, "{name}: routes\n{log}");
        assert_eq!(
            nameserver_lines(&resolv),
            ["nameserver 7.7.7.7", "nameserver 8.8.8.8"],
            "{name}: resolv.conf\n{resolv}"
        );
    }
}

/// A running connmand takes the file osconf writes (under a temp name, then renamed) by itself:
/// it watches /var/lib/connman, so `activate` asks nothing of it. Provisioned from the VPC sample,
/// then osconf applies the on-link one while it runs: the NIC moves to the new address, gateway
/// and routes, one default route throughout.
#[test]
fn running_connmand_reprovisions_from_the_file_osconf_rewrites() {
    let test = "running_connmand_reprovisions_from_the_file_osconf_rewrites";
    let Some(debs) = connman_debs(test) else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let root = example_root(scratch.path(), "yocto-connman");
    osconf_apply(&root, &example_conf("vpc"));
    let ns = Netns::new("connman-re");
    let peers = Netns::new("connman-re-peers");
    ns.add_nic_peer_in("eth0", ETH0_MAC, &peers);
    let first = (
        strings(&["10.171.254.123/24"]),
        strings(&[
            "10.171.254.1 dev eth0",
            "7.7.7.7 via 10.171.254.1 dev eth0",
            "8.8.8.8 via 10.171.254.1 dev eth0",
            "default via 10.171.254.1 dev eth0",
        ]),
    );
    let second = (
        strings(&["42.120.74.205/25"]),
        strings(&[
            "42.120.74.1 dev eth0",
            "7.7.7.7 via 42.120.74.1 dev eth0",
            "8.8.8.8 via 42.120.74.1 dev eth0",
            "default via 42.120.74.1 dev eth0",
        ]),
    );
    let saw_first = std::cell::Cell::new(false);
    let done = || {
        if !saw_first.get() && state(&ns) == first {
            saw_first.set(true);
            osconf_apply(&root, ON_LINK);
        }
        saw_first.get() && state(&ns) == second
    };
    let log = scratch.path().join("connmand.log");
    let (got, log) = run_daemon_until(&ns, &connman_script(&debs, &root), &log, done, || state(&ns));
    assert!(saw_first.get(), "never provisioned from the VPC sample:\n{log}");
    assert_eq!(got, second, "{log}");
}
