//! Model: the validated, typed meaning of os.conf. Everything a renderer needs, nothing it must re-check.
//!
//! A `Config` only exists once every rule of `validate` has held, so later stages never see a partial
//! NIC, a second default route or a hostname that could break a file format.

mod fields;
mod validate;

pub use fields::{MAX_PASSWORD_BYTES, Mac, Password};
pub use validate::{Validated, nic_index, validate};

use std::net::{IpAddr, Ipv4Addr};

/// An IPv4 prefix `addr/len` with the host bits clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Ipv4Net {
    pub fn mask(len: u8) -> u32 {
        if len == 0 { 0 } else { u32::MAX << (32 - len) }
    }

    pub fn netmask(self) -> Ipv4Addr {
        Ipv4Addr::from(Self::mask(self.len))
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.len) == u32::from(self.addr)
    }

    pub fn is_default(self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A static route of one NIC. Default routes are never here: see `Nic::default_gateway`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub dest: Ipv4Net,
    pub via: Ipv4Addr,
}

/// One NIC, `ethN` in os.conf: the NIC whose MAC is `mac`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// The N of `ethN`.
    pub index: u32,
    pub mac: Option<Mac>,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// `ethN_gateway`: reaches this NIC's routes; on-link when outside the subnet.
    pub gateway: Option<Ipv4Addr>,
    /// Set on exactly one NIC at most: the gateway of the one default route.
    pub default_gateway: Option<Ipv4Addr>,
    /// Non-default routes, each once, in the order given.
    pub routes: Vec<Route>,
}

impl Nic {
    /// The name os.conf uses; the kernel name may differ (matched by MAC).
    pub fn name(&self) -> String {
        format!("eth{}", self.index)
    }

    pub fn subnet(&self) -> Ipv4Net {
        let mask = Ipv4Net::mask(self.prefix_len);
        Ipv4Net {
            addr: Ipv4Addr::from(u32::from(self.address) & mask),
            len: self.prefix_len,
        }
    }

    pub fn netmask(&self) -> Ipv4Addr {
        self.subnet().netmask()
    }

    /// A gateway outside the subnet must be declared on-link for the kernel to accept it.
    pub fn is_on_link(&self, gateway: Ipv4Addr) -> bool {
        !self.subnet().contains(gateway)
    }

    /// The default route (`0.0.0.0/0`) when this NIC carries it, then every other route.
    pub fn all_routes(&self) -> impl Iterator<Item = Route> + '_ {
        let default = self.default_gateway.map(|via| Route {
            dest: Ipv4Net {
                addr: Ipv4Addr::UNSPECIFIED,
                len: 0,
            },
            via,
        });
        default.into_iter().chain(self.routes.iter().copied())
    }
}

/// The validated content of one os.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// RFC 1123 host name, kept as given (case included).
    pub hostname: Option<String>,
    pub password: Option<Password>,
    /// NICs sorted by index.
    pub nics: Vec<Nic>,
    pub nameservers: Vec<IpAddr>,
}

impl Config {
    /// The NIC that carries the default route, if any.
    pub fn default_nic(&self) -> Option<&Nic> {
        self.nics.iter().find(|n| n.default_gateway.is_some())
    }

    /// The NIC whose address names this host: the default route's, else the first.
    pub fn primary_nic(&self) -> Option<&Nic> {
        self.default_nic().or(self.nics.first())
    }

    /// The name servers a NIC's own configuration carries: all of them on the primary NIC, none
    /// elsewhere.
    pub fn nameservers_for(&self, nic: &Nic) -> &[IpAddr] {
        if self.primary_nic() == Some(nic) {
            &self.nameservers
        } else {
            &[]
        }
    }

    /// os.conf again, in canonical form and without the password: what `last-applied.conf` keeps.
    pub fn to_conf_without_password(&self) -> String {
        let mut out = String::new();
        let mut put = |k: &str, v: String| out.push_str(&format!("{k}=\"{v}\"\n"));
        if let Some(h) = &self.hostname {
            put("hostname", h.clone());
        }
        for nic in &self.nics {
            let n = nic.name();
            put(&format!("{n}_ip_addr"), nic.address.to_string());
            if let Some(mac) = nic.mac {
                put(&format!("{n}_mac_addr"), mac.to_string());
            }
            put(&format!("{n}_netmask"), nic.netmask().to_string());
            if let Some(gw) = nic.gateway {
                put(&format!("{n}_gateway"), gw.to_string());
            }
            let default = nic.default_gateway.map(|gw| format!("0.0.0.0/0 {gw}"));
            let routes = nic.routes.iter().map(|r| format!("{} {}", r.dest, r.via));
            let all: Vec<String> = default.into_iter().chain(routes).collect();
            if !all.is_empty() {
                put(&format!("{n}_route"), all.join(";"));
            }
        }
        if !self.nameservers.is_empty() {
            let list: Vec<String> = self.nameservers.iter().map(ToString::to_string).collect();
            put("dns_nameserver", list.join(" "));
        }
        out
    }
}
