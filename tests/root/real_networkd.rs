//! Real consumers of the `networkd` and `netplan` stacks. systemd-networkd itself, in a network
//! namespace whose veth NICs carry os.conf's MACs, applies the files `osconf apply` wrote (and those
//! `netplan generate` made of osconf's YAML), finding each NIC by its MAC under a kernel name unlike
//! os.conf's. Every sample is checked: address, every route, the one default route, on-link
//! gateways. Two os.conf files whose MACs swap (an elastic NIC moved) converge at the next start.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::real::{Netns, cannot_run, check_prerequisites, live_apply, run, swap_macs};
use crate::common::{example_root, osconf_apply, repo};

const NETWORKD: &str = "/lib/systemd/systemd-networkd";

/// One os.conf and what the kernel must hold once networkd has applied it.
struct Sample {
    name: &'static str,
    conf: &'static str,
    /// `(ethN, MAC, address)`.
    nics: &'static [(&'static str, &'static str, &'static str)],
    /// With `{ethN}` standing for that NIC's kernel name.
    routes: &'static [&'static str],
}

const MAC0: &str = "00:8c:fa:5e:14:23";
const MAC1: &str = "00:8c:fa:5e:14:24";

const SAMPLES: [Sample; 3] = [
    Sample {
        name: "vpc",
        conf: "examples/vpc/os.conf",
        nics: &[("eth0", MAC0, "10.171.254.123/24")],
        routes: &["default via 10.171.254.1 dev {eth0}"],
    },
    Sample {
        name: "classic",
        conf: "examples/classic/os.conf",
        nics: &[
            ("eth0", MAC0, "10.171.254.123/24"),
            ("eth1", MAC1, "42.120.74.105/24"),
        ],
        routes: &[
            "10.0.0.0/8 via 10.171.254.1 dev {eth0}",
            "172.16.0.0/12 via 10.171.254.1 dev {eth0}",
            "default via 42.120.74.1 dev {eth1}",
        ],
    },
    // The gateway lies outside 10.171.254.128/25: the kernel refuses such a route unless it is
    // declared on-link, so its presence proves GatewayOnLink= / on-link: reached the kernel.
    Sample {
        name: "onlink",
        conf: "tests/cases/debian12-networkd-onlink/os.conf",
        nics: &[("eth0", MAC0, "10.171.254.200/25")],
        routes: &[
            "10.0.0.0/8 via 10.171.254.1 dev {eth0}",
            "default via 10.171.254.1 dev {eth0}",
        ],
    },
];

/// A scratch copy of an example root, with `extra` files added, and `conf` applied by the real
/// binary.
fn apply(rootfs: &str, conf: &str, scratch: &Path, extra: &[(&str, &str)]) -> PathBuf {
    let root = example_root(scratch, rootfs);
    for (path, text) in extra {
        fs::write(root.join(path), text).unwrap();
    }
    osconf_apply(&root, &fs::read_to_string(repo().join(conf)).unwrap());
    root
}

/// systemd-networkd started inside a namespace; killed on drop.
struct Networkd {
    pid: String,
    log: PathBuf,
}

impl Networkd {
    /// Starts networkd in `ns`'s private mount namespace: a fresh /run (its state directory), /sys
    /// read-only (networkd then works without udev, as in a container), and `/etc/systemd/network`
    /// replaced by `etc` and `/run/systemd/network` by `run`, so that no host file is read.
    fn start(ns: &Netns, scratch: &Path, etc: &Path, run: &Path) -> Networkd {
        let (log, pidfile) = (scratch.join("networkd.log"), scratch.join("networkd.pid"));
        ns.sh(&format!(
            "mount -t tmpfs tmpfs /run
             mount -o remount,ro /sys
             mkdir -p /run/systemd/netif/links /run/systemd/netif/leases /run/systemd/netif/lldp /run/systemd/network
             chown -R systemd-network:systemd-network /run/systemd/netif
             mount --bind '{etc}' /etc/systemd/network
             mount --bind '{run}' /run/systemd/network
             {NETWORKD} >'{log}' 2>&1 </dev/null &
             echo $! >'{pidfile}'",
            etc = etc.display(),
            run = run.display(),
            log = log.display(),
            pidfile = pidfile.display(),
        ));
        let pid = fs::read_to_string(&pidfile).unwrap().trim().to_owned();
        Networkd { pid, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Networkd {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.pid).status();
        let proc = PathBuf::from(format!("/proc/{}", self.pid));
        let deadline = Instant::now() + Duration::from_secs(5);
        while proc.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if proc.exists() {
            let _ = Command::new("kill").args(["-KILL", &self.pid]).status();
        }
    }
}

/// Waits until the namespace holds exactly the sample's addresses and routes (or fails after 30 s
/// with what it holds and networkd's log), then checks they stay so.
fn assert_applied(ns: &Netns, daemon: &Networkd, sample: &Sample, kernel_names: &[&str]) {
    let want_addrs: Vec<(String, Vec<String>)> = sample
        .nics
        .iter()
        .zip(kernel_names)
        .map(|((_, _, addr), k)| (k.to_string(), vec![addr.to_string()]))
        .collect();
    let mut want_routes: Vec<String> = sample
        .routes
        .iter()
        .map(|r| {
            sample
                .nics
                .iter()
                .zip(kernel_names)
                .fold(r.to_string(), |r, ((eth, _, _), k)| {
                    r.replace(&format!("{{{eth}}}"), k)
                })
        })
        .collect();
    want_routes.sort();
    let state = || {
        let addrs: Vec<(String, Vec<String>)> = want_addrs
            .iter()
            .map(|(k, _)| (k.clone(), ns.ipv4_addrs(k)))
            .collect();
        (addrs, ns.ipv4_routes())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (addrs, routes) = state();
        if addrs == want_addrs && routes == want_routes {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: networkd did not reach the expected state\nwant {want_addrs:?}\n     {want_routes:?}\ngot  {addrs:?}\n     {routes:?}\nnetworkd log:\n{}",
            sample.name,
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        state(),
        (want_addrs, want_routes),
        "{}: state changed after settling",
        sample.name
    );
}

#[test]
fn networkd_applies_osconf_network_files() {
    if let Err(why) = check_prerequisites(&[NETWORKD]) {
        return cannot_run("networkd_applies_osconf_network_files", &why);
    }
    // A catch-all DHCP file sorting before osconf's: networkd would use it unless osconf disables it.
    let early_dhcp = (
        "etc/systemd/network/05-dhcp.network",
        "[Match]\nName=e*\n\n[Network]\nDHCP=yes\n",
    );
    for sample in &SAMPLES {
        let scratch = tempfile::tempdir().unwrap();
        let root = apply("debian12-networkd", sample.conf, scratch.path(), &[early_dhcp]);
        let etc = root.join("etc/systemd/network");
        let ns = Netns::new("networkd");
        // Kernel names unlike os.conf's: only the MAC can tie a NIC to its file.
        let kernel_names = ["ens5", "ens6"];
        for ((_, mac, _), k) in sample.nics.iter().zip(kernel_names) {
            ns.add_nic(k, mac);
        }
        assert!(
            !fs::read_dir(&etc)
                .unwrap()
                .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".link")),
            "{}: osconf wrote a .link file, which would rename a NIC",
            sample.name
        );
        let run_dir = scratch.path().join("run-network");
        fs::create_dir(&run_dir).unwrap();
        let daemon = Networkd::start(&ns, scratch.path(), &etc, &run_dir);
        assert_applied(&ns, &daemon, sample, &kernel_names);
        let log = daemon.log();
        for ((eth, _, _), k) in sample.nics.iter().zip(kernel_names) {
            let line = format!("{k}: Configuring with /etc/systemd/network/10-osconf-{eth}.network.");
            assert!(
                log.contains(&line),
                "{}: no {line:?} in networkd's log:\n{log}",
                sample.name
            );
        }
        assert!(
            etc.join("05-dhcp.network.osconf-disabled").exists(),
            "{}: 05-dhcp.network not kept",
            sample.name
        );
    }
}

#[test]
fn netplan_generates_and_networkd_applies_osconf_yaml() {
    if let Err(why) = check_prerequisites(&[NETWORKD, "netplan"]) {
        return cannot_run("netplan_generates_and_networkd_applies_osconf_yaml", &why);
    }
    for sample in &SAMPLES {
        let scratch = tempfile::tempdir().unwrap();
        let root = apply("ubuntu22", sample.conf, scratch.path(), &[]);
        let yaml = root.join("etc/netplan/50-osconf.yaml");
        let mode = fs::metadata(&yaml).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}: 50-osconf.yaml mode {mode:o}", sample.name);
        // In a mount namespace of its own where systemctl and udevadm are `true`: run by hand,
        // netplan's generator asks PID 1 and pokes udevd, and a test never touches the host's.
        let quiet = [
            "/usr/bin/systemctl",
            "/usr/bin/udevadm",
            "/bin/systemctl",
            "/bin/udevadm",
        ]
        .map(|t| format!("if [ -e {t} ]; then mount --bind /bin/true {t}; fi; "))
        .concat();
        let out = run(Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-ec"])
            .arg(format!("{quiet}exec netplan generate --root-dir \"$0\""))
            .arg(&root));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.trim().is_empty(),
            "{}: netplan generate complained:\n{stderr}",
            sample.name
        );

        // Exactly osconf's NICs: the installer's ens3 DHCP definition is gone.
        let generated = root.join("run/systemd/network");
        let mut files: Vec<String> = fs::read_dir(&generated)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        // No .link: osconf's YAML has no set-name, so nothing is renamed.
        let mut want: Vec<String> = sample
            .nics
            .iter()
            .map(|(eth, _, _)| format!("10-netplan-{eth}.network"))
            .collect();
        want.sort();
        assert_eq!(files, want, "{}: files netplan generated", sample.name);

        // netplan matches PermanentMACAddress=, which a veth lacks (the kernel gives virtual NICs
        // none): the copies networkd reads match the current MAC instead, nothing else changes.
        let run_dir = scratch.path().join("run-network");
        fs::create_dir(&run_dir).unwrap();
        for name in &files {
            let text = fs::read_to_string(generated.join(name)).unwrap();
            fs::write(
                run_dir.join(name),
                text.replace("PermanentMACAddress=", "MACAddress="),
            )
            .unwrap();
        }
        let empty_etc = scratch.path().join("etc-network");
        fs::create_dir(&empty_etc).unwrap();
        let ns = Netns::new("netplan");
        // Kernel names unlike os.conf's: only the MAC can tie a NIC to its file.
        let kernel_names = ["ens5", "ens6"];
        for ((_, mac, _), k) in sample.nics.iter().zip(kernel_names) {
            ns.add_nic(k, mac);
        }
        let daemon = Networkd::start(&ns, scratch.path(), &empty_etc, &run_dir);
        assert_applied(&ns, &daemon, sample, &kernel_names);
    }
}

/// The classic sample after its elastic NICs moved: eth0's settings now belong to the NIC with
/// MAC1, eth1's to the one with MAC0.
const SWAPPED: Sample = Sample {
    name: "classic, MACs swapped",
    conf: "",
    nics: &[
        ("eth0", MAC1, "10.171.254.123/24"),
        ("eth1", MAC0, "42.120.74.105/24"),
    ],
    routes: SAMPLES[1].routes,
};

/// Two boots of a networkd image: osconf at boot (networkd not running yet, as before
/// network-pre.target) writes files for the NICs by MAC and starts nothing; networkd, started
/// after it, configures them. Then os.conf swaps the MACs: the next boot moves every address and
/// route to the NIC that now carries the MAC, with no NIC renamed.
#[test]
fn networkd_converges_when_the_macs_swap_between_boots() {
    let test = "networkd_converges_when_the_macs_swap_between_boots";
    if let Err(why) = check_prerequisites(&[NETWORKD]) {
        return cannot_run(test, &why);
    }
    let scratch = tempfile::tempdir().unwrap();
    let root = example_root(scratch.path(), "debian12-networkd");
    let etc = root.join("etc/systemd/network");
    let ns = Netns::new("nwdswap");
    ns.add_nic("ens5", MAC0);
    ns.add_nic("ens6", MAC1);
    let classic = crate::common::example_conf("classic");
    for (conf, sample, kernel_names) in [
        (classic.clone(), &SAMPLES[1], ["ens5", "ens6"]),
        (swap_macs(&classic), &SWAPPED, ["ens6", "ens5"]),
    ] {
        // A reboot: the NICs come up bare, under the same kernel names.
        ns.sh("for n in ens5 ens6; do ip addr flush dev $n; ip link set $n down; done");
        let log = live_apply(&ns, &root, &conf, "");
        assert!(
            log.contains("NICs found by MAC, written with their kernel names"),
            "{}: {log}",
            sample.name
        );
        assert!(
            !log.contains("live: configure"),
            "{}: osconf set addresses itself:\n{log}",
            sample.name
        );
        assert!(ns.ipv4_addrs("ens5").is_empty(), "{}: {log}", sample.name);
        for ((eth, mac, _), k) in sample.nics.iter().zip(kernel_names) {
            let file = fs::read_to_string(etc.join(format!("10-osconf-{k}.network"))).unwrap();
            assert!(
                file.contains(&format!("MACAddress={mac}")),
                "{eth} as {k}:\n{file}"
            );
        }
        let run_dir = scratch.path().join(format!("run-network-{}", kernel_names[0]));
        fs::create_dir(&run_dir).unwrap();
        let daemon = Networkd::start(&ns, scratch.path(), &etc, &run_dir);
        assert_applied(&ns, &daemon, sample, &kernel_names);
    }
}

/// At boot netplan's generator ran before osconf: a live apply runs `netplan generate` itself, so
/// that networkd, starting next, finds osconf's configuration in the root's /run/systemd/network.
#[test]
fn live_netplan_apply_generates_for_networkd_on_the_same_boot() {
    let test = "live_netplan_apply_generates_for_networkd_on_the_same_boot";
    if let Err(why) = check_prerequisites(&["netplan"]) {
        return cannot_run(test, &why);
    }
    let scratch = tempfile::tempdir().unwrap();
    let root = example_root(scratch.path(), "ubuntu22");
    let ns = Netns::new("netplanlive");
    ns.add_nic("ens5", MAC0);
    ns.add_nic("ens6", MAC1);
    // systemctl and udevadm, which netplan's generator may call, are stand-ins that record their
    // calls, bound over the host's in the test's own mount namespace: the host's daemons are never
    // asked.
    let (recorder, calls) = (scratch.path().join("recorder"), scratch.path().join("calls"));
    fs::write(
        &recorder,
        format!("#!/bin/sh\necho \"${{0##*/}} $*\" >>'{}'\n", calls.display()),
    )
    .unwrap();
    fs::set_permissions(&recorder, fs::Permissions::from_mode(0o755)).unwrap();
    let bind = [
        "/bin/systemctl",
        "/usr/bin/systemctl",
        "/bin/udevadm",
        "/usr/bin/udevadm",
    ]
    .map(|tool| {
        format!(
            "if [ -e {tool} ]; then mount --bind '{}' {tool}; fi",
            recorder.display()
        )
    })
    .join("\n");
    let log = live_apply(&ns, &root, &crate::common::example_conf("classic"), &bind);
    assert!(log.contains("live: run `netplan generate --root-dir"), "{log}");
    let generated = root.join("run/systemd/network");
    for (k, mac) in [("ens5", MAC0), ("ens6", MAC1)] {
        let file = fs::read_to_string(generated.join(format!("10-netplan-{k}.network")))
            .unwrap_or_else(|e| panic!("{k}: {e}\n{log}"));
        assert!(file.contains(&format!("MACAddress={mac}")), "{k}:\n{file}");
    }
    assert!(
        ns.ipv4_addrs("ens5").is_empty(),
        "osconf set an address itself:\n{log}"
    );
    // The next boots: `netplan generate` costs seconds of the boot (11-34 s seen under TCG), so a run
    // whose YAML is already osconf's runs none. Proof: what it would regenerate stays away.
    let classic = crate::common::example_conf("classic");
    let renamed = classic.replace("hostname=iZ23r29djmjZ", "hostname=renamed");
    assert_ne!(renamed, classic);
    for (conf, what) in [
        (&classic, "the same os.conf"),
        (&renamed, "only the host name changed"),
    ] {
        if generated.exists() {
            fs::remove_dir_all(&generated).unwrap();
        }
        let log = live_apply(&ns, &root, conf, &bind);
        assert!(!log.contains("netplan generate"), "{what}:\n{log}");
        assert!(!generated.exists(), "{what}: netplan generate ran:\n{log}");
    }
    // A changed NIC is YAML to render again.
    let moved = classic.replace("10.171.254.123", "10.171.254.124");
    assert_ne!(moved, classic);
    let log = live_apply(&ns, &root, &moved, &bind);
    assert!(log.contains("live: run `netplan generate --root-dir"), "{log}");
    let file = fs::read_to_string(generated.join("10-netplan-ens5.network")).unwrap();
    assert!(file.contains("10.171.254.124"), "{file}");
    // A root holding netplan's C generator gets it run itself, without the Python front end (on
    // this root, the host's file at that path: the root's own is a stand-in); its output is what
    // networkd reads. It is run as systemd runs a generator: so called it starts no systemctl
    // (run as a command during a boot it starts five), into output directories thrown away after.
    let generator = "/usr/libexec/netplan/generate";
    let planted = root.join(&generator[1..]);
    fs::create_dir_all(planted.parent().unwrap()).unwrap();
    fs::write(&planted, "stand-in\n").unwrap();
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_dir_all(&generated).unwrap();
    // Only what the C generator calls counts (the Python front end's runs above called systemctl).
    let _ = fs::remove_file(&calls);
    let log = live_apply(&ns, &root, &classic, &bind);
    assert!(
        log.contains(&format!("live: run `{generator} --root-dir")),
        "{log}"
    );
    assert!(!log.contains("netplan generate"), "{log}");
    let file = fs::read_to_string(generated.join("10-netplan-ens5.network")).unwrap();
    assert!(file.contains("10.171.254.123"), "{file}");
    let calls = fs::read_to_string(&calls).unwrap_or_default();
    assert!(
        !calls.contains("systemctl"),
        "the generator asked systemd:\n{calls}"
    );
    // Its output directories are osconf's, on the running system (here the test's own /run):
    // nothing of them in the root.
    assert!(!root.join("run/osconf").exists(), "{log}");
}
