//! Real consumers of the `ifupdown` and `busybox` renderings: osconf applies os.conf to a scratch copy
//! of the debian11 or alpine3 example root, then Debian's `ifup -a` or busybox's `ifup -a` (with
//! busybox's own `ip`) brings up veth NICs carrying the os.conf MACs in a network namespace, from the
//! scratch /etc/network bind-mounted over /etc/network. Addresses and routes are read back from the
//! kernel; then `ifdown -a` must run every `pre-down` line without an error and leave nothing behind.
//!
//! The host's files are never touched: /etc/network, /etc/resolv.conf and /run are bind-mounted from
//! the scratch directory inside the namespace's private mount namespace.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use crate::common::real::{
    CLASSIC_ROUTES, Netns, cannot_run, check_prerequisites, live_apply, live_apply_output, swap_macs,
};
use crate::common::{example_conf, example_root};

const OSCONF: &str = env!("CARGO_BIN_EXE_osconf");

/// An os.conf with an off-subnet gateway: it needs a device route before it can be used.
const ON_LINK: &str = "hostname=onlink\n\
eth0_ip_addr=10.171.254.123\n\
eth0_mac_addr=00:8c:fa:5e:14:23\n\
eth0_netmask=255.255.255.0\n\
eth0_gateway=10.171.0.1\n\
eth0_route=\"0.0.0.0/0 10.171.0.1;192.168.0.0/16 10.171.0.1\"\n";

struct Sample {
    name: &'static str,
    conf: String,
    eth0: &'static [&'static str],
    eth1: &'static [&'static str],
    /// Every route of the main table but the kernel's subnet routes, sorted.
    routes: &'static [&'static str],
    /// What the `pre-down` lines delete (a `gateway` option's default route is ifdown's own business).
    deleted: &'static [&'static str],
}

fn samples() -> Vec<Sample> {
    vec![
        Sample {
            name: "vpc",
            conf: example_conf("vpc"),
            eth0: &["10.171.254.123/24"],
            eth1: &[],
            routes: &["default via 10.171.254.1 dev eth0"],
            deleted: &[],
        },
        Sample {
            name: "classic",
            conf: example_conf("classic"),
            eth0: &["10.171.254.123/24"],
            eth1: &["42.120.74.105/24"],
            routes: &CLASSIC_ROUTES,
            deleted: &[
                "10.0.0.0/8 via 10.171.254.1 dev eth0",
                "172.16.0.0/12 via 10.171.254.1 dev eth0",
            ],
        },
        Sample {
            name: "on-link gateway",
            conf: ON_LINK.to_owned(),
            eth0: &["10.171.254.123/24"],
            eth1: &[],
            routes: &[
                "10.171.0.1 dev eth0",
                "192.168.0.0/16 via 10.171.0.1 dev eth0",
                "default via 10.171.0.1 dev eth0",
            ],
            deleted: &[
                "10.171.0.1/32 dev eth0 scope link",
                "default via 10.171.0.1 dev eth0",
                "192.168.0.0/16 via 10.171.0.1 dev eth0",
            ],
        },
    ]
}

/// Which ifup runs: Debian's on the debian11 root, busybox's on the alpine3 root.
#[derive(Clone, Copy)]
enum Consumer {
    Debian,
    Busybox,
}

impl Consumer {
    fn rootfs(self) -> &'static str {
        match self {
            Consumer::Debian => "debian11",
            Consumer::Busybox => "alpine3",
        }
    }

    /// The command for `ifup -a` / `ifdown -a`, verbose so that the log shows each command run.
    fn command(self, verb: &str) -> String {
        match self {
            Consumer::Debian => format!("{verb} -v -a"),
            Consumer::Busybox => format!("busybox {verb} -v -a"),
        }
    }
}

/// A scratch root with os.conf applied by the real binary, plus the /run and resolv.conf to mount.
fn applied_root(consumer: Consumer, conf: &str, extra_args: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = example_root(dir.path(), consumer.rootfs());
    crate::common::place_conf(&root, conf);
    let out = std::process::Command::new(OSCONF)
        .args(["apply", "--no-live", "--root"])
        .arg(&root)
        .args(extra_args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "osconf apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The hook directories both ifups run (run-parts), empty as on a fresh system.
    for hooks in ["if-pre-up.d", "if-up.d", "if-down.d", "if-post-down.d"] {
        fs::create_dir_all(root.join("etc/network").join(hooks)).unwrap();
    }
    fs::create_dir_all(dir.path().join("run/network")).unwrap();
    fs::write(dir.path().join("resolv.conf"), "").unwrap();
    // Busybox's own `ip` applet, as on a busybox-only system.
    fs::create_dir_all(dir.path().join("bin")).unwrap();
    symlink(busybox(), dir.path().join("bin/ip")).unwrap();
    dir
}

fn busybox() -> String {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("busybox")
        .to_owned()
}

/// Runs `ifup -a` or `ifdown -a` in the namespace with the scratch files mounted; returns its log.
fn run_ifupdown(ns: &Netns, consumer: Consumer, scratch: &Path, verb: &str) -> String {
    let s = scratch.display();
    let path = match consumer {
        Consumer::Debian => String::new(),
        Consumer::Busybox => format!("export PATH={s}/bin:$PATH\n"),
    };
    let script = format!("{}\n{path}{} 2>&1", mounts(scratch), consumer.command(verb));
    let out = ns.sh(&script);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// True when an `ip` command in the log complained (iproute2 or busybox's applet).
fn failed(log: &str) -> bool {
    ["RTNETLINK", "Error:", "ip: ", "Cannot find"]
        .iter()
        .any(|e| log.contains(e))
}

fn check(consumer: Consumer, test: &str) {
    let needed: &[&str] = match consumer {
        Consumer::Debian => &["ifup", "ifdown", "run-parts", "mount"],
        Consumer::Busybox => &["busybox", "run-parts", "mount"],
    };
    if let Err(why) = check_prerequisites(needed) {
        return cannot_run(test, &why);
    }
    for sample in samples() {
        let scratch = applied_root(consumer, &sample.conf, &[]);
        let ns = Netns::new("ifupdown");
        ns.add_nic("eth0", "00:8c:fa:5e:14:23");
        ns.add_nic("eth1", "00:8c:fa:5e:14:24");
        if let Consumer::Busybox = consumer {
            // As at boot: busybox's loopback method adds 127.0.0.1 itself and fails if it is there.
            ns.sh("ip addr flush dev lo; ip link set lo down");
        }
        let what = format!("{test}, {} sample", sample.name);

        let log = run_ifupdown(&ns, consumer, scratch.path(), "ifup");
        assert!(!failed(&log), "{what}: ifup reported an error:\n{log}");
        assert_eq!(ns.ipv4_addrs("eth0"), sample.eth0, "{what}: eth0\n{log}");
        assert_eq!(ns.ipv4_addrs("eth1"), sample.eth1, "{what}: eth1\n{log}");
        assert_eq!(ns.ipv4_routes(), sample.routes, "{what}: routes\n{log}");

        // Each `pre-down` line deletes a route that `up` added: run, and without an error.
        let log = run_ifupdown(&ns, consumer, scratch.path(), "ifdown");
        assert!(!failed(&log), "{what}: ifdown reported an error:\n{log}");
        for route in sample.deleted {
            assert!(
                log.contains(&format!("ip route del {route}")),
                "{what}: no pre-down line for {route}:\n{log}"
            );
        }
        assert_eq!(
            ns.ipv4_addrs("eth0"),
            [] as [&str; 0],
            "{what}: eth0 after ifdown\n{log}"
        );
        assert_eq!(
            ns.ipv4_addrs("eth1"),
            [] as [&str; 0],
            "{what}: eth1 after ifdown\n{log}"
        );
        assert_eq!(
            ns.ipv4_routes(),
            [] as [&str; 0],
            "{what}: routes after ifdown\n{log}"
        );
    }
}

#[test]
fn debian_ifup_brings_up_ifupdown_stanzas() {
    check(Consumer::Debian, "debian_ifup_brings_up_ifupdown_stanzas");
}

#[test]
fn busybox_ifup_brings_up_busybox_stanzas() {
    check(Consumer::Busybox, "busybox_ifup_brings_up_busybox_stanzas");
}

#[test]
fn ifname_overrides_reach_debian_ifup() {
    // ifupdown cannot match by MAC: `--ifname` is how an image builder names the kernel's NICs.
    let test = "ifname_overrides_reach_debian_ifup";
    if let Err(why) = check_prerequisites(&["ifup", "run-parts", "mount"]) {
        return cannot_run(test, &why);
    }
    let conf = example_conf("classic");
    let scratch = applied_root(
        Consumer::Debian,
        &conf,
        &["--ifname", "eth0=ens5", "--ifname", "eth1=ens6"],
    );
    let ns = Netns::new("ifname");
    ns.add_nic("ens5", "00:8c:fa:5e:14:23");
    ns.add_nic("ens6", "00:8c:fa:5e:14:24");
    let log = run_ifupdown(&ns, Consumer::Debian, scratch.path(), "ifup");
    assert!(!failed(&log), "ifup reported an error:\n{log}");
    assert_eq!(ns.ipv4_addrs("ens5"), ["10.171.254.123/24"], "{log}");
    assert_eq!(ns.ipv4_addrs("ens6"), ["42.120.74.105/24"], "{log}");
    assert_eq!(
        ns.ipv4_routes(),
        [
            "10.0.0.0/8 via 10.171.254.1 dev ens5",
            "172.16.0.0/12 via 10.171.254.1 dev ens5",
            "default via 42.120.74.1 dev ens6",
        ],
        "{log}"
    );
}

/// What `mount`s the scratch /run, /etc/network and resolv.conf over the namespace's own. A host
/// without /etc/network (no ifupdown: busybox alone) gets, in this private mount namespace only, a
/// tmpfs /etc holding the two mount points: busybox's ifup and `ip` applet read nothing else there.
fn mounts(scratch: &Path) -> String {
    let s = scratch.display();
    format!(
        "[ -d /etc/network ] || {{ mount -t tmpfs tmpfs /etc; mkdir /etc/network; : > /etc/resolv.conf; }}\n\
         mount --bind {s}/run /run\nmount --bind {s}/root/etc/network /etc/network\n\
         mount --bind {s}/resolv.conf /etc/resolv.conf"
    )
}

/// The classic sample's state after the first boot, NICs under kernel names.
const FIRST_BOOT: [&str; 3] = [
    "10.0.0.0/8 via 10.171.254.1 dev ens5",
    "172.16.0.0/12 via 10.171.254.1 dev ens5",
    "default via 42.120.74.1 dev ens6",
];

impl Consumer {
    /// What osconf runs to take a NIC down whatever the state file says.
    fn force_down(self) -> &'static str {
        match self {
            Consumer::Debian => "ifdown --force",
            Consumer::Busybox => "ifdown -f",
        }
    }

    /// What a shell needs before running osconf or ifup: the scratch mounts and, for busybox, its
    /// applets first on PATH (as `ifup`, `ifdown` and `ip`, as on a busybox-only system).
    fn setup(self, scratch: &Path) -> String {
        match self {
            Consumer::Debian => mounts(scratch),
            Consumer::Busybox => format!("{}\nexport PATH={}/bin:$PATH", mounts(scratch), scratch.display()),
        }
    }
}

/// The first boot of an ifupdown (or busybox ifup) instance whose NICs the kernel calls ens5 and
/// ens6, osconf run live as at boot: it writes stanzas with the kernel names found by MAC and sets
/// no address (networking has not run: no state file); `ifup -a` then brings them up.
fn first_boot(test: &str, consumer: Consumer) -> Option<(tempfile::TempDir, std::path::PathBuf, Netns)> {
    let needed: &[&str] = match consumer {
        Consumer::Debian => &["ifup", "ifdown", "run-parts", "mount"],
        Consumer::Busybox => &["busybox", "run-parts", "mount"],
    };
    if let Err(why) = check_prerequisites(needed) {
        cannot_run(test, &why);
        return None;
    }
    let scratch = tempfile::tempdir().unwrap();
    let root = example_root(scratch.path(), consumer.rootfs());
    fs::create_dir_all(scratch.path().join("bin")).unwrap();
    for applet in ["ip", "ifup", "ifdown"] {
        symlink(busybox(), scratch.path().join("bin").join(applet)).unwrap();
    }
    for hooks in ["if-pre-up.d", "if-up.d", "if-down.d", "if-post-down.d"] {
        fs::create_dir_all(root.join("etc/network").join(hooks)).unwrap();
    }
    fs::create_dir_all(scratch.path().join("run/network")).unwrap();
    fs::write(scratch.path().join("resolv.conf"), "").unwrap();
    let ns = Netns::new("ifswap");
    ns.add_nic("ens5", "00:8c:fa:5e:14:23");
    ns.add_nic("ens6", "00:8c:fa:5e:14:24");
    if let Consumer::Busybox = consumer {
        // As at boot: busybox's loopback method adds 127.0.0.1 itself and fails if it is there.
        ns.sh("ip addr flush dev lo; ip link set lo down");
    }
    let log = live_apply(&ns, &root, &example_conf("classic"), "");
    assert!(log.contains("networking does not run yet"), "{log}");
    assert!(
        ns.ipv4_addrs("ens5").is_empty(),
        "osconf set an address itself:\n{log}"
    );
    let up = run_ifupdown(&ns, consumer, scratch.path(), "ifup");
    assert!(!failed(&up), "ifup reported an error:\n{up}");
    assert_eq!(ns.ipv4_addrs("ens5"), ["10.171.254.123/24"], "{up}");
    assert_eq!(ns.ipv4_addrs("ens6"), ["42.120.74.105/24"], "{up}");
    assert_eq!(ns.ipv4_routes(), FIRST_BOOT, "{up}");
    Some((scratch, root, ns))
}

/// After the first boot, os.conf swaps the MACs (an elastic NIC moved) and osconf runs again by
/// hand: networking ran, so osconf takes each NIC down and up again with ifupdown's own tools,
/// and every address and route lands on the NIC with its MAC. A restart (`ifdown -a; ifup -a`, as a
/// reboot does) keeps it so.
fn follows_the_macs_when_they_swap(test: &str, consumer: Consumer) {
    let Some((scratch, root, ns)) = first_boot(test, consumer) else {
        return;
    };
    let swapped_conf = swap_macs(&example_conf("classic"));
    let log = live_apply(&ns, &root, &swapped_conf, &consumer.setup(scratch.path()));
    assert!(log.contains("networking runs already"), "{log}");
    let down = consumer.force_down();
    for step in [
        &format!("{down} ens6"),
        &format!("{down} ens5"),
        "ifup ens6",
        "ifup ens5",
    ] {
        assert!(log.contains(&format!("run `{step}`")), "no {step}:\n{log}");
    }
    let swapped = [
        "10.0.0.0/8 via 10.171.254.1 dev ens6",
        "172.16.0.0/12 via 10.171.254.1 dev ens6",
        "default via 42.120.74.1 dev ens5",
    ];
    let state = || (ns.ipv4_addrs("ens5"), ns.ipv4_addrs("ens6"), ns.ipv4_routes());
    let want = (
        vec!["42.120.74.105/24".to_owned()],
        vec!["10.171.254.123/24".to_owned()],
        swapped.map(String::from).to_vec(),
    );
    assert_eq!(state(), want, "{log}");

    let down = run_ifupdown(&ns, consumer, scratch.path(), "ifdown");
    let up = run_ifupdown(&ns, consumer, scratch.path(), "ifup");
    assert!(!failed(&down) && !failed(&up), "{down}\n{up}");
    assert_eq!(state(), want, "after a restart:\n{up}");
}

#[test]
fn ifupdown_follows_the_macs_when_they_swap() {
    follows_the_macs_when_they_swap("ifupdown_follows_the_macs_when_they_swap", Consumer::Debian);
}

#[test]
fn busybox_ifup_follows_the_macs_when_they_swap() {
    follows_the_macs_when_they_swap("busybox_ifup_follows_the_macs_when_they_swap", Consumer::Busybox);
}

/// ifup fails on the second NIC (a hook exits 1): the apply fails, and the files, os.conf and every
/// address and route the stack's tools changed are as they were after the first boot.
#[test]
fn a_failing_ifup_rolls_back_files_and_nics() {
    let Some((scratch, root, ns)) = first_boot("a_failing_ifup_rolls_back_files_and_nics", Consumer::Debian)
    else {
        return;
    };
    let hook = root.join("etc/network/if-up.d/fail-ens5");
    fs::write(&hook, "#!/bin/sh\n[ \"$IFACE\" != ens5 ]\n").unwrap();
    fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let before = crate::common::snapshot(&root);
    let out = live_apply_output(
        &ns,
        &root,
        &swap_macs(&example_conf("classic")),
        &Consumer::Debian.setup(scratch.path()),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ifup ens5"), "{stderr}");
    assert!(
        !stderr.contains("rollback:"),
        "the rollback itself failed:\n{stderr}"
    );
    let conf = root.join("boot/aliyun_custom_image/os.conf");
    assert!(conf.exists(), "os.conf removed");
    fs::remove_file(&conf).unwrap();
    assert_eq!(crate::common::snapshot(&root), before, "files not rolled back");
    assert_eq!(ns.ipv4_addrs("ens5"), ["10.171.254.123/24"], "{stderr}");
    assert_eq!(ns.ipv4_addrs("ens6"), ["42.120.74.105/24"], "{stderr}");
    assert_eq!(ns.ipv4_routes(), FIRST_BOOT, "{stderr}");
}
