//! `wicked`: SUSE's network service (SLES, openSUSE) reading `/etc/sysconfig/network`: `ifcfg-IFACE`,
//! `ifroute-IFACE`, the global `routes` file and `NETCONFIG_*` settings in `config`.
//!
//! wicked finds an interface by name only; `LLADDR` in ifcfg(5) would *set* the MAC, not match it.
//! SUSE names NICs by MAC with udev rules (what YaST writes to 70-persistent-net.rules), so osconf
//! writes its own rule file naming each os.conf NIC by its MAC and disables conflicting lines of the
//! persistent rules.

use std::fmt::Write as _;

use super::common::DISABLED_LOWER as DISABLED;
use super::common::blocks::replace_block;
use super::common::dns::NETCONFIG;
use super::common::udev::{self, Assign, RULES as UDEV_RULES};
use super::common::{self, HEADER};
use super::{Input, Rendered, Service, Stack};
use crate::model::Nic;
use crate::plan::{FileOp, Run};
use crate::system::{self, System};

pub const STACK: Stack = Stack {
    name: "wicked",
    systems: "SLES 12/15, openSUSE Leap 15 and Tumbleweed with wicked",
    detect,
    network,
    host,
    services: &[Service {
        name: "wicked",
        ran: None,
        per_nic: None,
    }],
    activate,
    network_files: &["/etc/sysconfig/network/"],
};

const DIR: &str = "/etc/sysconfig/network";
const ROUTES: &str = "/etc/sysconfig/network/routes";
const PERSISTENT_RULES: &str = "/etc/udev/rules.d/70-persistent-net.rules";

fn detect(sys: &System) -> system::Result<Option<String>> {
    let suse = [
        "suse",
        "opensuse",
        "sles",
        "sled",
        "opensuse-leap",
        "opensuse-tumbleweed",
    ];
    if !sys.os.is_like(&suse) || !sys.is_dir(DIR)? {
        return Ok(None);
    }
    let alias = sys
        .link_target("/etc/systemd/system/network.service")?
        .is_some_and(|t| t.file_name().is_some_and(|n| n == "wicked.service"));
    let why = if sys.systemd_unit_enabled("wicked.service")? {
        "wicked.service enabled"
    } else if alias {
        "network.service links to wicked.service"
    } else {
        return Ok(None);
    };
    Ok(Some(format!("ID={}, {why}, {DIR} exists", sys.os.id)))
}

fn network(input: &Input) -> system::Result<Rendered> {
    let config = input.config;
    let sys = input.sys;
    let mut out = Rendered::default();
    for nic in &config.nics {
        let name = input.ifname(nic);
        let ifcfg = format!("{DIR}/ifcfg-{name}");
        if let Some(old) = sys.read_text(&ifcfg)?.filter(|t| !t.starts_with(HEADER)) {
            let proto = old
                .lines()
                .find(|l| l.starts_with("BOOTPROTO="))
                .unwrap_or("no BOOTPROTO");
            out.notes
                .push(format!("{ifcfg} ({proto}) replaced by a static configuration"));
        }
        out.ops.push(FileOp::write(&ifcfg, ifcfg_text(input, nic)));
        if let Some(text) = ifroute_text(nic, &name) {
            let path = format!("{DIR}/ifroute-{name}");
            out.ops.push(FileOp::write(&path, text));
        }
    }
    if let Some(op) = routes_file(input, &mut out.notes)? {
        out.ops.push(op);
    }
    out.ops.extend(common::stale_own_files(sys, DIR, &out.ops)?);
    // A live run writes the names the kernel gave at this boot, which the next boot gives again:
    // no rule renames anything, and the rules that named the NICs so stay as they are.
    if !input.kernel_names() {
        out.add(udev_rules(input)?);
    }
    Ok(out)
}

/// A running wicked applies changed ifcfg files to the NICs named with `wicked ifreload`.
fn activate(input: &Input) -> Vec<Run> {
    if input.running_service() != Some("wicked") {
        return Vec::new();
    }
    let mut args = vec!["ifreload".to_owned()];
    args.extend(common::activate::names(input));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let why = "wicked runs already: it applies changed ifcfg files only when told";
    vec![common::activate::on_nics(Run::new("wicked", &args, why), input)]
}

/// The host name and DNS, which wicked keeps system-wide (`NETCONFIG_DNS_STATIC_SERVERS`).
fn host(input: &Input) -> system::Result<Rendered> {
    let (config, sys) = (input.config, input.sys);
    let mut out = Rendered::default();
    if !config.nameservers.is_empty() {
        let old = sys.read_text(NETCONFIG)?.unwrap_or_default();
        let list: Vec<String> = config.nameservers.iter().map(ToString::to_string).collect();
        let vars = [(
            "NETCONFIG_DNS_STATIC_SERVERS",
            Some(format!("'{}'", list.join(" "))),
        )];
        out.ops.push(FileOp::write(
            NETCONFIG,
            common::shellvars::set_shell_vars(&old, &vars),
        ));
        out.add(common::dns::render(&config.nameservers, sys)?);
    }
    out.ops.extend(common::hostname_file(input, "/etc/hostname"));
    // Leap 15 links /etc/HOSTNAME to hostname: writing through would replace the link with a copy.
    if sys.link_target("/etc/HOSTNAME")?.is_none() {
        out.ops.extend(common::hostname_file(input, "/etc/HOSTNAME"));
    }
    Ok(out)
}

fn ifcfg_text(input: &Input, nic: &Nic) -> String {
    let mut t = String::from(HEADER);
    if let Some(mac) = nic.mac {
        let by = if input.kernel_names() {
            "the name the kernel gave it"
        } else {
            UDEV_RULES
        };
        let _ = writeln!(t, "# The NIC with MAC {mac}, named by {by}.");
    }
    let _ = writeln!(
        t,
        "BOOTPROTO='static'\nSTARTMODE='auto'\nIPADDR='{}/{}'",
        nic.address, nic.prefix_len
    );
    t
}

/// routes(5) lines for one NIC: a device route to each gateway outside the subnet first (routes(5)
/// has no on-link flag outside multipath hops), then the NIC's non-default routes. The default
/// route goes to the global routes file.
fn ifroute_text(nic: &Nic, name: &str) -> Option<String> {
    let mut t = String::new();
    for gw in common::on_link_gateways(nic) {
        let _ = writeln!(t, "{gw}/32 - - {name}");
    }
    for r in &nic.routes {
        let _ = writeln!(t, "{} {} - {name}", r.dest, r.via);
    }
    (!t.is_empty()).then(|| format!("{HEADER}{t}"))
}

/// The global routes file: osconf's block holds the one default route; any other default route in
/// the file is commented out so that wicked installs no second one. Other lines are kept.
fn routes_file(input: &Input, notes: &mut Vec<String>) -> system::Result<Option<FileOp>> {
    let old = input.sys.read_text(ROUTES)?;
    let nic = input.config.default_nic();
    if old.is_none() && nic.is_none() {
        return Ok(None);
    }
    // osconf's own old block goes first, so that only foreign default routes are reported.
    let old = replace_block(&old.unwrap_or_else(|| HEADER.to_owned()), "");
    let mut kept = String::new();
    for line in old.split_inclusive('\n') {
        if is_default_route(line) {
            notes.push(format!(
                "{ROUTES}: commented out `{}`: the default route is osconf's",
                line.trim_end()
            ));
            kept.push_str(DISABLED);
        }
        kept.push_str(line);
    }
    let block = nic
        .and_then(|n| Some(format!("default {} - {}\n", n.default_gateway?, input.ifname(n))))
        .unwrap_or_default();
    Ok(Some(FileOp::write(ROUTES, replace_block(&kept, &block))))
}

/// True for a routes(5) line whose destination is the default (`default`, `0.0.0.0/0`, or
/// `0.0.0.0` with netmask `0.0.0.0`), outside osconf's block (whose lines carry no such form here).
fn is_default_route(line: &str) -> bool {
    let mut cols = line.split('#').next().unwrap_or("").split_whitespace();
    match (cols.next(), cols.next(), cols.next()) {
        (Some("default"), ..) | (Some("0.0.0.0/0"), ..) => true,
        (Some("0.0.0.0"), _, mask) => mask.is_none_or(|m| m == "0.0.0.0" || m == "0" || m == "-"),
        _ => false,
    }
}

/// The udev rule naming each NIC that has a MAC; lines of the persistent rules that give one of
/// these names or MACs to something else are commented out.
fn udev_rules(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    let mut claims = Vec::new();
    for nic in &input.config.nics {
        let Some(mac) = nic.mac else { continue };
        claims.push(format!("ATTR{{address}}==\"{mac}\""));
        claims.push(format!("NAME=\"{}\"", input.ifname(nic)));
    }
    out.ops.extend(udev::rules(input, Assign::Set)?);
    if claims.is_empty() {
        return Ok(out);
    }
    if let Some(old) = input.sys.read_text(PERSISTENT_RULES)? {
        let mut text = String::new();
        for line in old.split_inclusive('\n') {
            let lower = line.to_ascii_lowercase();
            let active = !line.trim_start().starts_with('#');
            if active && claims.iter().any(|c| lower.contains(&c.to_ascii_lowercase())) {
                out.notes.push(format!(
                    "{PERSISTENT_RULES}: commented out `{}`: osconf names NICs by os.conf's MACs",
                    line.trim_end()
                ));
                text.push_str(DISABLED);
            }
            text.push_str(line);
        }
        out.ops.push(FileOp::write(PERSISTENT_RULES, text));
    }
    out.notes.push(format!(
        "wicked matches interfaces by name: {UDEV_RULES} names each NIC by its MAC at its next add event (boot)"
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::common::testing::fake_root;

    #[test]
    fn detects_enabled_wicked_only() {
        let leap = (
            "etc/os-release",
            "ID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\n",
        );
        let cfg = ("etc/sysconfig/network/config", "");
        let wicked = "/usr/lib/systemd/system/wicked.service";
        let enabled = fake_root(
            &[leap, cfg],
            &[(
                "etc/systemd/system/multi-user.target.wants/wicked.service",
                wicked,
            )],
        );
        assert!(detect(&System::probe(enabled.path()).unwrap()).unwrap().is_some());
        let alias = fake_root(&[leap, cfg], &[("etc/systemd/system/network.service", wicked)]);
        assert!(detect(&System::probe(alias.path()).unwrap()).unwrap().is_some());
        let nm = "/usr/lib/systemd/system/NetworkManager.service";
        let with_nm = fake_root(&[leap, cfg], &[("etc/systemd/system/network.service", nm)]);
        assert!(
            detect(&System::probe(with_nm.path()).unwrap()).unwrap().is_none(),
            "NetworkManager on SUSE"
        );
        let debian = fake_root(
            &[("etc/os-release", "ID=debian\n"), cfg],
            &[("etc/systemd/system/network.service", wicked)],
        );
        assert!(
            detect(&System::probe(debian.path()).unwrap()).unwrap().is_none(),
            "not SUSE"
        );
    }

    #[test]
    fn default_route_lines() {
        for yes in [
            "default 1.2.3.4 - eth0",
            "0.0.0.0/0 1.2.3.4",
            "0.0.0.0 1.2.3.4 0.0.0.0 eth0\n",
            "  default 1.1.1.1",
        ] {
            assert!(is_default_route(yes), "{yes}");
        }
        for no in [
            "# default 1.2.3.4",
            "10.0.0.0/8 1.2.3.4 - eth0",
            "0.0.0.0 1.2.3.4 255.0.0.0",
            "",
        ] {
            assert!(!is_default_route(no), "{no}");
        }
    }
}
