//! Test helpers for the renderers: scratch target roots, os.conf models, and reading a renderer's
//! operations back. Test builds only; nothing here touches a real system.

use std::collections::BTreeMap;
use std::path::Path;

use crate::model::{Config, Mac, Nic};
use crate::plan::{FileOp, Mode};
use crate::render::{Input, Rendered, Stack};
use crate::system::System;

/// A target root holding `files` (path, content) and `links` (path, target).
pub fn fake_root(files: &[(&str, &str)], links: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let host = |p: &str| dir.path().join(p.trim_start_matches('/'));
    for (path, text) in files {
        std::fs::create_dir_all(host(path).parent().unwrap()).unwrap();
        std::fs::write(host(path), text).unwrap();
    }
    for (path, target) in links {
        std::fs::create_dir_all(host(path).parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, host(path)).unwrap();
    }
    dir
}

/// The model of `examples/<name>/os.conf`.
pub fn example(name: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .join("os.conf");
    from_text(&std::fs::read_to_string(path).unwrap())
}

/// The classic sample (two NICs, routes), or the VPC one for a stack that cannot hold classic
/// (ConnMan refuses what it cannot express), over the target root `root`.
pub fn sample_for(stack: &Stack, root: &Path) -> Config {
    let classic = example("classic");
    let input = Input {
        config: &classic,
        sys: &System::probe(root).unwrap(),
        ifnames: &BTreeMap::new(),
        running: None,
    };
    match stack.render(&input) {
        Ok(_) => classic,
        Err(_) => example("vpc"),
    }
}

/// What `stack`'s probe says of a target root holding `files` and `links`.
pub fn detected(stack: &Stack, files: &[(&str, &str)], links: &[(&str, &str)]) -> Option<String> {
    let root = fake_root(files, links);
    (stack.detect)(&System::probe(root.path()).unwrap()).unwrap()
}

/// The validated model of an os.conf text.
pub fn from_text(text: &str) -> Config {
    let raw = crate::reader::parse(text.as_bytes()).unwrap();
    crate::model::validate(&raw).unwrap().config
}

/// What `stack` renders for `config` over the target root `root`, without `--ifname`.
pub fn render(stack: &Stack, config: &Config, root: &Path) -> Rendered {
    stack
        .render(&Input {
            config,
            sys: &System::probe(root).unwrap(),
            ifnames: &BTreeMap::new(),
            running: None,
        })
        .unwrap()
}

/// The text and mode written to `path`, if the operations write it.
pub fn written_with_mode<'a>(out: &'a Rendered, path: &str) -> Option<(&'a str, Mode)> {
    out.ops.iter().find_map(|op| match op {
        FileOp::Write {
            path: p,
            contents,
            mode,
            ..
        } if p == path => Some((std::str::from_utf8(contents).ok()?, mode.clone())),
        _ => None,
    })
}

/// The text written to `path`, if the operations write it.
pub fn written<'a>(out: &'a Rendered, path: &str) -> Option<&'a str> {
    written_with_mode(out, path).map(|(text, _)| text)
}

/// A MAC for test NICs.
pub const MAC0: [u8; 6] = [0x00, 0x8c, 0xfa, 0x5e, 0x14, 0x23];

/// NIC `ethINDEX` at 10.0.0.5/24, without gateway or routes.
pub fn nic(index: u32, mac: Option<[u8; 6]>) -> Nic {
    Nic {
        index,
        mac: mac.map(Mac),
        address: "10.0.0.5".parse().unwrap(),
        prefix_len: 24,
        gateway: None,
        default_gateway: None,
        routes: Vec::new(),
    }
}

/// Renders `nics` over a scratch root holding `files` (`-> /dev/null` makes a mask link) and
/// returns the ops as `write|remove|link PATH` and the notes.
pub fn render_over(stack: &Stack, nics: Vec<Nic>, files: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    let (masks, texts): (Vec<_>, Vec<_>) = files.iter().partition(|(_, t)| *t == "-> /dev/null");
    let masks: Vec<(&str, &str)> = masks.iter().map(|(p, _)| (*p, "/dev/null")).collect();
    let dir = fake_root(&texts, &masks);
    let config = Config {
        hostname: None,
        password: None,
        nics,
        nameservers: Vec::new(),
    };
    let out = render(stack, &config, dir.path());
    let ops = out
        .ops
        .iter()
        .map(|op| match op {
            FileOp::Write { path, .. } => format!("write {path}"),
            FileOp::Remove { path } => format!("remove {path}"),
            FileOp::Symlink { path, target } => format!("link {path} -> {target}"),
        })
        .collect();
    (ops, out.notes)
}
