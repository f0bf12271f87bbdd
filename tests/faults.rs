//! Faults while applying, against the real binary: each gives exit 1, every file byte-identical,
//! os.conf kept, and a message naming the path or step; plus the lock (two applies at once) and the
//! number of flush system calls an apply makes.

use std::fs;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;
use common::real::{cannot_run, check_prerequisites};
use common::{copy_tree, example_conf, fingerprint, hooks, repo};

/// A copy of the centos7 root and the classic os.conf beside it (outside the root, as `--config`).
struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
    conf: PathBuf,
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    copy_tree(&repo().join("examples/rootfs/centos7"), &root).unwrap();
    let conf = dir.path().join("os.conf");
    fs::write(&conf, example_conf("classic")).unwrap();
    Scratch {
        _dir: dir,
        root,
        conf,
    }
}

fn apply(bin: &Path, s: &Scratch, env: &[(&str, &str)]) -> Output {
    Command::new(bin)
        .args(["apply", "--no-live", "--root"])
        .arg(&s.root)
        .arg("--config")
        .arg(&s.conf)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Exit 1, `names` in stderr, nothing changed, os.conf kept.
fn assert_failed_cleanly(s: &Scratch, out: &Output, before: &str, names: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(names), "{names:?} not in:\n{stderr}");
    assert!(s.conf.exists(), "os.conf removed");
    let after = fingerprint(&s.root);
    if after != before {
        let diff = osconf::plan::diff::unified(before, &after, "before", "after");
        panic!("the tree changed:\n{diff}\n{stderr}");
    }
}

#[test]
fn a_second_apply_waits_then_fails_while_another_holds_the_root() {
    let s = scratch();
    let before = fingerprint(&s.root);
    // Another osconf holds the lock: an exclusive flock on the root directory.
    let held = fs::File::open(&s.root).unwrap();
    rustix::fs::flock(held.as_fd(), rustix::fs::FlockOperation::LockExclusive).unwrap();
    let start = Instant::now();
    let out = apply(Path::new(env!("CARGO_BIN_EXE_osconf")), &s, &[]);
    let waited = start.elapsed();
    assert_failed_cleanly(&s, &out, &before, "another osconf is applying to");
    assert!(waited >= Duration::from_secs(4), "did not wait: {waited:?}");
    drop(held);
    let out = apply(Path::new(env!("CARGO_BIN_EXE_osconf")), &s, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!s.conf.exists());
}

#[test]
fn a_directory_whose_flush_fails_changes_nothing() {
    let s = scratch();
    let before = fingerprint(&s.root);
    let out = apply(&hooks::binary(), &s, &[("OSCONF_TEST_FAIL_FSYNC", "1")]);
    assert_failed_cleanly(
        &s,
        &out,
        &before,
        "failed flushing the new files and the backups: ",
    );
}

#[test]
fn shadow_without_a_root_line_changes_nothing() {
    let s = scratch();
    fs::write(s.root.join("etc/shadow"), "bin:*:18353:0:99999:7:::\n").unwrap();
    let before = fingerprint(&s.root);
    let out = apply(Path::new(env!("CARGO_BIN_EXE_osconf")), &s, &[]);
    assert_failed_cleanly(&s, &out, &before, "/etc/shadow has no root line");
    fs::remove_file(s.root.join("etc/shadow")).unwrap();
    let before = fingerprint(&s.root);
    let out = apply(Path::new(env!("CARGO_BIN_EXE_osconf")), &s, &[]);
    assert_failed_cleanly(&s, &out, &before, "/etc/shadow is missing");
}

#[test]
fn at_most_four_flushes_per_apply() {
    if let Err(why) = check_prerequisites(&["strace"]) {
        return cannot_run("at_most_four_flushes_per_apply", &why);
    }
    let s = scratch();
    let out = Command::new("strace")
        .args([
            "-f",
            "-c",
            "-e",
            "trace=fsync,fdatasync,syncfs,sync,msync,sync_file_range",
            "-o",
        ])
        .arg(s.root.with_extension("strace"))
        .arg(env!("CARGO_BIN_EXE_osconf"))
        .args(["apply", "--no-live", "--root"])
        .arg(&s.root)
        .arg("--config")
        .arg(&s.conf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = fs::read_to_string(s.root.with_extension("strace")).unwrap();
    let total: u32 = table
        .lines()
        .filter(|l| l.trim_end().ends_with("total"))
        .filter_map(|l| l.split_whitespace().nth(3).and_then(|n| n.parse().ok()))
        .next()
        .unwrap_or_else(|| panic!("no total in:\n{table}"));
    assert!((1..=4).contains(&total), "{total} flush calls:\n{table}");
}

#[test]
fn disk_full_changes_nothing() {
    if let Err(why) = check_prerequisites(&["mount", "dd"]) {
        return cannot_run("disk_full_changes_nothing", &why);
    }
    // A 4 MiB tmpfs in a mount namespace of its own holding the root, filled to the last block.
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "set -e; mount -t tmpfs -o size=4m osconf-full '{d}/m'; cp -a '{src}' '{d}/m/root'; \
         dd if=/dev/zero of='{d}/m/fill' bs=4k 2>/dev/null || true; sync; \
         before=$(cd '{d}/m/root' && find . -printf '%p %m\\n' -exec sh -c 'test -f \"$1\" && cksum < \"$1\" || true' _ {{}} \\; | sort | cksum); \
         set +e; '{bin}' apply --no-live --root '{d}/m/root' --config '{d}/os.conf' 2>'{d}/err'; echo $? > '{d}/code'; set -e; \
         after=$(cd '{d}/m/root' && find . -printf '%p %m\\n' -exec sh -c 'test -f \"$1\" && cksum < \"$1\" || true' _ {{}} \\; | sort | cksum); \
         test \"$before\" = \"$after\" && echo same > '{d}/same' || true",
        d = dir.path().display(),
        src = repo().join("examples/rootfs/centos7").display(),
        bin = env!("CARGO_BIN_EXE_osconf"),
    );
    fs::create_dir(dir.path().join("m")).unwrap();
    fs::write(dir.path().join("os.conf"), example_conf("classic")).unwrap();
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let code = fs::read_to_string(dir.path().join("code")).unwrap();
    let err = fs::read_to_string(dir.path().join("err")).unwrap();
    assert_eq!(code.trim(), "1", "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(dir.path().join("same").exists(), "the tree changed:\n{err}");
    assert!(dir.path().join("os.conf").exists());
}
