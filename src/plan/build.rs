//! Builds a plan: the stack's files, the files every system shares (hosts, shadow, the record of what
//! was applied) and the live actions; operations that would change nothing are dropped.

use std::collections::BTreeMap;

use super::{FileOp, LiveAction, LiveNic, Plan};

use crate::model::Config;
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

pub fn build(
    config: &Config,
    sys: &System,
    stack: &Stack,
    ifnames: &BTreeMap<u32, String>,
    env: &Env,
) -> Result<Plan, String> {
    let input = Input { config, sys, ifnames };
    let mut named = BTreeMap::new();
    for nic in &config.nics {
        if let Some(other) = named.insert(input.ifname(nic), nic.name()) {
            return Err(format!(
                "{other} and {} would both be written as interface {}; give each its own --ifname",
                nic.name(),
                input.ifname(nic)
            ));
        }
    }
    let mut rendered = stack.render(&input);
    rendered.ops.extend(common::hosts::render(config, sys));
    if let Some(password) = &config.password {
        rendered.add(shadow::render(password, sys, &env.salt, env.today)?);
    }
    let mut ops = rendered.ops;
    let record = format!("{}{}", common::HEADER, config.to_conf_without_password());
    ops.push(FileOp::write(LAST_APPLIED, record));
    if let Some(path) = first_repeated_path(&ops) {
        // Two steps on one file would back it up twice and leave the first step's text unseen.
        return Err(format!(
            "stack {} planned two changes to {path}; refusing to apply",
            stack.name
        ));
    }
    let mut kept = Vec::with_capacity(ops.len());
    for op in ops {
        // Each old file is read once, for both checks.
        let old = match &op {
            FileOp::Write { path, .. } => sys.read(path),
            _ => None,
        };
        if !changes_something(&op, old.as_deref(), sys) {
            continue;
        }
        if loses_bytes(&op, old.as_deref()) {
            return Err(format!(
                "{} is not valid UTF-8: rewriting it would replace its non-UTF-8 bytes",
                op.path()
            ));
        }
        kept.push(op);
    }
    let ops = kept;

    let mut notes = rendered.notes;
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
    Ok(Plan {
        stack: stack.name.to_owned(),
        ops,
        live: live_actions(&input),
        notes,
    })
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
fn changes_something(op: &FileOp, old: Option<&[u8]>, sys: &System) -> bool {
    match op {
        FileOp::Write { path, contents, .. } => {
            sys.link_target(path).is_some() || old != Some(contents.as_slice())
        }
        FileOp::Symlink { path, target } => sys
            .link_target(path)
            .is_none_or(|t| t.as_os_str() != target.as_str()),
        FileOp::Remove { path } => sys.exists(path),
    }
}

fn live_actions(input: &Input) -> Vec<LiveAction> {
    let config = input.config;
    let mut live: Vec<LiveAction> = config
        .hostname
        .iter()
        .map(|h| LiveAction::SetHostname(platform::kernel_hostname(h).to_owned()))
        .collect();
    for nic in &config.nics {
        let routes = nic.all_routes().map(|r| (r.dest, r.via)).collect();
        live.push(LiveAction::ConfigureNic(LiveNic {
            name: input.ifname(nic),
            mac: nic.mac,
            address: nic.address,
            prefix_len: nic.prefix_len,
            on_link: common::on_link_gateways(nic),
            routes,
        }));
    }
    live
}
