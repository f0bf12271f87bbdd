//! Validator: raw entries → `Config`. Checks every value and every rule across keys, and reports all
//! problems at once, each with its line and key. It never looks at the system.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::fields;
use super::{Config, Ipv4Net, Nic, Route};
use crate::error::Error;
use crate::reader::{ConfError, Entry, RawConf};

/// A valid config plus what was ignored (unknown keys), for the person reading the log.
#[derive(Debug)]
pub struct Validated {
    pub config: Config,
    pub warnings: Vec<ConfError>,
}

/// The per-NIC keys, `ethN_<suffix>`.
const NIC_KEYS: [&str; 5] = ["ip_addr", "mac_addr", "netmask", "gateway", "route"];

/// Collects errors while the fields are parsed, so one bad value does not hide the next.
struct Checker<'a> {
    errors: Vec<ConfError>,
    by_key: BTreeMap<&'a str, &'a Entry>,
}

impl<'a> Checker<'a> {
    fn fail(&mut self, entry: &Entry, message: impl Into<String>) {
        self.errors
            .push(ConfError::new(entry.line, Some(&entry.key), message));
    }

    /// Parses `key` if present (an empty value counts as absent: ECS may write `key=""`).
    fn field<T>(&mut self, key: &str, parse: impl FnOnce(&str) -> Result<T, Error>) -> Option<T> {
        let entry = *self.by_key.get(key)?;
        match parse(&entry.value) {
            Ok(v) => Some(v),
            Err(message) => {
                self.fail(entry, message.message);
                None
            }
        }
    }
}

/// Splits `ethN_suffix` into (N, suffix) for the keys a NIC may have.
fn nic_key(key: &str) -> Option<(u32, &str)> {
    let rest = key.strip_prefix("eth")?;
    let (num, suffix) = rest.split_once('_')?;
    if !NIC_KEYS.contains(&suffix) {
        return None;
    }
    Some((nic_index(num)?, suffix))
}

/// The N of `ethN`, written the one way os.conf writes it: digits, no sign, no leading zero.
pub fn nic_index(num: &str) -> Option<u32> {
    let canonical = !num.is_empty() && (num == "0" || !num.starts_with('0'));
    if !canonical || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse().ok()
}

pub fn validate(raw: &RawConf) -> Result<Validated, Vec<ConfError>> {
    let mut warnings = Vec::new();
    let mut nic_indexes = std::collections::BTreeSet::new();
    let mut by_key = BTreeMap::new();
    for entry in &raw.entries {
        let known = matches!(entry.key.as_str(), "hostname" | "password" | "dns_nameserver");
        match nic_key(&entry.key) {
            Some((index, _)) if !entry.value.is_empty() => {
                nic_indexes.insert(index);
            }
            None if !known => {
                warnings.push(ConfError::new(
                    entry.line,
                    Some(&entry.key),
                    "unknown key, ignored",
                ));
                continue;
            }
            _ => {}
        }
        if !entry.value.is_empty() {
            by_key.insert(entry.key.as_str(), entry);
        }
    }
    // A truncated or garbled file must not pass for "configure nothing" and be deleted: kept and
    // reported, it can still be read by a person (or rewritten by ECS) before the next boot.
    if by_key.is_empty() {
        let msg = "no settings found (only comments, empty values or unknown keys); nothing to apply";
        return Err(vec![ConfError::new(0, None, msg)]);
    }
    let mut c = Checker {
        errors: Vec::new(),
        by_key,
    };

    let hostname = c.field("hostname", fields::hostname);
    let password = c.field("password", fields::password);
    let nameservers = c.field("dns_nameserver", fields::nameservers).unwrap_or_default();
    let mut nics: Vec<(Nic, Vec<RouteItem>)> = Vec::new();
    for index in nic_indexes {
        if let Some(nic) = nic(&mut c, index) {
            nics.push(nic);
        }
    }
    // Classic network instances have a second (Internet) NIC: any eth1 key says so.
    let classic = c.by_key.keys().any(|k| k.starts_with("eth1_"));
    let nics = assign_routes(&mut c, nics, classic);
    check_unique_macs_and_addresses(&mut c, &nics);

    if c.errors.is_empty() {
        let config = Config {
            hostname,
            password,
            nics,
            nameservers,
        };
        Ok(Validated { config, warnings })
    } else {
        c.errors.sort_by_key(|e| e.line);
        Err(c.errors)
    }
}

/// One `dst/len gw` item of a route list, kept with its key and line until routes are assigned.
struct RouteItem<'a> {
    route: Route,
    entry: &'a Entry,
}

/// Parses one NIC's keys; `None` when any of them is bad (its errors are recorded).
fn nic<'a>(c: &mut Checker<'a>, index: u32) -> Option<(Nic, Vec<RouteItem<'a>>)> {
    let key = |suffix: &str| format!("eth{index}_{suffix}");
    let errors_before = c.errors.len();
    let address = c.field(&key("ip_addr"), fields::unicast_ipv4);
    let prefix_len = c.field(&key("netmask"), fields::netmask);
    let mac = c.field(&key("mac_addr"), fields::mac);
    let gateway = c.field(&key("gateway"), fields::unicast_ipv4);
    let items = c.field(&key("route"), route_list);

    let first = NIC_KEYS
        .iter()
        .filter_map(|s| c.by_key.get(key(s).as_str()).copied())
        .min_by_key(|e| e.line)?;
    for needed in ["ip_addr", "netmask"] {
        if !c.by_key.contains_key(key(needed).as_str()) {
            let msg = format!("eth{index} is given partially: {} is missing", key(needed));
            c.fail(first, msg);
        }
    }
    if c.errors.len() > errors_before {
        return None;
    }
    let (address, prefix_len) = (address?, prefix_len?);
    let nic = Nic {
        index,
        mac,
        address,
        prefix_len,
        gateway,
        default_gateway: None,
        routes: Vec::new(),
    };
    let subnet = nic.subnet();
    if prefix_len < 31
        && (address == subnet.addr
            || u32::from(address) == u32::from(subnet.addr) | !Ipv4Net::mask(prefix_len))
    {
        let entry = c.by_key[key("ip_addr").as_str()];
        c.fail(
            entry,
            format!("{address} is the network or broadcast address of {subnet}"),
        );
    }
    if gateway == Some(address) {
        let entry = c.by_key[key("gateway").as_str()];
        c.fail(entry, format!("{address} is the NIC's own address"));
    }
    let entry = c.by_key.get(key("route").as_str()).copied();
    let mut routes = Vec::new();
    for route in items.unwrap_or_default() {
        let entry = entry.expect("routes come from the route key");
        let reachable = subnet.contains(route.via) || Some(route.via) == nic.gateway;
        if route.via == address {
            c.fail(
                entry,
                format!(
                    "route to {} goes through the NIC's own address {}",
                    route.dest, route.via
                ),
            );
        } else if !reachable {
            c.fail(entry, format!(
                "gateway {} of route {} is outside {subnet} and is not eth{index}_gateway: no way to reach it",
                route.via, route.dest
            ));
        }
        routes.push(RouteItem { route, entry });
    }
    (c.errors.len() == errors_before).then_some((nic, routes))
}

/// `dst/len gw;dst/len gw;…` with blanks around items, empty items and a trailing `;` tolerated.
fn route_list(v: &str) -> Result<Vec<Route>, Error> {
    let mut routes = Vec::new();
    for item in v.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let parts: Vec<&str> = item.split_ascii_whitespace().collect();
        let [dest, via] = parts[..] else {
            return Err(Error::bad(format!(
                "route {item:?} is not \"destination/length gateway\""
            )));
        };
        let (net, len) = dest
            .split_once('/')
            .ok_or_else(|| Error::bad(format!("route destination {dest:?} has no /length")))?;
        let addr = fields::ipv4(net)?;
        let len: u8 = match len.parse() {
            Ok(l) if l <= 32 && (len == "0" || !len.starts_with('0')) => l,
            _ => {
                return Err(Error::bad(format!(
                    "route destination {dest:?} has a bad prefix length"
                )));
            }
        };
        if u32::from(addr) & !Ipv4Net::mask(len) != 0 {
            return Err(Error::bad(format!(
                "route destination {dest:?} has host bits set"
            )));
        }
        let via = fields::unicast_ipv4(via)?;
        routes.push(Route {
            dest: Ipv4Net { addr, len },
            via,
        });
    }
    Ok(routes)
}

/// Picks the one default route and gives every NIC its other routes, once each.
fn assign_routes(c: &mut Checker, nics: Vec<(Nic, Vec<RouteItem>)>, classic: bool) -> Vec<Nic> {
    let mut default: Option<(u32, Ipv4Addr, usize)> = None;
    let mut seen: BTreeMap<Ipv4Net, (u32, Ipv4Addr, usize)> = BTreeMap::new();
    let mut out = Vec::new();
    for (mut nic, items) in nics {
        for RouteItem { route, entry } in items {
            let this = (nic.index, route.via, entry.line);
            if route.dest.is_default() {
                match default {
                    Some((i, via, line)) if (i, via) != (nic.index, route.via) => c.fail(
                        entry,
                        format!(
                            "a second default route via {} (the first is via eth{i} {via}, line {line})",
                            route.via
                        ),
                    ),
                    Some(_) => {}
                    None => default = Some(this),
                }
                continue;
            }
            match seen.get(&route.dest) {
                Some(&(i, via, _)) if (i, via) == (nic.index, route.via) => {}
                Some(&(i, via, line)) => c.fail(
                    entry,
                    format!(
                        "route to {} is given twice (also via eth{i} {via}, line {line})",
                        route.dest
                    ),
                ),
                None => {
                    seen.insert(route.dest, this);
                    nic.routes.push(route);
                }
            }
        }
        out.push(nic);
    }
    let fallback = || {
        let eth0 = out.iter().find(|n| n.index == 0)?;
        (!classic).then_some((0, eth0.gateway?, 0))
    };
    if let Some((index, via, _)) = default.or_else(fallback) {
        let nic = out
            .iter_mut()
            .find(|n| n.index == index)
            .expect("default route's NIC exists");
        nic.default_gateway = Some(via);
    }
    out
}

fn check_unique_macs_and_addresses(c: &mut Checker, nics: &[Nic]) {
    for (i, a) in nics.iter().enumerate() {
        for b in &nics[..i] {
            let clash = if a.mac.is_some() && a.mac == b.mac {
                Some(("mac_addr", format!("same MAC as eth{}", b.index)))
            } else if a.address == b.address {
                Some(("ip_addr", format!("same address as eth{}", b.index)))
            } else {
                None
            };
            if let Some((suffix, message)) = clash {
                let entry = c.by_key[format!("eth{}_{suffix}", a.index).as_str()];
                c.fail(entry, message);
            }
        }
    }
}
