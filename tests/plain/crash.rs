//! Crash safety: `apply` stopped after every step in turn (a crash point of the `test-hooks` build
//! ends the process at once, as kill -9 or a power cut between two system calls would), then an
//! ordinary `apply` — which rolls the cut run back from its journal and does the whole run again —
//! must leave exactly the golden tree of `tests/cases/<root>-<conf>/expected`: never a mix, no temp
//! file, no journal, no second backup directory left behind.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::{copy_tree, hooks, repo, snapshot};

/// The golden tree's fixed backup directory name (tests/plain/golden.rs).
const GOLDEN_STAMP: &str = "19700101T000000Z";

/// Roots with different stacks and file layouts (ifcfg files, networkd units, NetworkManager keyfiles).
const ROOTS: [&str; 3] = ["centos7", "debian12-networkd", "rocky9"];

fn apply(bin: &Path, root: &Path, conf: &Path, crash_after: Option<usize>) -> std::process::Output {
    let mut cmd = Command::new(bin);
    cmd.args(["apply", "--no-live", "--root"]).arg(root);
    // Gone once the cut run had removed it: a missing --config is an error (exit 2); without
    // one, none is found under the root, and the journal is still dealt with.
    if conf.exists() {
        cmd.arg("--config").arg(conf);
    }
    if let Some(n) = crash_after {
        cmd.env("OSCONF_TEST_CRASH_AFTER", n.to_string());
    }
    cmd.output().unwrap()
}

/// The classic sample applied to a fresh copy of the CentOS 7 root at `root`, cut at the first crash
/// point whose step `step` names (its stderr, returned).
fn cut_at(bin: &Path, root: &Path, conf: &Path, step: &str) -> String {
    (1..80)
        .find_map(|n| {
            let _ = fs::remove_dir_all(root);
            copy_tree(&repo().join("examples/rootfs/centos7"), root).unwrap();
            fs::copy(repo().join("examples/classic/os.conf"), conf).unwrap();
            let out = apply(bin, root, conf, Some(n));
            let said = String::from_utf8_lossy(&out.stderr).into_owned();
            said.contains(step).then_some(said)
        })
        .unwrap_or_else(|| panic!("no crash point at {step}"))
}

/// A scratch directory on tmpfs where there is one: each apply flushes its filesystem twice, which
/// on a shared disk waits for everything else written there.
fn scratch() -> tempfile::TempDir {
    match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    }
}

/// The tree with what differs at every run made equal: the root hash and day in /etc/shadow (a
/// fresh salt each run) and the backup directory's time-stamped name.
fn normalized(root: &Path) -> String {
    // The record `osconf status` reads, written by the command after apply: not part of the apply.
    let _ = fs::remove_file(root.join("var/lib/osconf/last-run"));
    let backups = root.join("var/lib/osconf/backup");
    if let Ok(entries) = fs::read_dir(&backups) {
        let names: Vec<_> = entries.map(|e| e.unwrap().file_name()).collect();
        assert!(names.len() <= 1, "more than one backup directory: {names:?}");
        if let Some(name) = names.first() {
            fs::rename(backups.join(name), backups.join(GOLDEN_STAMP)).unwrap();
        }
    }
    let mut text = snapshot(root);
    text = text
        .lines()
        .map(|l| match l.strip_prefix("root:$6$") {
            Some(rest) => {
                let fields: Vec<&str> = rest.splitn(3, ':').collect();
                format!("root:HASH:DAY:{}", fields.get(2).unwrap_or(&""))
            }
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    text
}

#[test]
fn every_crash_point_converges_to_the_golden_tree() {
    let bin = hooks::binary();
    let plain = env!("CARGO_BIN_EXE_osconf");
    let mut tried = 0;
    let mut failures = Vec::new();
    for rootfs in ROOTS {
        for conf_name in ["vpc", "classic"] {
            let case = repo().join("tests/cases").join(format!("{rootfs}-{conf_name}"));
            let expected = case.join("expected");
            let want = {
                let scratch = scratch();
                copy_tree(&expected, &scratch.path().join("e")).unwrap();
                normalized(&scratch.path().join("e"))
            };
            for n in 1.. {
                let scratch = scratch();
                let root = scratch.path().join("root");
                copy_tree(&repo().join("examples/rootfs").join(rootfs), &root).unwrap();
                let conf = scratch.path().join("os.conf");
                fs::copy(repo().join("examples").join(conf_name).join("os.conf"), &conf).unwrap();
                let cut = apply(&bin, &root, &conf, Some(n));
                let finished = match cut.status.code() {
                    Some(0) => true,
                    Some(hooks::CRASHED) => false,
                    other => panic!(
                        "{rootfs}-{conf_name}: crash at {n}: exit {other:?}: {}",
                        String::from_utf8_lossy(&cut.stderr)
                    ),
                };
                if !finished {
                    tried += 1;
                    // os.conf goes only in the last steps, once every file is in place and on disk.
                    let stderr = String::from_utf8_lossy(&cut.stderr);
                    let last = [
                        format!("(removing {})", conf.display()),
                        "(removing the journal)".to_owned(),
                        "(flushing the removals)".to_owned(),
                    ];
                    assert!(
                        conf.exists() || last.iter().any(|l| stderr.contains(l.as_str())),
                        "{rootfs}-{conf_name}: os.conf gone after a crash at step {n}"
                    );
                    let again = apply(Path::new(plain), &root, &conf, None);
                    if !again.status.success() {
                        failures.push(format!(
                            "{rootfs}-{conf_name} step {n}: the next apply failed: {}",
                            String::from_utf8_lossy(&again.stderr)
                        ));
                        continue;
                    }
                }
                assert!(!conf.exists(), "{rootfs}-{conf_name}: os.conf kept after success");
                let got = normalized(&root);
                if got != want {
                    let diff = osconf::plan::diff::unified(&want, &got, "golden", "got");
                    failures.push(format!(
                        "{rootfs}-{conf_name}, crash after step {n}: differs from the golden tree:\n{diff}"
                    ));
                }
                if finished {
                    break;
                }
            }
        }
    }
    assert!(tried > 40, "only {tried} crash points tried");
    assert!(
        failures.is_empty(),
        "{} of {tried} crash points did not converge:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("crash points tried: {tried}, all converged\n").as_bytes(),
    );
}

#[test]
fn plan_over_a_cut_short_run_says_what_apply_will_roll_back_and_changes_nothing() {
    let bin = hooks::binary();
    let plain = Path::new(env!("CARGO_BIN_EXE_osconf"));
    let fresh = |scratch: &tempfile::TempDir| {
        let root = scratch.path().join("root");
        let _ = fs::remove_dir_all(&root);
        copy_tree(&repo().join("examples/rootfs/centos7"), &root).unwrap();
        let conf = scratch.path().join("os.conf");
        fs::copy(repo().join("examples/classic/os.conf"), &conf).unwrap();
        (root, conf)
    };
    let scratch = scratch();
    // The step after which every temp file and backup is on disk; two renames after it, cut.
    let flushed = (1..)
        .find(|&n| {
            let (root, conf) = fresh(&scratch);
            let out = apply(&bin, &root, &conf, Some(n));
            String::from_utf8_lossy(&out.stderr).contains("(flushing the new files and the backups)")
        })
        .unwrap();
    let (root, conf) = fresh(&scratch);
    let cut = apply(&bin, &root, &conf, Some(flushed + 2));
    assert_eq!(cut.status.code(), Some(hooks::CRASHED));
    let before = crate::common::fingerprint(&root);
    let plan = |conf: &Path| {
        let mut cmd = Command::new(plain);
        cmd.args(["plan", "--no-live", "--root"]).arg(&root);
        if conf.exists() {
            cmd.arg("--config").arg(conf);
        }
        cmd.output().unwrap()
    };
    let out = plan(&conf);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let journal = root.join("var/lib/osconf/journal");
    let said = format!(
        "note: a run was cut short ({} is there): the next apply first rolls it back",
        journal.display()
    );
    assert!(text.contains(&said), "{text}");
    let ifcfg = root.join("etc/sysconfig/network-scripts/ifcfg-eth0");
    assert!(
        text.contains(&format!("puts back {} from ", ifcfg.display())),
        "{text}"
    );
    assert!(
        text.contains("the plan below is against the files as they are now"),
        "{text}"
    );
    // Without os.conf it says so too, rather than "nothing to do".
    let out = plan(&scratch.path().join("absent.conf"));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("but a run was cut short"),
        "{text}"
    );
    assert_eq!(crate::common::fingerprint(&root), before, "plan changed the tree");
    // And apply does what it said.
    let again = apply(plain, &root, &conf, None);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("an interrupted run was rolled back"));
}

/// Killed after os.conf's removal, before its status record (issue 13 §7): the next apply, which
/// completes the run from its journal, records it, so `status` has the run (not nothing).
#[test]
fn regression_a_run_cut_after_removing_os_conf_is_recorded_by_the_next() {
    let bin = hooks::binary();
    let plain = Path::new(env!("CARGO_BIN_EXE_osconf"));
    let scratch = scratch();
    let (root, conf) = (scratch.path().join("root"), scratch.path().join("os.conf"));
    let cut = cut_at(&bin, &root, &conf, &format!("(removing {})", conf.display()));
    assert!(
        !conf.exists() && root.join("var/lib/osconf/journal").exists(),
        "{cut}"
    );
    assert!(!root.join("var/lib/osconf/last-run").exists());
    let again = apply(plain, &root, &conf, None);
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        again.status.success() && said.contains("completed (its journal removed)"),
        "{said}"
    );
    let status = Command::new(plain)
        .args(["status", "--json", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["recorded"], true, "{v}");
    assert_eq!(v["exit"], 0, "{v}");
    assert!(
        v["result"]
            .as_str()
            .unwrap()
            .starts_with("applied by a run cut short"),
        "{v}"
    );
    let files: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        files.contains(&"write /etc/hosts") && files.contains(&"write /etc/shadow"),
        "{files:?}"
    );
    assert!(!files.iter().any(|f| f.contains(".pwd.lock")), "{files:?}");
    assert!(
        v["backup"].as_str().unwrap().contains("var/lib/osconf/backup/"),
        "{v}"
    );
}

/// A power cut after the renames were flushed but before the lock removal (and the journal's) reached
/// the root's disk, while os.conf's removal on partition 1 did (a flush of its own file system): the
/// journal and osconf's empty /etc/.pwd.lock are there, os.conf is not. The run had put every file in
/// place, so the next start must complete it — a rollback would undo the configuration with no
/// os.conf left to apply it again (seen in `image test`: a guest reset 2 s after "applied").
#[test]
fn regression_a_lost_lock_removal_still_rolls_forward() {
    let bin = hooks::binary();
    let plain = Path::new(env!("CARGO_BIN_EXE_osconf"));
    let scratch = scratch();
    let (root, conf) = (scratch.path().join("root"), scratch.path().join("os.conf"));
    let cut = cut_at(&bin, &root, &conf, "(flushing the renames)");
    assert!(
        root.join("etc/.pwd.lock").exists() && root.join("var/lib/osconf/journal").exists(),
        "{cut}"
    );
    fs::remove_file(&conf).unwrap();
    let again = apply(plain, &root, &conf, None);
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        again.status.success() && said.contains("completed (its journal removed)"),
        "{said}"
    );
    assert!(!root.join("etc/.pwd.lock").exists(), "{said}");
    let want = {
        let golden = scratch.path().join("golden");
        copy_tree(&repo().join("tests/cases/centos7-classic/expected"), &golden).unwrap();
        normalized(&golden)
    };
    let got = normalized(&root);
    assert!(
        got == want,
        "{}",
        osconf::plan::diff::unified(&want, &got, "golden", "got")
    );
}
