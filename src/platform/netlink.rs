//! rtnetlink messages, encoded and decoded: the few the live step needs (links, IPv4 addresses,
//! IPv4 routes) and nothing else. Pure byte work, no socket; it must never trust a length it reads
//! (a short or lying message is `None`, not a panic).
//!
//! Layouts are the kernel's UAPI (`linux/netlink.h`, `linux/rtnetlink.h`, `linux/if_addr.h`,
//! `linux/if_link.h`) as they stand since Linux 2.6, so that kernel 3.10 understands every request.
//! Header fields are in host byte order, addresses in network order.

use crate::error::Error;
use std::fmt;
use std::net::Ipv4Addr;

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_DUMP: u16 = 0x300;

pub const RTM_NEWLINK: u16 = 16;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
pub const RTM_GETADDR: u16 = 22;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;
pub const RTM_GETROUTE: u16 = 26;

const AF_INET: u8 = 2;
pub const IFF_UP: u32 = 0x1;
const IFLA_IFNAME: u16 = 3;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_TABLE: u16 = 15;

pub const RT_TABLE_MAIN: u32 = 254;
pub const RTPROT_KERNEL: u8 = 2;
/// What `ip route add` marks its routes with unless told otherwise: installed at boot by a tool.
const RTPROT_BOOT: u8 = 3;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
/// The only `rtm_flags` bit a route is created with; the others (dead, link down, offload) are the
/// kernel's running state, and some of them make RTM_NEWROUTE fail with EINVAL.
const RTNH_F_ONLINK: u32 = 0x4;

const HEADER_LEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const RTMSG_LEN: usize = 12;

const fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// One request being built: header, fixed body, then attributes.
#[derive(Debug, Clone)]
pub struct Request {
    buf: Vec<u8>,
}

impl Request {
    /// `body` is the message's fixed part (`ifinfomsg`, `ifaddrmsg`, `rtmsg`) and may already carry
    /// attributes (a body echoed back from a dump).
    pub fn new(kind: u16, flags: u16, body: &[u8]) -> Request {
        let mut buf = Vec::with_capacity(HEADER_LEN + align(body.len()) + 32);
        buf.extend_from_slice(&[0; 4]); // length, set by `finish`
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&[0; 8]); // sequence (set by `finish`), port 0: the kernel
        buf.extend_from_slice(body);
        buf.resize(align(buf.len()), 0);
        Request { buf }
    }

    pub fn attr(mut self, kind: u16, value: &[u8]) -> Request {
        let len = u16::try_from(4 + value.len()).expect("attributes here are a few bytes");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.buf.resize(align(self.buf.len()), 0);
        self
    }

    pub fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).expect("requests here are small");
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// One message of a reply, its payload borrowed from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// Splits a datagram into messages; `Err` when a header's length does not fit.
pub fn messages(mut buf: &[u8]) -> Result<Vec<Message<'_>>, Error> {
    let mut out = Vec::new();
    while buf.len() >= HEADER_LEN {
        let len = u32_at(buf, 0).unwrap_or(0) as usize;
        if len < HEADER_LEN || len > buf.len() {
            return Err(Error::failed(
                None,
                format!(
                    "netlink message of {len} bytes in a datagram of {} bytes",
                    buf.len()
                ),
            ));
        }
        out.push(Message {
            kind: u16_at(buf, 4).unwrap_or(0),
            flags: u16_at(buf, 6).unwrap_or(0),
            seq: u32_at(buf, 8).unwrap_or(0),
            payload: &buf[HEADER_LEN..len],
        });
        buf = &buf[align(len).min(buf.len())..];
    }
    Ok(out)
}

/// The errno an NLMSG_ERROR payload carries (positive), 0 for an acknowledgement; also the status
/// word of NLMSG_DONE.
pub fn status(payload: &[u8]) -> Option<i32> {
    let raw = i32::from_ne_bytes(payload.get(0..4)?.try_into().ok()?);
    Some(raw.checked_neg().unwrap_or(i32::MAX))
}

/// The sequence number of the request an NLMSG_ERROR answers (its copy of our header).
pub fn error_seq(payload: &[u8]) -> Option<u32> {
    u32_at(payload, 4 + 8)
}

/// `(type, value)` of each attribute after the fixed part of `payload`; stops at a malformed one.
fn attrs(payload: &[u8], fixed: usize) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = payload.get(align(fixed)..).unwrap_or(&[]);
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(rest, 0)?);
        let kind = u16_at(rest, 2)? & 0x3fff; // without the nested / byte-order bits
        if len < 4 || len > rest.len() {
            return None;
        }
        let value = &rest[4..len];
        rest = &rest[align(len).min(rest.len())..];
        Some((kind, value))
    })
}

/// A network device as RTM_NEWLINK describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub flags: u32,
    pub name: Option<String>,
}

/// Asks for one device by name.
pub fn get_link(name: &str) -> Request {
    let mut value = name.as_bytes().to_vec();
    value.push(0);
    Request::new(RTM_GETLINK, NLM_F_ACK, &ifinfomsg(0, 0, 0)).attr(IFLA_IFNAME, &value)
}

/// Sets or clears IFF_UP, leaving the other flags alone.
pub fn set_link_up(index: u32, up: bool) -> Request {
    let flags = if up { IFF_UP } else { 0 };
    Request::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(index, flags, IFF_UP))
}

fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; IFINFOMSG_LEN] {
    let mut b = [0; IFINFOMSG_LEN];
    // family AF_UNSPEC, pad, type 0
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

pub fn parse_link(payload: &[u8]) -> Option<Link> {
    if payload.len() < IFINFOMSG_LEN {
        return None;
    }
    let name = attrs(payload, IFINFOMSG_LEN)
        .find(|(kind, _)| *kind == IFLA_IFNAME)
        .map(|(_, v)| String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or(v)).into_owned());
    Some(Link {
        index: u32_at(payload, 4)?,
        flags: u32_at(payload, 8)?,
        name,
    })
}

/// An IPv4 address of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    pub local: Ipv4Addr,
    pub prefix_len: u8,
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.local, self.prefix_len)
    }
}

/// Asks for every IPv4 address (old kernels ignore a device filter: callers filter).
pub fn dump_addrs() -> Request {
    Request::new(RTM_GETADDR, NLM_F_DUMP, &ifaddrmsg(0, 0, 0))
}

/// Adds (or refreshes) an address as `ip addr add A/N dev D` does: local and peer both A.
pub fn new_addr(addr: Addr) -> Request {
    Request::new(
        RTM_NEWADDR,
        NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        &ifaddrmsg(addr.index, addr.prefix_len, RT_SCOPE_UNIVERSE),
    )
    .attr(IFA_LOCAL, &addr.local.octets())
    .attr(IFA_ADDRESS, &addr.local.octets())
}

fn ifaddrmsg(index: u32, prefix_len: u8, scope: u8) -> [u8; IFADDRMSG_LEN] {
    let mut b = [AF_INET, prefix_len, 0, scope, 0, 0, 0, 0];
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b
}

/// An IPv4 address from a dump; `None` for other families or a message without IFA_LOCAL.
pub fn parse_addr(payload: &[u8]) -> Option<Addr> {
    if payload.len() < IFADDRMSG_LEN || payload[0] != AF_INET {
        return None;
    }
    let mut local = None;
    let mut address = None;
    for (kind, value) in attrs(payload, IFADDRMSG_LEN) {
        match kind {
            IFA_LOCAL => local = ipv4(value),
            IFA_ADDRESS => address = ipv4(value),
            _ => {}
        }
    }
    Some(Addr {
        index: u32_at(payload, 4)?,
        local: local.or(address)?,
        prefix_len: payload[1],
    })
}

/// An IPv4 route; two routes are the same route when `same` says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub table: u32,
    pub dst: Ipv4Addr,
    pub dst_len: u8,
    pub tos: u8,
    pub priority: u32,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
    pub kind: u8,
    pub protocol: u8,
    pub scope: u8,
}

impl Route {
    /// A unicast route of the main table, installed as `ip route replace` would.
    pub fn main(dst: Ipv4Addr, dst_len: u8, gateway: Option<Ipv4Addr>, oif: u32) -> Route {
        Route {
            table: RT_TABLE_MAIN,
            dst,
            dst_len,
            tos: 0,
            priority: 0,
            gateway,
            oif: Some(oif),
            kind: RTN_UNICAST,
            protocol: RTPROT_BOOT,
            scope: if gateway.is_some() {
                RT_SCOPE_UNIVERSE
            } else {
                RT_SCOPE_LINK
            },
        }
    }

    /// The kernel's key for a route (table, destination, TOS, metric) plus where it leads: what
    /// makes two routes one. Protocol and scope are how it was made, not which route it is.
    pub fn same(&self, other: &Route) -> bool {
        (self.table, self.dst, self.dst_len, self.tos, self.priority)
            == (other.table, other.dst, other.dst_len, other.tos, other.priority)
            && (self.gateway, self.oif, self.kind) == (other.gateway, other.oif, other.kind)
    }

    pub fn is_default(&self) -> bool {
        self.dst_len == 0
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_default() {
            f.write_str("default")?;
        } else {
            write!(f, "{}/{}", self.dst, self.dst_len)?;
        }
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(oif) = self.oif {
            write!(f, " oif {oif}")?;
        }
        if self.priority != 0 {
            write!(f, " metric {}", self.priority)?;
        }
        if self.table != RT_TABLE_MAIN {
            write!(f, " table {}", self.table)?;
        }
        Ok(())
    }
}

/// Asks for every IPv4 route of every table (old kernels ignore a table filter: callers filter).
pub fn dump_routes() -> Request {
    Request::new(
        RTM_GETROUTE,
        NLM_F_DUMP,
        &[AF_INET, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    )
}

/// Adds the route, replacing one with the same key (destination, TOS, metric).
pub fn new_route(route: &Route) -> Request {
    let table = u8::try_from(route.table).unwrap_or(0); // RT_TABLE_UNSPEC: RTA_TABLE says
    let head = [
        AF_INET,
        route.dst_len,
        0,
        route.tos,
        table,
        route.protocol,
        route.scope,
        route.kind,
        0,
        0,
        0,
        0,
    ];
    let mut req = Request::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, &head)
        .attr(RTA_TABLE, &route.table.to_ne_bytes());
    if !route.is_default() {
        req = req.attr(RTA_DST, &route.dst.octets());
    }
    if let Some(gw) = route.gateway {
        req = req.attr(RTA_GATEWAY, &gw.octets());
    }
    if let Some(oif) = route.oif {
        req = req.attr(RTA_OIF, &oif.to_ne_bytes());
    }
    if route.priority != 0 {
        req = req.attr(RTA_PRIORITY, &route.priority.to_ne_bytes());
    }
    req
}

/// An IPv4 route from a dump; `None` for other families or a malformed message.
pub fn parse_route(payload: &[u8]) -> Option<Route> {
    if payload.len() < RTMSG_LEN || payload[0] != AF_INET {
        return None;
    }
    let mut route = Route {
        table: u32::from(payload[4]),
        dst: Ipv4Addr::UNSPECIFIED,
        dst_len: payload[1],
        tos: payload[3],
        priority: 0,
        gateway: None,
        oif: None,
        kind: payload[7],
        protocol: payload[5],
        scope: payload[6],
    };
    for (kind, value) in attrs(payload, RTMSG_LEN) {
        match kind {
            RTA_DST => route.dst = ipv4(value)?,
            RTA_GATEWAY => route.gateway = ipv4(value),
            RTA_OIF => route.oif = u32_at(value, 0),
            RTA_PRIORITY => route.priority = u32_at(value, 0)?,
            RTA_TABLE => route.table = u32_at(value, 0)?,
            _ => {}
        }
    }
    Some(route)
}

/// Sends a dumped message back to the kernel as `kind`: how a saved address or route is put back
/// (or deleted) with every attribute it had (metrics, source, label, lifetimes), as `ip route
/// restore` does. A route loses the running-state flags the kernel refuses on creation.
pub fn echo(kind: u16, flags: u16, payload: &[u8]) -> Request {
    let mut body = payload.to_vec();
    if matches!(kind, RTM_NEWROUTE | RTM_DELROUTE)
        && let Some(word) = body.get_mut(8..12)
    {
        let kept = u32::from_ne_bytes(word.try_into().expect("four bytes")) & RTNH_F_ONLINK;
        word.copy_from_slice(&kept.to_ne_bytes());
    }
    Request::new(kind, flags | NLM_F_ACK, &body)
}

fn ipv4(value: &[u8]) -> Option<Ipv4Addr> {
    let octets: [u8; 4] = value.try_into().ok()?;
    Some(Ipv4Addr::from(octets))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

// The expected bytes are what `strace -e trace=network ip …` shows on x86_64, little-endian.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    #[test]
    fn get_link_asks_by_name() {
        let bytes = get_link("ens5").finish(7);
        #[rustfmt::skip]
        let want = [
            44, 0, 0, 0, 18, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0, // len 44, RTM_GETLINK, REQUEST|ACK, seq 7
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ifinfomsg: index 0
            9, 0, 3, 0, b'e', b'n', b's', b'5', 0, 0, 0, 0, // IFLA_IFNAME "ens5\0", padded
        ];
        assert_eq!(bytes, want);
    }

    #[test]
    fn link_up_changes_only_iff_up() {
        let bytes = set_link_up(3, true).finish(1);
        assert_eq!(&bytes[4..8], [16, 0, 5, 0]); // RTM_NEWLINK, REQUEST|ACK: no CREATE, no REPLACE
        assert_eq!(&bytes[16..], [0, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
        let down = set_link_up(3, false).finish(1);
        assert_eq!(&down[24..], [0, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn new_addr_sets_local_and_address() {
        let addr = Addr {
            index: 2,
            local: Ipv4Addr::new(10, 171, 254, 123),
            prefix_len: 24,
        };
        let bytes = new_addr(addr).finish(9);
        #[rustfmt::skip]
        let want = [
            40, 0, 0, 0, 20, 0, 5, 5, 9, 0, 0, 0, 0, 0, 0, 0, // RTM_NEWADDR, REQUEST|ACK|REPLACE|CREATE
            2, 24, 0, 0, 2, 0, 0, 0, // AF_INET /24, scope universe, index 2
            8, 0, 2, 0, 10, 171, 254, 123, // IFA_LOCAL
            8, 0, 1, 0, 10, 171, 254, 123, // IFA_ADDRESS
        ];
        assert_eq!(bytes, want);
        assert_eq!(parse_addr(&bytes[16..]), Some(addr));
        assert_eq!(addr.to_string(), "10.171.254.123/24");
    }

    #[test]
    fn new_route_encodes_gateway_and_on_link_routes() {
        let default = Route::main(Ipv4Addr::UNSPECIFIED, 0, Some(Ipv4Addr::new(42, 120, 74, 1)), 3);
        let bytes = new_route(&default).finish(2);
        #[rustfmt::skip]
        let want = [
            52, 0, 0, 0, 24, 0, 5, 5, 2, 0, 0, 0, 0, 0, 0, 0, // RTM_NEWROUTE
            2, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0, // inet /0, main, boot, universe, unicast
            8, 0, 15, 0, 254, 0, 0, 0, // RTA_TABLE
            8, 0, 5, 0, 42, 120, 74, 1, // RTA_GATEWAY
            8, 0, 4, 0, 3, 0, 0, 0, // RTA_OIF
        ];
        assert_eq!(bytes, want);
        assert_eq!(parse_route(&bytes[16..]), Some(default));
        assert_eq!(default.to_string(), "default via 42.120.74.1 oif 3");

        let on_link = Route::main(Ipv4Addr::new(42, 120, 74, 1), 32, None, 3);
        let bytes = new_route(&on_link).finish(2);
        assert_eq!(&bytes[16..28], [2, 32, 0, 0, 254, 3, 253, 1, 0, 0, 0, 0]); // scope link
        assert_eq!(&bytes[36..44], [8, 0, 1, 0, 42, 120, 74, 1]); // RTA_DST
        assert_eq!(parse_route(&bytes[16..]), Some(on_link));
    }

    #[test]
    fn parses_a_dumped_route_and_its_table() {
        // 10.9.0.0/16 via 192.168.9.1 dev 5 metric 100, proto dhcp, as a dump gives it.
        #[rustfmt::skip]
        let payload = [
            2, 16, 0, 0, 254, 16, 0, 1, 0x10, 0, 0, 0, // flags: RTNH_F_LINKDOWN
            8, 0, 15, 0, 254, 0, 0, 0,
            8, 0, 1, 0, 10, 9, 0, 0,
            8, 0, 6, 0, 100, 0, 0, 0,
            8, 0, 5, 0, 192, 168, 9, 1,
            8, 0, 4, 0, 5, 0, 0, 0,
        ];
        let route = parse_route(&payload).unwrap();
        assert_eq!(route.to_string(), "10.9.0.0/16 via 192.168.9.1 oif 5 metric 100");
        assert_eq!(route.protocol, 16);
        let mine = Route::main(route.dst, 16, route.gateway, 5);
        assert!(!route.same(&mine), "another metric is another route");
        assert!(route.same(&Route {
            priority: 100,
            ..mine
        }));
        // Put back, it keeps every attribute but loses the kernel's running-state flag.
        let back = echo(RTM_NEWROUTE, NLM_F_CREATE, &payload).finish(4);
        assert_eq!(&back[4..8], [24, 0, 5, 4]);
        assert_eq!(&back[24..28], [0, 0, 0, 0]);
        assert_eq!(back[28..], payload[12..]);
        // IPv6 and truncated messages are not IPv4 routes.
        assert_eq!(parse_route(&[10; 12]), None);
        assert_eq!(parse_route(&payload[..8]), None);
    }

    #[test]
    fn splits_replies_and_decodes_errors() {
        #[rustfmt::skip]
        let reply = [
            36, 0, 0, 0, 2, 0, 0, 1, 5, 0, 0, 0, 0x10, 0, 0, 0, // NLMSG_ERROR, seq 5
            0xef, 0xff, 0xff, 0xff, // -17: EEXIST
            20, 0, 0, 0, 20, 0, 5, 5, 5, 0, 0, 0, 0, 0, 0, 0, // the request's header
            20, 0, 0, 0, 3, 0, 2, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // NLMSG_DONE, status 0
        ];
        let msgs = messages(&reply).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!((msgs[0].kind, msgs[0].seq), (NLMSG_ERROR, 5));
        assert_eq!(status(msgs[0].payload), Some(17));
        assert_eq!(error_seq(msgs[0].payload), Some(5));
        assert_eq!((msgs[1].kind, status(msgs[1].payload)), (NLMSG_DONE, Some(0)));
        // A length past the datagram is an error, not a slice panic.
        let mut lying = reply;
        lying[0] = 200;
        assert!(messages(&lying).is_err());
        assert!(messages(&reply[..10]).unwrap().is_empty());
    }

    #[test]
    fn parses_links_and_addresses_from_dumps() {
        #[rustfmt::skip]
        let link = [
            0, 0, 1, 0, 3, 0, 0, 0, 0x43, 0x10, 1, 0, 0, 0, 0, 0, // ether, index 3, UP|RUNNING...
            9, 0, 3, 0, b'e', b'n', b's', b'6', 0, 0, 0, 0,
            4, 0, 0x80 | 1, 0x80, // an empty nested attribute: skipped
        ];
        let parsed = parse_link(&link).unwrap();
        assert_eq!((parsed.index, parsed.name.as_deref()), (3, Some("ens6")));
        assert_ne!(parsed.flags & IFF_UP, 0);
        // A broken attribute ends the list without a panic.
        assert_eq!(parse_link(&link[..22]).unwrap().name, None);

        #[rustfmt::skip]
        let addr = [
            2, 24, 0x80, 0, 3, 0, 0, 0,
            8, 0, 1, 0, 192, 168, 9, 9,
            8, 0, 2, 0, 192, 168, 9, 9,
            10, 0, 3, 0, b'e', b'n', b's', b'6', 0, 0, 0, 0,
        ];
        assert_eq!(parse_addr(&addr).unwrap().to_string(), "192.168.9.9/24");
        let gone = echo(RTM_DELADDR, 0, &addr).finish(1);
        assert_eq!(&gone[4..8], [21, 0, 5, 0]);
        assert_eq!(gone[16..], addr);
        assert_eq!(parse_addr(&[10, 64, 0, 0, 3, 0, 0, 0]), None);
    }
}
