//! Journals written by hand as the executor writes them (its head, a file's SHA-256), and a run
//! of osconf bounded in time: for the tests of recovery (tests/plain/journal.rs, and
//! tests/root/recovery.rs where a mount is needed).

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

pub const JOURNAL: &str = "var/lib/osconf/journal";
pub const STAMP: &str = "20260101T000000Z";

/// Runs `cmd` to its end, failing the test when it takes longer than `limit`.
pub fn bounded(cmd: &mut Command, limit: Duration) -> Output {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{cmd:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

pub fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha_of(root: &Path, path: &str) -> String {
    sha(&fs::read(root.join(path)).unwrap())
}

/// The head of a journal as the executor writes it, with a backup directory.
pub fn head() -> String {
    format!(
        "osconf-journal 1\nbackup /var/lib/osconf/backup/{STAMP}\ndir /var/lib/osconf/backup/{STAMP}\n\
         dir /var/lib/osconf/backup/{STAMP}/etc\n"
    )
}

/// Writes `text` as the root's journal.
pub fn put_journal(root: &Path, text: &[u8]) {
    let path = root.join(JOURNAL);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}
