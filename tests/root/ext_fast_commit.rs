//! An ext4 `fast_commit` journal as the kernel leaves it when an image is cut after an `fsync`:
//! mounted (a loop mount in a private mount namespace), a full commit, then a file written and
//! fsynced (a fast commit), then the filesystem shut down without flushing its log (`xfs_io -x -c
//! shutdown`, `EXT4_IOC_SHUTDOWN` with `NOLOGFLUSH`). osconf's view replays the full commits and
//! says the fast commits are not in it, with what to run; e2fsck, which replays fast commits,
//! shows the file is indeed only there. Root, loop devices, unshare; else SKIPPED.

use std::fs;
use std::process::Command;

use crate::common::real::{cannot_run, is_program, run};
use osconf::disk::Recovery;
use osconf::disk::Volume;

#[test]
fn a_fast_commit_the_kernel_wrote_is_said_not_replayed_and_e2fsck_replays_it() {
    let test = "a_fast_commit_the_kernel_wrote_is_said_not_replayed_and_e2fsck_replays_it";
    if !rustix::process::geteuid().is_root() {
        return cannot_run(test, "needs root (a loop mount)");
    }
    if let Some(t) = ["mkfs.ext4", "e2fsck", "xfs_io", "unshare", "truncate"]
        .into_iter()
        .find(|t| !is_program(t))
    {
        return cannot_run(test, &format!("{t} is not installed (.ci/packages.txt lists it)"));
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/os-release"), "ID=test\n").unwrap();
    let file = dir.path().join("fc.fs");
    run(Command::new("truncate").args(["-s", "32M"]).arg(&file));
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-O", "fast_commit", "-d"])
        .arg(&src)
        .arg(&file));
    let mnt = dir.path().join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    // commit=60: no full commit of its own between the fsync and the shutdown.
    let script = "set -e; mount -o loop,commit=60 \"$1\" \"$2\"; mkdir \"$2/full\"; sync -f \"$2\"; \
                  printf 'fast\\n' > \"$2/etc/fc\"; xfs_io -c fsync \"$2/etc/fc\"; \
                  xfs_io -x -c shutdown \"$2\"; umount \"$2\"";
    run(Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&file)
        .arg(&mnt));

    let v = Volume::open(fs::read(&file).unwrap(), 0).unwrap();
    let Some(Recovery::Replayed { notes, .. }) = v.recovery() else {
        panic!("{:?}", v.recovery());
    };
    assert!(
        notes.len() == 1
            && notes[0].contains("fast commits of transaction")
            && notes[0].contains("e2fsck -fy"),
        "{notes:?}"
    );
    assert!(v.metadata("full").unwrap().is_some(), "the full commit");
    assert_eq!(v.read_file("etc/fc").unwrap(), None, "only in the fast commit");

    // e2fsck replays the fast commit: the file the view lacks is there.
    let out = Command::new("e2fsck").arg("-fy").arg(&file).output().unwrap();
    assert!(out.status.code().is_some_and(|c| c <= 1), "e2fsck: {out:?}");
    let fixed = Volume::open(fs::read(&file).unwrap(), 0).unwrap();
    assert_eq!(fixed.recovery(), None);
    assert_eq!(fixed.read_file("etc/fc").unwrap().unwrap(), b"fast\n");
}
