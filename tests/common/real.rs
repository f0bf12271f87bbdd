//! Harness for the real-consumer tests: network namespaces holding veth NICs with os.conf's MACs, and
//! the rule for tests that cannot run here (say so loudly; fail instead under `CI=true`).
//!
//! Everything happens inside namespaces the test creates: both ends of every veth pair live in the
//! test's namespace, so no traffic reaches the host or any other address.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Call when a real test cannot run: under CI it fails the test, elsewhere it prints why.
pub fn cannot_run(test: &str, why: &str) {
    if is_ci() {
        panic!("{test}: cannot run under CI=true: {why}");
    }
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing tests,
    // which would hide the skip.
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n*** SKIPPED {test}: {why} (set up the machine as .ci/run does, or run as root) ***\n"
    );
}

/// True when the test runs as root; else says why not through [`cannot_run`] (`why`: what root is
/// needed for) and gives false.
pub fn as_root(test: &str, why: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        cannot_run(test, &format!("needs root ({why})"));
    }
    root
}

/// `Err(reason)` unless running as root with `ip netns` and every program in `programs`.
pub fn check_prerequisites(programs: &[&str]) -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root (network namespaces, mounts)".into());
    }
    for p in ["ip", "unshare"].iter().chain(programs) {
        if !is_program(p) {
            return Err(format!("{p} is not installed"));
        }
    }
    Ok(())
}

/// True when every one of `tools` is on PATH, where the tests run them from; else says which is
/// not through [`cannot_run`] and gives false. A plain user's PATH often lacks /usr/sbin, where
/// mkfs and debugfs live (scripts/test-all adds it).
pub fn have_tools(test: &str, tools: &[&str]) -> bool {
    match tools.iter().find(|t| !is_program(t)) {
        Some(t) if Path::new("/usr/sbin").join(t).exists() => {
            cannot_run(test, &format!("{t} is in /usr/sbin, which is not on PATH"));
            false
        }
        Some(t) => {
            cannot_run(test, &format!("{t} is not installed (.ci/packages.txt lists it)"));
            false
        }
        None => true,
    }
}

/// Writes a partition table into the image file at `path` with `sfdisk` reading `script`.
pub fn sfdisk(path: &Path, script: &str) {
    let mut child = Command::new("sfdisk")
        .args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk {script}");
}

pub fn is_program(p: &str) -> bool {
    if p.contains('/') {
        return Path::new(p).exists();
    }
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|d| d.join(p).is_file()))
        .unwrap_or(false)
}

/// A private system bus for a daemon under test (NetworkManager, connmand): it allows everything
/// and activates nothing (no ModemManager, no polkit).
pub const DBUS_CONF: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <pidfile>/run/dbus/pid</pidfile>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#;

/// The routes the classic sample gives NICs named eth0 and eth1, as [`Netns::ipv4_routes`] lists them.
pub const CLASSIC_ROUTES: [&str; 3] = [
    "10.0.0.0/8 via 10.171.254.1 dev eth0",
    "172.16.0.0/12 via 10.171.254.1 dev eth0",
    "default via 42.120.74.1 dev eth1",
];

/// The routes [`super::CLASSIC_ON_LINK`] gives NICs named eth0 and eth1: eth1's gateway through its
/// device route.
pub const CLASSIC_ON_LINK_ROUTES: [&str; 4] = [
    "10.0.0.0/8 via 10.171.254.1 dev eth0",
    "172.16.0.0/12 via 10.171.254.1 dev eth0",
    "42.120.74.1 dev eth1",
    "default via 42.120.74.1 dev eth1",
];

/// What `sh` prints for `expr` (e.g. `"$config_eth0"`) after sourcing `file`, as init scripts do.
pub fn sourced(file: &Path, expr: &str) -> String {
    let script = format!(". '{}'; printf %s \"{expr}\"", file.display());
    let out = run(Command::new("sh").args(["-ec", &script]));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command, panicking with its output when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace, deleted (with its NICs) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("osconf-{tag}-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        ns
    }

    /// Adds NIC `ifname` with `mac`; its veth peer stays in the same namespace, down, unused.
    pub fn add_nic(&self, ifname: &str, mac: &str) {
        let peer = format!("peer-{ifname}");
        run(Command::new("ip").args([
            "-n", &self.name, "link", "add", ifname, "address", mac, "type", "veth", "peer", "name", &peer,
        ]));
        // The peer must be up for the NIC to have carrier, which networkd and NetworkManager wait for.
        run(Command::new("ip").args(["-n", &self.name, "link", "set", &peer, "up"]));
    }

    /// Adds NIC `ifname` with `mac`, its veth peer `peer-IFNAME` up in `peers`, another namespace
    /// the test made: what the NIC sends reaches only that namespace.
    pub fn add_nic_peer_in(&self, ifname: &str, mac: &str, peers: &Netns) {
        let peer = format!("peer-{ifname}");
        run(Command::new("ip").args([
            "-n",
            &self.name,
            "link",
            "add",
            ifname,
            "address",
            mac,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            &peers.name,
        ]));
        run(Command::new("ip").args(["-n", &peers.name, "link", "set", &peer, "up"]));
    }

    /// Ends every process left in the namespace (a daemon the test started), by id.
    pub fn kill_all(&self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").arg(pid).status();
            }
        }
    }

    /// Runs `sh -ec script` inside the namespace, in a private mount namespace (`ip netns exec`
    /// gives one, with mounts not propagating back to the host).
    pub fn sh(&self, script: &str) -> Output {
        run(Command::new("ip").args(["netns", "exec", &self.name, "sh", "-ec", script]))
    }

    /// Like `sh` but returns the output whatever the status.
    pub fn sh_unchecked(&self, script: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-ec", script])
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = run(Command::new("ip").args(["-n", &self.name, "-j"]).args(args));
        serde_json::from_slice(&out.stdout).expect("ip -j prints JSON")
    }

    /// IPv4 addresses of a NIC as `a.b.c.d/len`.
    pub fn ipv4_addrs(&self, ifname: &str) -> Vec<String> {
        let v = self.json(&["-4", "addr", "show", "dev", ifname]);
        v.as_array()
            .into_iter()
            .flatten()
            .flat_map(|link| link["addr_info"].as_array().cloned().unwrap_or_default())
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
            .collect()
    }

    /// IPv4 routes of the main table as `dst via gw dev ifname` (`dst dev ifname` without gateway),
    /// kernel-made subnet routes left out (a route with a gateway counts whatever its protocol:
    /// ifupdown2 adds its default route as `proto kernel`).
    pub fn ipv4_routes(&self) -> Vec<String> {
        let v = self.json(&["-4", "route", "show", "table", "main"]);
        let mut routes: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["protocol"] != "kernel" || r["gateway"].is_string())
            .map(|r| {
                let dst = r["dst"].as_str().unwrap();
                let dev = r["dev"].as_str().unwrap_or("?");
                match r["gateway"].as_str() {
                    Some(gw) => format!("{dst} via {gw} dev {dev}"),
                    None => format!("{dst} dev {dev}"),
                }
            })
            .collect();
        routes.sort();
        routes
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Runs `sh -ec script` in `ns` in the background, as a daemon runs (stderr to `log`), until
/// `done()` holds, 30 s have passed or it exits; then `read()` (while it still runs) and every
/// process of the namespace is ended. Returns what `read` gave and the log.
pub fn run_daemon_until<T>(
    ns: &Netns,
    script: &str,
    log: &Path,
    done: impl Fn() -> bool,
    read: impl FnOnce() -> T,
) -> (T, String) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "sh", "-ec", script])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() && std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let got = read();
    ns.kill_all();
    let _ = child.wait();
    (got, std::fs::read_to_string(log).unwrap_or_default())
}

/// The `nameserver` lines of a resolv.conf.
pub fn nameserver_lines(resolv: &str) -> Vec<&str> {
    resolv.lines().filter(|l| l.starts_with("nameserver")).collect()
}

/// os.conf's classic sample with the two MACs swapped: the elastic NICs moved between eth0 and eth1.
pub fn swap_macs(conf: &str) -> String {
    const A: &str = "00:8c:fa:5e:14:23";
    const B: &str = "00:8c:fa:5e:14:24";
    conf.replace(A, "MAC-A").replace(B, A).replace("MAC-A", B)
}

/// `osconf apply --live --root ROOT` of `conf` inside the namespace, as at boot: a fresh /run
/// (so no service seems to run unless `setup` mounts one's state there), a private host name.
/// `setup` runs first in the same mount namespace (bind mounts). Returns osconf's stderr and
/// panics unless it succeeded.
pub fn live_apply(ns: &Netns, root: &Path, conf: &str, setup: &str) -> String {
    let out = live_apply_output(ns, root, conf, setup);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "osconf apply --live: {}\n{stderr}",
        out.status
    );
    stderr
}

/// [`live_apply`] whatever its outcome.
pub fn live_apply_output(ns: &Netns, root: &Path, conf: &str, setup: &str) -> Output {
    super::place_conf(root, conf);
    ns.sh_unchecked(&format!(
        "mount -t tmpfs tmpfs /run\n{setup}\nunshare -u {} apply --live --wait 5 --root '{}'",
        env!("CARGO_BIN_EXE_osconf"),
        root.display()
    ))
}
