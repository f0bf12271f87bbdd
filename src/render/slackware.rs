//! `slackware`: Slackware 15's rc.inet1 — `IPADDRS[n]`/`IFNAME[n]`/`GATEWAY` in
//! /etc/rc.d/rc.inet1.conf (edited in place, every other line kept), a udev rule that gives each
//! os.conf MAC its name, static routes in a marked block of /etc/rc.d/rc.local, /etc/HOSTNAME.
//!
//! rc.inet1.conf is a bash file people edit: osconf marks the assignments it writes with `# osconf`
//! and drops its own marked lines that a new os.conf no longer needs ([`set_marked_vars`]).

use std::collections::BTreeSet;

use super::common;
use super::common::blocks::{Markers, replace_block_with};
use super::common::shellvars::{Stale, assignments, comment_out, set_marked_vars, split_assignment};
use super::common::udev::{self, Assign, RULES};
use super::{Input, Rendered, Stack};
use crate::model::Nic;
use crate::plan::{FileOp, Mode};
use crate::system::{self, System};

pub const STACK: Stack = Stack {
    name: "slackware",
    systems: "Slackware 15.0 (rc.inet1)",
    detect,
    network,
    host,
    // rc scripts leave no trace of having run: a live run configures the NICs itself.
    services: &[],
    activate: common::activate::none,
    network_files: &[CONF, RC_LOCAL],
};

const CONF: &str = "/etc/rc.d/rc.inet1.conf";
const RC_LOCAL: &str = "/etc/rc.d/rc.local";

/// osconf's block of routes in rc.local.
const MARKERS: Markers = Markers {
    begin: "# osconf begin: routes from os.conf (rc.inet1.conf has no route settings)\n",
    end: "# osconf end\n",
};

fn detect(sys: &System) -> system::Result<Option<String>> {
    Ok(if sys.exists("/etc/slackware-version")? {
        Some("/etc/slackware-version exists".into())
    } else {
        (sys.os.id == "slackware").then(|| "os-release ID=slackware".into())
    })
}

fn network(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    out.add(inet1_conf(input)?);
    out.add(rc_local(input)?);
    // A live run writes the kernel's names, which the next boot gives again: nothing renamed.
    if !input.kernel_names() {
        out.ops.extend(udev::rules(input, Assign::Final)?);
        out.notes.push(format!(
            "rc.inet1 configures interfaces by name: {RULES} names each os.conf MAC's NIC (NAME:=), \
             so IPADDRS[n] reaches the right NIC"
        ));
    }
    Ok(out)
}

fn host(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    out.ops.extend(common::hostname_file(input, "/etc/HOSTNAME"));
    if input.sys.exists("/etc/hostname")? {
        out.ops.extend(common::hostname_file(input, "/etc/hostname"));
    }
    out.add(common::dns::render(&input.config.nameservers, input.sys)?);
    Ok(out)
}

/// rc.inet1.conf: for each NIC `IFNAME[n]`, `IPADDRS[n]`, `USE_DHCP[n]="no"`; legacy and bridge
/// keys of the same index cleared; `HWADDR[n]` (which would overwrite the MAC ECS assigned) and
/// other indexes naming the same interface commented out; `GATEWAY` for the one default route.
fn inet1_conf(input: &Input) -> system::Result<Rendered> {
    let config = input.config;
    let mut out = Rendered::default();
    let old = input.sys.read_text(CONF)?.unwrap_or_default();
    let assigned: Vec<(String, String)> = assignments(&old).map(|(k, v, _)| (k, v)).collect();
    let names: Vec<String> = config.nics.iter().map(|n| input.ifname(n)).collect();
    let ours: BTreeSet<String> = config.nics.iter().map(|n| n.index.to_string()).collect();
    let mut vars = Vec::new();
    for (nic, name) in config.nics.iter().zip(&names) {
        let n = nic.index;
        vars.push((format!("IFNAME[{n}]"), name.clone()));
        vars.push((
            format!("IPADDRS[{n}]"),
            format!("{}/{}", nic.address, nic.prefix_len),
        ));
        vars.push((format!("USE_DHCP[{n}]"), "no".into()));
        // rc.inet1 adds IPADDR/NETMASK and IPALIASES to IPADDRS, and builds a bridge from BRNICS.
        for legacy in ["IPADDR", "NETMASK", "IPALIASES", "BRNICS"] {
            let key = format!("{legacy}[{n}]");
            if assigned.iter().any(|(k, v)| *k == key && !v.is_empty()) {
                vars.push((key, String::new()));
            }
        }
    }
    let gateway = config
        .default_nic()
        .and_then(|nic| nic.default_gateway.filter(|&gw| !nic.is_on_link(gw)));
    vars.push((
        "GATEWAY".into(),
        gateway.map(|g| g.to_string()).unwrap_or_default(),
    ));

    let mut disabled = Vec::new();
    // A set: a file with many indexes naming one interface would make a list lookup per line quadratic.
    let other_index_names: BTreeSet<&str> = assigned
        .iter()
        .filter_map(|(k, v)| {
            let idx = k.strip_prefix("IFNAME[")?.strip_suffix(']')?;
            (!ours.contains(idx) && names.contains(v)).then_some(idx)
        })
        .collect();
    let text = comment_out(&old, |key| {
        let Some((base, idx)) = key.strip_suffix(']').and_then(|k| k.split_once('[')) else {
            return false;
        };
        let hit = (base == "HWADDR" && ours.contains(idx)) || other_index_names.contains(&idx);
        if hit {
            disabled.push(key.to_owned());
        }
        hit
    });
    if !disabled.is_empty() {
        out.notes.push(format!(
            "{CONF}: commented out {} (HWADDR would replace the MAC ECS assigned; other entries named the same interface)",
            disabled.join(", ")
        ));
    }
    let dhcp = assigned
        .iter()
        .any(|(k, v)| v == "yes" && ours.iter().any(|i| *k == format!("USE_DHCP[{i}]")));
    if dhcp {
        out.notes.push(format!(
            "{CONF}: DHCP turned off for the NICs os.conf configures statically"
        ));
    }
    out.ops.push(FileOp::write(
        CONF,
        set_marked_vars(&text, &vars, Stale::Empty, place_in_block),
    ));
    Ok(out)
}

/// Where a missing `KEY[n]` goes: after the last assignment of index n, else before the gateway
/// section, else at the end.
fn place_in_block(lines: &[String], key: &str) -> usize {
    let index = key.find('[').map(|i| &key[i..]);
    if let Some(idx) = index {
        let last = lines
            .iter()
            .rposition(|l| split_assignment(l).is_some_and(|(k, _)| k.ends_with(idx)));
        if let Some(i) = last {
            return i + 1;
        }
        let gateway = lines.iter().position(|l| {
            l.starts_with("# Default gateway") || l.starts_with("# Gateway") || l.starts_with("GATEWAY=")
        });
        if let Some(i) = gateway {
            return i;
        }
    }
    lines.len()
}

/// /etc/rc.d/rc.local (run by rc.M after rc.inet1): a marked block of `ip route replace` lines
/// for the routes and on-link gateways rc.inet1.conf cannot express.
fn rc_local(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    let mut lines = String::new();
    for nic in &input.config.nics {
        lines.push_str(&route_lines(nic, &input.ifname(nic)));
    }
    let old = input.sys.read_text(RC_LOCAL)?;
    let base = old.clone().unwrap_or_else(|| "#!/bin/bash\n".into());
    if old.is_none() && lines.is_empty() {
        return Ok(out);
    }
    let text = replace_block_with(&base, MARKERS, &lines);
    out.ops.push(FileOp::Write {
        path: RC_LOCAL.into(),
        contents: text.into_bytes(),
        mode: Mode::Default(0o755),
        secret: false,
    });
    if !lines.is_empty() {
        out.notes.push(format!(
            "static routes go to {RC_LOCAL} (rc.M runs it after rc.inet1 at boot; `rc.inet1 restart` does not re-add them)"
        ));
    }
    Ok(out)
}

fn route_lines(nic: &Nic, name: &str) -> String {
    common::ip_route_args(nic, name)
        .iter()
        .map(|args| format!("/sbin/ip route replace {args}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn marked_vars_replace_insert_and_drop_stale() {
        let old = "# eth0\nIPADDRS[0]=\"\"\nUSE_DHCP[0]=\"yes\"\n\n# eth1\nIPADDRS[1]=\"1.1.1.1/8\" # osconf\n\
                   IFNAME[1]=\"eth1\" # osconf\n#IPADDRS[4]=\"\"\n# Default gateway IP address:\nGATEWAY=\"\"\n";
        let vars = vars(&[
            ("IPADDRS[0]", "10.0.0.2/24"),
            ("IFNAME[0]", "eth0"),
            ("USE_DHCP[0]", "no"),
            ("GATEWAY", "10.0.0.1"),
        ]);
        let set = |text: &str| set_marked_vars(text, &vars, Stale::Empty, place_in_block);
        let got = set(old);
        let want = "# eth0\nIPADDRS[0]=\"10.0.0.2/24\" # osconf\nUSE_DHCP[0]=\"no\" # osconf\nIFNAME[0]=\"eth0\" # osconf\n\n\
                    # eth1\nIPADDRS[1]=\"\"\nIFNAME[1]=\"\"\n#IPADDRS[4]=\"\"\n# Default gateway IP address:\nGATEWAY=\"10.0.0.1\" # osconf\n";
        assert_eq!(got, want);
        assert_eq!(set(&got), got, "re-applying changes nothing");
    }

    #[test]
    fn new_index_goes_before_the_gateway() {
        let old = "IPADDRS[0]=\"\"\n\n# Default gateway IP address:\nGATEWAY=\"\"\n";
        let got = set_marked_vars(
            old,
            &vars(&[("IFNAME[3]", "eth3"), ("IPADDRS[3]", "1.2.3.4/24")]),
            Stale::Drop,
            place_in_block,
        );
        assert_eq!(
            got,
            "IPADDRS[0]=\"\"\n\nIFNAME[3]=\"eth3\" # osconf\nIPADDRS[3]=\"1.2.3.4/24\" # osconf\n# Default gateway IP address:\nGATEWAY=\"\"\n"
        );
    }

    /// HWADDR[n] of an os.conf NIC's index, and every key of another index naming the same
    /// interface, are commented out; other indexes stay.
    #[test]
    fn hwaddr_and_other_indexes_for_the_same_name_are_commented_out() {
        use crate::render::common::DISABLED as D;
        use crate::render::common::testing::{self, fake_root, from_text, written};
        let old = "IPADDRS[0]=\"\"\nHWADDR[0]=\"00:11:22:33:44:55\"\nIFNAME[2]=\"eth0\"\nIPADDRS[2]=\"192.168.0.9/24\"\nUSE_DHCP[2]=\"yes\"\nIFNAME[3]=\"eth3\"\nHWADDR[3]=\"00:11:22:33:44:66\"\nGATEWAY=\"\"\n";
        let root = fake_root(&[(CONF, old)], &[]);
        let config = from_text("eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\n");
        let out = testing::render(&STACK, &config, root.path());
        let want = format!(
            "IPADDRS[0]=\"10.0.0.5/24\" # osconf\nIFNAME[0]=\"eth0\" # osconf\nUSE_DHCP[0]=\"no\" # osconf\n{D}HWADDR[0]=\"00:11:22:33:44:55\"\n{D}IFNAME[2]=\"eth0\"\n{D}IPADDRS[2]=\"192.168.0.9/24\"\n{D}USE_DHCP[2]=\"yes\"\nIFNAME[3]=\"eth3\"\nHWADDR[3]=\"00:11:22:33:44:66\"\nGATEWAY=\"\" # osconf\n"
        );
        assert_eq!(written(&out, CONF), Some(want.as_str()));
    }

    #[test]
    fn block_replaced_appended_and_removed() {
        let (begin, end) = (MARKERS.begin, MARKERS.end);
        let with = replace_block_with("#!/bin/bash\n# local\n", MARKERS, "route a\n");
        assert_eq!(with, format!("#!/bin/bash\n# local\n\n{begin}route a\n{end}"));
        assert_eq!(
            replace_block_with(&format!("{with}echo hi\n"), MARKERS, "route b\n"),
            format!("#!/bin/bash\n# local\n\n{begin}route b\n{end}echo hi\n")
        );
        assert_eq!(replace_block_with(&with, MARKERS, ""), "#!/bin/bash\n# local\n\n");
    }

    /// Many indexes naming the same interface: a list lookup per line was quadratic; this test would
    /// run for minutes if it came back.
    #[test]
    fn regression_many_indexes_take_linear_time() {
        let old: String = (0..100_000).map(|i| format!("IFNAME[{i}]=\"eth0\"\n")).collect();
        let root = crate::render::common::testing::fake_root(&[(CONF, &old)], &[]);
        let config = crate::render::common::testing::example("vpc");
        let out = crate::render::common::testing::render(&STACK, &config, root.path());
        let text = crate::render::common::testing::written(&out, CONF).unwrap();
        assert!(text.contains("# Disabled by osconf: IFNAME[99999]"));
    }
}
