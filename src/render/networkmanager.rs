//! `networkmanager`: NetworkManager keyfiles (`/etc/NetworkManager/system-connections/osconf-ethN
//! .nmconnection`, mode 0600) for RHEL 9, Fedora and desktops. Other profiles for the same NIC are
//! disabled in place (`autoconnect=false`, `ONBOOT=no`), never deleted; this module never writes
//! anything NetworkManager would refuse to load (a keyfile readable by others is ignored).

use std::fmt::Write as _;
use std::net::IpAddr;

use super::common::shellvars::shell_value;
use super::common::{self, HEADER};
use super::{Input, Rendered, Stack};
use crate::model::{Mac, Nic};
use crate::plan::FileOp;
use crate::system::System;

pub const STACK: Stack = Stack {
    name: "networkmanager",
    systems: "RHEL/Rocky/AlmaLinux 9+, Fedora, Alibaba Cloud Linux 3 and desktops with NetworkManager keyfiles",
    detect,
    network,
    host,
};

const CONNECTIONS: &str = "/etc/NetworkManager/system-connections";
const IFCFG_DIR: &str = "/etc/sysconfig/network-scripts";
/// NetworkManager's global DNS, for an os.conf with name servers but no NIC.
const GLOBAL_DNS: &str = "/etc/NetworkManager/conf.d/90-osconf-dns.conf";

/// Above cloud-init's 120 and the installers' 0 or -999: should a disabled profile be re-enabled by
/// hand, osconf's still wins. 999 is NetworkManager's maximum.
const PRIORITY: i32 = 999;

fn detect(sys: &System) -> Option<String> {
    let enabled = if sys.systemd_unit_enabled("NetworkManager.service") {
        "NetworkManager.service is enabled"
    } else if sys
        .list("/etc/runlevels")
        .iter()
        .any(|level| sys.exists(&format!("/etc/runlevels/{level}/NetworkManager")))
    {
        "NetworkManager is in an OpenRC runlevel"
    } else {
        return None;
    };
    // Debian's NetworkManager leaves the NICs of /etc/network/interfaces to ifupdown unless told
    // otherwise: there ifupdown is the stack to write for.
    if ifupdown_has_nic(sys) && nm_setting(sys, "ifupdown", "managed").as_deref() != Some("true") {
        return None;
    }
    Some(enabled.to_owned())
}

/// True when /etc/network/interfaces configures an interface other than the loopback.
fn ifupdown_has_nic(sys: &System) -> bool {
    let text = sys.read_text("/etc/network/interfaces").unwrap_or_default();
    text.lines().any(|line| {
        let mut words = line.split_whitespace();
        words.next() == Some("iface") && words.next().is_some_and(|name| name != "lo")
    })
}

fn network(input: &Input) -> Rendered {
    let config = input.config;
    let mut out = Rendered::default();
    for nic in &config.nics {
        let path = format!("{CONNECTIONS}/osconf-{}.nmconnection", nic.name());
        let dns = if config.primary_nic() == Some(nic) {
            config.nameservers.as_slice()
        } else {
            &[]
        };
        out.ops
            .push(FileOp::write_private(&path, keyfile(input, nic, dns)));
        if nic.mac.is_none() {
            out.notes.push(format!(
                "{}: no MAC in os.conf; osconf-{} matches the interface named {}",
                nic.name(),
                nic.name(),
                input.ifname(nic)
            ));
        }
    }
    out.ops
        .extend(common::stale_own_files(input.sys, CONNECTIONS, &out.ops));
    out.add(neutralise_keyfiles(input));
    out.add(neutralise_ifcfg(input));
    out
}

fn host(input: &Input) -> Rendered {
    let mut out = Rendered::default();
    out.ops.extend(common::hostname_file(input, "/etc/hostname"));
    out.add(dns(input));
    out
}

/// The keyfile of one NIC. The default route is the gateway of `address1` (or, when that gateway is
/// outside the subnet, an explicit `0.0.0.0/0` route flagged `onlink`); every other NIC says
/// `never-default=true` so that no second default route appears.
fn keyfile(input: &Input, nic: &Nic, dns: &[IpAddr]) -> String {
    let id = format!("osconf-{}", nic.name());
    let uuid_key = match nic.mac {
        Some(mac) => format!("mac:{mac}"),
        None => format!("name:{}", input.ifname(nic)),
    };
    let mut t = String::from(HEADER);
    let _ = writeln!(t, "[connection]\nid={id}\nuuid={}", uuid(&uuid_key));
    let _ = writeln!(
        t,
        "type=ethernet\nautoconnect=true\nautoconnect-priority={PRIORITY}"
    );
    if nic.mac.is_none() {
        let _ = writeln!(t, "interface-name={}", input.ifname(nic));
    }
    t.push_str("\n[ethernet]\n");
    if let Some(mac) = nic.mac {
        let _ = writeln!(t, "mac-address={}", mac.to_string().to_ascii_uppercase());
    }
    let _ = write!(
        t,
        "\n[ipv4]\nmethod=manual\naddress1={}/{}",
        nic.address, nic.prefix_len
    );
    match nic.default_gateway {
        Some(gw) if !nic.is_on_link(gw) => {
            let _ = writeln!(t, ",{gw}");
        }
        _ => t.push('\n'),
    }
    let default = nic
        .default_gateway
        .filter(|&gw| nic.is_on_link(gw))
        .map(|gw| ("0.0.0.0/0".to_owned(), gw));
    let routes = nic.routes.iter().map(|r| (r.dest.to_string(), r.via));
    for (i, (dest, via)) in default.into_iter().chain(routes).enumerate() {
        let n = i + 1;
        let _ = writeln!(t, "route{n}={dest},{via}");
        if nic.is_on_link(via) {
            let _ = writeln!(t, "route{n}_options=onlink=true");
        }
    }
    let v4: Vec<String> = dns
        .iter()
        .filter(|a| a.is_ipv4())
        .map(|a| format!("{a};"))
        .collect();
    if !v4.is_empty() {
        let _ = writeln!(t, "dns={}\nignore-auto-dns=true", v4.concat());
    }
    if nic.default_gateway.is_none() {
        t.push_str("never-default=true\n");
    }
    // os.conf configures no IPv6: leave it to the kernel, as it was (NetworkManager refuses IPv6
    // name servers with method=ignore, so `render` notes them instead).
    t.push_str("\n[ipv6]\nmethod=ignore\n");
    t
}

/// A stable UUID for a NIC (RFC 9562 version 8: FNV-1a-128 of `key`, its halves mixed with
/// MurmurHash3's finaliser so that similar keys give unlike UUIDs): re-applying the same os.conf
/// writes the same keyfile, and no two NICs share one.
fn uuid(key: &str) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in "osconf-networkmanager:".bytes().chain(key.bytes()) {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    let fmix = |mut k: u64| {
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    };
    let hi = fmix((h >> 64) as u64 ^ h as u64);
    let lo = fmix(h as u64 ^ hi);
    let mut b = ((u128::from(hi) << 64) | u128::from(lo)).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The NIC of os.conf a profile is for, by MAC or by interface name.
fn nic_of<'a>(input: &'a Input, mac: Option<Mac>, name: Option<&str>) -> Option<&'a Nic> {
    input
        .config
        .nics
        .iter()
        .find(|nic| (mac.is_some() && nic.mac == mac) || name.is_some_and(|n| n == input.ifname(nic)))
}

/// Files NetworkManager's keyfile plugin skips (editor and package-manager leftovers).
fn is_ignored_keyfile(name: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "~",
        ".swp",
        ".tmp",
        ".bak",
        ".orig",
        ".rej",
        ".rpmnew",
        ".rpmsave",
        ".rpmorig",
        ".dpkg-old",
        ".dpkg-new",
        ".dpkg-dist",
        ".dpkg-tmp",
        ".nmmeta",
    ];
    name.starts_with('.') || SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Sets `autoconnect=false` in every other Ethernet keyfile bound to one of os.conf's NICs (by
/// `mac-address` or `interface-name`), so that osconf's profile is the only one NetworkManager
/// starts on it. Used by `sysconfig` too on RHEL 8, where keyfiles compete with ifcfg files.
pub fn neutralise_keyfiles(input: &Input) -> Rendered {
    let mut out = Rendered::default();
    for name in input.sys.list(CONNECTIONS) {
        let path = format!("{CONNECTIONS}/{name}");
        let Some(bytes) = input.sys.read(&path) else {
            continue;
        };
        if is_ignored_keyfile(&name) || bytes.starts_with(HEADER.as_bytes()) {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        let get = |sections: &[&str], key| keyfile_value(&text, sections, key);
        let kind = get(&["connection"], "type").unwrap_or_default();
        if !matches!(kind.as_str(), "ethernet" | "802-3-ethernet") {
            continue;
        }
        if get(&["connection"], "autoconnect").is_some_and(|v| matches!(v.as_str(), "false" | "0")) {
            continue;
        }
        let mac = get(&["ethernet", "802-3-ethernet"], "mac-address").and_then(|m| parse_mac(&m));
        let ifname = get(&["connection"], "interface-name");
        let Some(nic) = nic_of(input, mac, ifname.as_deref()) else {
            continue;
        };
        out.ops
            .push(FileOp::write_private(&path, disable_autoconnect(&bytes)));
        out.notes.push(format!(
            "{path}: another profile for {}; disabled (autoconnect=false) so that osconf-{} wins",
            nic.name(),
            nic.name()
        ));
    }
    out
}

/// Sets `ONBOOT=no` in ifcfg files for one of os.conf's NICs: NetworkManager's ifcfg-rh plugin
/// (RHEL 8 and 9) and initscripts would otherwise still bring them up.
fn neutralise_ifcfg(input: &Input) -> Rendered {
    let mut out = Rendered::default();
    for name in input.sys.list(IFCFG_DIR) {
        let Some(suffix) = name.strip_prefix("ifcfg-") else {
            continue;
        };
        let path = format!("{IFCFG_DIR}/{name}");
        let Some(text) = input.sys.read_text(&path) else {
            continue;
        };
        if suffix == "lo" || is_ignored_keyfile(&name) {
            continue;
        }
        if shell_value(&text, "ONBOOT").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
            continue;
        }
        let device = shell_value(&text, "DEVICE").unwrap_or_else(|| suffix.to_owned());
        let mac = shell_value(&text, "HWADDR").and_then(|m| parse_mac(&m));
        let Some(nic) = nic_of(input, mac, Some(&device)) else {
            continue;
        };
        let vars = [("ONBOOT", Some("no".to_owned()))];
        out.ops.push(FileOp::write(
            &path,
            common::shellvars::set_shell_vars(&text, &vars),
        ));
        out.notes.push(format!(
            "{path}: ifcfg profile for {}; disabled (ONBOOT=no) so that osconf-{} wins",
            nic.name(),
            nic.name()
        ));
    }
    out
}

/// Where the name servers go. NetworkManager writes /etc/resolv.conf (or tells systemd-resolved)
/// from the connection's `dns=` each time it starts, so editing resolv.conf as well would be a
/// second writer of the same file; osconf edits it only where NetworkManager is told to keep out.
/// With no NIC in os.conf, NetworkManager's global DNS ([`GLOBAL_DNS`]) carries the servers instead;
/// with NICs that file goes, since it would override the connection's `dns=`.
fn dns(input: &Input) -> Rendered {
    let servers = &input.config.nameservers;
    let mut out = Rendered::default();
    if servers.is_empty() {
        return out;
    }
    let how = nm_resolver(input.sys);
    if input.config.nics.is_empty() {
        let Some(how) = how else {
            return common::dns::without_nic(servers, input.sys);
        };
        let list: Vec<String> = servers.iter().map(ToString::to_string).collect();
        let text = format!("{HEADER}[global-dns-domain-*]\nservers={}\n", list.join(","));
        out.ops.push(FileOp::write(GLOBAL_DNS, text));
        out.notes.push(format!(
            "DNS: os.conf gives no NIC, so the connection profiles are left as they are; {how} from the global DNS in {GLOBAL_DNS}, which overrides their dns="
        ));
        return out;
    }
    let ours = input
        .sys
        .read(GLOBAL_DNS)
        .is_some_and(|b| b.starts_with(HEADER.as_bytes()));
    if ours {
        out.ops.push(FileOp::Remove {
            path: GLOBAL_DNS.into(),
        });
    }
    let v6: Vec<String> = servers
        .iter()
        .filter(|a| a.is_ipv6())
        .map(ToString::to_string)
        .collect();
    if !v6.is_empty() {
        out.notes.push(format!(
            "DNS: IPv6 name server {} not in the keyfile: NetworkManager takes them only on an IPv6-configured connection",
            v6.join(", ")
        ));
    }
    let primary = input.config.primary_nic().map(Nic::name);
    match (how, primary) {
        (Some(how), Some(nic)) => out.notes.push(format!(
            "DNS: {how} from the dns= of osconf-{nic} when it starts; osconf does not edit resolv.conf"
        )),
        _ => {
            out.notes.push(
                "DNS: NetworkManager will not publish the servers here (dns=none or rc-manager=unmanaged)"
                    .into(),
            );
            out.add(common::dns::render(servers, input.sys));
        }
    }
    out
}

/// How NetworkManager publishes the connection's name servers on this system, or `None` when its
/// configuration keeps it away from the resolver.
fn nm_resolver(sys: &System) -> Option<&'static str> {
    use common::dns::ResolvOwner;
    let mode = nm_setting(sys, "main", "dns");
    let rc_manager = nm_setting(sys, "main", "rc-manager");
    if mode.as_deref() == Some("none") {
        return None;
    }
    match common::dns::resolv_owner(sys) {
        ResolvOwner::Resolved if matches!(mode.as_deref(), None | Some("systemd-resolved")) => {
            Some("NetworkManager passes the servers to systemd-resolved")
        }
        ResolvOwner::File | ResolvOwner::NetworkManager if rc_manager.as_deref() != Some("unmanaged") => {
            Some("NetworkManager writes /etc/resolv.conf")
        }
        _ => None,
    }
}

/// A `[section] key` of NetworkManager's own configuration, as NetworkManager merges it:
/// /usr/lib/NetworkManager/conf.d (unless shadowed in /etc), NetworkManager.conf, then
/// /etc/NetworkManager/conf.d, each directory in name order; the last value wins.
fn nm_setting(sys: &System, section: &str, key: &str) -> Option<String> {
    let (lib, etc) = ("/usr/lib/NetworkManager/conf.d", "/etc/NetworkManager/conf.d");
    let etc_names = sys.list(etc);
    let conf = |n: &String| n.ends_with(".conf");
    let mut files: Vec<String> = sys
        .list(lib)
        .into_iter()
        .filter(|n| conf(n) && !etc_names.contains(n))
        .map(|n| format!("{lib}/{n}"))
        .collect();
    files.push("/etc/NetworkManager/NetworkManager.conf".into());
    files.extend(etc_names.iter().filter(|n| conf(n)).map(|n| format!("{etc}/{n}")));
    files
        .iter()
        .filter_map(|f| keyfile_value(&sys.read_text(f)?, &[section], key))
        .next_back()
}

/// The last value of `key` in one of `sections` of a GLib key file (NetworkManager's format).
fn keyfile_value(text: &str, sections: &[&str], key: &str) -> Option<String> {
    let mut section = "";
    let mut found = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim();
        } else if let Some((k, v)) = line.split_once('=')
            && !line.starts_with('#')
            && k.trim() == key
            && sections.contains(&section)
        {
            found = Some(v.trim().to_owned());
        }
    }
    found
}

/// A MAC address as other tools write it: `00:8C:FA:5E:14:23` (any case, `:` or `-`; keyfiles and
/// HWADDR=), or the old keyfile byte list `0;140;250;94;20;35;`.
fn parse_mac(value: &str) -> Option<Mac> {
    let value = value.trim();
    let bytes: Option<Vec<u8>> = if value.contains([':', '-']) {
        value
            .split([':', '-'])
            .map(|s| u8::from_str_radix(s, 16).ok())
            .collect()
    } else {
        value
            .split(';')
            .filter(|s| !s.is_empty())
            .map(|s| s.trim().parse().ok())
            .collect()
    };
    Some(Mac(bytes?.try_into().ok()?))
}

/// The keyfile with `autoconnect=false` in `[connection]`: an existing `autoconnect=` line is
/// replaced where it stands, else the key goes right below the section header; every other byte
/// is kept.
fn disable_autoconnect(old: &[u8]) -> Vec<u8> {
    const LINE: &[u8] = b"autoconnect=false\n";
    let key_of = |line: &[u8]| -> Option<String> {
        let text = String::from_utf8_lossy(line);
        let (k, _) = text.trim().split_once('=')?;
        Some(k.trim().to_owned())
    };
    let section_of = |line: &[u8]| -> Option<String> {
        let text = String::from_utf8_lossy(line);
        let name = text
            .trim()
            .strip_prefix('[')?
            .strip_suffix(']')?
            .trim()
            .to_owned();
        Some(name)
    };
    let lines: Vec<&[u8]> = old.split_inclusive(|&b| b == b'\n').collect();
    let mut section = String::new();
    let has_key = lines.iter().any(|l| {
        if let Some(s) = section_of(l) {
            section = s;
        }
        section == "connection" && key_of(l).as_deref() == Some("autoconnect")
    });
    let mut out = Vec::with_capacity(old.len() + LINE.len());
    let mut done = false;
    section.clear();
    for line in lines {
        if let Some(s) = section_of(line) {
            section = s;
        }
        let in_connection = section == "connection";
        if in_connection && key_of(line).as_deref() == Some("autoconnect") {
            if !done {
                out.extend_from_slice(LINE);
                done = true;
            }
            continue;
        }
        out.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            out.push(b'\n');
        }
        if !has_key && !done && in_connection && section_of(line).is_some() {
            out.extend_from_slice(LINE);
            done = true;
        }
    }
    if !done {
        out.extend_from_slice(b"\n[connection]\n");
        out.extend_from_slice(LINE);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::model::Config;
    use crate::plan::Mode;
    use crate::render::common::testing::{fake_root, from_text, written_with_mode};

    const CLASSIC_OFF_SUBNET: &str = "eth0_ip_addr=10.0.0.5\neth0_mac_addr=00:16:3e:00:00:01\n\
        eth0_netmask=255.255.255.0\neth0_gateway=10.0.1.1\neth0_route=\"192.168.0.0/16 10.0.1.1\"\n\
        eth1_ip_addr=42.120.74.105\neth1_netmask=255.255.255.0\neth1_gateway=42.120.75.1\n\
        eth1_route=\"0.0.0.0/0 42.120.75.1\"\ndns_nameserver=\"7.7.7.7 2001:db8::1\"\n";

    /// A target root holding `files` (path, contents), probed as a `System`.
    fn root(files: &[(&str, &str)]) -> (tempfile::TempDir, System) {
        let dir = fake_root(files, &[]);
        let sys = System::probe(dir.path());
        (dir, sys)
    }

    fn enable_nm(dir: &Path) -> System {
        let wants = dir.join("etc/systemd/system/multi-user.target.wants");
        std::fs::create_dir_all(&wants).unwrap();
        std::os::unix::fs::symlink(
            "/usr/lib/systemd/system/NetworkManager.service",
            wants.join("NetworkManager.service"),
        )
        .unwrap();
        System::probe(dir)
    }

    #[test]
    fn off_subnet_gateways_are_onlink_and_only_the_default_nic_routes_by_default() {
        let config = from_text(CLASSIC_OFF_SUBNET);
        let (_dir, sys) = root(&[]);
        let ifnames = BTreeMap::from([(1, "ens6".to_owned())]);
        let out = STACK.render(&Input {
            config: &config,
            sys: &sys,
            ifnames: &ifnames,
        });
        let (eth0, mode) = written_with_mode(
            &out,
            "/etc/NetworkManager/system-connections/osconf-eth0.nmconnection",
        )
        .unwrap();
        assert_eq!(mode, Mode::Exact(0o600));
        assert!(eth0.starts_with(HEADER));
        assert!(
            eth0.contains("\n[ethernet]\nmac-address=00:16:3E:00:00:01\n"),
            "{eth0}"
        );
        assert!(!eth0.contains("interface-name"), "{eth0}");
        assert!(
            eth0.contains(
                "address1=10.0.0.5/24\nroute1=192.168.0.0/16,10.0.1.1\nroute1_options=onlink=true\n"
            ),
            "{eth0}"
        );
        assert!(
            eth0.contains("never-default=true\n") && !eth0.contains("dns="),
            "{eth0}"
        );
        let (eth1, _) = written_with_mode(
            &out,
            "/etc/NetworkManager/system-connections/osconf-eth1.nmconnection",
        )
        .unwrap();
        assert!(eth1.contains("interface-name=ens6\n"), "{eth1}");
        assert!(
            eth1.contains(
                "address1=42.120.74.105/24\nroute1=0.0.0.0/0,42.120.75.1\nroute1_options=onlink=true\n"
            ),
            "{eth1}"
        );
        assert!(
            eth1.contains("dns=7.7.7.7;\nignore-auto-dns=true\n") && !eth1.contains("never-default"),
            "{eth1}"
        );
        assert!(
            out.notes.iter().any(|n| n.contains("2001:db8::1")),
            "{:?}",
            out.notes
        );
        assert!(
            out.notes
                .iter()
                .any(|n| n.contains("matches the interface named ens6")),
            "{:?}",
            out.notes
        );
    }

    #[test]
    fn uuids_are_stable_well_formed_and_distinct() {
        let a = uuid("mac:00:8c:fa:5e:14:23");
        assert_eq!(a, uuid("mac:00:8c:fa:5e:14:23"));
        assert_ne!(a, uuid("mac:00:8c:fa:5e:14:24"));
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{a}");
        assert_eq!(&a[14..15], "8", "version 8: {a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "RFC variant: {a}");
    }

    #[test]
    fn autoconnect_disabled_in_place() {
        let cases: &[(&str, &str)] = &[
            // An existing key is replaced where it stands, in [connection] only.
            (
                "[connection]\nid=x\nautoconnect=true\n\n[ipv4]\nautoconnect=keep\n",
                "[connection]\nid=x\nautoconnect=false\n\n[ipv4]\nautoconnect=keep\n",
            ),
            // Else it goes right below the header; comments and blank lines stay.
            (
                "# c\n[connection]\nid=x\n\n[ethernet]\n",
                "# c\n[connection]\nautoconnect=false\nid=x\n\n[ethernet]\n",
            ),
            // No [connection] at all (and no final newline).
            (
                "[ipv4]\nmethod=auto",
                "[ipv4]\nmethod=auto\n\n[connection]\nautoconnect=false\n",
            ),
        ];
        for (old, want) in cases {
            let got = disable_autoconnect(old.as_bytes());
            assert_eq!(String::from_utf8(got).unwrap(), *want, "from {old:?}");
        }
    }

    #[test]
    fn macs_in_every_form_other_tools_write() {
        let want = Some(Mac([0x00, 0x8c, 0xfa, 0x5e, 0x14, 0x23]));
        assert_eq!(parse_mac("00:8C:FA:5E:14:23"), want);
        assert_eq!(parse_mac("00-8c-fa-5e-14-23"), want);
        assert_eq!(parse_mac("0;140;250;94;20;35;"), want);
        assert_eq!(parse_mac("00:8c:fa:5e:14"), None);
        assert_eq!(parse_mac("bogus"), None);
    }

    #[test]
    fn only_other_ethernet_profiles_of_our_nics_are_disabled() {
        let config = from_text(
            "eth0_ip_addr=10.0.0.5\neth0_mac_addr=00:8c:fa:5e:14:23\neth0_netmask=255.255.255.0\n\
            eth1_ip_addr=10.0.1.5\neth1_netmask=255.255.255.0\n",
        );
        let dir = "/etc/NetworkManager/system-connections";
        let (_d, sys) = root(&[
            // Bound by the old byte-list MAC: disabled.
            (
                "/etc/NetworkManager/system-connections/old",
                "[connection]\ntype=802-3-ethernet\n[802-3-ethernet]\nmac-address=0;140;250;94;20;35;\n",
            ),
            // Bound by name to eth1 (no MAC in os.conf): disabled.
            (
                "/etc/NetworkManager/system-connections/Wired connection 1.nmconnection",
                "[connection]\nid=Wired connection 1\ntype=ethernet\ninterface-name=eth1\n",
            ),
            // Another NIC, already disabled, not Ethernet, an editor backup, osconf's own: left alone.
            (
                "/etc/NetworkManager/system-connections/ens9.nmconnection",
                "[connection]\ntype=ethernet\ninterface-name=ens9\n",
            ),
            (
                "/etc/NetworkManager/system-connections/off.nmconnection",
                "[connection]\ntype=ethernet\ninterface-name=eth1\nautoconnect=false\n",
            ),
            (
                "/etc/NetworkManager/system-connections/wifi.nmconnection",
                "[connection]\ntype=wifi\ninterface-name=eth1\n",
            ),
            (
                "/etc/NetworkManager/system-connections/x.nmconnection~",
                "[connection]\ntype=ethernet\ninterface-name=eth1\n",
            ),
            (
                "/etc/sysconfig/network-scripts/ifcfg-eth1",
                "DEVICE=\"eth1\"\nONBOOT=\"yes\"\nBOOTPROTO=dhcp\n",
            ),
            (
                "/etc/sysconfig/network-scripts/ifcfg-lo",
                "DEVICE=lo\nONBOOT=yes\n",
            ),
        ]);
        let out = STACK.render(&Input {
            config: &config,
            sys: &sys,
            ifnames: &BTreeMap::new(),
        });
        let (old, mode) = written_with_mode(&out, &format!("{dir}/old")).unwrap();
        assert_eq!(mode, Mode::Exact(0o600));
        assert!(
            old.starts_with("[connection]\nautoconnect=false\ntype=802-3-ethernet\n"),
            "{old}"
        );
        assert!(written_with_mode(&out, &format!("{dir}/Wired connection 1.nmconnection")).is_some());
        for name in [
            "ens9.nmconnection",
            "off.nmconnection",
            "wifi.nmconnection",
            "x.nmconnection~",
        ] {
            assert!(
                written_with_mode(&out, &format!("{dir}/{name}")).is_none(),
                "{name} must stay as it is"
            );
        }
        let (ifcfg, _) = written_with_mode(&out, "/etc/sysconfig/network-scripts/ifcfg-eth1").unwrap();
        assert_eq!(ifcfg, "DEVICE=\"eth1\"\nONBOOT=no\nBOOTPROTO=dhcp\n");
        assert!(written_with_mode(&out, "/etc/sysconfig/network-scripts/ifcfg-lo").is_none());
        assert_eq!(
            out.notes.iter().filter(|n| n.contains("disabled")).count(),
            3,
            "{:?}",
            out.notes
        );
    }

    #[test]
    fn sysconfig_disables_competing_keyfiles_too() {
        let config =
            from_text("eth0_ip_addr=10.0.0.5\neth0_mac_addr=00:8c:fa:5e:14:23\neth0_netmask=255.255.255.0\n");
        let path = "/etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection";
        let (_d, sys) = root(&[(
            path,
            "[connection]\ntype=ethernet\n[ethernet]\nmac-address=00:8C:FA:5E:14:23\n",
        )]);
        let out = super::super::sysconfig::STACK.render(&Input {
            config: &config,
            sys: &sys,
            ifnames: &BTreeMap::new(),
        });
        assert!(written_with_mode(&out, path).is_some_and(|(t, _)| t.contains("autoconnect=false")));
    }

    #[test]
    fn detection_leaves_ifupdown_nics_and_ifcfg_setups_to_their_stacks() {
        let interfaces = "/etc/network/interfaces";
        let (dir, _) = root(&[(interfaces, "auto lo\niface lo inet loopback\n")]);
        assert_eq!(detect(&System::probe(dir.path())), None, "not enabled");
        assert!(detect(&enable_nm(dir.path())).is_some());
        std::fs::write(
            dir.path().join("etc/network/interfaces"),
            "auto eth0\niface eth0 inet dhcp\n",
        )
        .unwrap();
        assert_eq!(
            detect(&System::probe(dir.path())),
            None,
            "Debian: ifupdown owns eth0"
        );
        let conf = dir.path().join("etc/NetworkManager/conf.d/managed.conf");
        std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
        std::fs::write(&conf, "[ifupdown]\nmanaged=true\n").unwrap();
        assert!(detect(&System::probe(dir.path())).is_some());

        // RHEL 9: the network-scripts directory with a readme only is NetworkManager's.
        let (dir, _) = root(&[("/etc/sysconfig/network-scripts/readme-ifcfg-rh.txt", "readme\n")]);
        let sys = enable_nm(dir.path());
        assert_eq!(crate::render::detect(&sys).unwrap().stack.name, "networkmanager");
        std::fs::write(
            dir.path().join("etc/sysconfig/network-scripts/ifcfg-eth0"),
            "DEVICE=eth0\n",
        )
        .unwrap();
        assert_eq!(
            crate::render::detect(&System::probe(dir.path()))
                .unwrap()
                .stack
                .name,
            "sysconfig"
        );
    }

    /// Without a NIC the servers go to NetworkManager's global DNS (or to resolv.conf where it keeps
    /// out); with NICs again the global DNS file goes, since it would override the keyfile's dns=.
    #[test]
    fn global_dns_without_nic_only() {
        let no_nic = from_text("dns_nameserver=\"1.1.1.1 8.8.8.8\"\n");
        let (dir, sys) = root(&[("/etc/resolv.conf", "nameserver 7.7.7.7\n")]);
        let run = |config: &Config, sys: &System| {
            STACK.render(&Input {
                config,
                sys,
                ifnames: &BTreeMap::new(),
            })
        };
        let out = run(&no_nic, &sys);
        let (text, _) = written_with_mode(&out, GLOBAL_DNS).unwrap();
        assert_eq!(
            text,
            format!("{HEADER}[global-dns-domain-*]\nservers=1.1.1.1,8.8.8.8\n")
        );
        assert_eq!(out.ops.len(), 1, "{:?}", out.ops);
        std::fs::create_dir_all(dir.path().join("etc/NetworkManager/conf.d")).unwrap();
        std::fs::write(dir.path().join(GLOBAL_DNS.trim_start_matches('/')), text).unwrap();
        let nics = from_text("eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\ndns_nameserver=1.1.1.1\n");
        let out = run(&nics, &System::probe(dir.path()));
        assert!(out.ops.contains(&FileOp::Remove {
            path: GLOBAL_DNS.into()
        }));
        let none = dir.path().join("etc/NetworkManager/conf.d/90-dns-none.conf");
        std::fs::write(none, "[main]\ndns=none\n").unwrap();
        let out = run(&no_nic, &System::probe(dir.path()));
        assert!(written_with_mode(&out, GLOBAL_DNS).is_none());
        assert_eq!(
            written_with_mode(&out, "/etc/resolv.conf").map(|(t, _)| t),
            Some("nameserver 1.1.1.1\nnameserver 8.8.8.8\n")
        );
    }

    #[test]
    fn resolv_conf_edited_only_where_networkmanager_keeps_out() {
        let config = from_text("eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\ndns_nameserver=7.7.7.7\n");
        let resolv = "/etc/resolv.conf";
        let run = |files: &[(&str, &str)]| {
            let mut all = vec![(resolv, "nameserver 1.1.1.1\n")];
            all.extend_from_slice(files);
            let (_d, sys) = root(&all);
            let out = dns(&Input {
                config: &config,
                sys: &sys,
                ifnames: &BTreeMap::new(),
            });
            written_with_mode(&out, resolv).map(|(t, _)| t.to_owned())
        };
        assert_eq!(run(&[]), None, "NetworkManager writes it");
        let none = [(
            "/etc/NetworkManager/conf.d/90-dns-none.conf",
            "[main]\ndns=none\n",
        )];
        assert_eq!(run(&none).as_deref(), Some("nameserver 7.7.7.7\n"));
        let unmanaged = [(
            "/etc/NetworkManager/NetworkManager.conf",
            "[main]\n#dns=none\nrc-manager=unmanaged\n",
        )];
        assert_eq!(run(&unmanaged).as_deref(), Some("nameserver 7.7.7.7\n"));
        // conf.d comes after NetworkManager.conf; /etc shadows /usr/lib.
        let back = [
            ("/etc/NetworkManager/NetworkManager.conf", "[main]\ndns=none\n"),
            ("/etc/NetworkManager/conf.d/dns.conf", "[main]\ndns=default\n"),
            ("/usr/lib/NetworkManager/conf.d/dns.conf", "[main]\ndns=none\n"),
        ];
        assert_eq!(run(&back), None);
    }
}
