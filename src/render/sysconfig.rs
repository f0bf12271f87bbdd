//! `sysconfig`: RHEL-family network-scripts (`ifcfg-ethN`, `route-ethN`, `/etc/sysconfig/network`),
//! read by initscripts and by NetworkManager's ifcfg-rh plugin alike.

use std::fmt::Write as _;

use super::common::shellvars::shell_value;
use super::common::{self, HEADER};
use super::networkmanager::NETWORK_MANAGER;
use super::{Input, Rendered, Service, Stack};
use crate::model::Nic;
use crate::plan::{FileOp, Run};
use crate::system::{self, System};

pub const STACK: Stack = Stack {
    name: "sysconfig",
    systems: "CentOS 6/7/8, RHEL <= 8, AlmaLinux, Rocky, Anolis, Alibaba Cloud Linux, Fedora with network-scripts",
    detect,
    network,
    host,
    // RHEL 8 reads ifcfg through NetworkManager; older ones through initscripts' network service,
    // whose init script leaves its lock file.
    services: &[
        NETWORK_MANAGER,
        Service {
            name: "network",
            ran: Some("/var/lock/subsys/network"),
            per_nic: None,
        },
    ],
    activate,
    network_files: &["/etc/sysconfig/network-scripts/"],
};

const DIR: &str = "/etc/sysconfig/network-scripts";

/// ifcfg files for a NIC, or initscripts' network service enabled. The directory alone proves
/// nothing: RHEL 9 keeps it with only a readme while NetworkManager reads keyfiles.
fn detect(sys: &System) -> system::Result<Option<String>> {
    let names = sys.list(DIR)?;
    if let Some(ifcfg) = names.iter().find(|n| n.starts_with("ifcfg-") && *n != "ifcfg-lo") {
        return Ok(Some(format!("{DIR}/{ifcfg} exists")));
    }
    let sysv = sys.init_script_link("network")?.is_some();
    Ok((sysv || sys.systemd_unit_enabled("network.service")?)
        .then(|| "initscripts' network service is enabled".to_owned()))
}

fn network(input: &Input) -> system::Result<Rendered> {
    let config = input.config;
    let mut out = Rendered::default();
    for nic in &config.nics {
        let name = input.ifname(nic);
        let ifcfg = format!("{DIR}/ifcfg-{name}");
        let dns = config.nameservers_for(nic);
        out.ops.push(FileOp::write(&ifcfg, ifcfg_text(nic, &name, dns)));
        if let Some(routes) = route_text(nic, &name) {
            let path = format!("{DIR}/route-{name}");
            out.ops.push(FileOp::write(&path, routes));
        }
    }
    out.ops.extend(common::stale_own_files(input.sys, DIR, &out.ops)?);
    // RHEL 8's NetworkManager reads keyfiles beside ifcfg: one for the same NIC would compete, and
    // so would another ifcfg file naming the same DEVICE or HWADDR.
    out.add(super::networkmanager::neutralise_keyfiles(input)?);
    let ifcfg = super::networkmanager::neutralise_ifcfg(input, &out.ops)?;
    out.add(ifcfg);
    Ok(out)
}

/// NetworkManager names an ifcfg profile without NAME= `System DEVICE`; initscripts' `ifdown` and
/// `ifup` read the new ifcfg files.
fn activate(input: &Input) -> Vec<Run> {
    let ids: Vec<String> = input
        .config
        .nics
        .iter()
        .map(|nic| format!("System {}", input.ifname(nic)))
        .collect();
    let mut runs = common::activate::networkmanager(input, &ids);
    runs.extend(common::activate::down_up(
        input,
        "network",
        &["ifdown"],
        &["ifup"],
    ));
    runs
}

/// The host name, /etc/sysconfig/network (which holds the global gateway as well, dropped here when
/// os.conf gives NICs) and resolv.conf.
fn host(input: &Input) -> system::Result<Rendered> {
    let config = input.config;
    let mut out = Rendered::default();
    if !config.nics.is_empty() || config.hostname.is_some() {
        out.ops.push(network_file(input)?);
    }
    out.ops.extend(common::hostname_file(input, "/etc/hostname"));
    out.add(common::dns::render(&config.nameservers, input.sys)?);
    Ok(out)
}

fn ifcfg_text(nic: &Nic, name: &str, dns: &[std::net::IpAddr]) -> String {
    let mut t = String::from(HEADER);
    let _ = writeln!(t, "DEVICE={name}");
    if let Some(mac) = nic.mac {
        let _ = writeln!(t, "HWADDR={mac}");
    }
    t.push_str("TYPE=Ethernet\nONBOOT=yes\nBOOTPROTO=none\n");
    let _ = writeln!(t, "IPADDR={}\nPREFIX={}", nic.address, nic.prefix_len);
    match nic.default_gateway {
        // An on-link gateway cannot be GATEWAY= (ifup would fail to add it); route-ethN carries it.
        Some(gw) if !nic.is_on_link(gw) => {
            let _ = writeln!(t, "GATEWAY={gw}\nDEFROUTE=yes");
        }
        Some(_) => t.push_str("DEFROUTE=yes\n"),
        None => t.push_str("DEFROUTE=no\n"),
    }
    for (i, server) in dns.iter().enumerate() {
        let _ = writeln!(t, "DNS{}={server}", i + 1);
    }
    t
}

/// route-ethN: one `ip route` argument line per route.
fn route_text(nic: &Nic, name: &str) -> Option<String> {
    let args = common::ip_route_args(nic, name);
    (!args.is_empty()).then(|| format!("{HEADER}{}\n", args.join("\n")))
}

/// /etc/sysconfig/network: NETWORKING=yes; the default gateway now lives in ifcfg, so a global
/// GATEWAY would contradict it; HOSTNAME= only where the file already has one (CentOS 6).
fn network_file(input: &Input) -> system::Result<FileOp> {
    let path = "/etc/sysconfig/network";
    let old = input.sys.read_text(path)?.unwrap_or_default();
    let mut vars = vec![("NETWORKING", Some("yes".to_owned()))];
    if !input.config.nics.is_empty() {
        vars.extend([("GATEWAY", None), ("GATEWAYDEV", None)]);
    }
    if let Some(name) = &input.config.hostname
        && shell_value(&old, "HOSTNAME").is_some()
    {
        vars.push(("HOSTNAME", Some(name.clone())));
    }
    Ok(FileOp::write(
        path,
        common::shellvars::set_shell_vars(&old, &vars),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::common::testing::{example, fake_root, from_text, render, written};

    /// /etc/sysconfig/network loses its global gateway when os.conf gives NICs, and its HOSTNAME=
    /// (CentOS 6) is rewritten, never added.
    #[test]
    fn network_file_drops_the_global_gateway_and_keeps_hostname_in_place() {
        let old = "NETWORKING=no\nGATEWAY=10.0.0.1\nGATEWAYDEV=eth0\nHOSTNAME=old\nNOZEROCONF=yes\n";
        let root = fake_root(&[("/etc/sysconfig/network", old)], &[]);
        let out = render(&STACK, &example("vpc"), root.path());
        let hostname = example("vpc").hostname.unwrap();
        let want = format!("NETWORKING=yes\nHOSTNAME={hostname}\nNOZEROCONF=yes\n");
        assert_eq!(written(&out, "/etc/sysconfig/network"), Some(want.as_str()));
        let bare = fake_root(&[("/etc/sysconfig/network", "NETWORKING=yes\n")], &[]);
        let out = render(&STACK, &example("vpc"), bare.path());
        assert_eq!(written(&out, "/etc/sysconfig/network"), Some("NETWORKING=yes\n"));
        // Without NICs the global gateway is all there is: kept.
        let out = render(&STACK, &from_text("hostname=h1\n"), root.path());
        let kept = "NETWORKING=yes\nGATEWAY=10.0.0.1\nGATEWAYDEV=eth0\nHOSTNAME=h1\nNOZEROCONF=yes\n";
        assert_eq!(written(&out, "/etc/sysconfig/network"), Some(kept));
    }

    /// Another ifcfg file for the same NIC (by DEVICE or HWADDR) is turned off; osconf's own files
    /// and files for other NICs are not touched.
    #[test]
    fn other_ifcfg_files_for_the_same_nic_are_disabled() {
        let eth1_mac = example("classic").nics[1].mac.unwrap().to_string();
        let by_mac = format!("HWADDR={}\nONBOOT=yes\nBOOTPROTO=dhcp\n", eth1_mac.to_uppercase());
        let root = fake_root(
            &[
                (
                    "/etc/sysconfig/network-scripts/ifcfg-eth0",
                    "DEVICE=eth0\nONBOOT=yes\nBOOTPROTO=dhcp\n",
                ),
                (
                    "/etc/sysconfig/network-scripts/ifcfg-System_eth0",
                    "DEVICE=eth0\nONBOOT=yes\nBOOTPROTO=dhcp\n",
                ),
                ("/etc/sysconfig/network-scripts/ifcfg-wan", &by_mac),
                (
                    "/etc/sysconfig/network-scripts/ifcfg-eth7",
                    "DEVICE=eth7\nONBOOT=yes\n",
                ),
            ],
            &[],
        );
        let out = render(&STACK, &example("classic"), root.path());
        let system_eth0 = written(&out, "/etc/sysconfig/network-scripts/ifcfg-System_eth0");
        assert_eq!(system_eth0, Some("DEVICE=eth0\nONBOOT=no\nBOOTPROTO=dhcp\n"));
        let wan = written(&out, "/etc/sysconfig/network-scripts/ifcfg-wan").unwrap();
        assert!(wan.contains("ONBOOT=no\n"), "{wan}");
        assert!(written(&out, "/etc/sysconfig/network-scripts/ifcfg-eth7").is_none());
        let eth0 = written(&out, "/etc/sysconfig/network-scripts/ifcfg-eth0").unwrap();
        assert!(
            eth0.starts_with(HEADER) && eth0.contains("ONBOOT=yes\n"),
            "{eth0}"
        );
        assert_eq!(out.notes.len(), 2, "{:?}", out.notes);
    }
}
