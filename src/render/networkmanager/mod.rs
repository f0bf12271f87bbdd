//! `networkmanager`: NetworkManager keyfiles (`/etc/NetworkManager/system-connections/osconf-ethN
//! .nmconnection`, mode 0600) for RHEL 9, Fedora and desktops. Other profiles for the same NIC are
//! disabled in place (`autoconnect=false`, `ONBOOT=no`), never deleted; this module never writes
//! anything NetworkManager would refuse to load (a keyfile readable by others is ignored).

use std::fmt::Write as _;
use std::net::IpAddr;

use super::common::shellvars::shell_value;
use super::common::{self, HEADER, ini};
use super::{Input, Rendered, Service, Stack};
use crate::model::{Mac, Nic};
use crate::plan::{FileOp, Run};
use crate::system::{self, System};

pub const STACK: Stack = Stack {
    name: "networkmanager",
    systems: "RHEL/Rocky/AlmaLinux 9+, Fedora, Alibaba Cloud Linux 3 and desktops with NetworkManager keyfiles",
    detect,
    network,
    host,
    services: &[NETWORK_MANAGER],
    activate,
    network_files: &["/etc/NetworkManager/system-connections/"],
};

/// Started as a daemon (not by systemd), NetworkManager leaves its pid file.
pub(super) const NETWORK_MANAGER: Service = Service {
    name: "NetworkManager",
    ran: Some("/run/NetworkManager/NetworkManager.pid"),
    per_nic: None,
};

const CONNECTIONS: &str = "/etc/NetworkManager/system-connections";
const IFCFG_DIR: &str = "/etc/sysconfig/network-scripts";
/// NetworkManager's global DNS, for an os.conf with name servers but no NIC.
const GLOBAL_DNS: &str = "/etc/NetworkManager/conf.d/90-osconf-dns.conf";

/// Above cloud-init's 120 and the installers' 0 or -999: should a disabled profile be re-enabled by
/// hand, osconf's still wins. 999 is NetworkManager's maximum.
const PRIORITY: i32 = 999;

fn detect(sys: &System) -> system::Result<Option<String>> {
    let mut in_runlevel = false;
    for level in sys.list("/etc/runlevels")? {
        in_runlevel |= sys.exists(&format!("/etc/runlevels/{level}/NetworkManager"))?;
    }
    let enabled = if sys.systemd_unit_enabled("NetworkManager.service")? {
        "NetworkManager.service is enabled"
    } else if in_runlevel {
        "NetworkManager is in an OpenRC runlevel"
    } else {
        return Ok(None);
    };
    // Debian's NetworkManager leaves the NICs of /etc/network/interfaces to ifupdown unless told
    // otherwise: there ifupdown is the stack to write for.
    if ifupdown_has_nic(sys)? && nm_setting(sys, "ifupdown", "managed")?.as_deref() != Some("true") {
        return Ok(None);
    }
    Ok(Some(enabled.to_owned()))
}

/// True when /etc/network/interfaces configures an interface other than the loopback.
fn ifupdown_has_nic(sys: &System) -> system::Result<bool> {
    let text = sys.read_text("/etc/network/interfaces")?.unwrap_or_default();
    Ok(text.lines().any(|line| {
        let mut words = line.split_whitespace();
        words.next() == Some("iface") && words.next().is_some_and(|name| name != "lo")
    }))
}

fn network(input: &Input) -> system::Result<Rendered> {
    let config = input.config;
    let mut out = Rendered::default();
    for nic in &config.nics {
        let path = format!("{CONNECTIONS}/osconf-{}.nmconnection", nic.name());
        let dns = config.nameservers_for(nic);
        out.ops
            .push(FileOp::write_private(&path, keyfile(input, nic, dns)));
    }
    out.ops
        .extend(common::stale_own_files(input.sys, CONNECTIONS, &out.ops)?);
    out.add(neutralise_keyfiles(input)?);
    let ifcfg = neutralise_ifcfg(input, &out.ops)?;
    out.add(ifcfg);
    Ok(out)
}

/// A running NetworkManager rereads the keyfiles and activates each osconf profile.
fn activate(input: &Input) -> Vec<Run> {
    let ids: Vec<String> = input.config.nics.iter().map(profile_id).collect();
    common::activate::networkmanager(input, &ids)
}

/// The `id=` of osconf's profile for a NIC: os.conf's name, whatever the kernel calls it.
fn profile_id(nic: &Nic) -> String {
    format!("osconf-{}", nic.name())
}

fn host(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    out.ops.extend(common::hostname_file(input, "/etc/hostname"));
    out.add(dns(input)?);
    Ok(out)
}

/// The keyfile of one NIC. The default route is the gateway of `address1` (or, when that gateway is
/// outside the subnet, an explicit `0.0.0.0/0` route flagged `onlink`); every other NIC says
/// `never-default=true` so that no second default route appears.
fn keyfile(input: &Input, nic: &Nic, dns: &[IpAddr]) -> String {
    let id = profile_id(nic);
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
    // An on-subnet default gateway is already address1's.
    let routes = nic
        .all_routes()
        .filter(|r| !r.dest.is_default() || nic.is_on_link(r.via));
    for (i, r) in routes.enumerate() {
        let n = i + 1;
        let _ = writeln!(t, "route{n}={},{}", r.dest, r.via);
        if nic.is_on_link(r.via) {
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
    crate::disk::uuid_text(&b)
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
pub fn neutralise_keyfiles(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    for name in input.sys.list(CONNECTIONS)? {
        if is_ignored_keyfile(&name) {
            continue;
        }
        let path = format!("{CONNECTIONS}/{name}");
        let Some(bytes) = input.sys.read(&path)? else {
            continue;
        };
        if bytes.starts_with(HEADER.as_bytes()) {
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
    Ok(out)
}

/// Sets `ONBOOT=no` in ifcfg files for one of os.conf's NICs: NetworkManager's ifcfg-rh plugin
/// (RHEL 8 and 9) and initscripts would otherwise still bring them up. Files that `written`
/// already writes or removes are left to it. Used by `sysconfig` too, for other ifcfg files of the
/// same NIC (`ifcfg-System_eth1` beside osconf's `ifcfg-eth1`).
pub(super) fn neutralise_ifcfg(input: &Input, written: &[FileOp]) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    for name in input.sys.list(IFCFG_DIR)? {
        let Some(suffix) = name.strip_prefix("ifcfg-") else {
            continue;
        };
        let path = format!("{IFCFG_DIR}/{name}");
        if suffix == "lo" || is_ignored_keyfile(&name) || written.iter().any(|op| op.path() == path) {
            continue;
        }
        let Some(text) = input.sys.read_text(&path)? else {
            continue;
        };
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
    Ok(out)
}

/// Where the name servers go. NetworkManager writes /etc/resolv.conf (or tells systemd-resolved)
/// from the connection's `dns=` each time it starts, so editing resolv.conf as well would be a
/// second writer of the same file; osconf edits it only where NetworkManager is told to keep out.
/// With no NIC in os.conf, NetworkManager's global DNS ([`GLOBAL_DNS`]) carries the servers instead;
/// with NICs that file goes, since it would override the connection's `dns=`.
fn dns(input: &Input) -> system::Result<Rendered> {
    let servers = &input.config.nameservers;
    let mut out = Rendered::default();
    if servers.is_empty() {
        return Ok(out);
    }
    let how = nm_resolver(input.sys)?;
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
        return Ok(out);
    }
    out.ops.extend(common::remove_own(input.sys, GLOBAL_DNS)?);
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
            out.add(common::dns::render(servers, input.sys)?);
        }
    }
    Ok(out)
}

/// How NetworkManager publishes the connection's name servers on this system, or `None` when its
/// configuration keeps it away from the resolver.
fn nm_resolver(sys: &System) -> system::Result<Option<&'static str>> {
    use common::dns::ResolvOwner;
    let mode = nm_setting(sys, "main", "dns")?;
    let rc_manager = nm_setting(sys, "main", "rc-manager")?;
    if mode.as_deref() == Some("none") {
        return Ok(None);
    }
    Ok(match common::dns::resolv_owner(sys)? {
        ResolvOwner::Resolved if matches!(mode.as_deref(), None | Some("systemd-resolved")) => {
            Some("NetworkManager passes the servers to systemd-resolved")
        }
        ResolvOwner::File | ResolvOwner::NetworkManager if rc_manager.as_deref() != Some("unmanaged") => {
            Some("NetworkManager writes /etc/resolv.conf")
        }
        _ => None,
    })
}

/// A `[section] key` of NetworkManager's own configuration, as NetworkManager merges it:
/// /usr/lib/NetworkManager/conf.d (unless shadowed in /etc), NetworkManager.conf, then
/// /etc/NetworkManager/conf.d, each directory in name order; the last value wins.
fn nm_setting(sys: &System, section: &str, key: &str) -> system::Result<Option<String>> {
    let (lib, etc) = ("/usr/lib/NetworkManager/conf.d", "/etc/NetworkManager/conf.d");
    let etc_names = sys.list(etc)?;
    let conf = |n: &String| n.ends_with(".conf");
    let mut files: Vec<String> = sys
        .list(lib)?
        .into_iter()
        .filter(|n| conf(n) && !etc_names.contains(n))
        .map(|n| format!("{lib}/{n}"))
        .collect();
    files.push("/etc/NetworkManager/NetworkManager.conf".into());
    files.extend(etc_names.iter().filter(|n| conf(n)).map(|n| format!("{etc}/{n}")));
    let mut value = None;
    for f in &files {
        if let Some(v) = sys
            .read_text(f)?
            .and_then(|text| keyfile_value(&text, &[section], key))
        {
            value = Some(v);
        }
    }
    Ok(value)
}

/// The last value of `key` in one of `sections` of a GLib key file (NetworkManager's format).
fn keyfile_value(text: &str, sections: &[&str], key: &str) -> Option<String> {
    ini::entries(text)
        .filter(|(s, k, _)| sections.contains(s) && *k == key)
        .map(|(_, _, v)| v.to_owned())
        .last()
}

/// A MAC address as other tools write it: `00:8C:FA:5E:14:23` ([`Mac::parse`]; keyfiles and
/// HWADDR=), or the old keyfile byte list `0;140;250;94;20;35;`.
fn parse_mac(value: &str) -> Option<Mac> {
    let value = value.trim();
    if value.contains([':', '-']) {
        return Mac::parse(value);
    }
    let bytes: Option<Vec<u8>> = value
        .split(';')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse().ok())
        .collect();
    Some(Mac(bytes?.try_into().ok()?))
}

/// The keyfile with `autoconnect=false` in `[connection]`: an existing `autoconnect=` line is
/// replaced where it stands, else the key goes right below the section header; every other byte
/// is kept.
fn disable_autoconnect(old: &[u8]) -> Vec<u8> {
    const LINE: &[u8] = b"autoconnect=false\n";
    let lines: Vec<&[u8]> = old.split_inclusive(|&b| b == b'\n').collect();
    // Per line: in `[connection]`, its header, its `autoconnect=`.
    let mut section = String::new();
    let kinds: Vec<(bool, bool, bool)> = lines
        .iter()
        .map(|l| match ini::Line::of(&String::from_utf8_lossy(l)) {
            ini::Line::Section(s) => {
                section = s.to_owned();
                (section == "connection", true, false)
            }
            ini::Line::Entry(k, _) => (section == "connection", false, k == "autoconnect"),
            ini::Line::Other => (section == "connection", false, false),
        })
        .collect();
    let has_key = kinds.iter().any(|&(connection, _, key)| connection && key);
    let mut out = Vec::with_capacity(old.len() + LINE.len());
    let mut done = false;
    for (line, &(in_connection, header, key)) in lines.iter().zip(&kinds) {
        if in_connection && key {
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
        if !has_key && !done && in_connection && header {
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
mod tests;
