//! Writers shared by every stack: hostname files, /etc/hosts, DNS and the root password, and the
//! editing helpers several stacks use (marked blocks, shell-variable and INI-style files, disabling
//! foreign files).
//! Each edits only its own lines of an existing file and keeps the rest byte for byte.

pub mod activate;
pub mod blocks;
pub mod disable;
pub mod dns;
pub mod glob;
pub mod hosts;
pub mod ini;
pub mod shadow;
pub mod shellvars;
#[cfg(test)]
pub mod testing;
pub mod udev;

use std::net::Ipv4Addr;

use super::Input;
use crate::model::Nic;
use crate::plan::FileOp;
use crate::system::{self, System};

/// First line of every file osconf owns, so a person who finds it knows where it came from.
pub const HEADER: &str =
    "# Written by osconf from aliyun_custom_image/os.conf; replaced at the next change.\n";

/// Prefix of a line osconf turned into a comment so that its own configuration wins: the one
/// marker, which `plan` recognises ([`disabled_rest`]) to mask a secret such a line still holds.
pub const DISABLED: &str = "# Disabled by osconf: ";

/// [`DISABLED`] as the marked-block files (netifrc's conf.d/net, wicked's routes, udev rules) have
/// spelled it since they were first written; left so, so that their output stays byte for byte.
pub const DISABLED_LOWER: &str = "# disabled by osconf: ";

/// What follows the marker in a line osconf commented out (either spelling, after any indent).
pub fn disabled_rest(line: &str) -> Option<&str> {
    let line = line.trim_start();
    [DISABLED, DISABLED_LOWER]
        .iter()
        .find_map(|m| line.strip_prefix(m))
}

/// A file holding just the host name and a newline (`/etc/hostname`, `/etc/HOSTNAME`).
pub fn hostname_file(input: &Input, path: &str) -> Option<FileOp> {
    let name = input.config.hostname.as_ref()?;
    Some(FileOp::write(path, format!("{name}\n")))
}

/// Files in `dir` that osconf wrote before (they start with [`HEADER`]) and that `ops` do not write
/// again: removing them keeps a NIC that left os.conf from being configured at the next boot.
pub fn stale_own_files(sys: &System, dir: &str, ops: &[FileOp]) -> system::Result<Vec<FileOp>> {
    let mut out = Vec::new();
    for name in sys.list(dir)? {
        let path = format!("{dir}/{name}");
        if ops.iter().all(|op| op.path() != path) {
            out.extend(remove_own(sys, &path)?);
        }
    }
    Ok(out)
}

/// Removes `path` if osconf wrote it (it starts with [`HEADER`]); anything else is left alone.
pub fn remove_own(sys: &System, path: &str) -> system::Result<Option<FileOp>> {
    Ok(sys
        .read(path)?
        .is_some_and(|b| b.starts_with(HEADER.as_bytes()))
        .then(|| FileOp::Remove {
            path: path.to_owned(),
        }))
}

/// Where `service` is enabled to start at boot, for whichever init the root has: a systemd
/// `*.wants` link to `service.service`, a sysvinit or OpenRC runlevel link, or a runit service
/// directory linked in `/etc/runit/runsvdir/default` (Void). The package's files alone prove
/// nothing: an installed daemon may be left off.
pub fn service_enabled(sys: &System, service: &str) -> system::Result<Option<String>> {
    if let Some(link) = sys.systemd_unit_link(&format!("{service}.service"))? {
        return Ok(Some(link));
    }
    if let Some(link) = sys.init_script_link(service)? {
        return Ok(Some(link));
    }
    let runit = format!("/etc/runit/runsvdir/default/{service}");
    Ok(sys.exists(&runit)?.then_some(runit))
}

/// Where instances of `service` for one interface each are enabled: systemd `*.wants` links to
/// `service@IFACE.service` (Debian's and Arch's dhcpcd@.service), neither the instance nor the
/// template masked, and runit services `service-IFACE` linked in `/etc/runit/runsvdir/default` or in
/// `/var/service`, the directory runsvdir watches (Void's dhcpcd-eth0). Gives each link and its
/// interface.
pub fn instances_enabled(sys: &System, service: &str) -> system::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let template = format!("{service}@.service");
    for dir in sys.systemd_wants_dirs()? {
        for name in sys.list(&dir)? {
            let Some(nic) = name
                .strip_prefix(&format!("{service}@"))
                .and_then(|r| r.strip_suffix(".service"))
                .filter(|nic| !nic.is_empty())
            else {
                continue;
            };
            if !sys.systemd_unit_masked(&name)? && !sys.systemd_unit_masked(&template)? {
                out.push((format!("{dir}/{name}"), nic.to_owned()));
            }
        }
    }
    for dir in ["/etc/runit/runsvdir/default", "/var/service"] {
        for name in sys.list(dir)? {
            if let Some(nic) = name
                .strip_prefix(&format!("{service}-"))
                .filter(|n| !n.is_empty())
            {
                out.push((format!("{dir}/{name}"), nic.to_owned()));
            }
        }
    }
    Ok(out)
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

/// `ip route` arguments for a NIC: device routes to off-subnet gateways, the default route when its
/// gateway is off-subnet (where a stack's own gateway setting cannot add it), then every other route.
pub fn ip_route_args(nic: &Nic, name: &str) -> Vec<String> {
    let mut args: Vec<String> = on_link_gateways(nic)
        .iter()
        .map(|gw| format!("{gw}/32 dev {name} scope link"))
        .collect();
    if let Some(gw) = nic.default_gateway.filter(|&gw| nic.is_on_link(gw)) {
        args.push(format!("default via {gw} dev {name}"));
    }
    args.extend(
        nic.routes
            .iter()
            .map(|r| format!("{} via {} dev {name}", r.dest, r.via)),
    );
    args
}
