//! A copy of the centos7 root (no /var: a run makes its directories) and the classic os.conf beside
//! it (it sets the password: a run takes the password files' lock), and `osconf apply` on it — by
//! any binary, or under strace (call counts, fault injection). Shared by tests/root/faults.rs and
//! tests/tools/leftovers.rs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{copy_tree, example_conf, repo};

pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub conf: PathBuf,
}

/// In a temporary directory.
pub fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    scratch_at(dir, root)
}

/// On tmpfs when there is one (many runs: no disk flush slows them).
pub fn scratch_on_tmpfs() -> Scratch {
    let dir = match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    };
    let root = dir.path().join("root");
    scratch_at(dir, root)
}

/// With the root at `root` (on a filesystem of the test's), os.conf in `dir`.
pub fn scratch_at(dir: tempfile::TempDir, root: PathBuf) -> Scratch {
    copy_tree(&repo().join("examples/rootfs/centos7"), &root).unwrap();
    let conf = dir.path().join("os.conf");
    fs::write(&conf, example_conf("classic")).unwrap();
    Scratch { dir, root, conf }
}

impl Scratch {
    /// `bin apply --no-live --root ROOT --config CONF`, to run.
    pub fn apply_command(&self, bin: &Path) -> Command {
        let mut cmd = Command::new(bin);
        cmd.args(["apply", "--no-live", "--root"])
            .arg(&self.root)
            .arg("--config")
            .arg(&self.conf);
        cmd
    }

    /// The summary table (`strace -c`) of a successful apply under `strace ARGS`.
    pub fn strace_table(&self, args: &[&str]) -> String {
        let table = self.root.with_extension("strace");
        let mut all = vec!["-c", "-o", table.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = self.strace_apply(&all);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        fs::read_to_string(&table).unwrap()
    }

    /// The test build's osconf applying under `strace ARGS` (the caller checks that strace exists).
    pub fn strace_apply(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("strace");
        cmd.args(args)
            .arg(env!("CARGO_BIN_EXE_osconf"))
            .args(["apply", "--no-live", "--root"])
            .arg(&self.root)
            .arg("--config")
            .arg(&self.conf);
        cmd.output().unwrap()
    }
}
