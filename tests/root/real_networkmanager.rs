//! Real consumer for the `networkmanager` stack: osconf applies os.conf to a copy of the Rocky 9
//! example root, then the real NetworkManager daemon runs in a network namespace holding veth NICs
//! with the os.conf MACs, reading the rendered keyfiles (and the disabled cloud-init profile)
//! from that root, and the test reads back the addresses, routes, active profiles and the
//! resolv.conf NetworkManager generated.
//!
//! NetworkManager runs with a private /run (own D-Bus system bus, no service activation), the
//! root's /etc/NetworkManager bind-mounted over the host's, a scratch file over the host's
//! /etc/resolv.conf (and `rc-manager=unmanaged`: it once rewrote the host's), and a read-only /sys
//! so that it does not wait for udev; none of it reaches the host.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::real::{
    CLASSIC_ROUTES, DBUS_CONF, Netns, cannot_run, check_prerequisites, live_apply, swap_macs,
};
use crate::common::{example_conf, example_root, osconf_apply};

const ETH0_MAC: &str = "00:8c:fa:5e:14:23";
const ETH1_MAC: &str = "00:8c:fa:5e:14:24";

/// NetworkManager's own settings for the test: keyfiles only, no automatic DHCP profiles, the
/// veth peers left alone. Everything else is the target's (its conf.d and system-connections).
const NM_CONF: &str = "[main]\nplugins=keyfile\nno-auto-default=*\nauth-polkit=false\n\
    rc-manager=unmanaged\n\n\
    [keyfile]\nunmanaged-devices=interface-name:peer-*\n";

/// Applies each os.conf in turn to `root` with the real binary.
fn apply(root: &Path, confs: &[&str]) {
    for conf in confs {
        osconf_apply(root, conf);
    }
}

struct Outcome {
    /// `NAME:DEVICE` of every profile, as `nmcli -t -f NAME,DEVICE connection show` prints it.
    profiles: Vec<String>,
    /// NetworkManager's resolv.conf (/run/NetworkManager/resolv.conf, written whatever rc-manager).
    resolv: String,
}

/// Runs NetworkManager on `root`'s configuration until every NIC in `up` is connected (or 30 s),
/// then stops it; the addresses and routes it set stay in the namespace for the caller to read.
fn run_networkmanager(ns: &Netns, root: &Path, up: &[&str]) -> Outcome {
    let dir = root.parent().unwrap();
    fs::write(dir.join("nm.conf"), NM_CONF).unwrap();
    fs::write(dir.join("dbus.conf"), DBUS_CONF).unwrap();
    fs::create_dir_all(dir.join("var-lib-nm")).unwrap();
    let d = dir.display();
    let script = format!(
        r#"
mount -t tmpfs tmpfs /run
mount -o remount,bind,ro /sys
mkdir -p /run/dbus /var/lib/NetworkManager
mount --bind '{root}/etc/NetworkManager' /etc/NetworkManager
: > '{d}/etc-resolv.conf'
mount --bind '{d}/etc-resolv.conf' /etc/resolv.conf
mount --bind '{d}/var-lib-nm' /var/lib/NetworkManager
dbus-daemon --config-file='{d}/dbus.conf' --fork
NetworkManager --no-daemon --debug --config='{d}/nm.conf' > '{d}/nm.log' 2>&1 &
nm=$!
for i in $(seq 1 60); do
  ok=yes
  for dev in {up}; do
    nmcli -t -f DEVICE,STATE device 2>/dev/null | grep -qx "$dev:connected" || ok=no
  done
  [ $ok = yes ] && break
  sleep 0.5
done
nmcli -t -f NAME,DEVICE connection show | sort > '{d}/profiles'
cat /run/NetworkManager/resolv.conf > '{d}/resolv' || true
kill $nm; wait $nm || true
kill $(cat /run/dbus/pid)
"#,
        root = root.display(),
        up = up.join(" "),
    );
    let host_resolv = host_resolv_conf();
    let out = ns.sh_unchecked(&script);
    assert_eq!(
        host_resolv_conf(),
        host_resolv,
        "NetworkManager changed the host's /etc/resolv.conf"
    );
    let log = fs::read_to_string(dir.join("nm.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "NetworkManager run failed:\n{}\n{}\nNetworkManager log:\n{log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name| fs::read_to_string(dir.join(name)).unwrap_or_default();
    Outcome {
        profiles: read("profiles").lines().map(str::to_owned).collect(),
        resolv: read("resolv"),
    }
}

/// The host's /etc/resolv.conf as it is now: its bytes and modification time.
fn host_resolv_conf() -> Option<(Vec<u8>, std::time::SystemTime)> {
    let meta = fs::metadata("/etc/resolv.conf").ok()?;
    Some((fs::read("/etc/resolv.conf").ok()?, meta.modified().ok()?))
}

/// A scratch copy of the Rocky 9 example root, or `None` (with the reason printed) when this
/// machine cannot run NetworkManager.
fn setup(test: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    if let Err(why) = check_prerequisites(&["NetworkManager", "nmcli", "dbus-daemon", "mount"]) {
        cannot_run(test, &why);
        return None;
    }
    let scratch = tempfile::tempdir().unwrap();
    let root = example_root(scratch.path(), "rocky9");
    // git keeps no modes but the executable bit; on a real system keyfiles are 0600, and
    // NetworkManager ignores the ones that are not.
    let keyfiles = root.join("etc/NetworkManager/system-connections");
    for entry in fs::read_dir(&keyfiles).unwrap() {
        fs::set_permissions(entry.unwrap().path(), fs::Permissions::from_mode(0o600)).unwrap();
    }
    Some((scratch, root))
}

/// Ends whatever NetworkManager or D-Bus left in the namespace (only processes of this test's
/// namespace, by id) before the namespace itself goes.
struct Reaper<'a>(&'a Netns);

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0.name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").arg(pid).status();
            }
        }
    }
}

#[test]
fn classic_keyfiles_bring_up_both_nics_with_one_default_route() {
    let Some((_scratch, root)) = setup("classic_keyfiles_bring_up_both_nics_with_one_default_route") else {
        return;
    };
    apply(&root, &[&example_conf("classic")]);
    let ns = Netns::new("nm");
    let _reaper = Reaper(&ns);
    ns.add_nic("eth0", ETH0_MAC);
    ns.add_nic("eth1", ETH1_MAC);
    let got = run_networkmanager(&ns, &root, &["eth0", "eth1"]);
    assert_eq!(ns.ipv4_addrs("eth0"), ["10.171.254.123/24"]);
    assert_eq!(ns.ipv4_addrs("eth1"), ["42.120.74.105/24"]);
    assert_eq!(ns.ipv4_routes(), CLASSIC_ROUTES);
    // osconf's profiles are the active ones; cloud-init's DHCP profile for eth0 is loaded but
    // disabled, and the unrelated installer profile for ens3 is untouched.
    assert_eq!(
        got.profiles,
        [
            "cloud-init eth0:",
            "ens3:",
            "lo:lo",
            "osconf-eth0:eth0",
            "osconf-eth1:eth1"
        ]
    );
    let servers: Vec<&str> = got
        .resolv
        .lines()
        .filter(|l| l.starts_with("nameserver"))
        .collect();
    assert_eq!(
        servers,
        ["nameserver 7.7.7.7", "nameserver 8.8.8.8"],
        "{}",
        got.resolv
    );
}

#[test]
fn reapplied_vpc_leaves_no_trace_of_the_classic_eth1() {
    let Some((_scratch, root)) = setup("reapplied_vpc_leaves_no_trace_of_the_classic_eth1") else {
        return;
    };
    apply(&root, &[&example_conf("classic"), &example_conf("vpc")]);
    let ns = Netns::new("nm");
    let _reaper = Reaper(&ns);
    ns.add_nic("eth0", ETH0_MAC);
    ns.add_nic("eth1", ETH1_MAC);
    let got = run_networkmanager(&ns, &root, &["eth0"]);
    assert_eq!(ns.ipv4_addrs("eth0"), ["10.171.254.123/24"]);
    assert_eq!(ns.ipv4_addrs("eth1"), Vec::<String>::new());
    assert_eq!(ns.ipv4_routes(), ["default via 10.171.254.1 dev eth0"]);
    assert_eq!(
        got.profiles,
        ["cloud-init eth0:", "ens3:", "lo:lo", "osconf-eth0:eth0"]
    );
}

#[test]
fn off_subnet_gateways_are_reached_onlink() {
    let Some((_scratch, root)) = setup("off_subnet_gateways_are_reached_onlink") else {
        return;
    };
    let conf = format!(
        "eth0_ip_addr=10.0.0.5\neth0_mac_addr={ETH0_MAC}\neth0_netmask=255.255.255.0\n\
         eth0_gateway=10.0.1.1\neth0_route=\"0.0.0.0/0 10.0.1.1;192.168.0.0/16 10.0.1.1\"\n"
    );
    apply(&root, &[&conf]);
    let ns = Netns::new("nm");
    let _reaper = Reaper(&ns);
    ns.add_nic("eth0", ETH0_MAC);
    run_networkmanager(&ns, &root, &["eth0"]);
    assert_eq!(ns.ipv4_addrs("eth0"), ["10.0.0.5/24"]);
    assert_eq!(
        ns.ipv4_routes(),
        [
            "192.168.0.0/16 via 10.0.1.1 dev eth0",
            "default via 10.0.1.1 dev eth0"
        ]
    );
}

/// NetworkManager, already running, is told to take osconf's new keyfiles its own way: the first
/// boot's os.conf is applied live before NetworkManager starts (it sets no address itself, so there
/// is one default route, NetworkManager's); then os.conf swaps the MACs and osconf, run by hand,
/// finds NetworkManager's pid file, reloads the profiles and activates them: the addresses follow
/// the MACs, and there is still exactly one default route.
#[test]
fn running_networkmanager_takes_the_new_profiles_when_the_macs_swap() {
    let test = "running_networkmanager_takes_the_new_profiles_when_the_macs_swap";
    let Some((scratch, root)) = setup(test) else {
        return;
    };
    let d = scratch.path();
    let run = d.join("run");
    fs::create_dir_all(&run).unwrap();
    fs::write(d.join("nm.conf"), NM_CONF).unwrap();
    fs::write(d.join("dbus.conf"), DBUS_CONF).unwrap();
    fs::create_dir_all(d.join("var-lib-nm")).unwrap();
    let host_resolv = host_resolv_conf();
    let ns = Netns::new("nmswap");
    let _reaper = Reaper(&ns);
    ns.add_nic("ens5", ETH0_MAC);
    ns.add_nic("ens6", ETH1_MAC);
    let bind_run = format!("mount --bind '{}' /run", run.display());
    let classic = example_conf("classic");
    let log = live_apply(&ns, &root, &classic, &bind_run);
    assert!(log.contains("NetworkManager does not run yet"), "{log}");
    assert!(
        ns.ipv4_addrs("ens5").is_empty(),
        "osconf set an address itself:\n{log}"
    );

    // NetworkManager started as a daemon; it outlives this script, reachable through the bus
    // socket in the scratch /run.
    let dd = d.display();
    ns.sh(&format!(
        r#"{bind_run}
mount -o remount,bind,ro /sys
mkdir -p /run/dbus /var/lib/NetworkManager
mount --bind '{root}/etc/NetworkManager' /etc/NetworkManager
: > '{dd}/etc-resolv.conf'
mount --bind '{dd}/etc-resolv.conf' /etc/resolv.conf
mount --bind '{dd}/var-lib-nm' /var/lib/NetworkManager
dbus-daemon --config-file='{dd}/dbus.conf' --fork
NetworkManager --config='{dd}/nm.conf'
"#,
        root = root.display()
    ));
    let connected = |want: &[(&str, &str)]| {
        let state = || (ns.ipv4_addrs("ens5"), ns.ipv4_addrs("ens6"));
        let want = (vec![want[0].1.to_owned()], vec![want[1].1.to_owned()]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while state() != want && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert_eq!(state(), want);
    };
    connected(&[("ens5", "10.171.254.123/24"), ("ens6", "42.120.74.105/24")]);
    assert_eq!(
        ns.ipv4_routes(),
        [
            "10.0.0.0/8 via 10.171.254.1 dev ens5",
            "172.16.0.0/12 via 10.171.254.1 dev ens5",
            "default via 42.120.74.1 dev ens6",
        ]
    );

    let log = live_apply(&ns, &root, &swap_macs(&classic), &bind_run);
    assert!(log.contains("NetworkManager runs already"), "{log}");
    assert!(log.contains("run `nmcli connection up id osconf-eth0`"), "{log}");
    connected(&[("ens5", "42.120.74.105/24"), ("ens6", "10.171.254.123/24")]);
    assert_eq!(
        ns.ipv4_routes(),
        [
            "10.0.0.0/8 via 10.171.254.1 dev ens6",
            "172.16.0.0/12 via 10.171.254.1 dev ens6",
            "default via 42.120.74.1 dev ens5",
        ],
        "{log}"
    );
    assert_eq!(
        host_resolv_conf(),
        host_resolv,
        "NetworkManager changed the host's /etc/resolv.conf"
    );
}
