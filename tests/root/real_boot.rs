//! The partition finder on a real kernel (root only): an ext4 filesystem on a loop device, named by
//! `--device` (path and UUID=, the latter found by reading the superblocks of the host's block
//! devices), mounted by osconf itself on /run/osconf/p1.PID and unmounted after success and failure;
//! mounted read-only by someone else → made writable for the removal and read-only again; a
//! device that cannot be made writable → exit 1 before anything changed, os.conf kept.
//!
//! (`losetup -P` makes no partition nodes on the CI host, and it cannot mount vfat: partitioned
//! disks and FAT are covered by the image tests and the fake-tree tests.)

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use crate::common::real::{cannot_run, check_prerequisites, run};
use crate::common::{example_conf, example_root, fingerprint};

/// A UUID of this run's own: another run of these tests on the same machine at the same time must not
/// make `UUID=` name two devices (which osconf rightly refuses).
fn uuid() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "7e0c5ab2-5d7c-4a53-9d3a-{:06x}{:06x}",
        std::process::id() & 0xFF_FFFF,
        nanos & 0xFF_FFFF
    )
}
/// One loop device at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// An ext4 image holding `aliyun_custom_image/os.conf`, attached to a loop device (detached, and
/// unmounted wherever the test mounted it, on drop).
struct Loop {
    _dir: tempfile::TempDir,
    image: PathBuf,
    uuid: String,
    dev: String,
    mounted: Option<PathBuf>,
    scratch: PathBuf,
}

impl Loop {
    fn new(conf: &str, read_only: bool) -> Loop {
        let dir = tempfile::tempdir().unwrap();
        let content = dir.path().join("content");
        fs::create_dir_all(content.join("aliyun_custom_image")).unwrap();
        fs::write(content.join("aliyun_custom_image/os.conf"), conf).unwrap();
        let image = dir.path().join("p1.img");
        let uuid = uuid();
        run(Command::new("truncate").args(["-s", "32M"]).arg(&image));
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-O", "^64bit", "-U", &uuid, "-L", "OSCONFTEST", "-d"])
            .arg(&content)
            .arg(&image));
        let mut losetup = Command::new("losetup");
        losetup.args(["-f", "--show"]);
        if read_only {
            losetup.arg("-r");
        }
        let out = run(losetup.arg(&image));
        let dev = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let scratch = dir.path().to_owned();
        Loop {
            _dir: dir,
            image,
            uuid,
            dev,
            mounted: None,
            scratch,
        }
    }

    /// Mounts it read-only at a directory of the test's, as an image's fstab might.
    fn mount_ro(&mut self) -> PathBuf {
        let at = self.scratch.join("mnt");
        fs::create_dir_all(&at).unwrap();
        run(Command::new("mount")
            .args(["-t", "ext4", "-o", "ro,nosuid,nodev"])
            .arg(&self.dev)
            .arg(&at));
        self.mounted = Some(at.clone());
        at
    }

    /// Whether os.conf is still in the filesystem (read with debugfs, mounting nothing).
    fn has_conf(&self) -> bool {
        let out = run(Command::new("debugfs")
            .args(["-R", "ls -l /aliyun_custom_image"])
            .arg(&self.image));
        String::from_utf8_lossy(&out.stdout).contains("os.conf")
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        // Whatever still has the device mounted (ours, or osconf's if a test failed half-way).
        for at in mounts_of(&self.dev) {
            let _ = Command::new("umount").arg(at).status();
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

fn mountinfo() -> String {
    fs::read_to_string("/proc/self/mountinfo").unwrap()
}

/// The mountinfo line of the mount at `at`.
fn mount_line(at: &Path) -> Option<String> {
    let at = at.display().to_string();
    mountinfo()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(at.as_str()))
        .map(str::to_owned)
}

/// Where the device `dev` is mounted.
fn mounts_of(dev: &str) -> Vec<PathBuf> {
    mountinfo()
        .lines()
        .filter(|l| l.split(" - ").nth(1).and_then(|r| r.split(' ').nth(1)) == Some(dev))
        .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
        .collect()
}

/// One run of osconf, and the directory it mounts the device on when it does (named by its pid).
struct Run {
    out: Output,
    own_mount: PathBuf,
}

fn osconf(command: &str, root: &Path, device: &str) -> Run {
    osconf_run(Command::new(env!("CARGO_BIN_EXE_osconf")), command, root, device)
}

/// [`osconf`] with `cmd` as the binary (and its environment).
fn osconf_run(mut cmd: Command, command: &str, root: &Path, device: &str) -> Run {
    let child = cmd
        .args([command, "--no-live", "--wait", "5", "--device", device, "--root"])
        .arg(root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let own_mount = PathBuf::from(format!("/run/osconf/p1.{}", child.id()));
    Run {
        out: child.wait_with_output().unwrap(),
        own_mount,
    }
}

fn ready(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    if let Err(why) = check_prerequisites(&["losetup", "mkfs.ext4", "debugfs", "mount", "umount"]) {
        cannot_run(test, &why);
        return None;
    }
    Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

/// osconf's own mount is gone, its directory too, and nothing of `l` stays mounted but the test's.
fn assert_own_mount_gone(run: &Run, l: &Loop) {
    let left: Vec<PathBuf> = mounts_of(&l.dev)
        .into_iter()
        .filter(|m| Some(m) != l.mounted.as_ref())
        .collect();
    assert!(
        left.is_empty() && mount_line(&run.own_mount).is_none(),
        "still mounted:\n{}",
        mountinfo()
    );
    assert!(!run.own_mount.exists(), "{} left behind", run.own_mount.display());
    let err = String::from_utf8_lossy(&run.out.stderr);
    assert!(!err.contains("could not"), "{err}");
}

#[test]
fn osconf_mounts_the_device_itself_and_unmounts_it_after_success() {
    let Some(_serial) = ready("osconf_mounts_the_device_itself_and_unmounts_it_after_success") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = example_root(dir.path(), "centos7");
    let l = Loop::new(&example_conf("classic"), false);

    // plan: mounted read-only while it runs, says where and how, changes nothing.
    let run = osconf("plan", &root, &l.dev);
    let out = &run.out;
    let text = String::from_utf8_lossy(&out.stdout);
    let own = run.own_mount.display();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("note: os.conf {own}/aliyun_custom_image/os.conf: --device {}: {} (ext4 UUID={} LABEL=\"OSCONFTEST\"), mounted by osconf on {own} until done", l.dev, l.dev, l.uuid)),
        "{text}"
    );
    assert_own_mount_gone(&run, &l);
    assert!(l.has_conf());

    // apply, the device named by UUID: found by its superblock (or /dev/disk/by-uuid).
    let run = osconf("apply", &root, &format!("UUID={}", l.uuid.to_uppercase()));
    let out = &run.out;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("mounted by osconf on {}", run.own_mount.display())),
        "{err}"
    );
    assert!(
        fs::read_to_string(root.join("etc/hostname"))
            .unwrap()
            .contains("iZ23r29djmjZ")
    );
    assert_own_mount_gone(&run, &l);
    assert!(!l.has_conf(), "os.conf was not removed from the device");

    // Nothing there any more: exit 0, still nothing left mounted.
    let run = osconf("apply", &root, &l.dev);
    let out = &run.out;
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no os.conf found"));
    assert_own_mount_gone(&run, &l);
}

#[test]
fn osconf_unmounts_the_device_after_failure() {
    let Some(_serial) = ready("osconf_unmounts_the_device_after_failure") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = example_root(dir.path(), "centos7");
    // Invalid os.conf: exit 2.
    let l = Loop::new("hostname=\n", false);
    let run = osconf("apply", &root, &l.dev);
    let out = &run.out;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_own_mount_gone(&run, &l);
    assert!(l.has_conf());
    drop(l);
    // Applying fails (a directory where /etc/hostname goes) and is rolled back: exit 1.
    fs::remove_file(root.join("etc/hostname")).unwrap();
    fs::create_dir(root.join("etc/hostname")).unwrap();
    let l = Loop::new(&example_conf("classic"), false);
    let run = osconf("apply", &root, &l.dev);
    let out = &run.out;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_own_mount_gone(&run, &l);
    assert!(l.has_conf());
}

#[test]
fn a_read_only_mount_is_made_writable_for_the_removal_and_read_only_again() {
    let Some(_serial) = ready("a_read_only_mount_is_made_writable_for_the_removal_and_read_only_again")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = example_root(dir.path(), "centos7");
    let mut l = Loop::new(&example_conf("classic"), false);
    let at = l.mount_ro();
    let before = mount_line(&at).unwrap();
    let run = osconf("apply", &root, &l.dev);
    let out = &run.out;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let made = format!(
        "{} made writable to remove os.conf; read-only again when done",
        at.display()
    );
    assert!(
        err.contains(&format!("mounted at {} read-only", at.display())),
        "{err}"
    );
    assert!(err.contains(&made), "{err}");
    assert!(!at.join("aliyun_custom_image/os.conf").exists());
    let after = mount_line(&at).unwrap();
    // Same mount, same options: read-only, nosuid, nodev.
    let options = |l: &str| l.split(' ').nth(5).unwrap().to_owned();
    assert_eq!(options(&after), options(&before), "{before}\n{after}");
    assert!(options(&after).starts_with("ro,"), "{after}");
    assert_own_mount_gone(&run, &l);
}

#[test]
fn a_mount_that_cannot_be_made_writable_changes_nothing() {
    let Some(_serial) = ready("a_mount_that_cannot_be_made_writable_changes_nothing") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = example_root(dir.path(), "centos7");
    let mut l = Loop::new(&example_conf("classic"), true);
    let at = l.mount_ro();
    let before = fingerprint(&root);
    let run = osconf("apply", &root, &l.dev);
    let out = &run.out;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is mounted read-only and cannot be made writable"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(fingerprint(&root), before);
    assert!(at.join("aliyun_custom_image/os.conf").exists());
}

/// The release binary aborts on a panic, so no destructor runs: its panic hook must still unmount
/// what osconf mounted, make a remounted partition read-only again, and exit 101. The test-hooks
/// binary aborts as well and panics after the executor's first step.
#[test]
fn a_panic_still_unmounts_and_makes_read_only_again() {
    let Some(_serial) = ready("a_panic_still_unmounts_and_makes_read_only_again") else {
        return;
    };
    let panicking = || {
        let mut cmd = Command::new(crate::common::hooks::binary());
        cmd.env("OSCONF_TEST_PANIC_AFTER", "1");
        cmd
    };
    let dir = tempfile::tempdir().unwrap();
    let root = example_root(dir.path(), "centos7");
    let mut l = Loop::new(&example_conf("classic"), false);
    let run = osconf_run(panicking(), "apply", &root, &l.dev);
    let err = String::from_utf8_lossy(&run.out.stderr);
    assert_eq!(run.out.status.code(), Some(101), "{err}");
    assert!(err.contains("test panic after step 1"), "{err}");
    assert!(
        err.contains(&format!("mounted by osconf on {}", run.own_mount.display())),
        "{err}"
    );
    assert_own_mount_gone(&run, &l);

    let at = l.mount_ro();
    let before = mount_line(&at).unwrap();
    let run = osconf_run(panicking(), "apply", &root, &l.dev);
    let err = String::from_utf8_lossy(&run.out.stderr);
    assert_eq!(run.out.status.code(), Some(101), "{err}");
    assert!(err.contains("made writable to remove os.conf"), "{err}");
    let options = |l: &str| l.split(' ').nth(5).unwrap().to_owned();
    let after = mount_line(&at).unwrap();
    assert_eq!(options(&after), options(&before), "{before}\n{after}");
    assert!(options(&after).starts_with("ro,"), "{after}");
    assert_own_mount_gone(&run, &l);
}

/// Waits until process `pid` is stopped (state `T`).
fn stopped(pid: u32) {
    let start = std::time::Instant::now();
    while fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with('T')) != Some(true))
        .unwrap_or(true)
    {
        assert!(start.elapsed().as_secs() < 60, "{pid} never stopped");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// SIGTERM (systemd's stop timeout) half-way through an apply: partition 1 is unmounted before
/// osconf ends (exit 143). SIGKILL there leaves it mounted on /run/osconf/p1.PID: the next run
/// unmounts it and says so, rather than take it for a mount of someone else's.
#[test]
fn regression_sigterm_or_a_kill_leaves_no_mount_of_partition_1() {
    let Some(_serial) = ready("regression_sigterm_or_a_kill_leaves_no_mount_of_partition_1") else {
        return;
    };
    use rustix::process::{Pid, Signal, kill_process};
    let dir = tempfile::tempdir().unwrap();
    let root = example_root(dir.path(), "centos7");
    let l = Loop::new(&example_conf("classic"), false);
    let stopped_run = || {
        let child = Command::new(crate::common::hooks::binary())
            .env("OSCONF_TEST_STOP_AT", "writing the journal")
            .args(["apply", "--no-live", "--wait", "5", "--device", &l.dev, "--root"])
            .arg(&root)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        stopped(child.id());
        let own_mount = PathBuf::from(format!("/run/osconf/p1.{}", child.id()));
        assert!(mount_line(&own_mount).is_some(), "not mounted:\n{}", mountinfo());
        (Pid::from_raw(child.id() as i32).unwrap(), child, own_mount)
    };
    let (pid, child, own_mount) = stopped_run();
    kill_process(pid, Signal::TERM).unwrap();
    kill_process(pid, Signal::CONT).unwrap();
    let run = Run {
        out: child.wait_with_output().unwrap(),
        own_mount,
    };
    assert_eq!(
        run.out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&run.out.stderr)
    );
    assert_own_mount_gone(&run, &l);

    let (pid, child, own_mount) = stopped_run();
    kill_process(pid, Signal::KILL).unwrap();
    let _ = child.wait_with_output().unwrap();
    assert!(mount_line(&own_mount).is_some(), "a kill undid the mount?");
    let next = osconf("plan", &root, &l.dev);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&next.out.stdout),
        String::from_utf8_lossy(&next.out.stderr)
    );
    assert!(next.out.status.success(), "{said}");
    let note = format!(
        "{} was left by a run of osconf that was killed: unmounted and removed",
        own_mount.display()
    );
    assert!(said.contains(&note), "{note:?} not in:\n{said}");
    assert!(
        mount_line(&own_mount).is_none() && !own_mount.exists(),
        "{}",
        mountinfo()
    );
    assert_own_mount_gone(&next, &l);
}
