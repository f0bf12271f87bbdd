//! The XFS reader of `osconf::disk` (no mount) against filesystems `mkfs.xfs -p` made from one tree:
//! v5 (CRCs verified) and v4, with and without file types in directory entries, 1 KiB to 64 KiB
//! blocks, large directory blocks; each directory form asked of `xfs_db` first, so the test cannot
//! pass without reading it. Then images damaged by `xfs_db -x` and by flipped bytes: "image
//! damaged" naming what, never a panic, a loop or a read past the filesystem. No root needed.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::process::Command;

use crate::common::real::{have_tools, run};
use crate::common::xfs::{FORMS, check_tree, mkfs, tree};
use osconf::disk::Volume;

const TOOLS: [&str; 3] = ["mkfs.xfs", "xfs_db", "truncate"];

fn xfs_db(fs_file: &Path, cmds: &[&str]) -> String {
    let mut c = Command::new("xfs_db");
    c.arg("-r");
    for cmd in cmds {
        c.args(["-c", cmd]);
    }
    String::from_utf8(run(c.arg(fs_file)).stdout).unwrap()
}

fn xfs_db_write(fs_file: &Path, cmds: &[&str]) {
    let mut c = Command::new("xfs_db");
    c.arg("-x");
    for cmd in cmds {
        c.args(["-c", cmd]);
    }
    run(c.arg(fs_file));
}

/// The form xfs_db sees directory `dir` in: shortform (local), block (one directory block),
/// leaf (a leaf block at 32 GiB, no free index), node (a free index at 64 GiB).
fn dir_form(fs_file: &Path, dir: &str) -> &'static str {
    let core = xfs_db(fs_file, &[&format!("path /{dir}"), "print core.format"]);
    if core.contains("local") {
        return "short";
    }
    let bmap = xfs_db(fs_file, &[&format!("path /{dir}"), "bmap"]);
    let offsets: Vec<u64> = bmap
        .lines()
        .filter_map(|l| l.split(" offset ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    let block = xfs_db(fs_file, &["sb 0", "print blocklog"]);
    let log: u32 = block.trim().rsplit(' ').next().unwrap().parse().unwrap();
    let (leaf, free) = ((32u64 << 30) >> log, (64u64 << 30) >> log);
    match (
        offsets.iter().any(|&o| o >= free),
        offsets.iter().any(|&o| o >= leaf),
    ) {
        (true, _) => "node",
        (false, true) => "leaf",
        _ => "block",
    }
}

#[test]
fn xfs_filesystems_made_by_mkfs_read_as_the_tree_they_were_made_from() {
    let test = "xfs_filesystems_made_by_mkfs_read_as_the_tree_they_were_made_from";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = tree(dir.path());
    // (name, size of the sparse file, mkfs.xfs options).
    let variants: &[(&str, &str, &[&str])] = &[
        ("v5", "300M", &[]),
        ("v5-1k", "300M", &["-b", "size=1024"]),
        ("v5-64k-dir", "2G", &["-b", "size=65536", "-n", "size=65536"]),
        ("v5-2k-inode", "300M", &["-i", "size=2048", "-n", "size=8192"]),
        ("v4", "300M", &["-m", "crc=0"]),
        (
            "v4-noftype",
            "300M",
            &["-m", "crc=0", "-n", "ftype=0", "-i", "size=256"],
        ),
    ];
    for (name, size, args) in variants {
        let fs_file = mkfs(dir.path(), name, &src, size, args);
        let v = Volume::open(File::open(&fs_file).unwrap(), 0).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.fs.kind.name(), "xfs");
        // The default geometry puts each directory of FORMS in the form it is named for.
        if ["v5", "v4"].contains(name) {
            for (d, _) in FORMS {
                assert_eq!(dir_form(&fs_file, d), d, "{name}: /{d}");
            }
        }
        // mkfs.xfs -p writes v5 remote link blocks without their header (see check_tree); a link
        // target in the inode (2 KiB inodes) is right.
        let inline = xfs_db(&fs_file, &["path /remote", "print core.format"]).contains("local");
        check_tree(&v, &src, name, name.starts_with("v4") || inline);
        fs::remove_file(&fs_file).unwrap();
    }
}
