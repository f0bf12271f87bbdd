//! Faults while applying, against the real binary: each gives exit 1, every file byte-identical,
//! os.conf kept, and a message naming the path or step; plus the locks (two applies at once; the
//! password files' lock against shadow-utils), a rollback step that itself fails, extended
//! attributes larger than 4 KiB, and the number of flush system calls an apply makes.
//!
//! Elsewhere: read-only `/etc` and os.conf's directory (bind mounts, modes) in
//! tests/plain/rollback.rs; a partition 1 the finder cannot make writable in tests/root/real_boot.rs.

use std::fs;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::real::{cannot_run, check_prerequisites};
use crate::common::scratch::{Scratch, scratch, scratch_at};
use crate::common::{copy_tree, example_conf, fingerprint, hooks, repo};

fn apply(bin: &Path, s: &Scratch, env: &[(&str, &str)]) -> Output {
    s.apply_command(bin).envs(env.iter().copied()).output().unwrap()
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
fn at_most_three_flushes_per_apply() {
    if let Err(why) = check_prerequisites(&["strace"]) {
        return cannot_run("at_most_three_flushes_per_apply", &why);
    }
    let s = scratch();
    let table = s.strace_table(&[
        "-f",
        "-e",
        "trace=fsync,fdatasync,syncfs,sync,msync,sync_file_range",
    ]);
    let total: u32 = table
        .lines()
        .filter(|l| l.trim_end().ends_with("total"))
        .filter_map(|l| l.split_whitespace().nth(3).and_then(|n| n.parse().ok()))
        .next()
        .unwrap_or_else(|| panic!("no total in:\n{table}"));
    // Two syncfs (before and after the renames) and os.conf's directory.
    assert!((1..=3).contains(&total), "{total} flush calls:\n{table}");
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

/// A program holding `<root>/etc/.pwd.lock` as `lckpwdf` does (fcntl write lock, whole file): python's
/// `fcntl.lockf`, until its stdin closes. A child process, not this one: POSIX locks belong to the
/// process, and any read of the file here (a fingerprint) would drop one held by the test itself.
fn hold_pwd_lock(root: &Path) -> std::process::Child {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import fcntl, os, sys\n\
             fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)\n\
             fcntl.lockf(fd, fcntl.LOCK_EX)\n\
             print('locked', flush=True)\n\
             sys.stdin.read()",
        ])
        .arg(root.join("etc/.pwd.lock"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "locked\n");
    child
}

/// Whether some process holds a lock on `<root>/etc/.pwd.lock` (tried without waiting, released
/// at once).
fn pwd_lock_is_held(root: &Path) -> bool {
    let Ok(file) = fs::OpenOptions::new()
        .write(true)
        .open(root.join("etc/.pwd.lock"))
    else {
        return false;
    };
    rustix::fs::fcntl_lock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err()
}

#[test]
fn shadow_locked_by_another_program_changes_nothing() {
    if let Err(why) = check_prerequisites(&["python3"]) {
        return cannot_run("shadow_locked_by_another_program_changes_nothing", &why);
    }
    let s = scratch();
    let mut holder = hold_pwd_lock(&s.root);
    let before = fingerprint(&s.root);
    let start = Instant::now();
    let out = apply(Path::new(env!("CARGO_BIN_EXE_osconf")), &s, &[]);
    let waited = start.elapsed();
    let lock = s.root.join("etc/.pwd.lock");
    assert_failed_cleanly(
        &s,
        &out,
        &before,
        &format!("{} is locked by another program", lock.display()),
    );
    assert!(waited >= Duration::from_secs(15), "waited only {waited:?}");
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    // Let go: applied, and the lock file that was there stays.
    let out = apply(Path::new(env!("CARGO_BIN_EXE_osconf")), &s, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(lock.exists());
}

#[test]
fn a_lock_file_osconf_made_is_gone_after_the_run() {
    let s = scratch();
    let out = apply(Path::new(env!("CARGO_BIN_EXE_osconf")), &s, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!s.root.join("etc/.pwd.lock").exists());
}

/// The root line of `<root>/etc/shadow`.
fn root_line(root: &Path) -> String {
    let shadow = fs::read_to_string(root.join("etc/shadow")).unwrap();
    shadow
        .lines()
        .find(|l| l.starts_with("root:"))
        .unwrap()
        .to_owned()
}

/// Waits until process `pid` is stopped (state `T` in /proc/PID/stat).
fn wait_stopped(pid: u32) {
    let start = Instant::now();
    loop {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = stat.rsplit_once(") ").unwrap().1.chars().next();
        if state == Some('T') {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{pid} never stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn osconf_and_chpasswd_exclude_each_other() {
    const TEST: &str = "osconf_and_chpasswd_exclude_each_other";
    if let Err(why) = check_prerequisites(&["chpasswd"]) {
        return cannot_run(TEST, &why);
    }
    let s = scratch();
    let original = root_line(&s.root);
    let before = fingerprint(&s.root);
    // chpasswd (shadow-utils, its chroot option) takes the lock, then reads its input: held open.
    let mut chpasswd = Command::new("chpasswd")
        .args(["-c", "SHA512", "-R"])
        .arg(&s.root)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !pwd_lock_is_held(&s.root) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "chpasswd never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = apply(Path::new(env!("CARGO_BIN_EXE_osconf")), &s, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("etc/.pwd.lock is locked by another program"),
        "{stderr}"
    );
    // chpasswd goes on: it still holds its own files; with no input it changes nothing.
    drop(chpasswd.stdin.take());
    let done = chpasswd.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    fs::remove_file(s.root.join("etc/.pwd.lock")).unwrap();
    assert_failed_cleanly(&s, &out, &before, "etc/.pwd.lock");

    // The other way round: osconf holds it, stopped half-way through the run; chpasswd gives up.
    let osconf = Command::new(hooks::binary())
        .args(["apply", "--no-live", "--root"])
        .arg(&s.root)
        .arg("--config")
        .arg(&s.conf)
        .env("OSCONF_TEST_STOP_AT", "writing the journal")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_stopped(osconf.id());
    assert!(pwd_lock_is_held(&s.root));
    let mut chpasswd = Command::new("chpasswd")
        .args(["-c", "SHA512", "-R"])
        .arg(&s.root)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(chpasswd.stdin.as_mut().unwrap(), b"root:from-chpasswd\n").unwrap();
    drop(chpasswd.stdin.take());
    let refused = chpasswd.wait_with_output().unwrap();
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "chpasswd ran while osconf held the lock"
    );
    assert!(why.contains("cannot lock"), "{why}");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(osconf.id() as i32).unwrap(),
        rustix::process::Signal::CONT,
    )
    .unwrap();
    let out = osconf.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let now = root_line(&s.root);
    assert!(now != original && now.starts_with("root:$6$"), "{now}");
    assert!(!s.root.join("etc/.pwd.lock").exists());
}

/// An ext4 filesystem in an image file on a loop device (losetup), mounted at `mnt`; unmounted and
/// detached on drop. `ea_inode`: extended attribute values up to 64 KiB, as large as Linux allows.
struct Ext4 {
    _dir: tempfile::TempDir,
    dev: String,
    mnt: PathBuf,
}

impl Ext4 {
    /// `mkfs.ext4 EXTRA… image`, attached (read-only with `ro`) and mounted (`mount_opts`).
    fn new(extra: &[&str], ro: bool, mount_opts: &str) -> Ext4 {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("fs.img");
        crate::common::real::run(Command::new("truncate").args(["-s", "64M"]).arg(&image));
        crate::common::real::run(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-O", "ea_inode"])
                .args(extra)
                .arg(&image),
        );
        let mut losetup = Command::new("losetup");
        losetup.args(["-f", "--show"]);
        if ro {
            losetup.arg("-r");
        }
        let out = crate::common::real::run(losetup.arg(&image));
        let dev = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let mnt = dir.path().join("m");
        fs::create_dir(&mnt).unwrap();
        let e = Ext4 { _dir: dir, dev, mnt };
        crate::common::real::run(
            Command::new("mount")
                .args(["-t", "ext4", "-o", mount_opts])
                .arg(&e.dev)
                .arg(&e.mnt),
        );
        e
    }

    fn unmount(&self) {
        let _ = Command::new("umount").arg(&self.mnt).output();
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        // A failed test may leave immutable files behind: the image must still go.
        let _ = Command::new("chattr")
            .args(["-R", "-i", "-f"])
            .arg(&self.mnt)
            .status();
        self.unmount();
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

fn ext4_ready(test: &str) -> bool {
    match check_prerequisites(&["losetup", "mkfs.ext4", "mount", "umount", "chattr", "lsattr"]) {
        Ok(()) => true,
        Err(why) => {
            cannot_run(test, &why);
            false
        }
    }
}

/// The centos7 scratch root on a fresh ext4 loop filesystem (the Ext4 first: dropped last).
fn ext4_scratch() -> (Ext4, Scratch) {
    let e = Ext4::new(&[], false, "rw");
    let s = scratch_at(tempfile::tempdir().unwrap(), e.mnt.join("root"));
    (e, s)
}

fn chattr(flag: &str, path: &Path) {
    crate::common::real::run(Command::new("chattr").arg(flag).arg(path));
}

/// A `user.` attribute of `len` bytes, all different from one run of bytes to the next.
fn big_value(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let size = rustix::fs::getxattr_query(path, name).ok()?;
    let mut value = vec![0u8; size];
    let len = rustix::fs::getxattr(path, name, &mut value).ok()?;
    value.truncate(len);
    Some(value)
}

#[test]
fn an_immutable_file_or_directory_changes_nothing() {
    const TEST: &str = "an_immutable_file_or_directory_changes_nothing";
    if !ext4_ready(TEST) {
        return;
    }
    let (_e, s) = ext4_scratch();
    // Written after the network-scripts files: a failure mid-way.
    let hostname = s.root.join("etc/hostname");
    chattr("+i", &hostname);
    let before = fingerprint(&s.root);
    let out = apply(Path::new(env!("CARGO_BIN_EXE_osconf")), &s, &[]);
    assert_failed_cleanly(
        &s,
        &out,
        &before,
        "failed writing /etc/hostname: Operation not permitted",
    );
    let attrs = crate::common::real::run(Command::new("lsattr").arg(&hostname));
    assert!(String::from_utf8_lossy(&attrs.stdout).contains("-i-"));
    chattr("-i", &hostname);
    // An immutable directory: no temp file can be made in it.
    let scripts = s.root.join("etc/sysconfig/network-scripts");
    chattr("+i", &scripts);
    let before = fingerprint(&s.root);
    let out = apply(Path::new(env!("CARGO_BIN_EXE_osconf")), &s, &[]);
    assert_failed_cleanly(
        &s,
        &out,
        &before,
        "failed writing /etc/sysconfig/network-scripts/ifcfg-eth0: Operation not permitted",
    );
    chattr("-i", &scripts);
}

#[test]
fn extended_attributes_larger_than_4_kib_are_kept() {
    const TEST: &str = "extended_attributes_larger_than_4_kib_are_kept";
    if !ext4_ready(TEST) {
        return;
    }
    let (_e, s) = ext4_scratch();
    let big = big_value(16 << 10);
    let files = [
        "etc/hostname",
        "etc/shadow",
        "etc/sysconfig/network-scripts/ifcfg-eth0",
    ];
    for f in files {
        rustix::fs::setxattr(s.root.join(f), "user.big", &big, rustix::fs::XattrFlags::empty()).unwrap();
    }
    // A failed run puts them back with it (the fingerprint reads values of any size)…
    chattr("+i", &s.root.join("etc/hostname"));
    let before = fingerprint(&s.root);
    assert!(before.contains("[user.big="));
    let out = apply(Path::new(env!("CARGO_BIN_EXE_osconf")), &s, &[]);
    assert_failed_cleanly(&s, &out, &before, "writing /etc/hostname");
    chattr("-i", &s.root.join("etc/hostname"));
    // …and a successful one keeps them on the new files and their backups.
    let out = apply(Path::new(env!("CARGO_BIN_EXE_osconf")), &s, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let backups: Vec<PathBuf> = fs::read_dir(s.root.join("var/lib/osconf/backup"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(backups.len(), 1);
    for f in files {
        let new = s.root.join(f);
        assert_eq!(get_xattr(&new, "user.big").as_ref(), Some(&big), "{f}");
        assert_eq!(
            get_xattr(&backups[0].join(f), "user.big").as_ref(),
            Some(&big),
            "backup of {f}"
        );
    }
}

#[test]
fn a_read_only_first_partition_rolls_everything_back() {
    const TEST: &str = "a_read_only_first_partition_rolls_everything_back";
    if !ext4_ready(TEST) {
        return;
    }
    // Partition 1 holds os.conf, on a read-only loop device: it cannot be made writable.
    let content = tempfile::tempdir().unwrap();
    fs::create_dir(content.path().join("aliyun_custom_image")).unwrap();
    fs::write(
        content.path().join("aliyun_custom_image/os.conf"),
        example_conf("classic"),
    )
    .unwrap();
    let d = content.path().to_str().unwrap();
    let part = Ext4::new(&["-d", d], true, "ro");
    part.unmount();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    copy_tree(&repo().join("examples/rootfs/centos7"), &root).unwrap();
    let before = fingerprint(&root);
    // Named with --device and not mounted: the finder's own read-write mount fails, up front.
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args([
            "apply",
            "--no-live",
            "--wait",
            "5",
            "--device",
            &part.dev,
            "--root",
        ])
        .arg(&root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach os.conf: mounting {} (ext4)", part.dev)),
        "{stderr}"
    );
    assert!(
        stderr.contains("read-write") && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert_eq!(fingerprint(&root), before, "{stderr}");
    // Mounted read-only at the root's /boot (an image builder's --root): every file is written,
    // then os.conf cannot be removed, and all of it is rolled back.
    fs::create_dir_all(root.join("boot")).unwrap();
    crate::common::real::run(
        Command::new("mount")
            .args(["-t", "ext4", "-o", "ro"])
            .arg(&part.dev)
            .arg(root.join("boot")),
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _boot = Unmount(root.join("boot"));
    let before = fingerprint(&root);
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["apply", "--no-live", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let conf = root.join("boot/aliyun_custom_image/os.conf");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "failed removing {}: Read-only file system",
            conf.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("every change was rolled back"), "{stderr}");
    assert!(conf.exists());
    assert_eq!(fingerprint(&root), before, "{stderr}");
}

#[test]
fn a_rollback_step_that_fails_is_named_with_its_backup() {
    const TEST: &str = "a_rollback_step_that_fails_is_named_with_its_backup";
    if !ext4_ready(TEST) {
        return;
    }
    let (_e, s) = ext4_scratch();
    // os.conf in the root, so that its removal can be made to fail too; the lock file there already.
    let conf_dir = s.root.join("boot/aliyun_custom_image");
    fs::create_dir_all(&conf_dir).unwrap();
    fs::copy(&s.conf, conf_dir.join("os.conf")).unwrap();
    fs::remove_file(&s.conf).unwrap();
    fs::write(s.root.join("etc/.pwd.lock"), "").unwrap();
    let before = fingerprint(&s.root);
    let original_hostname = fs::read(s.root.join("etc/hostname")).unwrap();
    // Stopped once every rename is on disk; then /etc and os.conf's directory become immutable:
    // os.conf cannot go, and nothing in /etc can be put back.
    let child = Command::new(hooks::binary())
        .args(["apply", "--no-live", "--root"])
        .arg(&s.root)
        .env("OSCONF_TEST_STOP_AT", "flushing the renames")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_stopped(child.id());
    chattr("+i", &s.root.join("etc"));
    chattr("+i", &conf_dir);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::CONT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    chattr("-i", &s.root.join("etc"));
    chattr("-i", &conf_dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("every change was rolled back"), "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.contains("change(s) could not be rolled back (see above); os.conf kept"),
        "{stderr}"
    );
    let backup_dir = fs::read_dir(s.root.join("var/lib/osconf/backup"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for f in ["hostname", "shadow", "hosts"] {
        let said = format!(
            "rollback: could not put back {} (its original is in {}): Operation not permitted",
            s.root.join("etc").join(f).display(),
            backup_dir.join("etc").join(f).display()
        );
        assert!(stderr.contains(&said), "{said:?} not in:\n{stderr}");
    }
    // The backup it names is there and whole.
    assert_eq!(
        fs::read(backup_dir.join("etc/hostname")).unwrap(),
        original_hostname
    );
    // The next apply puts everything back from it (os.conf set aside to see just that).
    let conf = fs::read(conf_dir.join("os.conf")).unwrap();
    fs::remove_file(conf_dir.join("os.conf")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["apply", "--no-live", "--root"])
        .arg(&s.root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("an interrupted run was rolled back"), "{stderr}");
    fs::write(conf_dir.join("os.conf"), conf).unwrap();
    let _ = fs::remove_file(s.root.join("var/lib/osconf/last-run"));
    let after = fingerprint(&s.root);
    if after != before {
        let diff = osconf::plan::diff::unified(&before, &after, "before", "after");
        panic!("not put back:\n{diff}");
    }
}

/// `chattr +a etc`: files can be made there but not removed. The run fails and is rolled back, and
/// the lock file it made and cannot remove is named, not hidden behind "every change was rolled
/// back"; once `etc` is writable again, the next run removes it (its temp name marks it as osconf's).
#[test]
fn regression_a_lock_file_that_cannot_be_removed_is_said_and_removed_by_the_next_run() {
    const TEST: &str = "regression_a_lock_file_that_cannot_be_removed_is_said_and_removed_by_the_next_run";
    if !ext4_ready(TEST) {
        return;
    }
    let (_e, s) = ext4_scratch();
    let etc = s.root.join("etc");
    chattr("+a", &etc);
    let out = apply(Path::new(env!("CARGO_BIN_EXE_osconf")), &s, &[]);
    chattr("-a", &etc);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/etc/.pwd.lock, which osconf created, could not be removed: "),
        "{stderr}"
    );
    assert!(etc.join(".pwd.lock").exists() && s.conf.exists());
    let again = apply(Path::new(env!("CARGO_BIN_EXE_osconf")), &s, &[]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(
        stderr.contains("etc/.pwd.lock, left by a run of osconf that was cut short"),
        "{stderr}"
    );
    assert!(!etc.join(".pwd.lock").exists() && !etc.join("..pwd.lock.osconf-new").exists());
}
