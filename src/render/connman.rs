//! `connman`: ConnMan (Yocto and embedded images) provisioned by `/var/lib/connman/osconf.config`:
//! one `[service_ethN]` per NIC, `Type = ethernet`, the NIC's `MAC` (or `DeviceName`), `IPv4 =
//! address/netmask/gateway`, `Nameservers`. connmand reads every `*.config` there at start and
//! watches the directory, so a running ConnMan reprovisions the NICs by itself.
//!
//! What ConnMan cannot express, osconf refuses (the plan fails naming it, exit 2 as for an os.conf
//! this system cannot take: [`Unfit`]; nothing is written):
//! - a route other than the default one: provisioning files have no routes, and nothing of
//!   ConnMan's would put one back at the next boot;
//! - a NIC that does not carry the default route: connmand (1.41) makes a connected service without
//!   a gateway a default route of its own (`default dev ethN`), and picks the default among
//!   services with gateways by its own ranking, never by configuration.
//!
//! So ConnMan takes the usual VPC os.conf: one NIC, its address, its gateway (on-link when outside
//! the subnet: connmand adds the host route to it), the name servers.

use std::fmt::Write as _;
use std::io;

use super::common::{self, HEADER, disable, dns, ini};
use super::{Input, Rendered, Service, Stack};
use crate::error::Unfit;
use crate::model::Nic;
use crate::plan::FileOp;
use crate::system::{self, System};

pub const STACK: Stack = Stack {
    name: "connman",
    systems: "Yocto and embedded images running ConnMan (one NIC with its default route)",
    detect,
    network,
    host,
    services: &[Service {
        name: "connman",
        ran: Some("/run/connman/resolv.conf"),
        per_nic: None,
    }],
    // connmand watches its directory (inotify) and reprovisions a service whose file changed.
    activate: common::activate::none,
    network_files: &[CONFIG],
};

/// connmand's storage directory, where it reads provisioning files (`*.config`).
pub const DIR: &str = "/var/lib/connman";
const CONFIG: &str = "/var/lib/connman/osconf.config";

fn detect(sys: &System) -> system::Result<Option<String>> {
    let program = "/usr/sbin/connmand";
    if !sys.exists(program)? {
        return Ok(None);
    }
    Ok(common::service_enabled(sys, "connman")?
        .map(|link| format!("{link} starts ConnMan ({program}) at boot")))
}

fn network(input: &Input) -> system::Result<Rendered> {
    let config = input.config;
    let unsupported = unsupported(&config.nics);
    if !unsupported.is_empty() {
        let why = format!(
            "this image's network stack, ConnMan, cannot hold what this os.conf gives: {}; the os.conf \
             is valid, the stack cannot carry it: give one NIC, with its gateway and no other \
             route, or build the image with a stack that keeps routes (ifupdown, systemd-networkd, \
             NetworkManager)",
            unsupported.join("; ")
        );
        return Err(system::Error {
            path: input.sys.host_path(CONFIG),
            error: io::Error::other(Unfit(why)),
        });
    }
    let mut out = Rendered::default();
    let mut text =
        format!("{HEADER}[global]\nName = osconf\nDescription = the NICs of aliyun_custom_image/os.conf\n");
    for nic in &config.nics {
        let _ = write!(text, "\n[service_{}]\nType = ethernet\n", nic.name());
        match nic.mac {
            Some(mac) => {
                let _ = writeln!(text, "MAC = {mac}");
            }
            None => {
                let _ = writeln!(text, "DeviceName = {}", input.ifname(nic));
            }
        }
        let gateway = nic.default_gateway.map(|gw| format!("/{gw}")).unwrap_or_default();
        let _ = writeln!(text, "IPv4 = {}/{}{gateway}", nic.address, nic.netmask());
        let servers: Vec<String> = config
            .nameservers_for(nic)
            .iter()
            .map(ToString::to_string)
            .collect();
        if !servers.is_empty() {
            let _ = writeln!(text, "Nameservers = {}", servers.join(","));
        }
    }
    out.ops.push(FileOp::write(CONFIG, text));
    out.notes.push(
        "ConnMan keeps no static routes and makes any NIC without a gateway a default route of its own: \
         an os.conf needing either is refused on this stack"
            .into(),
    );
    out.add(disable_others(input)?);
    Ok(out)
}

/// Each thing of os.conf that ConnMan cannot express, as its key says it (see the module's comment).
fn unsupported(nics: &[Nic]) -> Vec<String> {
    let mut out = Vec::new();
    for nic in nics {
        if nic.default_gateway.is_none() {
            out.push(format!(
                "{} does not carry the default route (connmand would give it one of its own)",
                nic.name()
            ));
        }
        for r in &nic.routes {
            out.push(format!(
                "{}_route {} {} (ConnMan keeps no static routes)",
                nic.name(),
                r.dest,
                r.via
            ));
        }
    }
    out
}

/// Other provisioning files that name one of os.conf's NICs (its `MAC`, or `DeviceName` when
/// os.conf gives none) are moved aside: connmand would provision the NIC from whichever it read.
fn disable_others(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    let sys = input.sys;
    for name in sys.list(DIR)? {
        let path = format!("{DIR}/{name}");
        if !name.ends_with(".config") || path == CONFIG {
            continue;
        }
        let Some(bytes) = sys.read(&path)? else { continue };
        let text = String::from_utf8_lossy(&bytes);
        let ours = ini::entries(&text).any(|(section, key, value)| {
            section.starts_with("service_")
                && input.config.nics.iter().any(|nic| match (key, nic.mac) {
                    ("MAC", Some(mac)) => value.eq_ignore_ascii_case(&mac.to_string()),
                    ("DeviceName", _) => value == input.ifname(nic),
                    _ => false,
                })
        });
        if ours {
            out.ops.extend(disable::disable(&path, &bytes));
            out.notes.push(format!(
                "{path} provisions one of os.conf's NICs: moved to {path}{} so that osconf's file wins",
                disable::DISABLED_SUFFIX
            ));
        }
    }
    Ok(out)
}

/// The host name, and the name servers in resolv.conf where it is a plain file (ConnMan's own
/// resolv.conf link is left to it: the servers are in the provisioning file). An os.conf without a
/// NIC gives its servers to the NIC osconf provisioned before: ConnMan keeps DNS per service.
fn host(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    out.ops.extend(common::hostname_file(input, "/etc/hostname"));
    let (servers, sys) = (&input.config.nameservers, input.sys);
    if !input.config.nics.is_empty() || servers.is_empty() {
        out.add(dns::render(servers, sys)?);
        return Ok(out);
    }
    let Some(old) = sys.read_text(CONFIG)?.filter(|t| t.starts_with(HEADER)) else {
        out.add(dns::without_nic(servers, sys)?);
        return Ok(out);
    };
    out.add(dns::render(servers, sys)?);
    let mut text: String = old
        .lines()
        .filter(|l| !matches!(ini::Line::of(l), ini::Line::Entry("Nameservers", _)))
        .map(|l| format!("{l}\n"))
        .collect();
    let list: Vec<String> = servers.iter().map(ToString::to_string).collect();
    let _ = writeln!(text, "Nameservers = {}", list.join(","));
    if text != old {
        out.ops.push(FileOp::write(CONFIG, text));
    }
    out.notes.push(format!(
        "DNS: os.conf gives no NIC; the servers go to the service osconf provisioned before ({CONFIG})"
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::common::testing::{detected, example, fake_root, from_text, render, written};
    use std::collections::BTreeMap;

    #[test]
    fn detected_by_program_and_enabled_service_only() {
        let sys = |files: &[(&str, &str)], links: &[(&str, &str)]| detected(&STACK, files, links);
        let prog = ("/usr/sbin/connmand", "");
        assert_eq!(sys(&[prog], &[]), None, "installed, not enabled");
        assert_eq!(
            sys(&[prog], &[("/etc/rc5.d/S05connman", "../init.d/connman")]),
            Some("/etc/rc5.d/S05connman starts ConnMan (/usr/sbin/connmand) at boot".into())
        );
        let wants = "/etc/systemd/system/multi-user.target.wants/connman.service";
        assert!(sys(&[prog], &[(wants, "/lib/systemd/system/connman.service")]).is_some());
        assert_eq!(
            sys(&[], &[(wants, "/lib/systemd/system/connman.service")]),
            None,
            "no program"
        );
    }

    #[test]
    fn one_service_per_nic_and_other_files_for_it_moved_aside() {
        let theirs = "[service_lan]\nType = ethernet\nMAC = 00:8C:FA:5E:14:23\nIPv4 = dhcp\n";
        let wifi = "[service_home]\nType = wifi\nName = home\n";
        let root = fake_root(
            &[
                ("/var/lib/connman/lan.config", theirs),
                ("/var/lib/connman/wifi.config", wifi),
            ],
            &[],
        );
        let out = render(&STACK, &example("vpc"), root.path());
        assert_eq!(
            written(&out, CONFIG).unwrap(),
            format!(
                "{HEADER}[global]\nName = osconf\nDescription = the NICs of aliyun_custom_image/os.conf\n\n\
                 [service_eth0]\nType = ethernet\nMAC = 00:8c:fa:5e:14:23\n\
                 IPv4 = 10.171.254.123/255.255.255.0/10.171.254.1\nNameservers = 7.7.7.7,8.8.8.8\n"
            )
        );
        assert_eq!(
            written(&out, "/var/lib/connman/lan.config.osconf-disabled"),
            Some(theirs)
        );
        assert!(out.ops.iter().any(|op| *op
            == FileOp::Remove {
                path: "/var/lib/connman/lan.config".into()
            }));
        assert!(
            out.ops.iter().all(|op| !op.path().contains("wifi")),
            "{:?}",
            out.ops
        );
    }

    #[test]
    fn what_connman_cannot_hold_is_refused_naming_it() {
        let root = fake_root(&[], &[]);
        let sys = System::probe(root.path()).unwrap();
        let config = example("classic");
        let input = Input {
            config: &config,
            sys: &sys,
            ifnames: &BTreeMap::new(),
            running: None,
        };
        let err = STACK.render(&input).unwrap_err().to_string();
        assert!(err.contains("eth0 does not carry the default route"), "{err}");
        assert!(err.contains("eth0_route 10.0.0.0/8 10.171.254.1"), "{err}");
        assert!(err.contains("eth0_route 172.16.0.0/12 10.171.254.1"), "{err}");
        assert!(!err.contains("eth1"), "{err}");
        // A single NIC without a gateway would get connmand's own device default route.
        let bare = from_text("eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\n");
        let input = Input {
            config: &bare,
            ..input
        };
        assert!(STACK.render(&input).is_err());
    }

    #[test]
    fn servers_without_a_nic_go_to_the_provisioned_service() {
        let vpc = render(&STACK, &example("vpc"), fake_root(&[], &[]).path());
        let ours = written(&vpc, CONFIG).unwrap();
        let root = fake_root(
            &[(CONFIG, ours)],
            &[("/etc/resolv.conf", "/run/connman/resolv.conf")],
        );
        let out = render(&STACK, &from_text("dns_nameserver=1.1.1.1\n"), root.path());
        let want = ours.replace("Nameservers = 7.7.7.7,8.8.8.8\n", "") + "Nameservers = 1.1.1.1\n";
        assert_eq!(written(&out, CONFIG), Some(want.as_str()));
        // A file osconf did not write is not touched.
        let theirs = fake_root(&[(CONFIG, "[service_x]\nType = ethernet\n")], &[]);
        let out = render(&STACK, &from_text("dns_nameserver=1.1.1.1\n"), theirs.path());
        assert_eq!(written(&out, CONFIG), None);
    }
}
