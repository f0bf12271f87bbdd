//! Recovery next to mounts, as root: a run cut short whose backup directory holds a mount point is
//! rolled back without removing anything on the mounted filesystem (a private mount namespace).

use std::fs;
use std::process::Command;
use std::time::Duration;

use crate::common::journal::{STAMP, bounded, head, put_journal, sha, sha_of};
use crate::common::real::{cannot_run, check_prerequisites};
use crate::common::scratch::scratch;

/// A genuine journal whose backup directory holds a mount: recovery removes only the backups it
/// lists and the directories it made when empty, never what is on the mounted filesystem. Run in a
/// private mount namespace (unshare), as root.
#[test]
fn recovery_never_removes_below_a_mount_point() {
    if let Err(why) = check_prerequisites(&["unshare", "mount"]) {
        return cannot_run("recovery_never_removes_below_a_mount_point", &why);
    }
    let s = scratch();
    let hostname = fs::read(s.root.join("etc/hostname")).unwrap();
    let backup = s.root.join(format!("var/lib/osconf/backup/{STAMP}/etc"));
    fs::create_dir_all(backup.join("mnt")).unwrap();
    fs::write(backup.join("hostname"), &hostname).unwrap();
    // The run had renamed its new /etc/hostname into place, not yet its /etc/passwd.
    fs::write(s.root.join("etc/hostname"), "new\n").unwrap();
    let journal = format!(
        "{}file /etc/hostname .hostname.osconf-new file:{} /var/lib/osconf/backup/{STAMP}/etc/hostname file:{}\n\
         file /etc/passwd .passwd.osconf-new file:{} /var/lib/osconf/backup/{STAMP}/etc/passwd file:{}\nend\n",
        head(),
        sha(&hostname),
        sha(b"new\n"),
        sha_of(&s.root, "etc/passwd"),
        sha(b"x\n"),
    );
    put_journal(&s.root, journal.as_bytes());
    let script = format!(
        "set -e; mount -t tmpfs none {mnt}; echo keep > {mnt}/file; \
         {bin} apply --no-live --root {root} --config {conf}; cat {mnt}/file",
        mnt = backup.join("mnt").display(),
        bin = env!("CARGO_BIN_EXE_osconf"),
        root = s.root.display(),
        conf = s.conf.display(),
    );
    let out = bounded(
        Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &script]),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("unshare failed") {
        return cannot_run("recovery_never_removes_below_a_mount_point", &stderr);
    }
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("an interrupted run was rolled back (1 of 2 files put back)"),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "keep\n", "{stderr}");
}
