//! `freebsd`: FreeBSD 14's /etc/rc.conf — `hostname`, `ifconfig_<if>`, `defaultrouter`,
//! `static_routes` with `route_osconf<N>` — edited in place with every other line kept byte for
//! byte; DNS in /etc/resolv.conf and, where openresolv is configured, /etc/resolvconf.conf.
//!
//! FreeBSD names NICs by driver (`vtnet0` for virtio on ECS) and rc.conf has no way to pick a NIC
//! by MAC (`ifconfig_<if>_name` renames by name too): os.conf's ethN is written as `vtnetN` unless
//! `--ifname ethN=NAME` says otherwise, and the plan says so.

use super::common;
use super::common::shellvars::{MARK, Stale, assignments, comment_out, set_marked_vars, shell_value};
use super::{Input, Rendered, Stack};
use crate::model::Nic;
use crate::plan::FileOp;
use crate::system::{self, System};

pub const STACK: Stack = Stack {
    name: "freebsd",
    systems: "FreeBSD 13/14 (rc.conf)",
    detect,
    network,
    host,
    // rc scripts leave no trace of having run: a live run configures the NICs itself.
    services: &[],
    activate: common::activate::none,
    network_files: &[RC_CONF],
};

const RC_CONF: &str = "/etc/rc.conf";
const RESOLVCONF_CONF: &str = "/etc/resolvconf.conf";

/// Prefix of the `static_routes` entries osconf owns.
const ROUTE_PREFIX: &str = "osconf";

fn detect(sys: &System) -> system::Result<Option<String>> {
    Ok(if sys.os.id == "freebsd" {
        Some("os-release ID=freebsd".into())
    } else {
        (sys.exists(RC_CONF)? && sys.is_dir("/boot/kernel")?).then(|| "/etc/rc.conf and /boot/kernel".into())
    })
}

/// The interface name: the `--ifname` override, else the virtio driver's `vtnetN`.
fn ifname(input: &Input, nic: &Nic) -> String {
    input
        .ifnames
        .get(&nic.index)
        .cloned()
        .unwrap_or_else(|| format!("vtnet{}", nic.index))
}

fn network(input: &Input) -> system::Result<Rendered> {
    let config = input.config;
    let mut out = Rendered::default();
    out.add(rc_conf(input)?);
    let guessed: Vec<String> = config
        .nics
        .iter()
        .filter(|n| !input.ifnames.contains_key(&n.index))
        .map(|n| format!("{} as {}", n.name(), ifname(input, n)))
        .collect();
    if !guessed.is_empty() {
        out.notes.push(format!(
            "rc.conf names interfaces, not MACs: wrote {} (virtio on ECS); give --ifname ethN=NAME for another driver",
            guessed.join(", ")
        ));
    }
    Ok(out)
}

/// DNS, and the host name when os.conf gives no NIC (else [`rc_conf`] sets it in the same edit of
/// rc.conf as the interfaces).
fn host(input: &Input) -> system::Result<Rendered> {
    let config = input.config;
    let mut out = Rendered::default();
    if let Some(name) = config.hostname.as_ref().filter(|_| config.nics.is_empty()) {
        let old = input.sys.read_text(RC_CONF)?.unwrap_or_default();
        let vars = [("hostname".to_owned(), name.clone())];
        out.ops.push(FileOp::write(
            RC_CONF,
            set_marked_vars(&old, &vars, Stale::Keep, |lines, _| lines.len()),
        ));
    }
    out.add(common::dns::render(&config.nameservers, input.sys)?);
    if !config.nameservers.is_empty() && input.sys.exists(RESOLVCONF_CONF)? {
        let old = input.sys.read_text(RESOLVCONF_CONF)?.unwrap_or_default();
        let list: Vec<String> = config.nameservers.iter().map(ToString::to_string).collect();
        let vars = [("name_servers".to_owned(), list.join(" "))];
        out.ops.push(FileOp::write(
            RESOLVCONF_CONF,
            set_marked_vars(&old, &vars, Stale::Drop, |lines, _| lines.len()),
        ));
        out.notes.push(format!(
            "DNS: {RESOLVCONF_CONF} exists, so resolvconf(8) gets name_servers= too"
        ));
    }
    Ok(out)
}

/// rc.conf: the keys osconf owns set (marked `# osconf`), its stale ones dropped, other settings
/// for the same interfaces (aliases, renames) commented out.
fn rc_conf(input: &Input) -> system::Result<Rendered> {
    let config = input.config;
    let mut out = Rendered::default();
    let old = input.sys.read_text(RC_CONF)?.unwrap_or_default();
    // Without a host name in os.conf the one osconf set before stays: FreeBSD boots nameless
    // without one.
    let hostname = config.hostname.clone().or_else(|| {
        assignments(&old)
            .filter(|(k, _, line)| k == "hostname" && line.trim_end().ends_with(MARK))
            .map(|(_, v, _)| v)
            .last()
    });
    let mut vars: Vec<(String, String)> = Vec::new();
    if let Some(h) = hostname {
        vars.push(("hostname".into(), h));
    }
    let names: Vec<String> = config.nics.iter().map(|n| ifname(input, n)).collect();
    for (nic, name) in config.nics.iter().zip(&names) {
        vars.push((
            format!("ifconfig_{name}"),
            format!("inet {} netmask {}", nic.address, nic.netmask()),
        ));
    }
    if !config.nics.is_empty() {
        let gw = config.default_nic().and_then(|n| n.default_gateway);
        vars.push(("defaultrouter".into(), gw.map_or("NO".into(), |g| g.to_string())));
        let routes = route_vars(input);
        let theirs: Vec<String> = shell_value(&old, "static_routes")
            .unwrap_or_default()
            .split_whitespace()
            .filter(|r| !r.starts_with(ROUTE_PREFIX))
            .map(str::to_owned)
            .collect();
        let all: Vec<String> = theirs
            .iter()
            .cloned()
            .chain(routes.iter().map(|(n, _)| n.clone()))
            .collect();
        if !routes.is_empty() || !theirs.is_empty() {
            vars.push(("static_routes".into(), all.join(" ")));
        }
        vars.extend(routes.into_iter().map(|(n, args)| (format!("route_{n}"), args)));
    }

    let mut disabled = Vec::new();
    let text = comment_out(&old, |key| {
        let hit = names.iter().any(|n| {
            key.starts_with(&format!("ifconfig_{n}_alias"))
                || key == format!("ifconfig_{n}_name")
                || key == format!("ipv4_addrs_{n}")
        });
        if hit {
            disabled.push(key.to_owned());
        }
        hit
    });
    if !disabled.is_empty() {
        out.notes.push(format!(
            "{RC_CONF}: commented out {}: they configured the same interfaces",
            disabled.join(", ")
        ));
    }
    let was_dhcp = names.iter().any(|n| {
        shell_value(&old, &format!("ifconfig_{n}")).is_some_and(|v| v.to_uppercase().contains("DHCP"))
    });
    if was_dhcp {
        out.notes.push(format!(
            "{RC_CONF}: DHCP replaced by static addresses on the NICs os.conf gives"
        ));
    }
    out.ops.push(FileOp::write(
        RC_CONF,
        set_marked_vars(&text, &vars, Stale::Drop, |lines, _| lines.len()),
    ));
    Ok(out)
}

/// `(name, route(8) arguments)` for `static_routes`: each on-link gateway as a host route on its
/// interface first (rc.d/routing adds `defaultrouter` after every static route), then the routes.
fn route_vars(input: &Input) -> Vec<(String, String)> {
    let mut args = Vec::new();
    for nic in &input.config.nics {
        let name = ifname(input, nic);
        for gw in common::on_link_gateways(nic) {
            args.push(format!("-host {gw} -interface {name}"));
        }
    }
    for nic in &input.config.nics {
        for r in &nic.routes {
            args.push(format!("-net {} {}", r.dest, r.via));
        }
    }
    args.into_iter()
        .enumerate()
        .map(|(i, a)| (format!("{ROUTE_PREFIX}{i}"), a))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::common::testing::{self, fake_root, from_text, written};

    /// Aliases, renames and ipv4_addrs of the interfaces osconf configures are commented out; those
    /// of other interfaces stay.
    #[test]
    fn other_settings_of_the_same_interface_are_commented_out() {
        let old = "ifconfig_vtnet0=\"DHCP\"\nifconfig_vtnet0_alias0=\"inet 10.1.0.1/32\"\nifconfig_vtnet0_name=\"net0\"\nipv4_addrs_vtnet0=\"10.2.0.1/24\"\nifconfig_vtnet1_alias0=\"inet 10.3.0.1/32\"\nipv4_addrs_vtnet10=\"10.4.0.1/24\"\n";
        let root = fake_root(&[(RC_CONF, old)], &[]);
        let config = from_text("eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\n");
        let out = testing::render(&STACK, &config, root.path());
        let text = written(&out, RC_CONF).unwrap();
        let d = common::DISABLED;
        let want = format!(
            "ifconfig_vtnet0=\"inet 10.0.0.5 netmask 255.255.255.0\" # osconf\n{d}ifconfig_vtnet0_alias0=\"inet 10.1.0.1/32\"\n{d}ifconfig_vtnet0_name=\"net0\"\n{d}ipv4_addrs_vtnet0=\"10.2.0.1/24\"\nifconfig_vtnet1_alias0=\"inet 10.3.0.1/32\"\nipv4_addrs_vtnet10=\"10.4.0.1/24\"\n"
        );
        assert!(text.starts_with(&want), "{text}");
        assert!(
            out.notes
                .iter()
                .any(|n| n.contains("ifconfig_vtnet0_alias0, ifconfig_vtnet0_name, ipv4_addrs_vtnet0")),
            "{:?}",
            out.notes
        );
    }

    /// With NICs but no host name, the host name osconf set before stays.
    #[test]
    fn nics_without_hostname_keep_hostname() {
        let old = "sshd_enable=\"YES\"\nhostname=\"web1\" # osconf\nifconfig_vtnet0=\"DHCP\"\n";
        let root = fake_root(&[(RC_CONF, old)], &[]);
        let config = from_text("eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\n");
        let out = testing::render(&STACK, &config, root.path());
        let text = written(&out, RC_CONF).unwrap();
        assert!(text.contains("\nhostname=\"web1\" # osconf\n"), "{text}");
    }

    /// Without a NIC only the host name changes: the interfaces osconf set before stay.
    #[test]
    fn hostname_without_nic_keeps_interfaces() {
        let old = "sshd_enable=\"YES\"\nhostname=\"old\" # osconf\nifconfig_vtnet0=\"inet 10.0.0.5 netmask 255.255.255.0\" # osconf\ndefaultrouter=\"10.0.0.1\" # osconf\n";
        let root = fake_root(&[(RC_CONF, old)], &[]);
        let config = from_text("hostname=web1\n");
        let out = testing::render(&STACK, &config, root.path());
        assert_eq!(
            written(&out, RC_CONF),
            Some(old.replace("\"old\"", "\"web1\"").as_str())
        );
        assert_eq!(out.ops.len(), 1, "{:?}", out.ops);
    }
}
