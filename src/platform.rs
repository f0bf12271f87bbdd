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

pub fn apply(action: &LiveAction) -> io::Result<()> {
    match action {
        LiveAction::SetHostname(name) => set_hostname(name),
        LiveAction::ConfigureNic(nic) => configure_nic(nic),
    }
}

/// The kernel name of the NIC with this MAC, from sysfs.
pub fn ifname_by_mac(mac: Mac) -> io::Result<Option<String>> {
    let want = mac.to_string();
    for entry in std::fs::read_dir("/sys/class/net")? {
        let entry = entry?;
        let address = std::fs::read_to_string(entry.path().join("address")).unwrap_or_default();
        if address.trim().eq_ignore_ascii_case(&want) {
            return Ok(entry.file_name().into_string().ok());
        }
    }
    Ok(None)
}

/// Addresses and routes through iproute2's `ip` (or busybox's): speaking rtnetlink directly would add
/// a netlink encoder to a boot-critical binary for a step that runs only when the network is already
/// up, and every target carries `ip`.
fn configure_nic(nic: &LiveNic) -> io::Result<()> {
    let dev = match nic.mac {
        Some(mac) => ifname_by_mac(mac)?
            .ok_or_else(|| io::Error::other(format!("no NIC with MAC {mac} (os.conf {})", nic.name)))?,
        None if Path::new("/sys/class/net").join(&nic.name).exists() => nic.name.clone(),
        None => return Err(io::Error::other(format!("no NIC named {}", nic.name))),
    };
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
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(io::Error::other(format!("ip {}: {}", args.join(" "), err.trim())))
}
