//! `openrc-network`: OpenRC's own `network` service (`/etc/init.d/network`, from OpenRC's
//! `init.d/network.in`) reading `/etc/conf.d/network`, as Buildroot and other OpenRC systems without
//! netifrc use it. osconf owns one marked block of conf.d/network and keeps every other byte.
//!
//! What the script does with the file (OpenRC 0.45 `start`): it flushes every global route and the
//! default route, then for each interface the kernel has runs the lines of `ip_IFACE` (split on
//! newlines, or on `;` in a one-line value): a plain line is `ip address add LINE brd + dev IFACE`
//! (the first one also sets the link up), a line starting with `!` is run by the shell — after the
//! address, so a route through the subnet's gateway can be added there. `ifconfig_IFACE` is used
//! only when `ip_IFACE` is not set, and `defaultroute` / `defaultiproute` add a default route after
//! every interface. So osconf writes `ip_IFACE` (address, then `!ip route replace …` for every
//! route, the default one included) and comments out the `ip_`/`ifconfig_` values of the same NICs,
//! and the default-route variables when os.conf gives a default route (exactly one must remain).
//! `ifup_IFACE`/`ifdown_IFACE` (a person's commands: MTU, a bridge) are kept.
//!
//! The script finds an interface by name only: the NIC os.conf calls ethN is configured as
//! `input.ifname(nic)`, and a note says so.

use std::fmt::Write as _;

use super::common::{self, blocks::replace_block};
use super::{Input, Rendered, Service, Stack, ifupdown, netifrc};
use crate::plan::{FileOp, Run};
use crate::system::{self, System};

pub const STACK: Stack = Stack {
    name: "openrc-network",
    systems: "Buildroot and other OpenRC systems run by OpenRC's own network service (no netifrc)",
    detect,
    network,
    host: netifrc::host,
    services: &[Service {
        name: "network",
        ran: None,
        per_nic: None,
    }],
    activate,
    network_files: &[CONF],
};

const CONF: &str = "/etc/conf.d/network";
const SCRIPT: &str = "/etc/init.d/network";
const RUNLEVELS: &str = "/etc/runlevels";

/// The per-interface variables the script configures an address from.
const PER_NIC: [&str; 2] = ["ip", "ifconfig"];
/// The variables that add a default route after every interface.
const DEFAULT_ROUTE: [&str; 2] = ["defaultroute", "defaultiproute"];

/// OpenRC's `network` linked in a runlevel, its script run by `openrc-run`, and no netifrc
/// (`net.lo`: netifrc's own `network`-less setup, its stack comes first anyway).
fn detect(sys: &System) -> system::Result<Option<String>> {
    if sys.exists("/etc/init.d/net.lo")? {
        return Ok(None);
    }
    let openrc_script = sys.read_text(SCRIPT)?.is_some_and(|text| {
        text.lines()
            .next()
            .is_some_and(|l| l.starts_with("#!") && l.contains("openrc-run"))
    });
    if !openrc_script {
        return Ok(None);
    }
    for level in sys.list(RUNLEVELS)? {
        let link = format!("{RUNLEVELS}/{level}/network");
        if sys.exists(&link)? {
            return Ok(Some(format!(
                "{link} starts OpenRC's network service ({SCRIPT} runs under openrc-run; no netifrc)"
            )));
        }
    }
    Ok(None)
}

fn network(input: &Input) -> system::Result<Rendered> {
    let config = input.config;
    let mut out = Rendered::default();
    let old = input.sys.read_text(CONF)?.unwrap_or_default();
    let mut targets: Vec<String> = config
        .nics
        .iter()
        .flat_map(|n| {
            let var = netifrc::shell_var(&input.ifname(n));
            PER_NIC.map(|p| format!("{p}_{var}="))
        })
        .collect();
    if config.nics.iter().any(|n| n.default_gateway.is_some()) {
        targets.extend(DEFAULT_ROUTE.map(|v| format!("{v}=")));
    }
    let (kept, disabled) = netifrc::disable_assignments(&old, &targets);
    for line in &disabled {
        out.notes.push(format!(
            "{CONF}: commented out `{line}` so that osconf's static configuration wins"
        ));
    }
    out.ops
        .push(FileOp::write(CONF, replace_block(&kept, &block_text(input))));
    if !has_ip(input.sys)? {
        out.notes.push(format!(
            "OpenRC's network service runs `ip` (iproute2 or busybox's applet) for {CONF}'s `ip_` values, \
             and the root has none in {}",
            IP.join(", ")
        ));
    }
    out.notes
        .extend(ifupdown::by_name_note(input, "OpenRC's network service"));
    Ok(out)
}

/// Where the script's `ip` is found on the systems it serves.
const IP: [&str; 4] = ["/sbin/ip", "/bin/ip", "/usr/sbin/ip", "/usr/bin/ip"];

/// True when the root has an `ip` (a link counts: busybox's applets are links, perhaps absolute).
fn has_ip(sys: &System) -> system::Result<bool> {
    for path in IP {
        if sys.exists(path)? || sys.link_target(path)?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// osconf's block: per NIC, `ip_IFACE` holding the address and then, as `!` lines the script runs
/// after it, `ip route replace` for the default route and every other route (a gateway outside the
/// subnet gets its device route first).
fn block_text(input: &Input) -> String {
    let mut t = String::new();
    for nic in &input.config.nics {
        let name = input.ifname(nic);
        let mut routes = common::ip_route_args(nic, &name);
        // `ip_route_args` gives the default route only through an off-subnet gateway.
        if let Some(gw) = nic.default_gateway.filter(|&gw| !nic.is_on_link(gw)) {
            routes.insert(0, format!("default via {gw} dev {name}"));
        }
        let _ = write!(
            t,
            "ip_{}=\"{}/{}",
            netifrc::shell_var(&name),
            nic.address,
            nic.prefix_len
        );
        for r in routes {
            let _ = write!(t, "\n!ip route replace {r}");
        }
        t.push_str("\"\n");
    }
    t
}

/// The network service ran already: restarting it flushes the addresses and routes of every
/// interface it configures and sets them again from the new file.
fn activate(input: &Input) -> Vec<Run> {
    if input.running_service() != Some("network") {
        return Vec::new();
    }
    let why = "OpenRC's network service reads conf.d/network only when it starts";
    vec![common::activate::on_nics(
        Run::new("rc-service", &["network", "restart"], why),
        input,
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::common::testing::{example, fake_root, render, written};

    const SHEBANG: &str = "#!/sbin/openrc-run\n";

    #[test]
    fn detects_the_network_service_in_a_runlevel_without_netifrc() {
        let link = ("/etc/runlevels/boot/network", "/etc/init.d/network");
        let yes = fake_root(&[(SCRIPT, SHEBANG)], &[link]);
        assert_eq!(
            detect(&System::probe(yes.path()).unwrap()).unwrap().unwrap(),
            "/etc/runlevels/boot/network starts OpenRC's network service \
             (/etc/init.d/network runs under openrc-run; no netifrc)"
        );
        // Not in a runlevel; RHEL's sysv `network`; netifrc's net.lo beside it.
        let unlinked = fake_root(&[(SCRIPT, SHEBANG)], &[]);
        let sysv = fake_root(&[(SCRIPT, "#!/bin/bash\n")], &[link]);
        let netifrc = fake_root(&[(SCRIPT, SHEBANG), ("/etc/init.d/net.lo", SHEBANG)], &[link]);
        for root in [unlinked, sysv, netifrc] {
            assert_eq!(detect(&System::probe(root.path()).unwrap()).unwrap(), None);
        }
    }

    #[test]
    fn block_holds_address_then_routes_and_others_are_commented_out() {
        let old = "keep=1\nifconfig_eth0=\"192.168.0.10 netmask 255.255.255.0\"\n\
                   ifup_eth0=\"ip link set \\$int mtu 1400\"\ndefaultroute=\"gw 192.168.0.1\"\n\
                   ip_eth9=\"10.9.9.9/24\"\n";
        let root = fake_root(&[(CONF, old)], &[]);
        let out = render(&STACK, &example("classic"), root.path());
        let text = written(&out, CONF).unwrap();
        let want = "keep=1\n\
            # disabled by osconf: ifconfig_eth0=\"192.168.0.10 netmask 255.255.255.0\"\n\
            ifup_eth0=\"ip link set \\$int mtu 1400\"\n\
            # disabled by osconf: defaultroute=\"gw 192.168.0.1\"\n\
            ip_eth9=\"10.9.9.9/24\"\n\n\
            # BEGIN osconf: from aliyun_custom_image/os.conf; replaced at the next change\n\
            ip_eth0=\"10.171.254.123/24\n\
            !ip route replace 10.0.0.0/8 via 10.171.254.1 dev eth0\n\
            !ip route replace 172.16.0.0/12 via 10.171.254.1 dev eth0\"\n\
            ip_eth1=\"42.120.74.105/24\n\
            !ip route replace default via 42.120.74.1 dev eth1\"\n\
            # END osconf\n";
        assert_eq!(text, want);
        assert!(
            out.notes.iter().any(|n| n.contains("runs `ip`")),
            "{:?}",
            out.notes
        );
        let with_ip = fake_root(&[(CONF, old)], &[("/sbin/ip", "../bin/busybox")]);
        let out = render(&STACK, &example("classic"), with_ip.path());
        assert!(
            !out.notes.iter().any(|n| n.contains("runs `ip`")),
            "{:?}",
            out.notes
        );
    }
}
