//! `openwrt`: OpenWrt 23's netifd — UCI sections in /etc/config/network (`config interface` per
//! NIC with `option device`, `config route` per route) and the host name in /etc/config/system.
//!
//! `uci commit` rewrites these files without comments, so osconf marks what it owns with an option
//! netifd ignores, `option osconf 'ethN'`, which survives. A NIC takes over the logical interface
//! that already used its device (usually `lan` or `wan`), so firewall zones keep applying; other
//! IPv4 interfaces on that device get `option auto '0'`. netifd cannot pick a device by MAC
//! (`config device`'s `macaddr` sets one), so os.conf's ethN is the device name, as the plan says.
//! Name servers go to the primary interface's `list dns`; with no NIC in os.conf, to dnsmasq's
//! `list server` in /etc/config/dhcp.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::{Input, Rendered, Stack};
use crate::model::Nic;
use crate::plan::FileOp;
use crate::system::{self, System};

pub const STACK: Stack = Stack {
    name: "openwrt",
    systems: "OpenWrt 21.02+/23.05 (netifd, UCI)",
    detect,
    network,
    host,
    // procd keeps no state osconf can read: a live run configures the NICs itself.
    services: &[],
    activate: super::common::activate::none,
    network_files: &[NETWORK],
};

const NETWORK: &str = "/etc/config/network";
const SYSTEM: &str = "/etc/config/system";
const DHCP: &str = "/etc/config/dhcp";
const MARK_OPTION: &str = "osconf";

fn detect(sys: &System) -> system::Result<Option<String>> {
    Ok(if sys.exists("/etc/openwrt_release")? {
        Some("/etc/openwrt_release exists".into())
    } else {
        (sys.os.id == "openwrt").then(|| "os-release ID=openwrt".into())
    })
}

fn host(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    if let Some(name) = &input.config.hostname {
        let old = input.sys.read_text(SYSTEM)?.unwrap_or_default();
        out.ops.push(FileOp::write(SYSTEM, set_hostname(&old, name)));
    }
    out.add(dnsmasq_servers(input)?);
    Ok(out)
}

/// True for dnsmasq's plain upstream servers (`list server '1.1.1.1'`), not the per-domain ones
/// (`/lan/10.0.0.1`).
fn is_plain_server(line: &str) -> bool {
    let w = words(line);
    w.len() >= 3 && w[0] == "list" && w[1] == "server" && !w[2].contains('/')
}

/// DNS without a NIC in os.conf: the network configuration, which holds the servers per interface,
/// is left alone, so the servers become dnsmasq's upstream servers, replacing its plain `list server`
/// entries, in the `config dnsmasq` section marked `option osconf 'dns'`. When os.conf gives NICs
/// again the primary interface carries the servers, and a marked section loses its servers and mark.
fn dnsmasq_servers(input: &Input) -> system::Result<Rendered> {
    let config = input.config;
    let mut out = Rendered::default();
    if config.nameservers.is_empty() {
        return Ok(out);
    }
    let no_nic = config.nics.is_empty();
    let old = input.sys.read_text(DHCP)?.unwrap_or_default();
    let (head, mut sections) = parse(&old);
    let Some(section) = sections.iter_mut().find(|s| s.kind == "dnsmasq") else {
        if no_nic {
            out.notes.push(format!(
                "DNS: os.conf gives no NIC and {DHCP} has no dnsmasq section: the servers are written nowhere"
            ));
        }
        return Ok(out);
    };
    if !no_nic && section.marked().is_none() {
        return Ok(out);
    }
    section.lines.retain(|l| !is_plain_server(l));
    section.remove_option(MARK_OPTION);
    if no_nic {
        section.push("option", MARK_OPTION, "dns");
        for server in &config.nameservers {
            section.push("list", "server", server);
        }
        out.notes.push(format!(
            "DNS: os.conf gives no NIC, so {NETWORK} is left as it is and the servers go to dnsmasq's list server in {DHCP}; servers an interface names (list dns) still apply"
        ));
    }
    out.ops.push(FileOp::write(DHCP, unparse(&head, &sections)));
    Ok(out)
}

/// One UCI section: its `config` line, then its option lines (with any blank lines after it).
#[derive(Debug, Clone)]
struct Section {
    kind: String,
    name: Option<String>,
    lines: Vec<String>,
}

impl Section {
    fn new(kind: &str, name: Option<&str>) -> Section {
        let header = match name {
            Some(n) => format!("config {kind} '{n}'"),
            None => format!("config {kind}"),
        };
        // The blank line uci itself writes after every section.
        Section {
            kind: kind.into(),
            name: name.map(Into::into),
            lines: vec![header, String::new()],
        }
    }

    fn values(&self, verb: &str, key: &str) -> Vec<String> {
        self.lines
            .iter()
            .map(|l| words(l))
            .filter(|w| w.len() >= 3 && w[0] == verb && w[1] == key)
            .map(|w| w[2].clone())
            .collect()
    }

    fn option(&self, key: &str) -> Option<String> {
        self.values("option", key).pop()
    }

    /// Adds a line after the last non-blank one.
    fn push(&mut self, verb: &str, key: &str, value: impl std::fmt::Display) {
        let end = self
            .lines
            .iter()
            .rposition(|l| !l.trim().is_empty())
            .map_or(0, |i| i + 1);
        self.lines.insert(end, format!("\t{verb} {key} '{value}'"));
    }

    /// Replaces every `option key` line with one (placed where the first stood, else at the end).
    fn set_option(&mut self, key: &str, value: &str) {
        let is_key = |l: &String| {
            let w = words(l);
            w.len() >= 2 && w[0] == "option" && w[1] == key
        };
        match self.lines.iter().position(is_key) {
            Some(i) => {
                self.lines[i] = format!("\toption {key} '{value}'");
                let mut n = 0;
                self.lines.retain(|l| {
                    !(is_key(l) && {
                        n += 1;
                        n > 1
                    })
                });
            }
            None => self.push("option", key, value),
        }
    }

    /// Drops every `option key` line.
    fn remove_option(&mut self, key: &str) {
        self.lines.retain(|l| {
            let w = words(l);
            !(w.len() >= 2 && w[0] == "option" && w[1] == key)
        });
    }

    /// Drops `list key 'value'` lines.
    fn remove_list_value(&mut self, key: &str, value: &str) {
        self.lines.retain(|l| {
            let w = words(l);
            !(w.len() >= 3 && w[0] == "list" && w[1] == key && w[2] == value)
        });
    }

    fn marked(&self) -> Option<String> {
        self.option(MARK_OPTION)
    }
}

/// Splits a UCI line into words, honouring '…' and "…" quoting; a `#` outside quotes ends it.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.get_or_insert_default().push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.get_or_insert_default();
            }
            (None, '#') => break,
            (None, c) if c.is_whitespace() => out.extend(cur.take()),
            (None, c) => cur.get_or_insert_default().push(c),
        }
    }
    out.extend(cur);
    out
}

/// The file as lines before the first section, then its sections.
fn parse(text: &str) -> (Vec<String>, Vec<Section>) {
    let mut head = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    for line in text.lines() {
        let w = words(line);
        if w.first().is_some_and(|w| w == "config") && w.len() >= 2 {
            sections.push(Section {
                kind: w[1].clone(),
                name: w.get(2).cloned(),
                lines: vec![line.to_owned()],
            });
        } else if let Some(s) = sections.last_mut() {
            s.lines.push(line.to_owned());
        } else {
            head.push(line.to_owned());
        }
    }
    (head, sections)
}

fn unparse(head: &[String], sections: &[Section]) -> String {
    let mut out: String = head.iter().map(|l| format!("{l}\n")).collect();
    for s in sections {
        let last_line_blank = out.is_empty() || out == "\n" || out.ends_with("\n\n");
        if !last_line_blank {
            out.push('\n');
        }
        for l in &s.lines {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// The ports of every bridge device, by device name (the first section of a name counts, as in
/// netifd). Built once per pass: looking the bridge up for every interface made a file of many
/// sections take time quadratic in its size (24 s for 600 KB).
fn bridges(sections: &[Section]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for s in sections.iter().filter(|s| s.kind == "device") {
        if let Some(name) = s
            .option("name")
            .filter(|_| s.option("type").as_deref() == Some("bridge"))
        {
            out.entry(name).or_insert_with(|| s.values("list", "ports"));
        }
    }
    out
}

/// The devices an interface section uses: its `device` (or pre-21.02 `ifname`), and the ports of a
/// bridge device it names.
fn uses_device(iface: &Section, bridges: &BTreeMap<String, Vec<String>>, dev: &str) -> bool {
    let mut used: Vec<String> = iface.values("option", "device");
    used.extend(
        iface
            .values("option", "ifname")
            .iter()
            .flat_map(|v| v.split_whitespace().map(str::to_owned)),
    );
    used.iter()
        .any(|u| u == dev || bridges.get(u).is_some_and(|ports| ports.iter().any(|p| p == dev)))
}

/// An interface that carries IPv4 (a `dhcpv6` one does not race with a static IPv4 address).
fn is_ipv4(s: &Section) -> bool {
    s.kind == "interface"
        && s.option("proto").as_deref() != Some("dhcpv6")
        && s.name.as_deref() != Some("loopback")
}

fn network(input: &Input) -> system::Result<Rendered> {
    let config = input.config;
    let mut out = Rendered::default();
    out.notes.push(
        "netifd cannot match a NIC by MAC: os.conf's ethN is written as device ethN (--ifname renames)"
            .into(),
    );
    let old = input.sys.read_text(NETWORK)?.unwrap_or_default();
    let (head, mut sections) = parse(&old);
    let wanted: Vec<String> = config.nics.iter().map(Nic::name).collect();
    // Every route osconf wrote, and the interfaces it created (named after their NIC) for a NIC
    // that left os.conf: rewritten below. An interface it took over stays, as firewall zones name
    // it, but unmarked and down.
    sections.retain(|s| match s.marked() {
        Some(eth) => {
            s.kind == "interface" && (wanted.contains(&eth) || s.name.as_deref() != Some(eth.as_str()))
        }
        None => true,
    });
    for s in sections.iter_mut() {
        if let Some(eth) = s.marked().filter(|eth| !wanted.contains(eth)) {
            s.remove_option(MARK_OPTION);
            s.set_option("auto", "0");
            out.notes.push(format!(
                "{NETWORK}: {eth} left os.conf: interface '{}' kept for the firewall zones that name it, with auto '0'",
                s.name.clone().unwrap_or_default()
            ));
        }
    }

    let mut routes = Vec::new();
    for nic in &config.nics {
        let dev = input.ifname(nic);
        let bridged = bridges(&sections);
        let own = sections
            .iter()
            .position(|s| s.marked().as_deref() == Some(nic.name().as_str()))
            .or_else(|| {
                sections
                    .iter()
                    .position(|s| is_ipv4(s) && uses_device(s, &bridged, &dev))
            });
        let name = own
            .and_then(|i| sections[i].name.clone())
            .unwrap_or_else(|| nic.name());
        if own.is_some_and(|i| sections[i].marked().is_none()) {
            out.notes.push(format!(
                "{NETWORK}: interface '{name}' now configures {dev} from os.conf"
            ));
        }
        for s in sections.iter_mut() {
            if s.kind == "device"
                && s.option("type").as_deref() == Some("bridge")
                && s.values("list", "ports").contains(&dev)
            {
                s.remove_list_value("ports", &dev);
                out.notes.push(format!(
                    "{NETWORK}: {dev} left bridge {}",
                    s.option("name").unwrap_or_default()
                ));
            }
        }
        let bridged = bridges(&sections);
        let others: Vec<usize> = (0..sections.len())
            .filter(|&i| {
                let s = &sections[i];
                Some(i) != own
                    && s.marked().is_none()
                    && is_ipv4(s)
                    && uses_device(s, &bridged, &dev)
                    && s.option("auto").as_deref() != Some("0")
            })
            .collect();
        for i in others {
            let s = &mut sections[i];
            s.set_option("auto", "0");
            out.notes.push(format!(
                "{NETWORK}: interface '{}' also used {dev}: set auto '0'",
                s.name.clone().unwrap_or_default()
            ));
        }
        let section = interface(input, nic, &dev, &name);
        match own {
            Some(i) => sections[i] = section,
            None => sections.push(section),
        }
        routes.extend(route_sections(nic, &name));
    }
    sections.extend(routes);
    out.ops.push(FileOp::write(NETWORK, unparse(&head, &sections)));
    Ok(out)
}

fn interface(input: &Input, nic: &Nic, dev: &str, name: &str) -> Section {
    let mut s = Section::new("interface", Some(name));
    s.push("option", MARK_OPTION, nic.name());
    s.push("option", "device", dev);
    s.push("option", "proto", "static");
    s.push("option", "ipaddr", nic.address);
    s.push("option", "netmask", nic.netmask());
    // An on-link default gateway goes in a route with `onlink`: netifd would reject it here.
    if let Some(gw) = nic.default_gateway.filter(|&gw| !nic.is_on_link(gw)) {
        s.push("option", "gateway", gw);
    }
    if input.config.primary_nic() == Some(nic) {
        for server in &input.config.nameservers {
            s.push("list", "dns", server);
        }
    }
    s
}

fn route_sections(nic: &Nic, iface: &str) -> Vec<Section> {
    let default = nic
        .default_gateway
        .filter(|&gw| nic.is_on_link(gw))
        .map(|gw| (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, gw));
    let routes = nic.routes.iter().map(|r| (r.dest.addr, r.dest.netmask(), r.via));
    default
        .into_iter()
        .chain(routes)
        .map(|(target, netmask, gw)| {
            let mut s = Section::new("route", None);
            s.push("option", MARK_OPTION, nic.name());
            s.push("option", "interface", iface);
            s.push("option", "target", target);
            s.push("option", "netmask", netmask);
            s.push("option", "gateway", gw);
            if nic.is_on_link(gw) {
                s.push("option", "onlink", "1");
            }
            s
        })
        .collect()
}

/// /etc/config/system: `option hostname` in the `config system` section (added if missing).
fn set_hostname(old: &str, name: &str) -> String {
    let (head, mut sections) = parse(old);
    match sections.iter_mut().find(|s| s.kind == "system") {
        Some(s) => s.set_option("hostname", name),
        None => {
            let mut s = Section::new("system", None);
            s.push("option", "hostname", name);
            sections.insert(0, s);
        }
    }
    unparse(&head, &sections)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::common::testing::{self, example, fake_root, from_text, written};

    /// os.conf's eth0 alone (10.0.0.5/24) rendered over /etc/config/network holding `old`.
    fn eth0_over(old: &str) -> Rendered {
        let root = fake_root(&[(NETWORK, old)], &[]);
        let config = from_text("eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\n");
        testing::render(&STACK, &config, root.path())
    }

    #[test]
    fn words_and_quotes() {
        assert_eq!(
            words("\toption ipaddr '10.0.0.1' # c"),
            ["option", "ipaddr", "10.0.0.1"]
        );
        assert_eq!(words("config interface \"wan\""), ["config", "interface", "wan"]);
        assert_eq!(words("\tlist dns ''"), ["list", "dns", ""]);
    }

    /// Without a NIC the servers become dnsmasq's (per-domain servers stay); with NICs again they
    /// leave dnsmasq for the primary interface, and /etc/config/network is written only then.
    #[test]
    fn dns_without_nic_goes_to_dnsmasq_and_back() {
        let dhcp = "\nconfig dnsmasq\n\toption domain 'lan'\n\tlist server '9.9.9.9'\n\tlist server '/corp/10.0.0.1'\n\nconfig dhcp 'lan'\n\toption interface 'lan'\n";
        let root = fake_root(&[(DHCP, dhcp), (NETWORK, "")], &[]);
        let render = |config| testing::render(&STACK, &config, root.path());
        let out = render(from_text("hostname=web1\ndns_nameserver=\"1.1.1.1 8.8.8.8\"\n"));
        let want = "\nconfig dnsmasq\n\toption domain 'lan'\n\tlist server '/corp/10.0.0.1'\n\toption osconf 'dns'\n\tlist server '1.1.1.1'\n\tlist server '8.8.8.8'\n\nconfig dhcp 'lan'\n\toption interface 'lan'\n";
        assert_eq!(written(&out, DHCP), Some(want));
        assert!(out.ops.iter().all(|op| op.path() != NETWORK), "{:?}", out.ops);
        std::fs::write(root.path().join("etc/config/dhcp"), want).unwrap();
        let out = render(example("vpc"));
        let back = "\nconfig dnsmasq\n\toption domain 'lan'\n\tlist server '/corp/10.0.0.1'\n\nconfig dhcp 'lan'\n\toption interface 'lan'\n";
        assert_eq!(written(&out, DHCP), Some(back));
        assert!(written(&out, NETWORK).is_some_and(|t| t.contains("list dns '7.7.7.7'")));
    }

    /// Other IPv4 interfaces on the NIC's device are turned off; a DHCPv6 one and one already off
    /// stay as they are.
    #[test]
    fn other_ipv4_interfaces_on_the_device_get_auto_0() {
        let old = "\nconfig interface 'wan'\n\toption device 'eth0'\n\toption proto 'dhcp'\n\nconfig interface 'mgmt'\n\toption device 'eth0'\n\toption proto 'static'\n\toption ipaddr '192.168.9.1'\n\nconfig interface 'wan6'\n\toption device 'eth0'\n\toption proto 'dhcpv6'\n\nconfig interface 'spare'\n\toption device 'eth0'\n\toption proto 'dhcp'\n\toption auto '0'\n\nconfig interface 'lan'\n\toption device 'eth3'\n\toption proto 'dhcp'\n";
        let out = eth0_over(old);
        let text = written(&out, NETWORK).unwrap();
        let want = "\nconfig interface 'wan'\n\toption osconf 'eth0'\n\toption device 'eth0'\n\toption proto 'static'\n\toption ipaddr '10.0.0.5'\n\toption netmask '255.255.255.0'\n\nconfig interface 'mgmt'\n\toption device 'eth0'\n\toption proto 'static'\n\toption ipaddr '192.168.9.1'\n\toption auto '0'\n\nconfig interface 'wan6'\n\toption device 'eth0'\n\toption proto 'dhcpv6'\n\nconfig interface 'spare'\n\toption device 'eth0'\n\toption proto 'dhcp'\n\toption auto '0'\n\nconfig interface 'lan'\n\toption device 'eth3'\n\toption proto 'dhcp'\n";
        assert_eq!(text, want);
        assert!(
            out.notes.iter().any(|n| n.contains("'mgmt' also used eth0")),
            "{:?}",
            out.notes
        );
    }

    /// A NIC that leaves os.conf: the interface osconf created for it goes, the one it took over
    /// (which firewall zones name) stays, unmarked and with auto '0'; osconf's routes go.
    #[test]
    fn nic_leaving_keeps_taken_over_interface() {
        let old = "\nconfig interface 'wan'\n\toption osconf 'eth1'\n\toption device 'eth1'\n\toption proto 'static'\n\toption ipaddr '42.120.74.105'\n\toption netmask '255.255.255.0'\n\nconfig interface 'eth2'\n\toption osconf 'eth2'\n\toption device 'eth2'\n\toption proto 'static'\n\nconfig route\n\toption osconf 'eth1'\n\toption interface 'wan'\n\toption target '0.0.0.0'\n";
        let out = eth0_over(old);
        let text = written(&out, NETWORK).unwrap();
        assert!(
            text.starts_with("\nconfig interface 'wan'\n\toption device 'eth1'\n\toption proto 'static'\n\toption ipaddr '42.120.74.105'\n\toption netmask '255.255.255.0'\n\toption auto '0'\n\n"),
            "{text}"
        );
        assert!(
            !text.contains("'eth2'") && !text.contains("config route"),
            "{text}"
        );
        assert!(!text.contains("osconf 'eth1'"), "{text}");
    }

    #[test]
    fn hostname_replaced_in_system_section() {
        let old = "\nconfig system\n\toption hostname 'OpenWrt'\n\toption timezone 'UTC'\n\nconfig timeserver 'ntp'\n\tlist server '0.openwrt.pool.ntp.org'\n";
        let want = "\nconfig system\n\toption hostname 'host1'\n\toption timezone 'UTC'\n\nconfig timeserver 'ntp'\n\tlist server '0.openwrt.pool.ntp.org'\n";
        assert_eq!(set_hostname(old, "host1"), want);
        assert_eq!(set_hostname(want, "host1"), want, "re-applying changes nothing");
        assert_eq!(set_hostname("", "h"), "config system\n\toption hostname 'h'\n\n");
    }

    /// 20 000 bridges, each with an interface on it: looking each interface's bridge up among all
    /// sections was quadratic (24 s for 4 000 in a debug build); this test would run for many
    /// minutes if it came back.
    #[test]
    fn regression_many_bridges_take_linear_time() {
        let mut old = String::new();
        for i in 0..20_000 {
            old.push_str(&format!(
                "config device\n\toption name 'br{i}'\n\toption type 'bridge'\n\tlist ports 'eth9'\n\n"
            ));
            old.push_str(&format!(
                "config interface 'x{i}'\n\toption device 'br{i}'\n\toption proto 'dhcp'\n\n"
            ));
        }
        let root = fake_root(&[(NETWORK, &old)], &[]);
        let out = testing::render(&STACK, &example("classic"), root.path());
        assert!(written(&out, NETWORK).is_some_and(|t| t.contains("option osconf 'eth1'")));
    }
}
