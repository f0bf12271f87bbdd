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

/// `xfs_db -x` on a copy of `base`: each damage alone.
fn damaged(dir: &Path, base: &Path, name: &str, cmds: &[&str]) -> std::path::PathBuf {
    let copy = dir.join(format!("{name}.xfs"));
    fs::copy(base, &copy).unwrap();
    xfs_db_write(&copy, cmds);
    copy
}

/// The error reading `path` from `fs_file`: "image damaged" (InvalidData), never a panic.
fn damage(fs_file: &Path, path: &str) -> String {
    let v = Volume::open(File::open(fs_file).unwrap(), 0).unwrap();
    let e = v.read_file(path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData, "{path}: {e}");
    e.to_string()
}

#[test]
fn damaged_xfs_images_are_errors_naming_the_damage() {
    let test = "damaged_xfs_images_are_errors_naming_the_damage";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("src");
    fs::create_dir_all(src.join("few")).unwrap();
    fs::write(src.join("few/a"), "a\n").unwrap();
    fs::write(src.join("big"), vec![7u8; 1 << 20]).unwrap();
    fs::write(src.join("small"), "small\n").unwrap();
    let base = mkfs(d, "base", &src, "300M", &[]);

    // The root inode's number past the last allocation group.
    let f = damaged(d, &base, "rootino", &["sb 0", "write rootino 4294967295"]);
    assert!(damage(&f, "small").contains("inode number 4294967295 is past the filesystem's 4 groups"));
    // A directory entry naming an inode past the groups.
    let f = damaged(
        d,
        &base,
        "entry",
        &["path /few", "write u3.sfdir3.list[0].inumber.i4 4294967295"],
    );
    assert!(damage(&f, "few/a").contains("inode number 4294967295 is past"));
    // An extent past the end of the filesystem.
    let f = damaged(
        d,
        &base,
        "extent",
        &["path /big", "write u3.bmx[0].startblock 99999999"],
    );
    assert!(
        damage(&f, "big").contains("block 99999999 (group 3051, block 24831) is past"),
        "{}",
        damage(&f, "big")
    );
    // A directory whose entry leads back to the root: every lookup through it is bounded.
    let f = damaged(
        d,
        &base,
        "loop",
        &["path /few", "write u3.sfdir3.list[0].inumber.i4 128"],
    );
    let v = Volume::open(File::open(&f).unwrap(), 0).unwrap();
    assert_eq!(
        v.read_file("few/a/few/a/few/a/small").unwrap().unwrap(),
        b"small\n"
    );
    let e = v.read_file(&"few/a/".repeat(3000)).unwrap_err();
    assert!(e.to_string().contains("more than 4096 path components"), "{e}");
    // A byte of an inode changed behind the filesystem's back: its CRC fails.
    let at: u64 = {
        let ino = xfs_db(&base, &["path /small", "print core.magic"]);
        assert!(ino.contains("0x494e"));
        let out = xfs_db(&base, &["path /small", "stack"]);
        let number: u64 = out
            .split("inode ")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let conv = xfs_db(&base, &[&format!("convert inode {number} byte")]);
        let hex = conv.split_whitespace().next().unwrap().trim_start_matches("0x");
        u64::from_str_radix(hex, 16).unwrap()
    };
    let f = d.join("flipped.xfs");
    fs::copy(&base, &f).unwrap();
    let file = fs::OpenOptions::new().read(true).write(true).open(&f).unwrap();
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, at + 40).unwrap();
    file.write_all_at(&[b[0] ^ 0x55], at + 40).unwrap();
    assert!(
        damage(&f, "small").contains("checksum mismatch at inode"),
        "{}",
        damage(&f, "small")
    );
    // The superblock's own CRC.
    file.write_all_at(b"X", 108).unwrap();
    let e = Volume::open(File::open(&f).unwrap(), 0).unwrap_err();
    assert!(
        e.to_string().contains("checksum mismatch at the superblock"),
        "{e}"
    );
}

/// XFS's inode mtimes as the reboot check reads them (`image test --boots`: "same mtimes"), v5
/// (bigtime) and v4: the seconds `xfs_db` prints for each file of a tree `mkfs.xfs -p` made.
#[test]
fn xfs_mtimes_are_what_xfs_db_prints() {
    let test = "xfs_mtimes_are_what_xfs_db_prints";
    if !have_tools(test, &TOOLS) || !have_tools(test, &["date"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = tree(dir.path());
    for (name, args) in [("v5", &[][..]), ("v4", &["-m", "crc=0"][..])] {
        let fs_file = mkfs(dir.path(), name, &src, "300M", args);
        let v = Volume::open(File::open(&fs_file).unwrap(), 0).unwrap();
        for path in ["etc/os-release", "etc"] {
            // `core.mtime.sec = Sun Dec  6 22:30:00 2026` (ctime(3)'s text, in TZ).
            let out = Command::new("xfs_db")
                .env("TZ", "UTC")
                .args(["-r", "-c", &format!("path /{path}"), "-c", "print core.mtime.sec"])
                .arg(&fs_file)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let shown = text
                .trim()
                .split(" = ")
                .nth(1)
                .unwrap_or_else(|| panic!("{name}: {text}"));
            let secs = run(Command::new("date").args(["-u", "-d", &format!("{shown} UTC"), "+%s"]));
            let secs: i64 = String::from_utf8_lossy(&secs.stdout).trim().parse().unwrap();
            assert_eq!(
                v.metadata(path).unwrap().unwrap().mtime,
                Some(secs),
                "{name}: {path}"
            );
        }
        fs::remove_file(&fs_file).unwrap();
    }
}
