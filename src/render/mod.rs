//! Renderers: pure functions from the model and the detected system to file operations, one module per
//! network stack, registered in `STACKS` with the probe that detects it. A renderer reads the target
//! only through `System` and never writes: the executor does that.

mod busybox;
pub mod common;
pub mod connman;
mod dhcpcd;
mod freebsd;
mod ifupdown;
mod netifrc;
mod netplan;
mod networkd;
mod networkmanager;
mod openrc_network;
mod openwrt;
mod slackware;
mod sysconfig;
mod wicked;

use std::collections::BTreeMap;

use crate::error::Error;
use crate::model::{Config, Nic};
use crate::plan::{FileOp, Run, Running, StackState};
use crate::system::{self, System};

/// What a renderer is given.
pub struct Input<'a> {
    pub config: &'a Config,
    pub sys: &'a System,
    /// The interface name of each NIC, by N: in a live run the kernel's (found by MAC), offline
    /// `--ifname ethN=NAME`'s.
    pub ifnames: &'a BTreeMap<u32, String>,
    /// What a live run found on the running system; `None` offline.
    pub running: Option<&'a Running>,
}

impl Input<'_> {
    /// The interface name to write for a NIC: the kernel's or the override, else os.conf's `ethN`.
    pub fn ifname(&self, nic: &Nic) -> String {
        self.ifnames
            .get(&nic.index)
            .cloned()
            .unwrap_or_else(|| nic.name())
    }

    /// True in a live run: the names are the ones the kernel gave the NICs at this boot, which the
    /// next boot gives again, so nothing is renamed.
    pub fn kernel_names(&self) -> bool {
        self.running.is_some()
    }

    /// The stack's service that runs now, if one does.
    pub fn running_service(&self) -> Option<&'static str> {
        match self.running?.stack {
            StackState::Running(name) => Some(name),
            StackState::NotRunning | StackState::Unknown => None,
        }
    }
}

/// A service that applies a stack's files, and how a live run tells whether it runs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// The systemd unit is `<name>.service`, the OpenRC service `<name>`.
    pub name: &'static str,
    /// Under an init that keeps no service state (sysvinit, busybox init): a file that only a run of
    /// the service leaves (ifupdown's state file, initscripts' lock file); a pid file counts while
    /// its process lives.
    pub ran: Option<&'static str>,
    /// A service that also runs as one instance per interface (dhcpcd's `dhcpcd@eth0.service`, Void's
    /// runit service `dhcpcd-eth0`): the trace file of an instance, `{}` standing for the interface.
    /// A live run asks for the instance of each os.conf NIC's kernel name too (under systemd the unit
    /// `<name>@<interface>.service`); it counts as `name` running.
    pub per_nic: Option<&'static str>,
}

/// A renderer's output: file operations plus notes for `plan`.
#[derive(Debug, Default)]
pub struct Rendered {
    pub ops: Vec<FileOp>,
    pub notes: Vec<String>,
}

impl Rendered {
    pub fn add(&mut self, other: Rendered) {
        self.ops.extend(other.ops);
        self.notes.extend(other.notes);
    }
}

/// A network stack osconf can write for.
pub struct Stack {
    pub name: &'static str,
    /// The systems it serves, for `--help` and `detect`.
    pub systems: &'static str,
    /// `Some(evidence)` when this stack is the one the target enables.
    pub detect: fn(&System) -> system::Result<Option<String>>,
    /// NICs, routes, link naming, and what configured the same NICs before. Called only when os.conf
    /// gives a NIC: an os.conf without one leaves the network configuration alone.
    pub network: fn(&Input) -> system::Result<Rendered>,
    /// The host name and DNS, where this distribution keeps them; always called. DNS that the stack
    /// keeps in a NIC's configuration goes to the system-wide place when os.conf gives no NIC.
    pub host: fn(&Input) -> system::Result<Rendered>,
    /// The services that apply this stack's files. Empty when none can be asked whether it runs:
    /// a live run then configures the NICs itself.
    pub services: &'static [Service],
    /// Live runs that changed the network files: the steps that make them take effect on this boot
    /// (`Input::running_service` says which service runs already; none does at boot).
    pub activate: fn(&Input) -> Vec<Run>,
    /// Where it keeps the NICs' configuration (addresses, gateways, routes): files, and directories
    /// ending in `/` whose every file counts. `osconf image test` reads these to judge what took
    /// effect; a unit test holds every renderer to them.
    pub network_files: &'static [&'static str],
}

impl Stack {
    /// True when `path` is one of [`Stack::network_files`] or a file directly in one of its
    /// directories.
    pub fn keeps_network(&self, path: &str) -> bool {
        self.network_files
            .iter()
            .any(|&place| match place.strip_suffix('/') {
                Some(dir) => path.rsplit_once('/').is_some_and(|(parent, _)| parent == dir),
                None => path == place,
            })
    }

    /// Everything this stack writes for os.conf: the network configuration (when os.conf gives a
    /// NIC), then the host name and DNS.
    pub fn render(&self, input: &Input) -> system::Result<Rendered> {
        let (mut out, host) = self.render_parts(input)?;
        out.add(host);
        Ok(out)
    }

    /// What [`Stack::render`] writes, as the network part and the host part.
    pub fn render_parts(&self, input: &Input) -> system::Result<(Rendered, Rendered)> {
        let mut network = Rendered::default();
        if !input.config.nics.is_empty() {
            network.add((self.network)(input)?);
            // Whatever the stack, cloud-init would take the NICs back at its next run.
            network.add(common::disable::cloud_init_network_off(input.sys)?);
        }
        Ok((network, (self.host)(input)?))
    }
}

/// Every stack, in detection order: the first whose probe matches is chosen, so a stack that sits on
/// top of another (netplan over networkd or NetworkManager; RHEL 8's NetworkManager reading ifcfg
/// files) comes before it. A daemon that runs the network alone (dhcpcd, ConnMan) is found by its
/// enabled service, stronger evidence than os-release or a script's presence, so it comes before
/// those. Order: openwrt, freebsd, slackware, dhcpcd, connman, netifrc, openrc-network, busybox,
/// netplan, wicked, sysconfig, networkmanager, networkd, ifupdown.
pub static STACKS: &[Stack] = &[
    openwrt::STACK,
    freebsd::STACK,
    slackware::STACK,
    dhcpcd::STACK,
    connman::STACK,
    netifrc::STACK,
    openrc_network::STACK,
    busybox::STACK,
    netplan::STACK,
    wicked::STACK,
    sysconfig::STACK,
    networkmanager::STACK,
    networkd::STACK,
    ifupdown::STACK,
];

/// The stack called `name`; the error lists the known ones. The command line checks `--stack` with
/// this, and library callers of `app::make_plan` get the same error.
pub fn find(name: &str) -> Result<&'static Stack, Error> {
    STACKS.iter().find(|s| s.name == name).ok_or_else(|| {
        let known = names().join(", ");
        Error::usage(format!("unknown stack {name:?}; known: {known}"))
    })
}

pub fn names() -> Vec<&'static str> {
    STACKS.iter().map(|s| s.name).collect()
}

/// The outcome of probing: the chosen stack with why, and every other stack that also matched.
pub struct Detection {
    pub stack: &'static Stack,
    pub evidence: String,
    pub also_matched: Vec<(&'static str, String)>,
}

/// Picks the stack the target enables; the error lists what was probed, or names the file that
/// could not be read.
pub fn detect(sys: &System) -> Result<Detection, Error> {
    let mut found = Vec::new();
    for stack in STACKS {
        if let Some(evidence) = (stack.detect)(sys)? {
            found.push((stack, evidence));
        }
    }
    let mut matches = found.into_iter();
    let Some((stack, evidence)) = matches.next() else {
        let os = if sys.os.id.is_empty() {
            "no os-release".to_owned()
        } else {
            format!("ID={}", sys.os.id)
        };
        return Err(Error::failed(
            None,
            format!(
                "no known network stack found under {} ({os}); probed: {}; choose one with --stack",
                sys.root().display(),
                names().join(", ")
            ),
        ));
    };
    let also_matched = matches.map(|(s, e)| (s.name, e)).collect();
    Ok(Detection {
        stack,
        evidence,
        also_matched,
    })
}

#[cfg(test)]
mod tests {
    use super::STACKS;
    use super::common::testing::{fake_root, render, sample_for, written};

    const CLOUD_OFF: &str = "/etc/cloud/cloud.cfg.d/99-disable-network-config.cfg";

    #[test]
    fn every_stack_keeps_its_nics_where_its_network_files_say() {
        use crate::plan::FileOp;
        let root = fake_root(&[("/etc/shadow", "root:*:1::::::\n")], &[]);
        for stack in STACKS {
            let config = sample_for(stack, root.path());
            let tokens: Vec<String> = config
                .nics
                .iter()
                .flat_map(|n| {
                    let mut t = vec![n.address.to_string()];
                    t.extend(n.gateway.map(|g| g.to_string()));
                    t.extend(n.routes.iter().map(|r| r.dest.addr.to_string()));
                    t
                })
                .collect();
            let out = render(stack, &config, root.path());
            let mut held = Vec::new();
            for op in &out.ops {
                let FileOp::Write { path, contents, .. } = op else {
                    continue;
                };
                let text = String::from_utf8_lossy(contents);
                if tokens.iter().any(|t| text.contains(t.as_str())) {
                    assert!(
                        stack.keeps_network(path),
                        "{}: {path} holds a NIC's settings but is not in its network_files",
                        stack.name
                    );
                    held.push(text.into_owned());
                }
            }
            let address = config.nics[0].address.to_string();
            assert!(
                held.iter().any(|t| t.contains(&address)),
                "{}: no network file holds {address}",
                stack.name
            );
        }
    }

    #[test]
    fn every_stack_turns_cloud_init_network_off_only_when_it_writes_nics() {
        let root = fake_root(
            &[
                ("/etc/cloud/cloud.cfg.d/05_logging.cfg", "_log: []\n"),
                ("/etc/shadow", "root:*:1::::::\n"),
            ],
            &[],
        );
        for stack in STACKS {
            let with_nics = sample_for(stack, root.path());
            let mut without_nics = with_nics.clone();
            without_nics.nics.clear();
            let out = render(stack, &with_nics, root.path());
            assert!(
                written(&out, CLOUD_OFF).is_some(),
                "{}: cloud-init left on",
                stack.name
            );
            let out = render(stack, &without_nics, root.path());
            assert!(
                written(&out, CLOUD_OFF).is_none(),
                "{}: network touched without NICs",
                stack.name
            );
        }
    }
}
