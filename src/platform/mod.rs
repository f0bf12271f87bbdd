//! Platform: the live actions on the running kernel (host name, NIC addresses and routes). With the
//! executor, the only code that changes the system; it is never called unless `--live` is in force.
//! Addresses and routes go through rtnetlink, so images without iproute2 work; the only programs it
//! runs are the network stack's own tools that a plan names (`activate`).

mod activate;
mod names;
mod netlink;
mod nic;
mod rtnl;

pub use activate::stack_state;
pub use names::wait_for_nics;

use std::io;

use crate::plan::LiveAction;

pub use nic::{NicState, ifname_by_mac};

/// The most the kernel keeps of a host name (`__NEW_UTS_LEN`); sethostname(2) refuses more.
pub const KERNEL_HOSTNAME_MAX: usize = 64;

/// The name the kernel gets for os.conf's host name: the whole name when it fits, else its first
/// label (at most 63 bytes once validated). systemd shortens an over-long `/etc/hostname` the same
/// way at boot (`shorten_overlong`), so the next boot agrees with this one; the files keep the
/// whole name.
pub fn kernel_hostname(name: &str) -> &str {
    if name.len() <= KERNEL_HOSTNAME_MAX {
        return name;
    }
    name.split('.').next().unwrap_or(name)
}

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
    /// The NICs a stack's tool changes.
    Nics(Vec<Previous>),
}

/// Records what `action` will change; call it before `apply`.
pub fn snapshot(action: &LiveAction) -> io::Result<Previous> {
    match action {
        LiveAction::SetHostname(_) => Ok(Previous::Hostname(hostname()?)),
        LiveAction::ConfigureNic(nic) => Ok(Previous::Nic(nic::snapshot(nic)?)),
        LiveAction::Run(run) => activate::snapshot(run),
    }
}

pub fn apply(action: &LiveAction) -> io::Result<()> {
    match action {
        LiveAction::SetHostname(name) => set_hostname(name),
        LiveAction::ConfigureNic(nic) => nic::configure(nic),
        LiveAction::Run(run) => activate::run(run),
    }
}

/// Puts back what `snapshot` recorded.
pub fn restore(previous: &Previous) -> io::Result<()> {
    match previous {
        Previous::Hostname(name) => set_hostname(name),
        Previous::Nic(state) => nic::restore(state),
        Previous::Nics(list) => {
            // The NICs' states hang together (a route on one NIC may be via another's subnet): a
            // first pass brings each back as far as it can, a second puts back what it could not.
            for previous in list.iter().rev() {
                let _ = restore(previous);
            }
            list.iter().rev().try_for_each(restore)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_gets_the_first_label_of_a_host_name_it_cannot_hold() {
        let fits = format!("{}.example.com", "a".repeat(52)); // 64 bytes
        assert_eq!(kernel_hostname(&fits), fits);
        let long = format!("{}.example.com", "a".repeat(53));
        assert_eq!(kernel_hostname(&long), "a".repeat(53));
        assert_eq!(kernel_hostname("iZ23r29djmjZ"), "iZ23r29djmjZ");
    }
}
