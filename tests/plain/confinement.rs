//! Confinement, against the real binary: links planted in a hostile image (absolute, `../`, in a
//! directory on the way, at /etc/shadow, /etc/os-release, os.conf and its directory), FIFOs, devices
//! and huge files. Whatever is planted, nothing outside the root changes (a snapshot of a directory
//! beside it proves it), what is read comes from inside the root, and the exit code says whether the
//! run failed (1) or succeeded (0). The same cases for both ways of resolving (the kernel's
//! `RESOLVE_IN_ROOT` and the walk of old kernels) are in `src/root/tests.rs`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{copy_tree, example_conf, fingerprint, repo};

const CONF_DIR: &str = "boot/aliyun_custom_image";

/// `<scratch>/root` (centos7 with the classic os.conf) and `<scratch>/outside`, which holds what a
/// planted link points at: a shadow file with the build machine's hash, a hosts file, an os.conf.
struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
    /// `--stack` for plan and apply, where detection would not see through a planted link.
    stack: Option<&'static str>,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        copy_tree(&repo().join("examples/rootfs/centos7"), &root).unwrap();
        fs::create_dir_all(root.join(CONF_DIR)).unwrap();
        fs::write(root.join(CONF_DIR).join("os.conf"), example_conf("classic")).unwrap();
        fs::create_dir_all(outside.join("network-scripts")).unwrap();
        fs::write(
            outside.join("shadow"),
            "root:$6$BUILDHOST$hash:19000:0:99999:7:::\n",
        )
        .unwrap();
        fs::write(outside.join("hosts"), "127.0.0.1 buildhost\n").unwrap();
        fs::write(outside.join("os-release"), "ID=debian\nVERSION_ID=12\n").unwrap();
        fs::write(outside.join("os.conf"), example_conf("vpc")).unwrap();
        fs::write(outside.join("network-scripts/ifcfg-eth0"), "DEVICE=eth0\n").unwrap();
        Scratch {
            _dir: dir,
            root,
            outside,
            stack: None,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Replaces `rel` in the root with a link to `target`.
    fn plant(&self, rel: &str, target: impl AsRef<Path>) {
        let path = self.path(rel);
        if path.is_dir() && !path.is_symlink() {
            fs::remove_dir_all(&path).unwrap();
        } else if path.symlink_metadata().is_ok() {
            fs::remove_file(&path).unwrap();
        }
        symlink(target, path).unwrap();
    }

    fn osconf(&self, args: &[&str]) -> Output {
        let args: Vec<&str> = args
            .iter()
            .copied()
            .chain(self.stack.iter().flat_map(|s| ["--stack", s]))
            .collect();
        // `timeout`: a FIFO that blocked a read would otherwise hang the test instead of failing it.
        Command::new("timeout")
            .arg("20")
            .arg(env!("CARGO_BIN_EXE_osconf"))
            .args(args)
            .arg("--root")
            .arg(&self.root)
            .output()
            .unwrap()
    }

    /// Runs plan, then apply, and checks the exit codes and that nothing outside changed; returns
    /// apply's stderr.
    fn run(&self, code: i32) -> String {
        self.run_with(code, code)
    }

    /// `run` where plan, which writes nothing, may succeed while apply fails.
    fn run_with(&self, plan_code: i32, code: i32) -> String {
        let outside = fingerprint(&self.outside);
        let plan = self.osconf(&["plan"]);
        let apply = self.osconf(&["apply", "--no-live"]);
        let stderr = String::from_utf8_lossy(&apply.stderr).into_owned();
        assert_eq!(
            plan.status.code(),
            Some(plan_code),
            "plan: {}",
            String::from_utf8_lossy(&plan.stderr)
        );
        assert_eq!(apply.status.code(), Some(code), "apply: {stderr}");
        assert_eq!(
            fingerprint(&self.outside),
            outside,
            "something outside the root changed"
        );
        stderr
    }

    /// `run`, expecting a failure that changes nothing in the root either, os.conf kept.
    fn refused(&self, names: &str) -> String {
        self.refused_with(1, names)
    }

    fn refused_with(&self, plan_code: i32, names: &str) -> String {
        let before = fingerprint(&self.root);
        let stderr = self.run_with(plan_code, 1);
        assert!(stderr.contains(names), "{names:?} not named:\n{stderr}");
        assert_eq!(fingerprint(&self.root), before, "the root changed:\n{stderr}");
        stderr
    }
}

#[test]
fn absolute_shadow_link_never_reads_the_build_machine() {
    let s = Scratch::new();
    s.plant("etc/shadow", s.outside.join("shadow"));
    s.refused("/etc/shadow is missing");
}

#[test]
fn directory_on_the_way_out_of_the_root_is_not_written_through() {
    let mut s = Scratch::new();
    s.stack = Some("sysconfig");
    s.plant("etc/sysconfig/network-scripts", s.outside.join("network-scripts"));
    let stderr = s.refused_with(0, "network-scripts");
    assert!(stderr.contains("rolled back"), "{stderr}");
}

#[test]
fn climbing_link_resolves_inside_and_is_replaced_not_followed() {
    let s = Scratch::new();
    s.plant("etc/hosts", "../../../../../../outside/hosts");
    s.run(0);
    let hosts = fs::read_to_string(s.path("etc/hosts")).unwrap();
    assert!(!hosts.contains("buildhost"), "{hosts}");
    assert!(hosts.contains("iZ23r29djmjZ"), "{hosts}");
    assert!(!s.path("etc/hosts").is_symlink());
}

#[test]
fn detect_reads_the_roots_os_release_through_an_absolute_link() {
    let s = Scratch::new();
    fs::create_dir_all(s.path("usr/lib")).unwrap();
    fs::rename(s.path("etc/os-release"), s.path("usr/lib/os-release")).unwrap();
    s.plant("etc/os-release", "/usr/lib/os-release");
    let out = s.osconf(&["detect"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ID=centos"), "{stdout}");
    // A link to the machine's own file reads nothing: inside the root that path is absent.
    s.plant("etc/os-release", s.outside.join("os-release"));
    fs::remove_file(s.path("usr/lib/os-release")).unwrap();
    let out = s.osconf(&["detect"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("debian"), "{stdout}");
}

#[test]
fn os_conf_as_a_link_is_refused_and_both_ends_kept() {
    let s = Scratch::new();
    s.plant(&format!("{CONF_DIR}/os.conf"), s.outside.join("os.conf"));
    s.refused("os.conf: a symbolic link; refusing to follow it");
    assert!(s.path(CONF_DIR).join("os.conf").is_symlink());
    assert!(s.outside.join("os.conf").is_file());
}

#[test]
fn os_conf_directory_as_a_link_is_refused_and_the_file_at_its_end_kept() {
    let s = Scratch::new();
    s.plant(CONF_DIR, &s.outside);
    s.refused("a symbolic link; refusing to follow it");
    assert!(s.outside.join("os.conf").is_file());
    // `--config` through a linked directory is refused the same way.
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["apply", "--no-live", "--root"])
        .arg(&s.root)
        .arg("--config")
        .arg(s.path(CONF_DIR).join("os.conf"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(s.outside.join("os.conf").is_file());
}

#[test]
fn fifo_at_a_file_osconf_reads_fails_at_once() {
    let s = Scratch::new();
    fs::remove_file(s.path("etc/hosts")).unwrap();
    let fifo = s.path("etc/hosts");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    s.refused("etc/hosts: not a regular file (a FIFO)");
}

#[test]
fn huge_file_behind_a_link_is_refused_not_read() {
    let s = Scratch::new();
    fs::create_dir_all(s.path("srv")).unwrap();
    let big = fs::File::create(s.path("srv/big")).unwrap();
    big.set_len(64 << 20).unwrap();
    s.plant("etc/hosts", "/srv/big");
    s.refused("etc/hosts: larger than 4 MiB");
}

#[test]
fn device_behind_a_link_is_refused_not_opened() {
    if !rustix::process::geteuid().is_root() {
        crate::common::real::cannot_run(
            "device_behind_a_link_is_refused_not_opened",
            "mknod of a character device needs root",
        );
        return;
    }
    let s = Scratch::new();
    fs::create_dir_all(s.path("dev")).unwrap();
    // The same device numbers as /dev/zero (1, 5).
    rustix::fs::mknodat(
        rustix::fs::CWD,
        s.path("dev/zero"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 5),
    )
    .unwrap();
    s.plant("etc/hosts", "/dev/zero");
    s.refused("etc/hosts: not a regular file (a device)");
}

#[test]
fn unreadable_file_is_an_error_not_absent() {
    // Only ENOENT means absent: a resolv.conf osconf cannot read must not be replaced by one that
    // lost its search and options lines. Root reads anything, so this needs an unprivileged run.
    if rustix::process::geteuid().is_root() {
        // Covered for root by the FIFO, device and size cases above; EACCES needs another user.
        return;
    }
    let s = Scratch::new();
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(s.path("etc/resolv.conf"), fs::Permissions::from_mode(0o000)).unwrap();
    s.refused("etc/resolv.conf: Permission denied");
}

impl Scratch {
    /// `rel` in the root replaced with an absolute link to `<outside>/<name>` (an empty directory
    /// made there), and the place that link resolves to inside the root, made too: the returned path.
    fn plant_dir(&self, rel: &str, name: &str) -> PathBuf {
        let target = self.outside.join(name);
        fs::create_dir_all(&target).unwrap();
        let mirror = self.root.join(target.strip_prefix("/").unwrap());
        if self.path(rel).is_dir() {
            copy_tree(&self.path(rel), &mirror).unwrap();
        }
        fs::create_dir_all(&mirror).unwrap();
        fs::create_dir_all(self.path(rel).parent().unwrap()).unwrap();
        self.plant(rel, &target);
        mirror
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.osconf(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {stderr}");
        stderr
    }
}

#[test]
fn log_and_status_record_through_links_are_written_inside_the_root() {
    let s = Scratch::new();
    let log = s.plant_dir("var/log", "log");
    let state = s.plant_dir("var/lib/osconf", "state");
    s.run(0);
    let text = fs::read_to_string(log.join("osconf.log")).unwrap();
    assert!(text.contains("applied"), "{text}");
    assert!(state.join("last-run").is_file());
    let out = s.osconf(&["status"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("applied"), "{shown}");
}

#[test]
fn install_and_uninstall_through_links_stay_inside_the_root() {
    let s = Scratch::new();
    fs::create_dir_all(s.path("usr/sbin")).unwrap();
    fs::write(s.path("usr/sbin/osconf"), "an older osconf\n").unwrap();
    fs::remove_dir_all(s.path(CONF_DIR)).unwrap();
    // The backup of the older binary, made and removed through the link.
    let state = s.plant_dir("var/lib/osconf", "state");
    let outside = fingerprint(&s.outside);
    s.ok(&["install", "--init", "systemd"]);
    assert!(s.path(CONF_DIR).is_dir());
    assert!(state.join("installed").is_file());
    assert!(!state.join("backup").exists(), "the run's backup is removed");
    assert_eq!(
        fingerprint(&s.outside),
        outside,
        "install changed something outside"
    );

    // Directories install made, emptied by uninstall, through a link on the way.
    let usr = s.plant_dir("usr", "usr");
    fs::create_dir_all(s.outside.join("usr/sbin")).unwrap();
    let outside = fingerprint(&s.outside);
    let said = s.ok(&["uninstall"]);
    assert_eq!(
        fingerprint(&s.outside),
        outside,
        "uninstall changed something outside:\n{said}"
    );
    assert_eq!(
        fs::read_to_string(usr.join("sbin/osconf")).unwrap(),
        "an older osconf\n"
    );

    // aliyun_custom_image as a link out of the root is refused, not created through.
    s.plant(CONF_DIR, s.outside.join("usr"));
    let out = s.osconf(&["install", "--init", "systemd"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("exists and is not a directory"), "{stderr}");
    assert_eq!(fingerprint(&s.outside), outside);
}
