//! Writers shared by every stack: hostname files, /etc/hosts, DNS and the root password. Each edits
//! only its own lines of an existing file and keeps the rest byte for byte.

pub mod dns;
pub mod hosts;
pub mod shadow;

use std::net::Ipv4Addr;

use super::Input;
use crate::model::Nic;
use crate::plan::FileOp;
use crate::system::System;

/// First line of every file osconf owns, so a person who finds it knows where it came from.
pub const HEADER: &str =
    "# Written by osconf from aliyun_custom_image/os.conf; replaced at the next change.\n";

/// A file holding just the host name and a newline (`/etc/hostname`, `/etc/HOSTNAME`).
pub fn hostname_file(input: &Input, path: &str) -> Option<FileOp> {
    let name = input.config.hostname.as_ref()?;
    Some(FileOp::write(path, format!("{name}\n")))
}

/// Files in `dir` that osconf wrote before (they start with [`HEADER`]) and that the new plan does not
/// write again: removing them keeps a NIC that left os.conf from being configured at the next boot.
pub fn stale_own_files(sys: &System, dir: &str, keep: &[String]) -> Vec<FileOp> {
    sys.list(dir)
        .into_iter()
        .map(|name| format!("{dir}/{name}"))
        .filter(|path| !keep.contains(path))
        .filter(|path| sys.read(path).is_some_and(|b| b.starts_with(HEADER.as_bytes())))
        .map(|path| FileOp::Remove { path })
        .collect()
}

/// The gateways a NIC uses that lie outside its subnet, each once: they need an on-link route.
pub fn on_link_gateways(nic: &Nic) -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = Vec::new();
    let used = nic
        .default_gateway
        .into_iter()
        .chain(nic.routes.iter().map(|r| r.via));
    for gw in used.filter(|&gw| nic.is_on_link(gw)) {
        if !out.contains(&gw) {
            out.push(gw);
        }
    }
    out
}

/// Replaces (or appends) `KEY=value` lines of a shell-style file such as /etc/sysconfig/network.
/// `None` as a value removes the key. Other lines are kept as they are.
pub fn set_shell_vars(text: &str, vars: &[(&str, Option<String>)]) -> String {
    let mut out = String::new();
    let mut done = Vec::new();
    for line in text.lines() {
        let key = line.trim_start().split('=').next().unwrap_or("").trim();
        match vars.iter().find(|(k, _)| *k == key && line.contains('=')) {
            Some((k, value)) => {
                if let (Some(v), false) = (value, done.contains(k)) {
                    out.push_str(&format!("{k}={v}\n"));
                }
                done.push(*k);
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (k, value) in vars {
        if let (Some(v), false) = (value, done.contains(k)) {
            out.push_str(&format!("{k}={v}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_vars_replace_remove_append() {
        let text = "NETWORKING=yes\nGATEWAY=1.2.3.4\n# GATEWAY=keep\nHOSTNAME=old\nHOSTNAME=dup\n";
        let got = set_shell_vars(
            text,
            &[
                ("GATEWAY", None),
                ("HOSTNAME", Some("new".into())),
                ("NOZEROCONF", Some("yes".into())),
            ],
        );
        assert_eq!(
            got,
            "NETWORKING=yes\n# GATEWAY=keep\nHOSTNAME=new\nNOZEROCONF=yes\n"
        );
    }
}
