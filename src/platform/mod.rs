//! Platform: the live actions on the running kernel (host name, NIC addresses and routes). With the
//! executor, the only code that changes the system; it is never called unless `--live` is in force.

use std::io;
use std::path::Path;
use std::process::Command;

use crate::model::Mac;
use crate::plan::{LiveAction, LiveNic};

pub fn hostname() -> io::Result<String> {
    Ok(rustix::system::uname().nodename().to_string_lossy().into_owned())
}

pub fn set_hostname(name: &str) -> io::Result<()> {
    Ok(rustix::system::sethostname(name.as_bytes())?)
}

/// What a live action is about to replace, so that a rollback can put it back.
#[derive(Debug)]
pub enum Previous {
    Hostname(String),
    Nic(NicState),
}

/// A NIC's IPv4 state as `ip` shows it: link up or down, addresses, and routes other than the ones
/// the kernel derives from the addresses.
#[derive(Debug)]
pub struct NicState {
    dev: String,
    was_up: bool,
    addresses: Vec<String>,
    routes: Vec<String>,
}

/// Records what `action` will change; call it before `apply`.
pub fn snapshot(action: &LiveAction) -> io::Result<Previous> {
    match action {
        LiveAction::SetHostname(_) => Ok(Previous::Hostname(hostname()?)),
        LiveAction::ConfigureNic(nic) => {
            let dev = device(nic)?;
            let flags = ip_output(&["-o", "link", "show", "dev", &dev])?;
            let was_up = flags
                .split(['<', '>'])
                .nth(1)
                .is_some_and(|f| f.split(',').any(|flag| flag == "UP"));
            let addresses = ip_output(&["-o", "-4", "addr", "show", "dev", &dev])?
                .lines()
                .filter_map(|l| {
                    l.split_whitespace()
                        .skip_while(|w| *w != "inet")
                        .nth(1)
                        .map(String::from)
                })
                .collect();
            let routes = ip_output(&["-4", "route", "show", "dev", &dev])?
                .lines()
                .filter(|l| !l.contains("proto kernel"))
                .map(String::from)
                .collect();
            Ok(Previous::Nic(NicState {
                dev,
                was_up,
                addresses,
                routes,
            }))
        }
    }
}

pub fn apply(action: &LiveAction) -> io::Result<()> {
    match action {
        LiveAction::SetHostname(name) => set_hostname(name),
        LiveAction::ConfigureNic(nic) => configure_nic(nic),
    }
}

/// Puts back what `snapshot` recorded.
pub fn restore(previous: &Previous) -> io::Result<()> {
    match previous {
        Previous::Hostname(name) => set_hostname(name),
        Previous::Nic(state) => restore_nic(state),
    }
}

fn restore_nic(state: &NicState) -> io::Result<()> {
    let dev = state.dev.as_str();
    ip(&["-4", "route", "flush", "dev", dev])?;
    ip(&["-4", "addr", "flush", "dev", dev])?;
    for address in &state.addresses {
        ip(&["addr", "add", address, "dev", dev])?;
    }
    for route in &state.routes {
        let mut args = vec!["route", "replace"];
        args.extend(route.split_whitespace());
        args.extend(["dev", dev]);
        ip(&args)?;
    }
    if !state.was_up {
        ip(&["link", "set", "dev", dev, "down"])?;
    }
    Ok(())
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

/// Addresses and routes through iproute2's `ip` (or busybox's): speaking rtnetlink directly would add
/// a netlink encoder to a boot-critical binary for a step that runs only when the network is already
/// up, and every target carries `ip`.
fn configure_nic(nic: &LiveNic) -> io::Result<()> {
    let dev = device(nic)?;
    let address = format!("{}/{}", nic.address, nic.prefix_len);
    ip(&["link", "set", "dev", &dev, "up"])?;
    ip(&["-4", "addr", "flush", "dev", &dev])?;
    ip(&["addr", "add", &address, "dev", &dev])?;
    for gw in &nic.on_link {
        ip(&[
            "route",
            "replace",
            &format!("{gw}/32"),
            "dev",
            &dev,
            "scope",
            "link",
        ])?;
    }
    for (dest, via) in &nic.routes {
        let dest = if dest.is_default() {
            "default".to_owned()
        } else {
            dest.to_string()
        };
        ip(&["route", "replace", &dest, "via", &via.to_string(), "dev", &dev])?;
    }
    Ok(())
}

fn ip(args: &[&str]) -> io::Result<()> {
    ip_output(args).map(drop)
}

/// Runs `ip` and returns what it printed; a failure carries the command and `ip`'s own message.
fn ip_output(args: &[&str]) -> io::Result<String> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(io::Error::other(format!("ip {}: {}", args.join(" "), err.trim())))
}
