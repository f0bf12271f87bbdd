//! `osconf image check` with the real binary on images made in userspace by the real tools (sfdisk,
//! mkfs.vfat, mkfs.ext4, tune2fs, mtools, qemu-img): each requirement's pass and each fail reason, the
//! exit codes and the JSON (parsed by serde_json). No root needed; without the tools the tests say
//! SKIPPED (and fail under CI=true).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::images::checks_of;
use crate::common::real::{have_tools, run, sfdisk};
use serde_json::Value;

const TOOLS: [&str; 8] = [
    "debugfs",
    "sfdisk",
    "mkfs.vfat",
    "mkfs.ext4",
    "tune2fs",
    "mmd",
    "qemu-img",
    "truncate",
];

fn tools(test: &str) -> bool {
    have_tools(test, &TOOLS)
}

/// A sparse disk of `size` with a `label` (dos or gpt) table whose partition 1 (at 1 MiB, 64 MiB)
/// holds the filesystem `mkfs` makes; each of `then` runs on the partition's file (given last, or
/// where an argument is `P1`) before it is put in.
fn disk(dir: &Path, name: &str, size: &str, label: &str, mkfs: &[&str], then: &[&[&str]]) -> PathBuf {
    let img = dir.join(format!("{name}.img"));
    run(Command::new("truncate").args(["-s", size]).arg(&img));
    let script = format!("label: {label}\nstart=2048,size=64M\n");
    sfdisk(&img, &script);
    let part = dir.join(format!("{name}.p1"));
    run(Command::new("truncate").args(["-s", "64M"]).arg(&part));
    run(Command::new(mkfs[0]).args(&mkfs[1..]).arg(&part));
    for cmd in then {
        let mut c = Command::new(cmd[0]);
        for a in &cmd[1..] {
            c.arg(if *a == "P1" { part.as_os_str() } else { a.as_ref() });
        }
        if !cmd.contains(&"P1") {
            c.arg(&part);
        }
        run(&mut c);
    }
    run(Command::new("dd")
        .arg(format!("if={}", part.display()))
        .arg(format!("of={}", img.display()))
        .args(["bs=1M", "seek=1", "conv=notrunc,sparse", "status=none"]));
    img
}

fn check(img: &Path, json: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_osconf"));
    cmd.args(["image", "check"]).arg(img);
    if json {
        cmd.arg("--json");
    }
    cmd.output().unwrap()
}

/// The JSON report: `pass`, and each check's (result, reason) by key; the text report agrees.
fn report(img: &Path) -> (i32, bool, Vec<(String, String, String)>) {
    let text = check(img, false);
    let out = check(img, true);
    assert_eq!(text.status.code(), out.status.code());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = checks_of(&out.stdout);
    let text = String::from_utf8(text.stdout).unwrap();
    for (key, result, reason) in &checks {
        assert!(text.contains(&format!("{result:<5} {key}: {reason}")), "{text}");
    }
    assert_eq!(v["not_checked"].as_array().unwrap().len(), 0);
    (out.status.code().unwrap(), v["pass"].as_bool().unwrap(), checks)
}

/// The keys of the checks that fail.
fn failing(checks: &[(String, String, String)]) -> Vec<&str> {
    checks
        .iter()
        .filter(|c| c.1 == "fail")
        .map(|c| c.0.as_str())
        .collect()
}

fn result<'a>(checks: &'a [(String, String, String)], key: &str) -> (&'a str, &'a str) {
    let c = checks
        .iter()
        .find(|c| c.0 == key)
        .unwrap_or_else(|| panic!("no {key}: {checks:?}"));
    (&c.1, &c.2)
}

#[test]
fn fat32_with_the_custom_dir_passes_and_without_it_fails() {
    if !tools("fat32_with_the_custom_dir_passes_and_without_it_fails") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for label in ["dos", "gpt"] {
        let mmd: &[&str] = &["mmd", "-i", "P1", "::/other", "::/aliyun_custom_image"];
        let fat32 = ["mkfs.vfat", "-F", "32"];
        let with = disk(dir.path(), &format!("{label}-with"), "6G", label, &fat32, &[mmd]);
        // No root partition here: only that fails.
        let (code, pass, checks) = report(&with);
        assert_eq!((code, pass), (1, false), "{checks:?}");
        assert_eq!(failing(&checks), ["root"], "{checks:?}");
        for key in ["size", "filesystem", "writable", "custom-dir"] {
            assert_eq!(result(&checks, key).0, "pass", "{key} {checks:?}");
        }
        assert!(
            result(&checks, "filesystem").1.contains("vfat (FAT32)"),
            "{checks:?}"
        );
        assert!(checks.iter().all(|c| c.0 != "ext4-64bit"));

        let without = disk(
            dir.path(),
            &format!("{label}-without"),
            "6G",
            label,
            &["mkfs.vfat", "-F", "32"],
            &[],
        );
        let (code, pass, checks) = report(&without);
        assert_eq!((code, pass), (1, false));
        let (r, why) = result(&checks, "custom-dir");
        assert_eq!(r, "fail");
        assert!(why.contains("no aliyun_custom_image/"), "{why}");
    }
}

#[test]
fn fat16_and_a_small_disk_fail() {
    if !tools("fat16_and_a_small_disk_fail") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = disk(dir.path(), "fat16", "5G", "dos", &["mkfs.vfat", "-F", "16"], &[]);
    let (code, _, checks) = report(&img);
    assert_eq!(code, 1);
    let (r, why) = result(&checks, "size");
    assert_eq!(r, "fail");
    assert!(why.contains("5.00 GiB must be larger than 5 GiB"), "{why}");
    let (r, why) = result(&checks, "filesystem");
    assert_eq!(r, "fail");
    assert!(why.contains("FAT must be FAT32"), "{why}");
}

#[test]
fn ext4_64bit_and_read_only_fail_and_its_directory_is_read() {
    if !tools("ext4_64bit_and_read_only_fail_and_its_directory_is_read") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mkdir: &[&str] = &["debugfs", "-w", "-R", "mkdir aliyun_custom_image", "P1"];
    let ok = disk(
        dir.path(),
        "ext4",
        "6G",
        "gpt",
        &["mkfs.ext4", "-q", "-F", "-O", "^64bit"],
        &[mkdir],
    );
    let (code, pass, checks) = report(&ok);
    assert_eq!((code, pass), (1, false), "{checks:?}");
    assert_eq!(failing(&checks), ["root"], "{checks:?}");
    assert_eq!(result(&checks, "ext4-64bit").0, "pass");
    assert_eq!(result(&checks, "writable").0, "pass");
    assert_eq!(result(&checks, "custom-dir").0, "pass");

    let without = disk(
        dir.path(),
        "ext4-without",
        "6G",
        "gpt",
        &["mkfs.ext4", "-q", "-F", "-O", "^64bit"],
        &[],
    );
    let (_, _, checks) = report(&without);
    let (r, why) = result(&checks, "custom-dir");
    assert_eq!(r, "fail");
    assert!(why.contains("no aliyun_custom_image/"), "{why}");

    let big = disk(
        dir.path(),
        "ext4-64",
        "6G",
        "dos",
        &["mkfs.ext4", "-q", "-F", "-O", "64bit"],
        &[],
    );
    let (code, _, checks) = report(&big);
    assert_eq!(code, 1);
    let (r, why) = result(&checks, "ext4-64bit");
    assert_eq!(r, "fail");
    assert!(why.contains("64bit feature is set"), "{why}");

    let ro: &[&str] = &["tune2fs", "-O", "read-only"];
    let read_only = disk(
        dir.path(),
        "ext4-ro",
        "6G",
        "dos",
        &["mkfs.ext4", "-q", "-F", "-O", "^64bit"],
        &[ro],
    );
    let (code, _, checks) = report(&read_only);
    assert_eq!(code, 1);
    let (r, why) = result(&checks, "writable");
    assert_eq!(r, "fail");
    assert!(why.contains("read-only feature is set"), "{why}");
}

#[test]
fn no_table_no_filesystem_qcow2_and_missing_files() {
    if !tools("no_table_no_filesystem_qcow2_and_missing_files") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("bare.img");
    run(Command::new("truncate").args(["-s", "6G"]).arg(&bare));
    let (code, _, checks) = report(&bare);
    assert_eq!(code, 1);
    assert_eq!(
        result(&checks, "partition1"),
        ("fail", "no MBR or GPT partition table")
    );

    let empty = disk(dir.path(), "empty", "6G", "dos", &["true"], &[]);
    let (code, _, checks) = report(&empty);
    assert_eq!(code, 1);
    assert!(
        result(&checks, "filesystem")
            .1
            .contains("holds no ext2/3/4, FAT or UFS")
    );

    // A qcow2 is read (an empty one has no table); a VDI is named and refused.
    let qcow = dir.path().join("disk.qcow2");
    let vdi = dir.path().join("disk.vdi");
    for (fmt, img) in [("qcow2", &qcow), ("vdi", &vdi)] {
        run(Command::new("qemu-img")
            .args(["create", "-q", "-f", fmt])
            .arg(img)
            .arg("6G"));
    }
    let (code, _, checks) = report(&qcow);
    assert_eq!(code, 1);
    assert_eq!(
        result(&checks, "partition1"),
        ("fail", "no MBR or GPT partition table")
    );
    for (img, why) in [
        (vdi, "a VDI (VirtualBox) image, which osconf does not read"),
        (dir.path().join("missing.img"), "cannot open"),
    ] {
        let out = check(&img, true);
        assert_eq!(out.status.code(), Some(2), "{img:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(why), "{err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["image", "frob", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
