//! `networkd`: systemd-networkd's `10-osconf-ethN.network` and `.link` files in /etc/systemd/network,
//! one pair per NIC, matched by MAC. Also what netplan (which renders to networkd) shares with it:
//! DNS placement and which foreign definitions are for one of os.conf's NICs. Never edits a foreign
//! file: it is disabled whole or left.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::common::disable::{DISABLED_SUFFIX, disable};
use super::common::{self, HEADER, dns::ResolvOwner, glob, ini};
use super::{Input, Rendered, Service, Stack};
use crate::model::{Config, Nic};
use crate::plan::FileOp;
use crate::system::{self, System};

pub const STACK: Stack = Stack {
    name: "networkd",
    systems: "Arch, Debian and others running systemd-networkd, minimal systemd images",
    detect,
    network,
    host,
    services: &[NETWORKD],
    activate: common::activate::networkd,
    network_files: &["/etc/systemd/network/"],
};

pub(super) const NETWORKD: Service = Service {
    name: "systemd-networkd",
    ran: None,
    per_nic: None,
};

const DIR: &str = "/etc/systemd/network";

/// Where networkd reads vendor `.network` files; a file of the same name in /etc hides them.
const VENDOR_DIRS: [&str; 3] = [
    "/usr/local/lib/systemd/network",
    "/usr/lib/systemd/network",
    "/lib/systemd/network",
];

fn detect(sys: &System) -> system::Result<Option<String>> {
    Ok(sys
        .systemd_unit_enabled("systemd-networkd.service")?
        .then(|| "systemd-networkd.service is enabled".to_owned()))
}

fn network(input: &Input) -> system::Result<Rendered> {
    let config = input.config;
    let mut out = Rendered::default();
    for nic in &config.nics {
        let name = input.ifname(nic);
        let base = format!("{DIR}/{}", file_stem(&name));
        let network = format!("{base}.network");
        let dns = config.nameservers_for(nic);
        out.ops
            .push(FileOp::write(&network, network_text(nic, &name, dns)));
        // No .link renames the NIC: the .network file finds it by MAC whatever its name, and a
        // rename into the kernel's own ethN names can race with a NIC the kernel named so. A .link
        // osconf wrote before goes with the other stale files.
    }
    out.ops.extend(common::stale_own_files(input.sys, DIR, &out.ops)?);
    out.add(neutralise_foreign(input)?);
    Ok(out)
}

fn host(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    out.ops.extend(common::hostname_file(input, "/etc/hostname"));
    out.add(dns(
        input.config,
        input.sys,
        "the primary NIC's DNS= in /etc/systemd/network",
    )?);
    Ok(out)
}

/// `10-osconf-NAME`: sorts before the usual `20-wired`, `50-dhcp` and `80-*` vendor files.
fn file_stem(ifname: &str) -> String {
    format!("10-osconf-{ifname}")
}

fn network_text(nic: &Nic, name: &str, dns: &[IpAddr]) -> String {
    let mut t = String::from(HEADER);
    t.push_str("[Match]\n");
    match nic.mac {
        Some(mac) => {
            let _ = writeln!(t, "MACAddress={mac}");
        }
        None => {
            let _ = writeln!(t, "Name={name}");
        }
    }
    t.push_str("\n[Network]\nDHCP=no\n");
    for server in dns {
        let _ = writeln!(t, "DNS={server}");
    }
    let _ = write!(t, "\n[Address]\nAddress={}/{}\n", nic.address, nic.prefix_len);
    let on_link = |gw| {
        if nic.is_on_link(gw) {
            "GatewayOnLink=yes\n"
        } else {
            ""
        }
    };
    // The one default route; every other NIC only gets its destinations.
    if let Some(gw) = nic.default_gateway {
        let _ = write!(t, "\n[Route]\nGateway={gw}\n{}", on_link(gw));
    }
    for r in &nic.routes {
        let _ = write!(
            t,
            "\n[Route]\nDestination={}\nGateway={}\n{}",
            r.dest,
            r.via,
            on_link(r.via)
        );
    }
    t
}

/// DNS for the stacks that hand servers to systemd-networkd (networkd, netplan). When
/// /etc/resolv.conf is systemd-resolved's, the per-link servers `where_` are all resolved needs:
/// a global drop-in would be a second copy of the same servers that outlives the NIC's file and that
/// a later change of the stack's file would not update (so osconf's drop-in from an os.conf without
/// NICs goes). Otherwise networkd's servers reach nobody, so resolv.conf (or resolvconf) gets them
/// as on any system; so does resolved's drop-in when os.conf gives no NIC to carry them.
pub fn dns(config: &Config, sys: &System, where_: &str) -> system::Result<Rendered> {
    let servers = &config.nameservers;
    if servers.is_empty() {
        return Ok(Rendered::default());
    }
    if config.nics.is_empty() {
        return common::dns::without_nic(servers, sys);
    }
    if common::dns::resolv_owner(sys)? != ResolvOwner::Resolved {
        return common::dns::render(servers, sys);
    }
    Ok(Rendered {
        ops: common::remove_own(sys, common::dns::RESOLVED_DROP_IN)?
            .into_iter()
            .collect(),
        notes: vec![format!(
            "DNS: /etc/resolv.conf links to systemd-resolved, which takes the servers from {where_}; no global resolved.conf drop-in"
        )],
    })
}

/// True when a foreign definition that matches by interface name (a glob) may be for `nic`: it
/// names what the NIC is called now or will be (`ifname`, os.conf's `ethN`), or is a predictable
/// Ethernet name (`en*`) — the NIC's kernel name, which offline only its MAC could tell, and
/// os.conf lists every NIC of the instance.
pub fn may_be_nic_name(pattern: &str, nic: &Nic, ifname: &str) -> bool {
    glob::matches(pattern, ifname, false)
        || glob::matches(pattern, &nic.name(), false)
        || pattern.starts_with("en")
}

/// The `[Match]` conditions of a foreign .network file that tell NICs apart.
#[derive(Debug, Default)]
struct MatchSection {
    /// `Name=` globs, with whether the list is inverted (`!`).
    names: Option<(bool, Vec<String>)>,
    /// `MACAddress=` and `PermanentMACAddress=`, lower case.
    macs: Option<Vec<String>>,
    types: Option<(bool, Vec<String>)>,
    /// Conditions no physical Ethernet NIC meets (`Kind=`, Wi-Fi ones).
    not_ethernet: bool,
}

impl MatchSection {
    fn parse(text: &str) -> MatchSection {
        let mut m = MatchSection::default();
        for (_, key, value) in ini::entries(text).filter(|(s, _, _)| *s == "Match") {
            let list = |v: &str| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
            let inverted = |v: &str| match v.strip_prefix('!') {
                Some(rest) => (true, list(rest)),
                None => (false, list(v)),
            };
            match key {
                "Name" if value.is_empty() => m.names = None,
                "Name" => merge(&mut m.names, inverted(value)),
                "Type" if value.is_empty() => m.types = None,
                "Type" => merge(&mut m.types, inverted(value)),
                "MACAddress" | "PermanentMACAddress" if value.is_empty() => m.macs = None,
                "MACAddress" | "PermanentMACAddress" => {
                    let macs = m.macs.get_or_insert_with(Vec::new);
                    macs.extend(list(&value.to_ascii_lowercase()));
                }
                "Kind" | "WLANInterfaceType" | "SSID" | "BSSID" if !value.is_empty() => {
                    m.not_ethernet = true;
                }
                _ => {}
            }
        }
        m
    }

    /// True when networkd could apply this section to `nic`. Conditions osconf cannot check
    /// offline (driver, path, host) are taken to hold; a MAC condition never holds for a NIC
    /// os.conf gives without one.
    fn may_match(&self, nic: &Nic, ifname: &str) -> bool {
        // A plain list may match a name the NIC had before osconf renamed it; an inverted one
        // excludes only what it names, so it is tested against the names the NIC is known to have.
        let names = self.names.as_ref().is_none_or(|(inv, globs)| match inv {
            false => globs.iter().any(|g| may_be_nic_name(g, nic, ifname)),
            true => [ifname, &nic.name()]
                .iter()
                .any(|n| !globs.iter().any(|g| glob::matches(g, n, false))),
        });
        let macs = self
            .macs
            .as_ref()
            .is_none_or(|macs| nic.mac.is_some_and(|mac| macs.contains(&mac.to_string())));
        let types = self
            .types
            .as_ref()
            .is_none_or(|(inv, t)| t.iter().any(|t| t == "ether") != *inv);
        names && macs && types && !self.not_ethernet
    }
}

fn merge(slot: &mut Option<(bool, Vec<String>)>, (inv, items): (bool, Vec<String>)) {
    match slot {
        Some((_, old)) => old.extend(items),
        None => *slot = Some((inv, items)),
    }
}

/// A foreign `.network` file that networkd would read: its name, the path of the copy that
/// counts, and its content.
struct Foreign {
    name: String,
    path: String,
    bytes: Vec<u8>,
}

/// Foreign `.network` files that networkd would read, by name. A file masked by a /dev/null link
/// reads as empty and is left out with the empty ones.
fn foreign_network_files(sys: &System) -> system::Result<Vec<Foreign>> {
    let mut names: Vec<(String, String)> = Vec::new();
    for dir in std::iter::once(DIR).chain(VENDOR_DIRS) {
        for name in sys.list(dir)?.into_iter().filter(|n| n.ends_with(".network")) {
            if !names.iter().any(|(n, _)| *n == name) {
                let path = format!("{dir}/{name}");
                names.push((name, path));
            }
        }
    }
    names.sort();
    let mut found = Vec::new();
    for (name, path) in names {
        let bytes = sys.read(&path)?.unwrap_or_default();
        if !bytes.trim_ascii().is_empty() && !bytes.starts_with(HEADER.as_bytes()) {
            found.push(Foreign { name, path, bytes });
        }
    }
    Ok(found)
}

/// Foreign `.network` files that match one of our NICs. networkd uses the lexically first file
/// that matches a link, so one sorting before ours is disabled (renamed in /etc, masked with a
/// /dev/null link when it is a vendor file), one sorting after is only reported.
fn neutralise_foreign(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    for Foreign { name, path, bytes } in foreign_network_files(input.sys)? {
        let section = MatchSection::parse(&String::from_utf8_lossy(&bytes));
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for nic in &input.config.nics {
            let ifname = input.ifname(nic);
            if section.may_match(nic, &ifname) {
                let ours = format!("{}.network", file_stem(&ifname));
                if name < ours { &mut before } else { &mut after }.push(nic.name());
            }
        }
        if !before.is_empty() {
            if path.starts_with(DIR) {
                out.ops.extend(disable(&path, &bytes));
                out.notes.push(format!(
                    "{path} matches {} and sorts before osconf's file, so networkd would use it: renamed to {name}{DISABLED_SUFFIX}",
                    before.join(", ")
                ));
            } else {
                let mask = format!("{DIR}/{name}");
                out.ops.push(FileOp::Symlink {
                    path: mask.clone(),
                    target: "/dev/null".into(),
                });
                out.notes.push(format!(
                    "{path} matches {} and sorts before osconf's file: masked by {mask} -> /dev/null",
                    before.join(", ")
                ));
            }
        } else if !after.is_empty() {
            out.notes.push(format!(
                "{path} also matches {}; networkd ignores it for them, since osconf's 10-osconf-* files sort first",
                after.join(", ")
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::common::testing::{self, MAC0, fake_root, nic, render_over};

    #[test]
    fn match_sections() {
        let eth0 = nic(0, Some(MAC0));
        let cases = [
            ("[Match]\nName=e*\n[Network]\nDHCP=yes\n", true),
            ("[Match]\nName=eth1 wl*\n", false),
            ("[Match]\nName=ens3\n", true),
            ("[Match]\nName=!eth0\n", false),
            ("[Match]\nName=!en*\n", true),
            ("[Match]\nName=!e*\n", false),
            ("[Match]\nMACAddress=00:8c:fa:5e:14:99\nMACAddress=\n", true),
            ("[Match]\nMACAddress=00:8C:FA:5E:14:23\n", true),
            ("[Match]\nMACAddress=00:8c:fa:5e:14:99\n", false),
            ("[Match]\nType=wlan\n", false),
            ("[Match]\nKind=bridge\n", false),
            ("[Match]\nName=e*\nName=\nName=wl*\n", false),
            ("[Network]\nDHCP=yes\n", true),
            ("[Match]\nDriver=virtio_net\n", true),
        ];
        for (text, want) in cases {
            assert_eq!(MatchSection::parse(text).may_match(&eth0, "eth0"), want, "{text}");
        }
        let no_mac = nic(0, None);
        assert!(!MatchSection::parse("[Match]\nMACAddress=00:8c:fa:5e:14:23\n").may_match(&no_mac, "eth0"));
    }

    #[test]
    fn foreign_network_files_disabled_masked_or_reported() {
        let (ops, notes) = render_over(
            &STACK,
            vec![nic(0, Some(MAC0))],
            &[
                (
                    "/etc/systemd/network/05-dhcp.network",
                    "[Match]\nName=e*\n[Network]\nDHCP=yes\n",
                ),
                (
                    "/etc/systemd/network/06-wifi.network",
                    "[Match]\nType=wlan\n[Network]\nDHCP=yes\n",
                ),
                ("/etc/systemd/network/07-eth1.network", "[Match]\nName=eth1\n"),
                (
                    "/usr/lib/systemd/network/01-vendor.network",
                    "[Match]\nMACAddress=00:8c:fa:5e:14:23\n",
                ),
                ("/usr/lib/systemd/network/02-masked.network", "[Match]\nName=*\n"),
                ("/etc/systemd/network/02-masked.network", "-> /dev/null"),
                ("/etc/systemd/network/all-eth.network", "[Match]\nName=e*\n"),
                ("/etc/cloud/cloud.cfg.d/05_logging.cfg", "_log: []\n"),
            ],
        );
        let want = [
            "write /etc/systemd/network/10-osconf-eth0.network",
            "link /etc/systemd/network/01-vendor.network -> /dev/null",
            "write /etc/systemd/network/05-dhcp.network.osconf-disabled",
            "remove /etc/systemd/network/05-dhcp.network",
            "write /etc/cloud/cloud.cfg.d/99-disable-network-config.cfg",
        ];
        assert_eq!(ops, want);
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("/etc/systemd/network/all-eth.network also matches eth0"))
        );
        assert_eq!(notes.len(), 4, "{notes:?}");
    }

    /// Without a NIC, resolved gets the servers in osconf's drop-in; with NICs again the drop-in goes.
    #[test]
    fn resolved_drop_in_without_nic_only() {
        use crate::render::common::testing::{example, from_text};
        let stub = [("/etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf")];
        let root = fake_root(&[], &stub);
        let render = |config| testing::render(&STACK, &config, root.path());
        let out = render(from_text("dns_nameserver=1.1.1.1\n"));
        let drop_in = common::dns::RESOLVED_DROP_IN;
        let paths: Vec<&str> = out.ops.iter().map(FileOp::path).collect();
        assert_eq!(paths, [drop_in]);
        let host = root.path().join(drop_in.trim_start_matches('/'));
        std::fs::create_dir_all(host.parent().unwrap()).unwrap();
        std::fs::write(&host, format!("{HEADER}[Resolve]\nDNS=1.1.1.1\n")).unwrap();
        let out = render(example("vpc"));
        assert!(out.ops.contains(&FileOp::Remove { path: drop_in.into() }));
    }
}
