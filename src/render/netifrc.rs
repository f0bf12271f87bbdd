//! `netifrc`: Gentoo's network scripts under OpenRC (`/etc/conf.d/net`, one `net.IFACE -> net.lo`
//! service per interface). osconf owns one marked block of /etc/conf.d/net and keeps every other
//! byte; it never touches a running service (the executor only writes files).
//!
//! netifrc finds an interface by name only, so the NIC os.conf calls ethN is configured as
//! `input.ifname(nic)` and a note says so.

use std::fmt::Write as _;

use super::common::{
    self, DISABLED_LOWER as DISABLED,
    blocks::{BEGIN, END, block_lines, replace_block},
};
use super::{Input, Rendered, Service, Stack};
use crate::model::Nic;
use crate::plan::{FileOp, Run};
use crate::system::{self, System};

pub const STACK: Stack = Stack {
    name: "netifrc",
    systems: "Gentoo and other OpenRC systems with netifrc (not Alpine)",
    detect,
    network,
    host,
    // net.lo starts with the boot runlevel, before any net.IFACE: started means netifrc ran.
    services: &[Service {
        name: "net.lo",
        ran: None,
        per_nic: None,
    }],
    activate,
    network_files: &[NET],
};

const NET: &str = "/etc/conf.d/net";
const INIT_D: &str = "/etc/init.d";
const RUNLEVELS: &str = "/etc/runlevels";

/// The per-interface variables that would fight osconf's (address, routes, DNS, DHCP fallback).
const CONFLICTING: &[&str] = &["config", "routes", "fallback", "fallback_routes", "dns_servers"];

fn detect(sys: &System) -> system::Result<Option<String>> {
    if !sys.exists("/etc/init.d/net.lo")? || sys.os.is_like(&["alpine"]) {
        return Ok(None);
    }
    for openrc in ["/sbin/openrc", "/usr/sbin/openrc", RUNLEVELS] {
        if sys.exists(openrc)? {
            return Ok(Some(format!(
                "/etc/init.d/net.lo (netifrc) and {openrc} (OpenRC)"
            )));
        }
    }
    Ok(None)
}

fn network(input: &Input) -> system::Result<Rendered> {
    let config = input.config;
    let sys = input.sys;
    let mut out = Rendered::default();
    let old = sys.read_text(NET)?.unwrap_or_default();
    let names: Vec<String> = config.nics.iter().map(|n| input.ifname(n)).collect();
    let vars: Vec<String> = names.iter().map(|n| shell_var(n)).collect();

    let targets: Vec<String> = vars
        .iter()
        .flat_map(|v| CONFLICTING.iter().map(move |c| format!("{c}_{v}=")))
        .collect();
    let (kept, disabled) = disable_assignments(&old, &targets);
    for line in &disabled {
        out.notes.push(format!(
            "{NET}: commented out `{line}` so that osconf's static configuration wins"
        ));
    }
    let block = block_text(input);
    out.ops.push(FileOp::write(NET, replace_block(&kept, &block)));

    for (nic, name) in config.nics.iter().zip(&names) {
        let service = format!("{INIT_D}/net.{name}");
        out.ops.push(FileOp::Symlink {
            path: service.clone(),
            target: "net.lo".into(),
        });
        out.ops.push(FileOp::Symlink {
            path: format!("{RUNLEVELS}/default/net.{name}"),
            target: service,
        });
        if let Some(mac) = nic.mac.filter(|_| !input.kernel_names()) {
            out.notes.push(format!(
                "netifrc matches interfaces by name only: {name} is configured for the NIC with MAC {mac}; \
                 if the kernel names it otherwise, use --ifname {}=NAME",
                nic.name()
            ));
        }
    }
    out.ops.extend(stale_services(sys, &old, &names)?);
    Ok(out)
}

/// netifrc ran already: each NIC's service restarted reads the new block (`--ifstarted` would skip
/// a service just linked for a new name, so plain `restart`, which also starts a stopped one).
fn activate(input: &Input) -> Vec<Run> {
    if input.running_service() != Some("net.lo") {
        return Vec::new();
    }
    let why = "netifrc configures an interface only when its service starts";
    common::activate::names(input)
        .iter()
        .map(|name| {
            let service = format!("net.{name}");
            common::activate::on_nics(Run::new("rc-service", &[&service, "restart"], why), input)
        })
        .collect()
}

/// /etc/conf.d/hostname (and /etc/hostname where there is one) and resolv.conf; the primary NIC's
/// `dns_servers_*` in osconf's block carries the servers as well. OpenRC's own `hostname` service
/// reads conf.d/hostname whatever configures the network, so the `openrc-network` stack shares this.
pub(super) fn host(input: &Input) -> system::Result<Rendered> {
    let (config, sys) = (input.config, input.sys);
    let mut out = Rendered::default();
    if let Some(hostname) = &config.hostname {
        let path = "/etc/conf.d/hostname";
        let old = sys.read_text(path)?.unwrap_or_default();
        let vars = [("hostname", Some(format!("\"{hostname}\"")))];
        out.ops.push(FileOp::write(
            path,
            common::shellvars::set_shell_vars(&old, &vars),
        ));
        if sys.exists("/etc/hostname")? {
            out.ops.extend(common::hostname_file(input, "/etc/hostname"));
        }
    }
    if config.nics.is_empty() {
        out.add(common::dns::without_nic(&config.nameservers, sys)?);
    } else {
        out.add(common::dns::render(&config.nameservers, sys)?);
    }
    Ok(out)
}

/// netifrc's variable suffix for an interface: every character but letters and digits becomes `_`
/// (its `shell_var`), so `eth0.100` is configured as `config_eth0_100`.
pub(super) fn shell_var(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// osconf's block: address, routes (default first; `onlink` for gateways outside the subnet, which
/// netifrc hands to `ip route append` as they are) and, on the primary NIC, the name servers.
fn block_text(input: &Input) -> String {
    let config = input.config;
    let mut t = String::new();
    for nic in &config.nics {
        let var = shell_var(&input.ifname(nic));
        let _ = writeln!(t, "config_{var}=\"{}/{}\"", nic.address, nic.prefix_len);
        let routes = route_lines(nic);
        if !routes.is_empty() {
            let _ = writeln!(t, "routes_{var}=\"{}\"", routes.join("\n"));
        }
        if config.primary_nic() == Some(nic) && !config.nameservers.is_empty() {
            let servers: Vec<String> = config.nameservers.iter().map(ToString::to_string).collect();
            let _ = writeln!(t, "dns_servers_{var}=\"{}\"", servers.join(" "));
        }
    }
    t
}

fn route_lines(nic: &Nic) -> Vec<String> {
    let onlink = |gw| if nic.is_on_link(gw) { " onlink" } else { "" };
    let default = nic
        .default_gateway
        .map(|gw| format!("default via {gw}{}", onlink(gw)));
    let others = nic
        .routes
        .iter()
        .map(|r| format!("{} via {}{}", r.dest, r.via, onlink(r.via)));
    default.into_iter().chain(others).collect()
}

/// Comments out, outside osconf's block, every assignment that starts with one of `targets`
/// (`config_eth0=`), including the continuation lines of a quoted multi-line value. Returns the new
/// text and the first line of each assignment disabled.
pub(super) fn disable_assignments(text: &str, targets: &[String]) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut disabled = Vec::new();
    let mut inside_block = false;
    let mut open_quote: Option<char> = None;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if let Some(q) = open_quote {
            out.push_str(DISABLED);
            out.push_str(line);
            if bare.contains(q) {
                open_quote = None;
            }
            continue;
        }
        if bare == BEGIN.trim_end() {
            inside_block = true;
        } else if bare == END.trim_end() {
            inside_block = false;
        }
        let assignment = bare.trim_start();
        if inside_block || !targets.iter().any(|t| assignment.starts_with(t.as_str())) {
            out.push_str(line);
            continue;
        }
        out.push_str(DISABLED);
        out.push_str(line);
        disabled.push(bare.to_owned());
        open_quote = unclosed_quote(assignment.split_once('=').map_or("", |(_, v)| v));
    }
    (out, disabled)
}

/// The quote character left open at the end of a shell value, if any (`"a` → `"`).
fn unclosed_quote(value: &str) -> Option<char> {
    let mut open = None;
    for c in value.chars() {
        match open {
            None if c == '"' || c == '\'' => open = Some(c),
            Some(q) if c == q => open = None,
            _ => {}
        }
    }
    open
}

/// Service links for interfaces osconf configured before (`config_X` in its old block) that it no
/// longer configures: `net.X -> net.lo` in /etc/init.d and every runlevel's link to it.
fn stale_services(sys: &System, old: &str, names: &[String]) -> system::Result<Vec<FileOp>> {
    let before: Vec<&str> = block_lines(old)
        .into_iter()
        .filter_map(|l| l.strip_prefix("config_")?.split_once('=').map(|(v, _)| v))
        .collect();
    let mut ops = Vec::new();
    for entry in sys.list(INIT_D)? {
        let Some(name) = entry.strip_prefix("net.") else {
            continue;
        };
        let path = format!("{INIT_D}/{entry}");
        let is_ours = sys.link_target(&path)?.is_some_and(|t| t.as_os_str() == "net.lo");
        if name == "lo" || !is_ours || names.iter().any(|n| n == name) {
            continue;
        }
        if !before.contains(&shell_var(name).as_str()) {
            continue;
        }
        for level in sys.list(RUNLEVELS)? {
            let link = format!("{RUNLEVELS}/{level}/{entry}");
            if sys.link_target(&link)?.is_some() {
                ops.push(FileOp::Remove { path: link });
            }
        }
        ops.push(FileOp::Remove { path });
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicting_assignments_disabled_with_continuations() {
        let old = "config_eth0=\"dhcp\"\nroutes_eth0=\"default via 1.1.1.1\n  10.0.0.0/8 via 1.1.1.2\"\nmtu_eth0=\"1400\"\nconfig_eth10=\"dhcp\"\n";
        let targets: Vec<String> = CONFLICTING.iter().map(|c| format!("{c}_eth0=")).collect();
        let (text, disabled) = disable_assignments(old, &targets);
        assert_eq!(
            text,
            format!(
                "{DISABLED}config_eth0=\"dhcp\"\n{DISABLED}routes_eth0=\"default via 1.1.1.1\n{DISABLED}  10.0.0.0/8 via 1.1.1.2\"\nmtu_eth0=\"1400\"\nconfig_eth10=\"dhcp\"\n"
            )
        );
        assert_eq!(
            disabled,
            ["config_eth0=\"dhcp\"", "routes_eth0=\"default via 1.1.1.1"]
        );
    }

    #[test]
    fn detects_netifrc_under_openrc_but_not_on_alpine() {
        let root = |id: &str, runlevels: bool| {
            let dir = tempfile::tempdir().unwrap();
            let etc = dir.path().join("etc");
            std::fs::create_dir_all(etc.join("init.d")).unwrap();
            std::fs::write(etc.join("os-release"), format!("ID={id}\n")).unwrap();
            std::fs::write(etc.join("init.d/net.lo"), "#!/sbin/openrc-run\n").unwrap();
            if runlevels {
                std::fs::create_dir_all(etc.join("runlevels/default")).unwrap();
            }
            dir
        };
        assert!(
            detect(&System::probe(root("gentoo", true).path()).unwrap())
                .unwrap()
                .is_some()
        );
        assert!(
            detect(&System::probe(root("gentoo", false).path()).unwrap())
                .unwrap()
                .is_none(),
            "no OpenRC"
        );
        assert!(
            detect(&System::probe(root("alpine", true).path()).unwrap())
                .unwrap()
                .is_none(),
            "busybox owns Alpine"
        );
    }

    #[test]
    fn shell_var_like_netifrc() {
        assert_eq!(shell_var("eth0.100"), "eth0_100");
        assert_eq!(shell_var("ens3"), "ens3");
    }
}
