//! Builds a plan: the stack's files, the files every system shares (hosts, shadow, the record of what
//! was applied) and the live actions; operations that would change nothing are dropped.

use std::collections::BTreeMap;

use super::{FileOp, LiveAction, LiveNic, Plan, Running, StackState};

use crate::error::Error;
use crate::model::{Config, Nic};
use crate::platform;
use crate::render::common::{self, shadow};
use crate::render::{Input, Stack};
use crate::system::System;

/// Where the applied configuration (without the password) is recorded.
pub const LAST_APPLIED: &str = "/var/lib/osconf/last-applied.conf";

/// What a plan needs from outside the model, passed in so that planning stays pure and testable.
#[derive(Debug, Clone)]
pub struct Env {
    pub salt: [u8; shadow::SALT_BYTES],
    /// Days since 1970-01-01, for the shadow "last change" field.
    pub today: u64,
}

/// Builds the plan. `ifnames` are the `--ifname` overrides; `running` is what a live run found
/// (`None` offline): then every NIC found by MAC is written with its kernel name.
pub fn build(
    config: &Config,
    sys: &System,
    stack: &Stack,
    ifnames: &BTreeMap<u32, String>,
    running: Option<&Running>,
    env: &Env,
) -> Result<Plan, Error> {
    let (names, naming_notes) = names(config, ifnames, running);
    let input = Input {
        config,
        sys,
        ifnames: &names,
        running,
    };
    let mut named = BTreeMap::new();
    for nic in &config.nics {
        if let Some(other) = named.insert(input.ifname(nic), nic.name()) {
            return Err(Error::failed(
                None,
                format!(
                    "{other} and {} would both be written as interface {}; give each its own --ifname",
                    nic.name(),
                    input.ifname(nic)
                ),
            ));
        }
    }
    let (mut rendered, host) = stack.render_parts(&input)?;
    let network_paths: Vec<String> = rendered.ops.iter().map(|op| op.path().to_owned()).collect();
    rendered.add(host);
    rendered.ops.extend(common::hosts::render(config, sys)?);
    if let Some(password) = &config.password {
        rendered.add(shadow::render(password, sys, &env.salt, env.today)?);
    }
    let mut ops = rendered.ops;
    let record = format!("{}{}", common::HEADER, config.to_conf_without_password());
    ops.push(FileOp::write(LAST_APPLIED, record));
    if let Some(path) = first_repeated_path(&ops) {
        // Two steps on one file would back it up twice and leave the first step's text unseen.
        return Err(Error::failed(
            None,
            format!(
                "stack {} planned two changes to {path}; refusing to apply",
                stack.name
            ),
        ));
    }
    let mut kept = Vec::with_capacity(ops.len());
    for op in ops {
        // Each old file is read once, for both checks.
        let old = match &op {
            FileOp::Write { path, .. } => sys.read(path)?,
            _ => None,
        };
        if !changes_something(&op, old.as_deref(), sys)? {
            continue;
        }
        if loses_bytes(&op, old.as_deref()) {
            let why = format!(
                "{} is not valid UTF-8: rewriting it would replace its non-UTF-8 bytes",
                op.path()
            );
            return Err(Error::failed(None, why));
        }
        kept.push(op);
    }
    let ops = kept;

    let network_changed = ops.iter().any(|op| network_paths.iter().any(|p| p == op.path()));
    let mut notes = naming_notes;
    notes.extend(rendered.notes);
    let unmatched: Vec<String> = config
        .nics
        .iter()
        .filter(|n| n.mac.is_none())
        .map(|n| n.name())
        .collect();
    if let Some(h) = config
        .hostname
        .as_deref()
        .filter(|h| platform::kernel_hostname(h) != *h)
    {
        notes.push(format!(
            "host name {h} is longer than the kernel's {} bytes: live, the kernel gets {}; the files get the whole name",
            platform::KERNEL_HOSTNAME_MAX,
            platform::kernel_hostname(h)
        ));
    }
    if !unmatched.is_empty() {
        notes.push(format!(
            "{} given without a MAC: matched by name only",
            unmatched.join(", ")
        ));
    }
    let mut live = hostname_action(config);
    if let Some(running) = running.filter(|_| network_changed) {
        let (actions, note) = network_actions(&input, stack, running.stack);
        live.extend(actions);
        notes.push(note);
    }
    Ok(Plan {
        stack: stack.name.to_owned(),
        ops,
        live,
        notes,
    })
}

/// The interface name of each NIC, by N, and notes saying where the names come from. In a live run
/// a NIC found by MAC gets its kernel name, which beats `--ifname` (a name the kernel did not give
/// would not come up at the next boot); offline, `--ifname` or os.conf's `ethN`.
fn names(
    config: &Config,
    ifnames: &BTreeMap<u32, String>,
    running: Option<&Running>,
) -> (BTreeMap<u32, String>, Vec<String>) {
    let mut names = ifnames.clone();
    let mut notes = Vec::new();
    let with_mac: Vec<&Nic> = config.nics.iter().filter(|n| n.mac.is_some()).collect();
    let Some(running) = running else {
        if !with_mac.is_empty() {
            notes.push(
                "offline (a --root other than / without --live): interfaces are written as os.conf's ethN \
                 or --ifname's name; a live run writes the names the kernel gives the NICs with these MACs"
                    .to_owned(),
            );
        }
        return (names, notes);
    };
    let mut found = Vec::new();
    for nic in with_mac {
        let Some(kernel) = running.names.get(&nic.index) else {
            continue;
        };
        if let Some(asked) = ifnames.get(&nic.index).filter(|a| *a != kernel) {
            notes.push(format!(
                "--ifname {}={asked} not used: the kernel calls the NIC with MAC {} {kernel}",
                nic.name(),
                nic.mac.map(|m| m.to_string()).unwrap_or_default()
            ));
        }
        found.push(format!(
            "{} (MAC {}) is {kernel}",
            nic.name(),
            nic.mac.map(|m| m.to_string()).unwrap_or_default()
        ));
        names.insert(nic.index, kernel.clone());
    }
    if !found.is_empty() {
        notes.push(format!(
            "NICs found by MAC, written with their kernel names and not renamed: {}",
            found.join(", ")
        ));
    }
    (names, notes)
}

/// What makes the new network files take effect now, with a note saying why: the stack's own
/// steps, or, for a stack osconf cannot ask whether it runs, the addresses and routes set by
/// osconf itself.
fn network_actions(input: &Input, stack: &Stack, state: StackState) -> (Vec<LiveAction>, String) {
    let mut live: Vec<LiveAction> = Vec::new();
    let note = match state {
        StackState::Unknown => {
            live.extend(
                input
                    .config
                    .nics
                    .iter()
                    .map(|nic| LiveAction::ConfigureNic(live_nic(input, nic))),
            );
            format!(
                "stack {} leaves no trace of running: osconf configures the NICs itself",
                stack.name
            )
        }
        StackState::NotRunning => format!(
            "{} does not run yet: it applies the new files when it starts (at boot, right after osconf); \
             osconf sets no address itself",
            service_names(stack)
        ),
        StackState::Running(service) => {
            format!("{service} runs already: it is told to take the new files")
        }
    };
    live.extend((stack.activate)(input).into_iter().map(LiveAction::Run));
    (live, note)
}

fn service_names(stack: &Stack) -> String {
    let mut names: Vec<&str> = Vec::new();
    // One service may leave several traces (ifupdown's readers): named once.
    for service in stack.services {
        if !names.contains(&service.name) {
            names.push(service.name);
        }
    }
    names.join(" or ")
}

fn first_repeated_path(ops: &[FileOp]) -> Option<&str> {
    let mut seen = std::collections::BTreeSet::new();
    ops.iter().map(FileOp::path).find(|p| !seen.insert(*p))
}

/// Renderers edit text: a file that is not UTF-8 would come back with U+FFFD where its odd bytes were.
/// `old` is what the file holds now.
fn loses_bytes(op: &FileOp, old: Option<&[u8]>) -> bool {
    let (FileOp::Write { contents, .. }, Some(old)) = (op, old) else {
        return false;
    };
    let replacement = "\u{FFFD}".as_bytes();
    let count = |b: &[u8]| b.windows(3).filter(|w| *w == replacement).count();
    std::str::from_utf8(old).is_err() && count(contents) > count(old)
}

/// `old` is what a written file holds now.
fn changes_something(op: &FileOp, old: Option<&[u8]>, sys: &System) -> crate::system::Result<bool> {
    Ok(match op {
        FileOp::Write { path, contents, .. } => {
            sys.link_target(path)?.is_some() || old != Some(contents.as_slice())
        }
        FileOp::Symlink { path, target } => sys
            .link_target(path)?
            .is_none_or(|t| t.as_os_str() != target.as_str()),
        FileOp::Remove { path } => sys.exists(path)?,
    })
}

fn hostname_action(config: &Config) -> Vec<LiveAction> {
    config
        .hostname
        .iter()
        .map(|h| LiveAction::SetHostname(platform::kernel_hostname(h).to_owned()))
        .collect()
}

/// A NIC's address and routes as a live action sets them (or records them before a stack's tool
/// changes them).
pub fn live_nic(input: &Input, nic: &Nic) -> LiveNic {
    LiveNic {
        name: input.ifname(nic),
        mac: nic.mac,
        address: nic.address,
        prefix_len: nic.prefix_len,
        on_link: common::on_link_gateways(nic),
        routes: nic.all_routes().map(|r| (r.dest, r.via)).collect(),
    }
}
