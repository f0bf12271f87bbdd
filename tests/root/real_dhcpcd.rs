//! Real consumer for the `dhcpcd` stack: osconf applies os.conf to a copy of the void-dhcpcd example
//! root, then Debian's dhcpcd 9 (`dhcpcd-base`, unpacked, never installed) runs on that root's
//! dhcpcd.conf in a network namespace holding veth NICs with the os.conf MACs, their peers in a
//! second namespace, and the test reads back from the kernel the addresses, the routes (those of
//! osconf's exit hook included, run by dhcpcd's own dhcpcd-run-hooks) and the resolv.conf its hook
//! wrote.
//!
//! dhcpcd runs in the namespace's private mount namespace with a private /run and /var/lib, the
//! package's /usr/lib over the host's (its hook runner sits at a compiled-in path) and a writable
//! overlay of /etc whose upper layer is in the scratch directory (the root's dhcpcd.exit-hook,
//! resolv.conf, the privilege-separation user its package adds): nothing reaches the host.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::debs::unpacked_debs;
use crate::common::real::{
    CLASSIC_ON_LINK_ROUTES, CLASSIC_ROUTES, Netns, cannot_run, check_prerequisites, live_apply,
    nameserver_lines, run_daemon_until, swap_macs,
};
use crate::common::{CLASSIC_ON_LINK, example_conf, example_root, osconf_apply};

const ETH0_MAC: &str = "00:8c:fa:5e:14:23";
const ETH1_MAC: &str = "00:8c:fa:5e:14:24";

/// Debian's dhcpcd unpacked once, or `None` after the loud skip of `test`.
fn dhcpcd_debs(test: &str) -> Option<PathBuf> {
    if let Err(why) = check_prerequisites(&["mount", "apt-get", "dpkg-deb"]) {
        cannot_run(test, &why);
        return None;
    }
    unpacked_debs("dhcpcd-debs", &["dhcpcd-base"], "usr/sbin/dhcpcd")
        .map_err(|why| cannot_run(test, &why))
        .ok()
}

/// What dhcpcd left in the kernel and in resolv.conf.
struct Outcome {
    eth0: Vec<String>,
    eth1: Vec<String>,
    routes: Vec<String>,
    resolv: String,
    log: String,
}

/// The script that runs dhcpcd on `root`'s dhcpcd.conf (see the module's comment); its /run is
/// the scratch `run/` beside `root`, which a live osconf run binds too, to find and tell it. With
/// `instances`, one dhcpcd per interface (`dhcpcd -B eth0`, as dhcpcd@eth0.service and Void's
/// dhcpcd-eth0 run it), else one for all (master mode).
fn dhcpcd_script(debs: &Path, root: &Path, instances: &[&str]) -> String {
    let dir = root.parent().unwrap();
    for sub in ["etc-upper", "etc-work", "run"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let (d, r, x) = (dir.display(), root.display(), debs.display());
    // --nodev: no udev runs in the namespace to announce the NICs, which dhcpcd would wait for.
    format!(
        r#"
mount --bind '{d}/run' /run
mount -t tmpfs tmpfs /var/lib
mount -t overlay overlay -o lowerdir='{x}/usr/lib':/usr/lib /usr/lib
mount -t overlay overlay -o lowerdir=/etc,upperdir='{d}/etc-upper',workdir='{d}/etc-work' /etc
rm -f /etc/resolv.conf /etc/dhcpcd.exit-hook
: > /etc/resolv.conf
if [ -e '{r}/etc/dhcpcd.exit-hook' ]; then cp '{r}/etc/dhcpcd.exit-hook' /etc/; fi
grep -q '^dhcpcd:' /etc/passwd || echo 'dhcpcd:x:990:65534:DHCP Client Daemon:/usr/lib/dhcpcd:/bin/false' >> /etc/passwd
{daemons}
"#,
        daemons = match instances {
            [] => format!("exec '{x}/usr/sbin/dhcpcd' --nodev -B -d -f '{r}/etc/dhcpcd.conf'"),
            _ => instances
                .iter()
                .map(|nic| format!("'{x}/usr/sbin/dhcpcd' --nodev -B -d -f '{r}/etc/dhcpcd.conf' {nic} &"))
                .chain(["wait".to_owned()])
                .collect::<Vec<_>>()
                .join("\n"),
        }
    )
}

/// eth0's and eth1's addresses and the main table's routes but the loopback's: dhcpcd told to
/// reload (`dhcpcd -n`) adds `127.0.0.0/8 dev lo` to the main table, which is none of os.conf's.
fn state(ns: &Netns) -> (Vec<String>, Vec<String>, Vec<String>) {
    let routes = ns
        .ipv4_routes()
        .into_iter()
        .filter(|r| !r.ends_with(" dev lo"))
        .collect();
    (ns.ipv4_addrs("eth0"), ns.ipv4_addrs("eth1"), routes)
}

/// Runs dhcpcd on `root`'s configuration in `ns` until the kernel holds `want` (eth0's and
/// eth1's addresses, the routes) or 30 s passed, reads the outcome, then stops it.
fn run_dhcpcd(
    ns: &Netns,
    debs: &Path,
    root: &Path,
    want: &(Vec<String>, Vec<String>, Vec<String>),
) -> Outcome {
    let dir = root.parent().unwrap();
    let script = dhcpcd_script(debs, root, &[]);
    let ((eth0, eth1, routes), log) = run_daemon_until(
        ns,
        &script,
        &dir.join("dhcpcd.log"),
        || state(ns) == *want,
        || state(ns),
    );
    let resolv = fs::read_to_string(dir.join("etc-upper/resolv.conf")).unwrap_or_default();
    Outcome {
        eth0,
        eth1,
        routes,
        resolv,
        log,
    }
}

/// A sample: its name, the os.conf texts applied in turn, eth0's and eth1's addresses, the routes.
type Sample<'a> = (&'a str, Vec<&'a str>, Vec<&'a str>, Vec<&'a str>, Vec<String>);

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Each sample applied (in turn, for classic then vpc) to a fresh copy of the example root, then
/// dhcpcd run on the NICs: the os.conf addresses, its routes (the subnet routes dhcpcd adds itself
/// with them), one default route, and the name servers of the primary NIC.
#[test]
fn dhcpcd_configures_every_sample_with_one_default_route() {
    let test = "dhcpcd_configures_every_sample_with_one_default_route";
    let Some(debs) = dhcpcd_debs(test) else {
        return;
    };
    let classic = example_conf("classic");
    let vpc = example_conf("vpc");
    let with_subnets = |routes: &[&str], subnets: &[&str]| {
        let mut all = strings(routes);
        all.extend(strings(subnets));
        all.sort();
        all
    };
    let samples: Vec<Sample> = vec![
        (
            "vpc",
            vec![&vpc],
            vec!["10.171.254.123/24"],
            vec![],
            with_subnets(
                &["default via 10.171.254.1 dev eth0"],
                &["10.171.254.0/24 dev eth0"],
            ),
        ),
        (
            "classic",
            vec![&classic],
            vec!["10.171.254.123/24"],
            vec!["42.120.74.105/24"],
            with_subnets(
                &CLASSIC_ROUTES,
                &["10.171.254.0/24 dev eth0", "42.120.74.0/24 dev eth1"],
            ),
        ),
        (
            "on-link gateway",
            vec![CLASSIC_ON_LINK],
            vec!["10.171.254.123/24"],
            vec!["42.120.74.205/25"],
            with_subnets(
                &CLASSIC_ON_LINK_ROUTES,
                &["10.171.254.0/24 dev eth0", "42.120.74.128/25 dev eth1"],
            ),
        ),
        (
            "classic then vpc",
            vec![&classic, &vpc],
            vec!["10.171.254.123/24"],
            vec![],
            with_subnets(
                &["default via 10.171.254.1 dev eth0"],
                &["10.171.254.0/24 dev eth0"],
            ),
        ),
    ];
    for (name, confs, eth0, eth1, routes) in samples {
        let scratch = tempfile::tempdir().unwrap();
        let root = example_root(scratch.path(), "void-dhcpcd");
        for conf in confs {
            osconf_apply(&root, conf);
        }
        let ns = Netns::new("dhcpcd");
        let peers = Netns::new("dhcpcd-peers");
        ns.add_nic_peer_in("eth0", ETH0_MAC, &peers);
        ns.add_nic_peer_in("eth1", ETH1_MAC, &peers);
        let want = (strings(&eth0), strings(&eth1), routes);
        let got = run_dhcpcd(&ns, &debs, &root, &want);
        let log = &got.log;
        assert_eq!(got.eth0, want.0, "{name}: eth0\n{log}");
        assert_eq!(got.eth1, want.1, "{name}: eth1\n{log}");
        assert_eq!(got.routes, want.2, "{name}: routes\n{log}");
        assert_eq!(
            nameserver_lines(&got.resolv),
            ["nameserver 7.7.7.7", "nameserver 8.8.8.8"],
            "{name}: resolv.conf\n{}\n{log}",
            got.resolv
        );
    }
}

/// dhcpcd, already running, is told its own way (`dhcpcd -n NAME`) to apply the file a live run
/// rewrote: classic applied, dhcpcd up; then os.conf swaps the MACs and osconf, run live, finds
/// dhcpcd's pid file and tells it: the addresses and routes follow the MACs, one default route.
#[test]
fn running_dhcpcd_takes_the_new_file_when_the_macs_swap() {
    macs_swap_under_running_dhcpcd("running_dhcpcd_takes_the_new_file_when_the_macs_swap", &[]);
}

/// The same with one dhcpcd per interface (dhcpcd@eth0.service, Void's dhcpcd-eth0): no
/// /run/dhcpcd/pid, but eth0's and eth1's own pid files, which tell osconf that dhcpcd runs.
#[test]
fn running_dhcpcd_per_interface_takes_the_new_file_when_the_macs_swap() {
    macs_swap_under_running_dhcpcd(
        "running_dhcpcd_per_interface_takes_the_new_file_when_the_macs_swap",
        &["eth0", "eth1"],
    );
}

fn macs_swap_under_running_dhcpcd(test: &str, instances: &[&str]) {
    let Some(debs) = dhcpcd_debs(test) else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let root = example_root(scratch.path(), "void-dhcpcd");
    let classic = example_conf("classic");
    osconf_apply(&root, &classic);
    let ns = Netns::new("dhcpcd-swap");
    let peers = Netns::new("dhcpcd-swap-peers");
    ns.add_nic_peer_in("eth0", ETH0_MAC, &peers);
    ns.add_nic_peer_in("eth1", ETH1_MAC, &peers);
    let sorted = |list: &[&str]| {
        let mut all = strings(list);
        all.sort();
        all
    };
    let first = (
        strings(&["10.171.254.123/24"]),
        strings(&["42.120.74.105/24"]),
        sorted(
            &[
                &CLASSIC_ROUTES[..],
                &["10.171.254.0/24 dev eth0", "42.120.74.0/24 dev eth1"],
            ]
            .concat(),
        ),
    );
    let swapped: Vec<String> = first
        .2
        .iter()
        .map(|r| {
            r.replace("eth0", "ethX")
                .replace("eth1", "eth0")
                .replace("ethX", "eth1")
        })
        .collect();
    let second = (
        first.1.clone(),
        first.0.clone(),
        sorted(&swapped.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    let setup = format!(
        "mount --bind '{}' /run\nexport PATH='{}/usr/sbin':\"$PATH\"",
        scratch.path().join("run").display(),
        debs.display()
    );
    let osconf_log = std::cell::RefCell::new(String::new());
    let done = || {
        if osconf_log.borrow().is_empty() && state(&ns) == first {
            *osconf_log.borrow_mut() = live_apply(&ns, &root, &swap_macs(&classic), &setup);
        }
        !osconf_log.borrow().is_empty() && state(&ns) == second
    };
    let log = scratch.path().join("dhcpcd.log");
    let (got, log) = run_daemon_until(&ns, &dhcpcd_script(&debs, &root, instances), &log, done, || {
        state(&ns)
    });
    let said = osconf_log.borrow();
    assert!(
        said.contains("run `dhcpcd -n eth0`"),
        "osconf:\n{said}\ndhcpcd:\n{log}"
    );
    assert_eq!(got, second, "osconf:\n{said}\ndhcpcd:\n{log}");
}
