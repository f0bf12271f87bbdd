//! FreeBSD's root password takes effect at the next boot: the one-shot rc.d script osconf writes
//! beside /etc/master.passwd is valid sh, carries the rcorder(8) headers that place it after the
//! local file systems and before LOGIN, and — run the way rc(8) runs it, sourced in a subshell with
//! the boot argument — calls `pwd_mkdb -p /etc/master.passwd` and removes itself, or stays for the
//! next boot when pwd_mkdb fails.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use crate::common::{example_conf, example_root, osconf_apply};

use osconf::render::common::shadow::PWD_MKDB_SCRIPT;

/// The `# NAME: words` headers rcorder reads, from the comment block at the top of the file.
fn rcorder_headers(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .skip(1)
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| {
            let (name, words) = l.strip_prefix("# ")?.split_once(':')?;
            matches!(name, "PROVIDE" | "REQUIRE" | "BEFORE" | "KEYWORD").then(|| {
                (
                    name.to_owned(),
                    words.split_whitespace().map(str::to_owned).collect(),
                )
            })
        })
        .collect()
}

fn applied_script() -> (tempfile::TempDir, String) {
    let scratch = tempfile::tempdir().unwrap();
    let root = example_root(scratch.path(), "freebsd14");
    osconf_apply(&root, &example_conf("vpc"));
    let path = root.join(PWD_MKDB_SCRIPT.trim_start_matches('/'));
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755, "rc(8) runs only executable scripts");
    let master = fs::read_to_string(root.join("etc/master.passwd")).unwrap();
    assert!(master.contains("root:$6$"), "{master}");
    (scratch, fs::read_to_string(path).unwrap())
}

#[test]
fn pwd_mkdb_script_is_valid_sh_with_rcorder_headers() {
    let (_scratch, text) = applied_script();
    assert!(text.starts_with("#!/bin/sh\n"));
    let status = Command::new("sh")
        .arg("-n")
        .arg("-c")
        .arg(&text)
        .status()
        .unwrap();
    assert!(status.success(), "sh -n refuses the script:\n{text}");
    let headers = rcorder_headers(&text);
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, w)| w.clone())
            .unwrap_or_else(|| panic!("no # {name}: header in\n{text}"))
    };
    assert_eq!(get("PROVIDE"), ["osconf_pwd_mkdb"]);
    assert!(get("REQUIRE").contains(&"FILESYSTEMS".to_owned()));
    assert!(get("BEFORE").contains(&"LOGIN".to_owned()));
    // rcorder takes a file's name for its PROVIDE when they differ only by accident: keep them one.
    assert!(PWD_MKDB_SCRIPT.ends_with("/osconf_pwd_mkdb"));
}

/// Runs the script as rc(8) does, `( set faststart; . $_file )`, with its absolute paths moved into
/// a scratch directory and a stand-in pwd_mkdb that records its arguments and exits `exit`.
fn run_as_rc(text: &str, dir: &Path, exit: i32) -> (bool, String, String) {
    let fake = dir.join("pwd_mkdb");
    let log = dir.join("args");
    fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$@\" > {}\nexit {exit}\n", log.display()),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let script = dir.join("osconf_pwd_mkdb");
    let moved = text
        .replace("/usr/sbin/pwd_mkdb", fake.to_str().unwrap())
        .replace(PWD_MKDB_SCRIPT, script.to_str().unwrap());
    assert_ne!(moved, text);
    fs::write(&script, moved).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("_file=$1; ( set faststart; . \"$_file\" )")
        .arg("rc")
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success());
    let args = fs::read_to_string(&log).unwrap_or_default();
    (
        script.exists(),
        args,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pwd_mkdb_script_runs_once_and_removes_itself() {
    let (_scratch, text) = applied_script();
    let dir = tempfile::tempdir().unwrap();
    let (kept, args, _) = run_as_rc(&text, dir.path(), 0);
    assert_eq!(args.trim(), "-p /etc/master.passwd");
    assert!(!kept, "the script stays after pwd_mkdb succeeded");

    let dir = tempfile::tempdir().unwrap();
    let (kept, _, stderr) = run_as_rc(&text, dir.path(), 1);
    assert!(kept, "a failed pwd_mkdb must be retried at the next boot");
    assert!(stderr.contains("pwd_mkdb failed"), "{stderr}");
}
