//! Real consumers of the `ifupdown` and `busybox` renderings: osconf applies os.conf to a scratch copy
//! of the debian11 or alpine3 example root, then Debian's `ifup -a`, ifupdown-ng's, ifupdown2's or
//! busybox's `ifup -a` (with busybox's own `ip`) brings up veth NICs carrying the os.conf MACs in a
//! network namespace, from the scratch /etc/network bind-mounted over /etc/network. Addresses and
//! routes are read back from the kernel; then `ifdown -a` must run every `pre-down` line without an
//! error and leave nothing behind.
//!
//! ifupdown-ng and ifupdown2 replace ifupdown in dpkg, so their Debian packages are unpacked into a
//! private prefix (`common::debs`) and run from there; the scratch root gets the files their packages
//! put in /etc/network (how osconf tells which ifup reads the files).
//!
//! The host's files are never touched: /etc/network, /etc/resolv.conf, /run, /var/tmp (ifupdown2's
//! state) and /dev/log are bind-mounted from the scratch directory inside the namespace's private
//! mount namespace.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::common::debs::{cp, unpacked_debs};
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

/// Which ifup runs: Debian's, ifupdown-ng's and ifupdown2's on the debian11 root (Debian with the
/// package installed: the `ifupdown` stack), busybox's and ifupdown-ng's (Alpine's default since
/// 3.13) on the alpine3 root (the `busybox` stack).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Consumer {
    Debian,
    Busybox,
    Ng,
    Ifupdown2,
    AlpineNg,
}

impl Consumer {
    fn rootfs(self) -> &'static str {
        match self {
            Consumer::Debian | Consumer::Ng | Consumer::Ifupdown2 => "debian11",
            Consumer::Busybox | Consumer::AlpineNg => "alpine3",
        }
    }

    /// Where its Debian package is unpacked (`None` for the host's own ifup and busybox).
    fn prefix(self) -> Result<Option<PathBuf>, String> {
        match self {
            Consumer::Debian | Consumer::Busybox => Ok(None),
            Consumer::Ng | Consumer::AlpineNg => {
                unpacked_debs("ifupdown-ng-debs", &["ifupdown-ng"], "sbin/ifupdown").map(Some)
            }
            Consumer::Ifupdown2 => unpacked_debs(
                "ifupdown2-debs",
                &["ifupdown2"],
                "usr/share/ifupdown2/__main__.py",
            )
            .map(Some),
        }
    }

    fn prefix_path(self) -> PathBuf {
        self.prefix().unwrap().unwrap_or_default()
    }

    /// What the consumer needs on the host, or why it cannot run.
    fn prerequisites(self) -> Result<(), String> {
        let needed: &[&str] = match self {
            Consumer::Debian => &["ifup", "ifdown", "run-parts", "mount"],
            Consumer::Busybox => &["busybox", "run-parts", "mount"],
            Consumer::Ng | Consumer::AlpineNg => &["apt-get", "dpkg-deb", "mount"],
            Consumer::Ifupdown2 => &["apt-get", "dpkg-deb", "python3", "mount"],
        };
        check_prerequisites(needed)?;
        self.prefix().map(|_| ())
    }

    /// The command for `ifup -a` / `ifdown -a`, verbose so that the log shows each command run
    /// (after [`Consumer::setup`], which puts the consumer's own first on PATH).
    fn command(self, verb: &str) -> String {
        match self {
            Consumer::Busybox => format!("busybox {verb} -v -a"),
            _ => format!("{verb} -v -a"),
        }
    }

    /// Puts in `<scratch>/bin` what the consumer runs as `ifup`, `ifdown` (and busybox as `ip`):
    /// busybox's applets; ifupdown-ng's binary told where its executors are (`-E`: its package
    /// puts them in /usr/libexec/ifupdown-ng); ifupdown2's Python program, which tells ifup from
    /// ifdown by the name it runs as, with its modules' path. Debian's are the host's own.
    fn install_tools(self, scratch: &Path) {
        let bin = scratch.join("bin");
        fs::create_dir_all(&bin).unwrap();
        let p = self.prefix_path();
        let p = p.display();
        for verb in ["ifup", "ifdown"] {
            let wrapper = match self {
                Consumer::Debian => continue,
                Consumer::Busybox => {
                    symlink(busybox(), bin.join(verb)).unwrap();
                    continue;
                }
                Consumer::Ng | Consumer::AlpineNg => {
                    format!("#!/bin/sh\nexec {p}/sbin/{verb} -E {p}/usr/libexec/ifupdown-ng \"$@\"\n")
                }
                Consumer::Ifupdown2 => {
                    let named = scratch.join(format!("ifupdown2-{verb}"));
                    fs::create_dir_all(&named).unwrap();
                    symlink(format!("{p}/usr/share/ifupdown2/__main__.py"), named.join(verb)).unwrap();
                    format!(
                        "#!/bin/sh\nPYTHONPATH={p}/usr/share exec python3 {}/{verb} \"$@\"\n",
                        named.display()
                    )
                }
            };
            fs::write(bin.join(verb), wrapper).unwrap();
            fs::set_permissions(
                bin.join(verb),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
        }
        // Busybox's own `ip` applet, as on a busybox-only system.
        if self == Consumer::Busybox {
            symlink(busybox(), bin.join("ip")).unwrap();
        }
    }

    /// Puts the files the consumer's package installs in /etc/network into `root`: what osconf
    /// detects it by, and (ifupdown2) its configuration.
    fn install_config(self, root: &Path) {
        let p = self.prefix_path();
        match self {
            Consumer::Debian | Consumer::Busybox => {}
            Consumer::Ng | Consumer::AlpineNg => {
                cp(
                    &p.join("etc/network/ifupdown-ng.conf"),
                    &root.join("etc/network/ifupdown-ng.conf"),
                );
            }
            Consumer::Ifupdown2 => {
                crate::common::copy_tree(
                    &p.join("etc/network/ifupdown2"),
                    &root.join("etc/network/ifupdown2"),
                )
                .unwrap();
            }
        }
    }
}

/// A scratch root with os.conf applied by the real binary, plus the /run and resolv.conf to mount.
fn applied_root(consumer: Consumer, conf: &str, extra_args: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = example_root(dir.path(), consumer.rootfs());
    consumer.install_config(&root);
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
    consumer.install_tools(dir.path());
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
    let script = format!("{}\n{} 2>&1", consumer.setup(scratch), consumer.command(verb));
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
    if let Err(why) = consumer.prerequisites() {
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
fn ifupdown_ng_brings_up_ifupdown_stanzas() {
    check(Consumer::Ng, "ifupdown_ng_brings_up_ifupdown_stanzas");
}

#[test]
fn ifupdown_ng_brings_up_busybox_stanzas_on_alpine() {
    check(
        Consumer::AlpineNg,
        "ifupdown_ng_brings_up_busybox_stanzas_on_alpine",
    );
}

#[test]
fn ifupdown2_brings_up_ifupdown_stanzas() {
    check(Consumer::Ifupdown2, "ifupdown2_brings_up_ifupdown_stanzas");
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

/// What `mount`s the scratch /run, /etc/network, resolv.conf and /var/tmp over the namespace's own,
/// and an empty file over /dev/log (ifupdown2 logs to syslog when there is one). A host without
/// /etc/network (no ifupdown: busybox alone) gets, in this private mount namespace only, a tmpfs /etc
/// holding the two mount points: busybox's ifup and `ip` applet read nothing else there.
fn mounts(scratch: &Path) -> String {
    let s = scratch.display();
    format!(
        "[ -d /etc/network ] || {{ mount -t tmpfs tmpfs /etc; mkdir /etc/network; : > /etc/resolv.conf; }}\n\
         if [ -e /dev/log ]; then : > {s}/dev-log; mount --bind {s}/dev-log /dev/log; fi\n\
         mkdir -p {s}/var-tmp {s}/run/network\nmount --bind {s}/var-tmp /var/tmp\n\
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
            Consumer::Debian | Consumer::Ng | Consumer::Ifupdown2 | Consumer::AlpineNg => "ifdown --force",
            Consumer::Busybox => "ifdown -f",
        }
    }

    /// What a shell needs before running osconf or ifup: the scratch mounts and the consumer's
    /// commands first on PATH ([`Consumer::install_tools`]).
    fn setup(self, scratch: &Path) -> String {
        let path = format!("export PATH={}/bin:$PATH", scratch.display());
        match self {
            Consumer::Debian => mounts(scratch),
            Consumer::Busybox | Consumer::Ng | Consumer::AlpineNg => format!("{}\n{path}", mounts(scratch)),
            // ifupdown2's bond addon runs `modprobe bonding` as it starts: modprobe is /bin/false in
            // this private mount namespace, so the host's kernel gets no module.
            Consumer::Ifupdown2 => format!(
                "{}\n{path}\nif m=$(command -v modprobe); then mount --bind /bin/false \"$m\"; fi",
                mounts(scratch)
            ),
        }
    }
}

/// The first boot of an ifupdown (or busybox ifup) instance whose NICs the kernel calls ens5 and
/// ens6, osconf run live as at boot: it writes stanzas with the kernel names found by MAC and sets
/// no address (networking has not run: no state file); `ifup -a` then brings them up.
fn first_boot(test: &str, consumer: Consumer) -> Option<(tempfile::TempDir, std::path::PathBuf, Netns)> {
    if let Err(why) = consumer.prerequisites() {
        cannot_run(test, &why);
        return None;
    }
    let scratch = tempfile::tempdir().unwrap();
    let root = example_root(scratch.path(), consumer.rootfs());
    consumer.install_config(&root);
    consumer.install_tools(scratch.path());
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
fn ifupdown_ng_follows_the_macs_when_they_swap() {
    follows_the_macs_when_they_swap("ifupdown_ng_follows_the_macs_when_they_swap", Consumer::Ng);
}

#[test]
fn ifupdown2_follows_the_macs_when_they_swap() {
    follows_the_macs_when_they_swap("ifupdown2_follows_the_macs_when_they_swap", Consumer::Ifupdown2);
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
