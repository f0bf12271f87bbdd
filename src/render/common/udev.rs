//! osconf's udev rule file naming each os.conf NIC by its MAC, for stacks that configure interfaces
//! by name only (wicked, Slackware's rc.inet1): the NIC with ethN's MAC gets the name osconf writes.

use std::fmt::Write as _;

use super::{HEADER, remove_own};
use crate::plan::FileOp;
use crate::render::Input;

/// osconf's rules; sorts before 80-net-setup-link.rules, which names only unnamed NICs.
pub const RULES: &str = "/etc/udev/rules.d/70-osconf-net.rules";

/// How a rule gives the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assign {
    /// `NAME="…"`: a later rule may still rename the NIC.
    Set,
    /// `NAME:="…"`: final, before a persistent-net generator could pick another name.
    Final,
}

/// The rule file, one rule per NIC that has a MAC; with no such NIC, the removal of the rule file
/// osconf wrote before (a file there that osconf did not write stays).
pub fn rules(input: &Input, assign: Assign) -> crate::system::Result<Vec<FileOp>> {
    let op = match assign {
        Assign::Set => "=",
        Assign::Final => ":=",
    };
    let mut text = String::new();
    for nic in &input.config.nics {
        let Some(mac) = nic.mac else { continue };
        let _ = writeln!(
            text,
            "SUBSYSTEM==\"net\", ACTION==\"add\", DRIVERS==\"?*\", ATTR{{address}}==\"{mac}\", ATTR{{type}}==\"1\", NAME{op}\"{}\"",
            input.ifname(nic)
        );
    }
    Ok(if text.is_empty() {
        remove_own(input.sys, RULES)?.into_iter().collect()
    } else {
        vec![FileOp::write(RULES, format!("{HEADER}{text}"))]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::common::testing::{fake_root, from_text};
    use crate::system::System;
    use std::collections::BTreeMap;

    fn render(conf: &str, root: &std::path::Path, assign: Assign) -> Vec<FileOp> {
        let config = from_text(conf);
        let sys = System::probe(root).unwrap();
        rules(
            &Input {
                config: &config,
                sys: &sys,
                ifnames: &BTreeMap::new(),
                running: None,
            },
            assign,
        )
        .unwrap()
    }

    #[test]
    fn rules_by_mac_and_stale_removal_of_own_file_only() {
        let root = fake_root(&[], &[]);
        let with_mac = "eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\neth0_mac_addr=00:16:3e:00:00:01\n";
        let ops = render(with_mac, root.path(), Assign::Final);
        let want = format!(
            "{HEADER}SUBSYSTEM==\"net\", ACTION==\"add\", DRIVERS==\"?*\", ATTR{{address}}==\"00:16:3e:00:00:01\", ATTR{{type}}==\"1\", NAME:=\"eth0\"\n"
        );
        assert!(
            matches!(&ops[..], [FileOp::Write { path, contents, .. }] if path == RULES && *contents == want.as_bytes()),
            "{ops:?}"
        );
        let set = render(with_mac, root.path(), Assign::Set);
        assert!(
            matches!(&set[..], [FileOp::Write { contents, .. }] if contents.ends_with(b"NAME=\"eth0\"\n")),
            "{set:?}"
        );

        let no_mac = "eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\n";
        let ours = fake_root(&[(RULES, &want), ("/etc/udev/rules.d/71-x.rules", HEADER)], &[]);
        let ops = render(no_mac, ours.path(), Assign::Final);
        assert!(
            matches!(&ops[..], [FileOp::Remove { path }] if path == RULES),
            "{ops:?}"
        );
        let theirs = fake_root(&[(RULES, "SUBSYSTEM==\"net\"\n")], &[]);
        assert!(render(no_mac, theirs.path(), Assign::Final).is_empty());
    }
}
