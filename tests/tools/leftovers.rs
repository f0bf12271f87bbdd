//! What a run cut short or hit by one fault leaves, with the real binary under strace's fault
//! injection: killed (SIGKILL) at each of its system calls in turn, the next apply leaves no
//! password-file lock, temp file, journal or temp status record behind; failing (EIO) at one call,
//! a run that says "every change was rolled back" or "nothing was changed" has changed nothing.

use std::fs;
use std::path::Path;
use std::process::Output;

use crate::common::real::{cannot_run, check_prerequisites};
use crate::common::scratch::{Scratch, scratch_on_tmpfs};
use crate::common::{self, example_conf, fingerprint};

impl Scratch {
    /// `apply` of the plain binary, or under strace with `inject` (`SYSCALL:error=EIO:when=N`…).
    fn apply(&self, inject: Option<&str>) -> Output {
        match inject {
            Some(inject) => {
                let inject = format!("inject={inject}");
                self.strace_apply(&["-f", "-qq", "-o", "/dev/null", "-e", "trace=all", "-e", &inject])
            }
            None => self
                .apply_command(Path::new(env!("CARGO_BIN_EXE_osconf")))
                .output()
                .unwrap(),
        }
    }
}

/// How many times the plain run makes each of `calls`.
fn counts(calls: &[&str]) -> Vec<(String, usize)> {
    let s = scratch_on_tmpfs();
    let table = s.strace_table(&["-f", "-qq", "-U", "name,calls"]);
    calls
        .iter()
        .map(|call| {
            let n = table
                .lines()
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    (w.next() == Some(call)).then(|| w.next()?.parse().ok()).flatten()
                })
                .next()
                .unwrap_or(0);
            ((*call).to_owned(), n)
        })
        .collect()
}

/// Entries below `root` that only a run cut short leaves: temp files, the journal, the lock file
/// osconf makes, temp status records.
fn leftovers(root: &Path) -> Vec<String> {
    common::entries(root)
        .into_keys()
        .filter(|p| {
            p.ends_with(".osconf-new")
                || p.ends_with("etc/.pwd.lock")
                || p.ends_with("var/lib/osconf/journal")
                || p.contains(".last-run.osconf-")
        })
        .collect()
}

#[test]
fn regression_a_kill_at_any_system_call_leaves_nothing_after_the_next_run() {
    const TEST: &str = "regression_a_kill_at_any_system_call_leaves_nothing_after_the_next_run";
    if let Err(why) = check_prerequisites(&["strace"]) {
        return cannot_run(TEST, &why);
    }
    let calls = [
        "openat", "openat2", "fstat", "write", "fchmod", "mkdirat", "linkat", "renameat", "unlinkat", "fcntl",
    ];
    let mut tried = 0;
    let mut failures = Vec::new();
    for (call, n) in counts(&calls) {
        for when in (1..=n).step_by(1 + n / 12) {
            let s = scratch_on_tmpfs();
            let cut = s.apply(Some(&format!("{call}:signal=SIGKILL:when={when}")));
            if cut.status.success() {
                continue;
            }
            tried += 1;
            if !s.conf.exists() {
                fs::write(&s.conf, example_conf("classic")).unwrap();
            }
            let again = s.apply(None);
            let left = leftovers(&s.root);
            if !again.status.success() || !left.is_empty() {
                failures.push(format!(
                    "killed at {call} #{when}: exit {:?}, left {left:?}: {}",
                    again.status.code(),
                    String::from_utf8_lossy(&again.stderr)
                ));
            }
        }
    }
    assert!(tried > 50, "only {tried} kill points");
    assert!(
        failures.is_empty(),
        "{} of {tried}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn regression_one_failed_call_never_makes_a_false_rollback_claim() {
    const TEST: &str = "regression_one_failed_call_never_makes_a_false_rollback_claim";
    if let Err(why) = check_prerequisites(&["strace"]) {
        return cannot_run(TEST, &why);
    }
    // Right after each mkdirat come an openat, an fstat and an fchmod; the lock file is made
    // with the first fchmod.
    let calls = ["mkdirat", "fchmod", "openat", "fstat", "linkat", "unlinkat"];
    let mut tried = 0;
    let mut failures = Vec::new();
    for (call, n) in counts(&calls) {
        for when in 1..=n {
            let s = scratch_on_tmpfs();
            let before = fingerprint(&s.root);
            let out = s.apply(Some(&format!("{call}:error=EIO:when={when}")));
            let stderr = String::from_utf8_lossy(&out.stderr);
            let claims =
                stderr.contains("every change was rolled back") || stderr.contains("nothing was changed");
            if out.status.success() || !claims {
                continue;
            }
            tried += 1;
            let after = fingerprint(&s.root);
            if after != before || !s.conf.exists() {
                let diff = osconf::plan::diff::unified(&before, &after, "before", "after");
                failures.push(format!(
                    "EIO at {call} #{when}: claims nothing changed, but:\n{diff}\n{stderr}"
                ));
            }
        }
    }
    assert!(tried > 30, "only {tried} faults claimed a full rollback");
    assert!(
        failures.is_empty(),
        "{} of {tried}:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Killed while renaming its status record into place (after os.conf is gone): the temp record
/// (`.last-run.osconf-PID`) goes at the next apply's start, even one that finds no os.conf.
#[test]
fn regression_a_temp_status_record_of_a_killed_run_goes_at_the_next_start() {
    const TEST: &str = "regression_a_temp_status_record_of_a_killed_run_goes_at_the_next_start";
    if let Err(why) = check_prerequisites(&["strace"]) {
        return cannot_run(TEST, &why);
    }
    let (_, renames) = counts(&["renameat"]).remove(0);
    let s = scratch_on_tmpfs();
    let cut = s.apply(Some(&format!("renameat:signal=SIGKILL:when={renames}")));
    assert!(!cut.status.success());
    let state = s.root.join("var/lib/osconf");
    let temps = || {
        fs::read_dir(&state)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".last-run.osconf-")
            })
            .count()
    };
    assert_eq!(
        temps(),
        1,
        "the kill came elsewhere: {}",
        String::from_utf8_lossy(&cut.stderr)
    );
    assert!(!s.conf.exists(), "os.conf was to be gone before the record");
    // Without --config: under the root there is none, nothing to do.
    let again = common::osconf_in(&["apply", "--no-live"], &s.root);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(temps(), 0);
}
