//! Disk images for the image tests, made in userspace by the real tools: a partition table by
//! sfdisk, each filesystem by its mkfs (ext from a tree with `mkfs.ext4 -d`) in a file of its own,
//! then copied into place, sparse.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::real::{run, sfdisk};

/// One partition: its size in MiB, the mkfs command, and a source tree for `mkfs.ext4 -d`.
pub struct Part<'a> {
    pub mib: u64,
    pub mkfs: &'a [&'a str],
    pub tree: Option<&'a Path>,
}

impl<'a> Part<'a> {
    pub fn new(mib: u64, mkfs: &'a [&'a str], tree: Option<&'a Path>) -> Part<'a> {
        Part { mib, mkfs, tree }
    }
}

/// A sparse disk with a `label` (dos or gpt) table and `parts` from 1 MiB on; returns the image
/// and each partition's byte offset.
pub fn build(dir: &Path, name: &str, label: &str, parts: &[Part]) -> (PathBuf, Vec<u64>) {
    let img = dir.join(format!("{name}.img"));
    let total: u64 = parts.iter().map(|p| p.mib).sum::<u64>() + 2;
    run(Command::new("truncate")
        .arg("-s")
        .arg(format!("{total}M"))
        .arg(&img));
    let mut script = format!("label: {label}\n");
    let mut offsets = Vec::new();
    let mut at = 1u64;
    for p in parts {
        script += &format!("start={},size={}M\n", at * 2048, p.mib);
        offsets.push(at << 20);
        at += p.mib;
    }
    sfdisk(&img, &script);
    for (i, (p, offset)) in parts.iter().zip(&offsets).enumerate() {
        let file = dir.join(format!("{name}.p{i}"));
        run(Command::new("truncate")
            .arg("-s")
            .arg(format!("{}M", p.mib))
            .arg(&file));
        let mut mkfs = Command::new(p.mkfs[0]);
        mkfs.args(&p.mkfs[1..]);
        if let Some(tree) = p.tree {
            mkfs.arg("-d").arg(tree);
        }
        run(mkfs.arg(&file));
        run(Command::new("dd")
            .arg(format!("if={}", file.display()))
            .arg(format!("of={}", img.display()))
            .arg(format!("seek={}", offset >> 20))
            .args(["bs=1M", "conv=notrunc,sparse", "status=none"]));
        fs::remove_file(file).unwrap();
    }
    (img, offsets)
}

/// The `checks` of `osconf image check --json` output: (key, result, reason) of each.
pub fn checks_of(json: &[u8]) -> Vec<(String, String, String)> {
    let v: serde_json::Value =
        serde_json::from_slice(json).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(json)));
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap().to_owned();
            (s("key"), s("result"), s("reason"))
        })
        .collect()
}
