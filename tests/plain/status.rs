//! The log and `osconf status` with the real binary: what a run leaves for the person reading it at
//! 3 a.m. — the log file (one line per step, bounded), the last run's record as text and as JSON
//! (parsed by serde_json), for a run that applied, one that failed and was rolled back, and invalid
//! input — and that neither ever shows the password, its base64 or the root hash.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{example_conf, example_root, fingerprint, osconf_in as osconf};

const CONF: &str = "boot/aliyun_custom_image/os.conf";
const PASSWORD: &str = "qwer1234";
const PASSWORD_BASE64: &str = "cXdlcjEyMzQK";

/// A debian11 root with /var/log and the classic sample (which sets the password) in place.
fn scratch(dir: &Path) -> PathBuf {
    let root = example_root(dir, "debian11");
    fs::create_dir_all(root.join("var/log")).unwrap();
    put_conf(&root, &example_conf("classic"));
    root
}

fn put_conf(root: &Path, text: &str) {
    let conf = root.join(CONF);
    fs::create_dir_all(conf.parent().unwrap()).unwrap();
    fs::write(conf, text).unwrap();
}

fn apply(root: &Path) -> Output {
    osconf(&["apply", "--no-live"], root)
}

fn status(root: &Path) -> (String, serde_json::Value) {
    let text = osconf(&["status"], root);
    assert!(text.status.success());
    let json = osconf(&["status", "--json"], root);
    assert!(json.status.success());
    let value = serde_json::from_slice(&json.stdout).expect("status --json prints JSON");
    (String::from_utf8(text.stdout).unwrap(), value)
}

fn root_hash(root: &Path) -> String {
    let shadow = fs::read_to_string(root.join("etc/shadow")).unwrap();
    let line = shadow.lines().find(|l| l.starts_with("root:")).unwrap();
    line.split(':').nth(1).unwrap().to_owned()
}

fn assert_no_secret(what: &str, text: &str, hash: &str) {
    for secret in [PASSWORD, PASSWORD_BASE64, hash] {
        assert!(!text.contains(secret), "{what} shows {secret:?}:\n{text}");
    }
}

#[test]
fn an_applied_run_in_status_text_json_and_log_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let root = scratch(dir.path());
    let out = apply(&root);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (text, json) = status(&root);
    let hash = root_hash(&root);
    assert!(hash.starts_with('$'), "{hash}");

    assert_eq!(json["recorded"], true);
    assert_eq!(json["exit"], 0);
    assert_eq!(json["stack"], "ifupdown");
    assert!(json["config"].as_str().unwrap().ends_with(CONF));
    assert!(json["result"].as_str().unwrap().starts_with("applied "));
    let files: Vec<&str> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(files.contains(&"write /etc/shadow"), "{files:?}");
    assert!(files.contains(&"write /etc/hostname"), "{files:?}");
    assert_eq!(
        json["live"].as_array().unwrap().len(),
        0,
        "--no-live did nothing live"
    );
    let backup = json["backup"].as_str().unwrap();
    assert!(Path::new(backup).join("etc/shadow").is_file(), "{backup}");
    let time = json["time"].as_str().unwrap();
    assert_eq!(time.len(), "20261201T111200Z".len(), "{time}");

    assert!(text.contains("result:   exit 0 — applied "), "{text}");
    assert!(text.contains("  write /etc/shadow\n"), "{text}");
    assert!(text.contains(&format!("backup:   {backup}\n")), "{text}");

    let log = fs::read_to_string(root.join("var/log/osconf.log")).unwrap();
    assert!(
        log.lines().any(|l| l.ends_with(" osconf: writing /etc/shadow")),
        "{log}"
    );
    assert!(log.lines().any(|l| l.contains(" osconf: applied ")), "{log}");
    for (what, t) in [
        ("status", &text),
        ("status --json", &json.to_string()),
        ("the log", &log),
    ] {
        assert_no_secret(what, t, &hash);
    }
    let record = fs::read_to_string(root.join("var/lib/osconf/last-run")).unwrap();
    assert_no_secret("the record", &record, &hash);
}

/// Offline, a run that fails leaves the root as it was — no log line, no record — and status
/// still tells the last run that succeeded. (On `/` the failed run's record goes to /run/osconf.)
#[test]
fn a_failed_or_invalid_run_changes_nothing_not_even_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let root = scratch(dir.path());
    assert!(apply(&root).status.success());
    let (_, applied) = status(&root);

    // A directory where the executor expects /etc/hosts: the write fails, everything is undone.
    put_conf(&root, &example_conf("vpc"));
    fs::remove_file(root.join("etc/hosts")).unwrap();
    fs::create_dir(root.join("etc/hosts")).unwrap();
    let before = fingerprint(&root);
    let out = apply(&root);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/etc/hosts"));
    assert_eq!(fingerprint(&root), before, "a failed run changed the root");
    assert_eq!(status(&root).1, applied);

    put_conf(&root, "hostname=-bad\npassword=cXdlcjEyMzQK\n");
    let before = fingerprint(&root);
    assert_eq!(apply(&root).status.code(), Some(2));
    assert_eq!(fingerprint(&root), before, "invalid input changed the root");
    assert_eq!(status(&root).1, applied);
}

#[test]
fn a_run_without_os_conf_keeps_the_record_and_logs_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = scratch(dir.path());
    assert!(apply(&root).status.success());
    let record = fs::read(root.join("var/lib/osconf/last-run")).unwrap();
    assert!(!root.join(CONF).exists());
    assert!(apply(&root).status.success());
    assert_eq!(fs::read(root.join("var/lib/osconf/last-run")).unwrap(), record);
    let log = fs::read_to_string(root.join("var/log/osconf.log")).unwrap();
    assert!(log.lines().last().unwrap().contains("no os.conf found"), "{log}");
}

#[test]
fn nothing_recorded_yet() {
    let dir = tempfile::tempdir().unwrap();
    let root = example_root(dir.path(), "debian11");
    let out = osconf(&["status"], &root);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no run of osconf apply"));
    let out = osconf(&["status", "--json"], &root);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["recorded"], false);
}

#[test]
fn the_log_is_rotated_past_256_kib() {
    let dir = tempfile::tempdir().unwrap();
    let root = scratch(dir.path());
    let log = root.join("var/log/osconf.log");
    let old = "20260101T000000Z osconf: an old line\n".repeat(256 * 1024 / 36 + 1);
    assert!(old.len() >= 256 * 1024);
    fs::write(&log, &old).unwrap();
    assert!(apply(&root).status.success());
    assert_eq!(
        fs::read_to_string(root.join("var/log/osconf.log.1")).unwrap(),
        old
    );
    let new = fs::read_to_string(&log).unwrap();
    assert!(new.len() < 16 * 1024 && new.contains("applied "), "{new}");
    // Below the bound it is appended to.
    put_conf(&root, &example_conf("vpc"));
    assert!(apply(&root).status.success());
    let appended = fs::read_to_string(&log).unwrap();
    assert!(appended.starts_with(&new) && appended.len() > new.len());
}

#[test]
fn a_log_directory_linked_out_of_the_root_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = scratch(dir.path());
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::remove_dir(root.join("var/log")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("var/log")).unwrap();
    assert!(apply(&root).status.success());
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote through var/log"
    );
}

/// A record planted in the root (an image from elsewhere) with escape sequences: text `status`
/// prints them escaped, `--json` as JSON escapes.
#[test]
fn regression_status_text_escapes_control_characters_from_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let root = scratch(dir.path());
    let record = root.join("var/lib/osconf/last-run");
    fs::create_dir_all(record.parent().unwrap()).unwrap();
    fs::write(
        &record,
        "time 20261201T111200Z\nexit 0\nresult applied \x1b]0;owned\x07\x1b[2J\rX\nstack x\x1b[31m\nfile write /etc/\x1b[1Ahosts\n",
    )
    .unwrap();
    let (text, json) = status(&root);
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
    assert!(
        text.contains("applied \\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{d}"),
        "{text}"
    );
    assert_eq!(json["result"], "applied \x1b]0;owned\x07\x1b[2J\rX");
}

/// Where a run's time went: every step of an apply is in the log with its duration and the
/// monotonic clock's reading, and in `status` (text and JSON) in the order it ran. Presence and
/// shape only: no duration is asserted.
#[test]
fn each_step_of_an_apply_is_timed_in_the_log_and_in_status() {
    let dir = tempfile::tempdir().unwrap();
    let root = scratch(dir.path());
    let out = apply(&root);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let steps = [
        "lock, roll back a run cut short",
        "find os.conf",
        "read os.conf",
        "validate os.conf",
        "lock the password files",
        "detect the stack",
        "plan",
        "write the journal",
        "write new files and backups",
        "flush new files and backups",
        "rename into place",
        "flush the renames",
        "remove os.conf",
        "remove the journal, flush",
    ];
    let (text, json) = status(&root);
    let listed: Vec<&str> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(listed, steps, "{json}");
    let mut at = 0.0;
    for step in json["steps"].as_array().unwrap() {
        let (ms, at_ms) = (step["ms"].as_f64().unwrap(), step["at_ms"].as_f64().unwrap());
        assert!(ms >= 0.0 && at_ms >= at, "{step}: steps end in order");
        at = at_ms;
    }
    let log = fs::read_to_string(root.join("var/log/osconf.log")).unwrap();
    let timed = logged_steps(&log);
    assert_eq!(timed, steps, "{log}");
    assert!(
        text.contains(&format!("ms in {} steps, from ", steps.len())),
        "{text}"
    );
    for step in steps {
        let line = text.lines().find(|l| l.trim_start().starts_with(step));
        assert!(
            line.is_some_and(|l| l.ends_with(" ms")),
            "{step} missing:\n{text}"
        );
    }
    // The record keeps them (a status read later, by another osconf, shows the same).
    let record = fs::read_to_string(root.join("var/lib/osconf/last-run")).unwrap();
    assert_eq!(
        record.lines().filter(|l| l.starts_with("step ")).count(),
        steps.len()
    );
}

/// The step names of the log's `step: NAME: D ms (at T ms)` lines, each checked for that shape.
fn logged_steps(log: &str) -> Vec<&str> {
    log.lines()
        .filter_map(|l| l.split_once(" osconf: step: ").map(|(_, rest)| rest))
        .map(|rest| {
            let (name, times) = rest.rsplit_once(": ").expect("NAME: times");
            let (took, at) = times.split_once(" ms (at ").expect("D ms (at T ms)");
            assert!(at.ends_with(" ms)"), "{rest}");
            for n in [took, at.trim_end_matches(" ms)")] {
                assert!(n.parse::<f64>().is_ok_and(|v| v >= 0.0), "{rest}");
            }
            name
        })
        .collect()
}
