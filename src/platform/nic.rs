//! One NIC configured live by rtnetlink: found by MAC in sysfs, its link brought up, its IPv4
//! address, routes and the one default route installed; and what that can change — the NIC's link
//! state and addresses, every IPv4 route of the main table — saved first and put back on rollback.
//! It never touches IPv6, other tables, or routes of other NICs except default routes it replaces.

use std::fmt;
use std::io;
use std::path::Path;

use super::netlink::{
    self, Addr, IFF_UP, NLM_F_CREATE, NLM_F_REPLACE, RT_TABLE_MAIN, RTM_DELADDR, RTM_DELROUTE, RTM_NEWADDR,
    RTM_NEWROUTE, RTPROT_KERNEL, Route,
};
use super::rtnl::Rtnl;
use crate::model::Mac;
use crate::plan::LiveNic;

/// What configuring a NIC can change, as it was before.
pub struct NicState {
    dev: String,
    index: u32,
    was_up: bool,
    /// The NIC's IPv4 addresses, each with the message the kernel dumped, to send back as is.
    addresses: Vec<(Addr, Vec<u8>)>,
    /// Every IPv4 route of the main table: a replaced route or a removed default can sit on any NIC.
    routes: Vec<(Route, Vec<u8>)>,
}

impl fmt::Debug for NicState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.was_up { "up" } else { "down" };
        write!(f, "{} (index {}, {state}; addresses", self.dev, self.index)?;
        for (a, _) in &self.addresses {
            write!(f, " {a}")?;
        }
        f.write_str("; routes")?;
        for (r, _) in &self.routes {
            write!(f, " [{r}]")?;
        }
        f.write_str(")")
    }
}

pub fn snapshot(nic: &LiveNic) -> io::Result<NicState> {
    let mut nl = Rtnl::open()?;
    let dev = device(nic)?;
    let link = link(&mut nl, &dev)?;
    Ok(NicState {
        addresses: addresses(&mut nl, link.index)?,
        routes: main_routes(&mut nl)?,
        dev,
        index: link.index,
        was_up: link.flags & IFF_UP != 0,
    })
}

/// Link up, os.conf's address the only IPv4 one, its routes installed, then the routes that no
/// longer belong removed: the NIC's other routes, and every other default route of the main table
/// when os.conf gives this NIC the default route. New routes go in before old ones go out, so the
/// machine is never without a default route it had.
pub fn configure(nic: &LiveNic) -> io::Result<()> {
    let mut nl = Rtnl::open()?;
    let dev = device(nic)?;
    let index = link(&mut nl, &dev)?.index;
    nl.request(netlink::set_link_up(index, true), &format!("bringing {dev} up"))?;

    let want = Addr {
        index,
        local: nic.address,
        prefix_len: nic.prefix_len,
    };
    for (addr, body) in addresses(&mut nl, index)? {
        if addr != want {
            let what = format!("removing address {addr} from {dev}");
            nl.request(netlink::echo(RTM_DELADDR, 0, &body), &what)?;
        }
    }
    nl.request(
        netlink::new_addr(want),
        &format!("adding address {want} to {dev}"),
    )?;

    let on_link = nic.on_link.iter().map(|&gw| Route::main(gw, 32, None, index));
    let via = nic
        .routes
        .iter()
        .map(|(dest, gw)| Route::main(dest.addr, dest.len, Some(*gw), index));
    let wanted: Vec<Route> = on_link.chain(via).collect();
    for route in &wanted {
        let what = format!("adding route {route} ({dev})");
        nl.request(netlink::new_route(route), &what)?;
    }
    let gives_default = wanted.iter().any(Route::is_default);
    for (route, body) in main_routes(&mut nl)? {
        let stale_here = route.oif == Some(index) && route.protocol != RTPROT_KERNEL;
        let other_default = gives_default && route.is_default();
        if (stale_here || other_default) && !wanted.iter().any(|w| w.same(&route)) {
            let what = format!("removing route {route}");
            nl.request(netlink::echo(RTM_DELROUTE, 0, &body), &what)?;
        }
    }
    Ok(())
}

/// Puts back what `snapshot` saw: removes the routes configuring added on the NIC, the addresses
/// it added, then re-adds every saved address and route that is missing (device routes before the
/// routes through a gateway they make reachable). Goes on past a failure and reports them all.
pub fn restore(state: &NicState) -> io::Result<()> {
    let mut nl = Rtnl::open()?;
    let mut failures = Vec::new();
    let mut attempt = |nl: &mut Rtnl, req, what: String| {
        if let Err(e) = nl.request(req, &what) {
            failures.push(e.to_string());
        }
    };
    // A stack's own tool (ifdown) may have set the link down: routes go back only on a link up.
    if state.was_up {
        let req = netlink::set_link_up(state.index, true);
        attempt(&mut nl, req, format!("setting {} up again", state.dev));
    }
    let saved_route = |r: &Route| state.routes.iter().any(|(s, _)| s.same(r));
    for (route, body) in main_routes(&mut nl)? {
        if route.oif == Some(state.index) && !saved_route(&route) {
            let req = netlink::echo(RTM_DELROUTE, 0, &body);
            attempt(&mut nl, req, format!("removing route {route}"));
        }
    }
    let now = addresses(&mut nl, state.index)?;
    for (addr, body) in &now {
        if !state.addresses.iter().any(|(a, _)| a == addr) {
            let req = netlink::echo(RTM_DELADDR, 0, body);
            attempt(
                &mut nl,
                req,
                format!("removing address {addr} from {}", state.dev),
            );
        }
    }
    for (addr, body) in &state.addresses {
        if !now.iter().any(|(a, _)| a == addr) {
            let req = netlink::echo(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, body);
            attempt(
                &mut nl,
                req,
                format!("putting back address {addr} on {}", state.dev),
            );
        }
    }
    let now = main_routes(&mut nl)?;
    let mut missing: Vec<&(Route, Vec<u8>)> = state
        .routes
        .iter()
        .filter(|(r, _)| !now.iter().any(|(n, _)| n.same(r)))
        .collect();
    missing.sort_by_key(|(r, _)| r.gateway.is_some());
    for (route, body) in missing {
        let req = netlink::echo(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, body);
        attempt(&mut nl, req, format!("putting back route {route}"));
    }
    if !state.was_up {
        let req = netlink::set_link_up(state.index, false);
        attempt(&mut nl, req, format!("setting {} down again", state.dev));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(failures.join("; ")))
    }
}

fn link(nl: &mut Rtnl, dev: &str) -> io::Result<netlink::Link> {
    let what = format!("looking up NIC {dev}");
    let payload = nl.get(netlink::get_link(dev), &what)?;
    netlink::parse_link(&payload).ok_or_else(|| io::Error::other(format!("{what}: a malformed answer")))
}

fn addresses(nl: &mut Rtnl, index: u32) -> io::Result<Vec<(Addr, Vec<u8>)>> {
    let all = nl.dump(&netlink::dump_addrs(), "listing IPv4 addresses", |p| {
        netlink::parse_addr(p).map(|a| (a, p.to_vec()))
    })?;
    Ok(all.into_iter().filter(|(a, _)| a.index == index).collect())
}

fn main_routes(nl: &mut Rtnl) -> io::Result<Vec<(Route, Vec<u8>)>> {
    let all = nl.dump(&netlink::dump_routes(), "listing IPv4 routes", |p| {
        netlink::parse_route(p).map(|r| (r, p.to_vec()))
    })?;
    Ok(all
        .into_iter()
        .filter(|(r, _)| r.table == RT_TABLE_MAIN)
        .collect())
}

/// The kernel name of the NIC with this MAC, from sysfs. Bridges, bonds, VLANs and other devices
/// stacked on a NIC can carry its MAC too: only Ethernet devices that are none of these count, and
/// two that remain are an error rather than a guess.
pub fn ifname_by_mac(mac: Mac) -> io::Result<Option<String>> {
    let want = mac.to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/sys/class/net")? {
        let entry = entry?;
        let dir = entry.path();
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        let ethernet = read("type").trim() == "1"; // ARPHRD_ETHER
        if ethernet && read("address").trim().eq_ignore_ascii_case(&want) && !is_upper(&dir)? {
            found.extend(entry.file_name().into_string().ok());
        }
    }
    found.sort();
    if found.len() > 1 {
        return Err(io::Error::other(format!(
            "several NICs have MAC {mac}: {}",
            found.join(", ")
        )));
    }
    Ok(found.pop())
}

/// A bridge, a bond, or a device stacked on another one (VLAN, macvlan: they have a `lower_*` link).
fn is_upper(dir: &Path) -> io::Result<bool> {
    if dir.join("bridge").exists() || dir.join("bonding").exists() {
        return Ok(true);
    }
    let vlan = dir
        .file_name()
        .is_some_and(|name| Path::new("/proc/net/vlan").join(name).exists());
    for entry in std::fs::read_dir(dir)? {
        if entry?.file_name().to_string_lossy().starts_with("lower_") {
            return Ok(true);
        }
    }
    Ok(vlan)
}

/// The kernel name of os.conf's NIC: found by MAC, else by the name written.
fn device(nic: &LiveNic) -> io::Result<String> {
    match nic.mac {
        Some(mac) => ifname_by_mac(mac)?
            .ok_or_else(|| io::Error::other(format!("no NIC with MAC {mac} (os.conf {})", nic.name))),
        None if Path::new("/sys/class/net").join(&nic.name).exists() => Ok(nic.name.clone()),
        None => Err(io::Error::other(format!("no NIC named {}", nic.name))),
    }
}
