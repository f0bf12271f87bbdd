//! Kernel names of os.conf's NICs, found by MAC at boot. Drivers load late, so the search polls
//! /sys/class/net until every MAC is there or the bound passes (no `udevadm settle`: deprecated
//! upstream as racy, and absent without udev). Reads only.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::ifname_by_mac;
use crate::error::Error;
use crate::model::Nic;
use std::path::Path;

/// How often /sys/class/net is read again while a NIC is missing.
const POLL: Duration = Duration::from_millis(100);

/// The kernel name of every NIC of `nics` that has a MAC, by os.conf's N, waiting up to `bound`
/// for the missing ones. The error names every MAC still missing, or the MAC that two NICs share.
pub fn wait_for_nics(nics: &[Nic], bound: Duration) -> Result<BTreeMap<u32, String>, Error> {
    let deadline = Instant::now() + bound;
    loop {
        let mut names = BTreeMap::new();
        let mut missing = Vec::new();
        for nic in nics {
            let Some(mac) = nic.mac else { continue };
            match ifname_by_mac(mac) {
                Ok(Some(name)) => {
                    names.insert(nic.index, name);
                }
                Ok(None) => missing.push(format!("no NIC with MAC {mac} (os.conf {})", nic.name())),
                Err(e) => return Err(Error::io(Path::new("/sys/class/net"), &e)),
            }
        }
        if missing.is_empty() {
            return Ok(names);
        }
        if Instant::now() >= deadline {
            let why = format!(
                "{} after waiting {} s (--wait)",
                missing.join("; "),
                bound.as_secs()
            );
            return Err(Error::failed(None, why));
        }
        std::thread::sleep(POLL);
    }
}
