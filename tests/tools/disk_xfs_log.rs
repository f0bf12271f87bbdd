//! The XFS reader on filesystems whose log needs recovery, made by a kernel: `mkfs.xfs -p` writes
//! a tree, a kernel mounts it and changes it (new files and directories, a mode, an append, a
//! directory grown out of its block form, a file removed), syncs and stops without writing
//! anything in place. v5: the host's kernel, a loop mount in a private mount namespace, shut down
//! with `xfs_io -x -c 'shutdown -f'` (the log flushed first); v4, which the host's kernel may not
//! mount (`CONFIG_XFS_SUPPORT_V4`): libguestfs's appliance, the same `xfs_io` run there. `xfs_logprint`
//! says the log is dirty and `xfs_db` (which replays nothing) still sees the tree as it was;
//! osconf's reader must read the changed tree, and a copy the same kernel mounted again (its own
//! recovery) reads the same with no recovery left. Then the v5 log is crafted: a record failing
//! its CRC ends the log before it; an operation overrunning its record (CRCs made right) is damage
//! naming the record. As root (v5: a loop mount); else SKIPPED.

use std::fs::{self, File};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::guestfs;
use crate::common::real::{as_root, have_tools, run};
use crate::common::xfs::{check_tree, mkfs, tree};
use osconf::disk::{Log, Recovery, Volume};

const TOOLS: [&str; 7] = [
    "mkfs.xfs",
    "xfs_io",
    "xfs_logprint",
    "xfs_db",
    "unshare",
    "mount",
    "truncate",
];

/// What the running system did after the image was made, run in the tree's root (the mount, and
/// a copy of the tree on the host to compare with).
const CHANGES: &str = "set -e
printf 'written after the boot\\n' > etc/new
chmod 640 etc/new
mkdir etc/newdir
printf 'inner\\n' > etc/newdir/inner
printf 'more\\n' >> empty
chmod 600 empty
for i in $(seq 0 99); do printf \"$i\\n\" > block/added-$i; done
rm big
head -c 300000 /dev/zero | tr '\\0' x > node/bigger
";

fn sh(dir: &Path, script: &str) {
    run(Command::new("sh").args(["-c", script]).current_dir(dir));
}

/// `xfs_logprint -t`'s summary line of the log of `fs_file`.
fn log_state(fs_file: &Path) -> String {
    let out = Command::new("xfs_logprint")
        .arg("-t")
        .arg(fs_file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.contains("state:"))
        .unwrap_or_else(|| panic!("xfs_logprint -t: {text}"))
        .to_owned()
}

/// `script` run with the filesystem in `fs_file` mounted at `mnt` (`$1` the file, `$2` the mount
/// point) in a private mount namespace.
fn mounted(fs_file: &Path, mnt: &Path, script: &str) {
    fs::create_dir_all(mnt).unwrap();
    let script = format!("set -e; mount -o loop \"$1\" \"$2\"; cd \"$2\"; {script}");
    run(Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(fs_file)
        .arg(mnt));
}

/// The log of the filesystem in `fs_file`: its byte offset and length, from the superblock.
fn log_place(fs_file: &Path) -> (u64, usize) {
    let mut sb = [0u8; 512];
    File::open(fs_file).unwrap().read_exact_at(&mut sb, 0).unwrap();
    let be32 = |at: usize| u64::from(u32::from_be_bytes(sb[at..at + 4].try_into().unwrap()));
    let start = u64::from_be_bytes(sb[48..56].try_into().unwrap());
    let (block, ag_blocks, ag_log) = (be32(4), be32(84), u32::from(sb[124]));
    let linear = (start >> ag_log) * ag_blocks + (start & ((1 << ag_log) - 1));
    (linear * block, (be32(96) * block) as usize)
}

/// The block of the record at the log's tail: the tail LSN of its last record header.
fn tail_record(log: &[u8]) -> usize {
    let last = (0..log.len() / 512)
        .filter(|&b| log[b * 512..b * 512 + 4] == [0xFE, 0xED, 0xBA, 0xBE])
        .max_by_key(|&b| {
            u32::from_be_bytes(log[b * 512 + 4..b * 512 + 8].try_into().unwrap()) as usize * log.len() + b
        })
        .expect("a record header");
    u32::from_be_bytes(log[last * 512 + 28..last * 512 + 32].try_into().unwrap()) as usize
}

/// A copy of `fs_file` as `name` with its log changed by `change`.
fn crafted(fs_file: &Path, name: &str, change: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let copy = fs_file.with_file_name(name);
    fs::copy(fs_file, &copy).unwrap();
    let (at, len) = log_place(&copy);
    let f = fs::OpenOptions::new().read(true).write(true).open(&copy).unwrap();
    let mut log = vec![0u8; len];
    f.read_exact_at(&mut log, at).unwrap();
    change(&mut log);
    f.write_all_at(&log, at).unwrap();
    copy
}

/// The tree `src` and the same tree after [`CHANGES`], on the host.
fn trees(d: &Path) -> (PathBuf, PathBuf) {
    let src = tree(d);
    let after = d.join("after");
    run(Command::new("cp").arg("-a").arg(&src).arg(&after));
    sh(&after, CHANGES);
    (src, after)
}

/// What must hold of `fs_file`, whose log holds the change to `after`: the log dirty,
/// the tree as it was in place, the tree after in osconf's view, the recovery said.
fn replayed(fs_file: &Path, after: &Path, what: &str) {
    assert!(
        log_state(fs_file).contains("DIRTY"),
        "{what}: {}",
        log_state(fs_file)
    );
    // In place, the image is the tree as it was: what a reader that replays nothing sees.
    let db = Command::new("xfs_db")
        .args(["-r", "-c", "path /etc/new"])
        .arg(fs_file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&db.stderr) + String::from_utf8_lossy(&db.stdout);
    assert!(
        said.contains("No such file"),
        "{what}: xfs_db sees /etc/new in place: {said}"
    );
    let v = Volume::open(File::open(fs_file).unwrap(), 0).unwrap();
    let Some(Recovery::Replayed {
        log: Log::Xfs,
        transactions,
        ..
    }) = v.recovery()
    else {
        panic!("{what}: {:?}", v.recovery());
    };
    assert!(*transactions > 0, "{what}");
    let said = v.recovery().unwrap().describe("partition 2");
    assert!(
        said.starts_with("partition 2: XFS log needed recovery: ")
            && said.contains("the image itself is unchanged"),
        "{what}: {said}"
    );
    check_tree(&v, after, what, what.starts_with("v4"));
    for (path, mode) in [("etc/new", 0o640), ("empty", 0o600)] {
        assert_eq!(v.metadata(path).unwrap().unwrap().mode, mode, "{what}: {path}");
    }
    assert_eq!(v.read_file("big").unwrap(), None, "{what}");
}

/// `kernel`, recovered by a kernel's mount, reads as `after` and needs no recovery.
fn recovered(kernel: &Path, after: &Path, what: &str) {
    assert!(
        log_state(kernel).contains("CLEAN"),
        "{what}: {}",
        log_state(kernel)
    );
    let clean = Volume::open(File::open(kernel).unwrap(), 0).unwrap();
    assert_eq!(clean.recovery(), None, "{what}");
    check_tree(&clean, after, what, what.starts_with("v4"));
}

#[test]
fn a_v5_log_needing_recovery_is_replayed_into_the_view_as_the_kernel_replays_it() {
    let test = "a_v5_log_needing_recovery_is_replayed_into_the_view_as_the_kernel_replays_it";
    if !have_tools(test, &TOOLS) {
        return;
    }
    if !as_root(test, "a loop mount in a private mount namespace") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (src, after) = trees(d);
    let fs_file = mkfs(d, "v5", &src, "300M", &[]);
    mounted(
        &fs_file,
        &d.join("mnt"),
        &format!("{CHANGES}\nsync\nxfs_io -x -c 'shutdown -f' .\ncd /\numount \"$2\""),
    );
    replayed(&fs_file, &after, "v5");
    // The kernel's own recovery agrees, and leaves nothing to recover.
    let kernel = d.join("kernel.xfs");
    fs::copy(&fs_file, &kernel).unwrap();
    mounted(&kernel, &d.join("mnt2"), "cd /; umount \"$2\"");
    recovered(&kernel, &after, "v5 recovered by the kernel");

    // A record failing its CRC ends the log before it, said so: the tree as it was.
    let f = crafted(&fs_file, "crc.xfs", |log| {
        let tail = tail_record(log);
        log[(tail + 1) * 512 + 100] ^= 1;
    });
    let v = Volume::open(File::open(&f).unwrap(), 0).unwrap();
    let said = v.recovery().unwrap().describe("partition 2");
    assert!(said.contains("fails its CRC: the log ends before it"), "{said}");
    check_tree(&v, &src, "log cut at a bad CRC", false);
    // An operation longer than its record, the CRCs made right: damage naming the record.
    let mut tail = 0;
    let f = crafted(&fs_file, "overrun.xfs", |log| {
        tail = tail_record(log);
        let op = (tail + 1) * 512;
        log[op + 4..op + 8].copy_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
        osconf::harness::xfs_lvm::seal_log(log);
    });
    let e = Volume::open(File::open(&f).unwrap(), 0).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(
        e.to_string().contains(&format!(
            "xfs log: record at block {tail}: operation at byte 0: 2147483647 bytes"
        )),
        "{e}"
    );
}

/// guestfish on `fs_file` (raw, read-write) running `script`, under KVM or, when the appliance
/// does not start there (nested KVM), under TCG.
fn guestfish(fs_file: &Path, script: &str) -> std::process::Output {
    use std::io::Write as _;
    let go = |tcg: bool| {
        let mut cmd = Command::new("guestfish");
        cmd.args(["--rw", "--format=raw", "-a"])
            .arg(fs_file)
            .env("LIBGUESTFS_BACKEND", "direct")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if tcg {
            cmd.env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg");
        }
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = go(false);
    if String::from_utf8_lossy(&out.stderr).contains("guestfs_launch failed") {
        return go(true);
    }
    out
}

#[test]
fn a_v4_log_left_by_the_libguestfs_appliance_is_replayed_into_the_view() {
    let test = "a_v4_log_left_by_the_libguestfs_appliance_is_replayed_into_the_view";
    if !have_tools(test, &TOOLS) || !guestfs::ready(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (src, after) = trees(d);
    let fs_file = mkfs(d, "v4", &src, "300M", &["-m", "crc=0"]);
    // The same change, each file's new bytes uploaded from the tree after it.
    let a = after.display();
    let mut script = format!(
        "run\nmount /dev/sda /\nupload {a}/etc/new /etc/new\nchmod 0640 /etc/new\nmkdir /etc/newdir\n\
         upload {a}/etc/newdir/inner /etc/newdir/inner\nupload {a}/empty /empty\nchmod 0600 /empty\n\
         rm /big\nupload {a}/node/bigger /node/bigger\n"
    );
    for i in 0..100 {
        script.push_str(&format!("upload {a}/block/added-{i} /block/added-{i}\n"));
    }
    // sync flushes the data; the appliance's xfs_io shuts the filesystem down, the log flushed and
    // the metadata not written in place (guestfish's own shutdown would unmount it cleanly).
    let shutdown = "sync\ndebug sh \"xfs_io -x -c \\\"shutdown -f\\\" /sysroot\"\n";
    let out = guestfish(&fs_file, &(script + shutdown));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    replayed(&fs_file, &after, "v4");
    let kernel = d.join("kernel.xfs");
    fs::copy(&fs_file, &kernel).unwrap();
    let out = guestfish(&kernel, "run\nmount /dev/sda /\numount-all\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    recovered(&kernel, &after, "v4 recovered by the appliance's kernel");
}

#[test]
fn an_external_log_is_said_not_replayed() {
    let test = "an_external_log_is_said_not_replayed";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("src");
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/os-release"), "ID=test\n").unwrap();
    // mkfs.xfs puts the log in a file of its own: the superblock says no log start.
    let logdev = d.join("logdev");
    run(Command::new("truncate").args(["-s", "64M"]).arg(&logdev));
    let fs_file = mkfs(
        d,
        "external",
        &src,
        "300M",
        &["-l", &format!("logdev={}", logdev.display())],
    );
    let v = Volume::open(File::open(&fs_file).unwrap(), 0).unwrap();
    assert_eq!(v.recovery(), Some(&Recovery::External(Log::Xfs)));
    let said = v.recovery().unwrap().describe("partition 2");
    assert!(said.contains("cannot replay, external log"), "{said}");
    assert_eq!(v.read_file("etc/os-release").unwrap().unwrap(), b"ID=test\n");
}
