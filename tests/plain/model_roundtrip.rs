//! Property: any valid configuration, written as os.conf text the way ECS writes it, is read and
//! validated back to the same `Config` — host name, password, every NIC with its MAC, gateway,
//! default and other routes, and the name servers. Generated with proptest (shrunk on failure).

use std::net::{IpAddr, Ipv4Addr};

use base64ct::{Base64, Encoding as _};
use osconf::model::{Config, Ipv4Net, Mac, Nic, Route, validate};
use osconf::reader::parse;
use proptest::prelude::*;

/// A host of `net` other than its network and broadcast addresses, picked by `pick`.
fn host(net: Ipv4Net, pick: u32) -> Ipv4Addr {
    let size = 1u64 << (32 - net.len);
    let offset = 1 + u64::from(pick) % (size - 2);
    Ipv4Addr::from(u32::from(net.addr) + offset as u32)
}

/// The raw numbers a NIC is drawn from: subnet base, prefix length, address pick, gateway (pick,
/// on-link), routes (destination, length, via pick, through the gateway).
type RawNic = (u32, u8, u32, Option<(u32, bool)>, Vec<(u32, u8, u32, bool)>);

/// One NIC drawn from raw numbers: its subnet, address, optional gateway (on the subnet or, when
/// `on_link`, outside it), and routes through an address on its subnet or the gateway.
fn nic(index: u32, raw: RawNic) -> Nic {
    let (base, prefix_len, pick, gateway, routes) = raw;
    let subnet = Ipv4Net {
        // 10.<index>.0.0/16 and below: the NICs' subnets never overlap.
        addr: Ipv4Addr::from((0x0a00_0000 | index << 16 | (base & 0xffff)) & Ipv4Net::mask(prefix_len)),
        len: prefix_len,
    };
    let address = host(subnet, pick);
    let gateway = gateway.map(|(g, on_link)| {
        if on_link {
            // 100.64.0.0/10 never meets the 10.0.0.0/8 subnets.
            Ipv4Addr::from(0x6440_0001 | (g & 0x003f_fff0))
        } else {
            let gw = host(subnet, g);
            if gw == address {
                host(subnet, pick.wrapping_add(1))
            } else {
                gw
            }
        }
    });
    let routes = routes
        .into_iter()
        .filter_map(|(dest, len, via, use_gateway)| {
            let via = match (use_gateway, gateway) {
                (true, Some(gw)) => gw,
                _ => host(subnet, via),
            };
            (via != address).then(|| Route {
                // 172.16.0.0/12 destinations, never default.
                dest: Ipv4Net {
                    addr: Ipv4Addr::from((0xac10_0000 | (dest & 0x000f_ffff)) & Ipv4Net::mask(len)),
                    len,
                },
                via,
            })
        })
        .collect();
    Nic {
        index,
        mac: Some(Mac([0x00, 0x16, 0x3e, 0x00, (index >> 8) as u8, index as u8])),
        address,
        prefix_len,
        gateway,
        default_gateway: None,
        routes,
    }
}

fn config() -> impl Strategy<Value = (Config, bool)> {
    let label = "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?";
    let hostname = proptest::option::of(proptest::collection::vec(label, 1..4).prop_map(|l| l.join(".")));
    let password = proptest::option::of("[ -~]{1,40}");
    let route = (any::<u32>(), 9u8..=32, any::<u32>(), any::<bool>());
    let raw_nic = (
        any::<u32>(),
        16u8..=30,
        any::<u32>(),
        proptest::option::of((any::<u32>(), any::<bool>())),
        proptest::collection::vec(route, 0..4),
    );
    let nics = proptest::collection::btree_map(0u32..6, raw_nic, 0..4);
    let servers = proptest::collection::vec(1u32..0xdfff_ffff, 0..4);
    (hostname, password, nics, servers, any::<u8>(), any::<bool>()).prop_filter_map(
        "no setting at all",
        |(hostname, password, raw, servers, default_pick, implicit)| {
            let mut nics: Vec<Nic> = raw.into_iter().map(|(i, r)| nic(i, r)).collect();
            // Each destination once across all NICs.
            let mut seen = std::collections::BTreeSet::new();
            for n in &mut nics {
                n.routes.retain(|r| seen.insert(r.dest));
            }
            let classic = nics.iter().any(|n| n.index == 1);
            // The one default route, through a gateway of one NIC that has one.
            let with_gateway: Vec<usize> = (0..nics.len()).filter(|&i| nics[i].gateway.is_some()).collect();
            if !with_gateway.is_empty() && default_pick % 3 != 0 {
                let i = with_gateway[usize::from(default_pick) % with_gateway.len()];
                nics[i].default_gateway = nics[i].gateway;
            }
            // Without any, a VPC instance's eth0 gateway is the default route (ECS's rule).
            let eth0 = nics.iter().position(|n| n.index == 0);
            let none = nics.iter().all(|n| n.default_gateway.is_none());
            if let (true, false, Some(i)) = (none, classic, eth0) {
                nics[i].default_gateway = nics[i].gateway;
            }
            let nameservers: Vec<IpAddr> = servers
                .into_iter()
                .map(|s| IpAddr::V4(Ipv4Addr::from(s)))
                .collect();
            let password = password.map(|p| decoded(&p));
            let config = Config {
                hostname,
                password,
                nics,
                nameservers,
            };
            let empty = config.hostname.is_none() && config.password.is_none() && config.nics.is_empty();
            (!empty
                && config
                    .nameservers
                    .iter()
                    .all(|s| !matches!(s, IpAddr::V4(a) if a.is_unspecified() || a.is_multicast())))
            .then_some((config, implicit))
        },
    )
}

/// The `Password` os.conf's base64 of `text` stands for (the model makes one only by decoding).
fn decoded(text: &str) -> osconf::model::Password {
    let b64 = Base64::encode_string(text.as_bytes());
    let raw = parse(format!("password={b64}\n").as_bytes()).unwrap();
    let password = validate(&raw).unwrap().config.password.unwrap();
    assert_eq!(password.expose(), text);
    password
}

/// os.conf as ECS writes it. With `implicit`, a default route that ECS's rule gives anyway (a VPC
/// eth0 gateway) is left out of eth0_route.
fn text(config: &Config, password: Option<&str>, implicit: bool) -> String {
    let mut out = String::new();
    if let Some(h) = &config.hostname {
        out.push_str(&format!("hostname={h}\n"));
    }
    if let Some(p) = password {
        let b64 = Base64::encode_string(p.as_bytes());
        out.push_str(&format!("password={b64}\n"));
    }
    let classic = config.nics.iter().any(|n| n.index == 1);
    for nic in &config.nics {
        let n = format!("eth{}", nic.index);
        out.push_str(&format!(
            "{n}_ip_addr={}\n{n}_netmask={}\n",
            nic.address,
            nic.netmask()
        ));
        if let Some(mac) = nic.mac {
            out.push_str(&format!("{n}_mac_addr={mac}\n"));
        }
        if let Some(gw) = nic.gateway {
            out.push_str(&format!("{n}_gateway={gw}\n"));
        }
        let implied = implicit && !classic && nic.index == 0 && nic.default_gateway == nic.gateway;
        let default = nic
            .default_gateway
            .filter(|_| !implied)
            .map(|gw| format!("0.0.0.0/0 {gw}"));
        let routes: Vec<String> = default
            .into_iter()
            .chain(nic.routes.iter().map(|r| format!("{} {}", r.dest, r.via)))
            .collect();
        if !routes.is_empty() {
            out.push_str(&format!("{n}_route=\"{}\"\n", routes.join(";")));
        }
    }
    if !config.nameservers.is_empty() {
        let list: Vec<String> = config.nameservers.iter().map(ToString::to_string).collect();
        out.push_str(&format!("dns_nameserver=\"{}\"\n", list.join(" ")));
    }
    out
}

proptest! {
    // A failure prints the shrunk case; nothing is written into the source tree.
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_valid_config_written_as_os_conf_reads_back_the_same((config, implicit) in config()) {
        let password = config.password.as_ref().map(|p| p.expose().to_owned());
        let conf = text(&config, password.as_deref(), implicit);
        let raw = parse(conf.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e:?}\n{conf}")))?;
        let back = validate(&raw).map_err(|e| TestCaseError::fail(format!("{e:?}\n{conf}")))?;
        prop_assert_eq!(&back.config, &config, "{}", conf);
        prop_assert!(back.warnings.is_empty());
        // And through the canonical form last-applied.conf keeps.
        let mut want = config.clone();
        want.password = None;
        if want.hostname.is_some() || !want.nics.is_empty() || !want.nameservers.is_empty() {
            let canonical = config.to_conf_without_password();
            let again = validate(&parse(canonical.as_bytes()).unwrap()).unwrap().config;
            prop_assert_eq!(again, want);
        }
    }
}
