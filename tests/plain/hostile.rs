//! Hostile os.conf files against the real binary: each must be refused with exit code 2, an error that
//! names the key (and the line), and not one byte, link, mode or owner of the target changed — os.conf
//! included, which stays for a person to read.
//!
//! The files are `tests/hostile/NNN-what.conf`, each starting with `# expect: <key> (line N)` and a
//! comment saying what it tries; those that cannot live in git as text (NUL bytes, invalid UTF-8,
//! 1 MiB, UTF-16, links) are made here. Each runs against every example root, so every stack.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{copy_tree, fingerprint};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn osconf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(args)
        .output()
        .unwrap()
}

/// What the error output must hold: the key (or message) named by `# expect:`, on a line that also
/// says `line N:` when the problem has a line.
struct Expect {
    key: String,
    line: Option<usize>,
}

impl Expect {
    fn from_header(name: &str, bytes: &[u8]) -> Expect {
        let first = bytes.split(|&b| b == b'\n').next().unwrap();
        let text = std::str::from_utf8(first).unwrap();
        let spec = text
            .strip_prefix("# expect: ")
            .unwrap_or_else(|| panic!("{name}: first line must be `# expect: <key>`"));
        match spec.strip_suffix(')').and_then(|s| s.split_once(" (line ")) {
            Some((key, line)) => Expect {
                key: key.to_owned(),
                line: Some(line.parse().unwrap()),
            },
            None => Expect {
                key: spec.to_owned(),
                line: None,
            },
        }
    }

    /// `Err(why)` unless `stderr` names the key, on the expected line when there is one.
    fn check(&self, stderr: &str) -> Result<(), String> {
        let located = |l: &&str| self.line.is_none_or(|n| l.contains(&format!("line {n}: ")));
        if stderr.lines().filter(located).any(|l| l.contains(&self.key)) {
            return Ok(());
        }
        let at = self.line.map(|n| format!(" on line {n}")).unwrap_or_default();
        Err(format!("does not name {:?}{at}", self.key))
    }
}

/// How os.conf is put in place: as a file with these bytes, or as something stranger.
enum Conf {
    Bytes(Vec<u8>),
    Directory,
}

/// Every example root, one per stack (and distribution): a hostile file is refused before any
/// stack is chosen, and this proves it for each.
fn example_roots() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = fs::read_dir(repo().join("examples/rootfs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    roots.sort();
    assert!(roots.len() >= 11, "only {} example roots", roots.len());
    roots
}

/// Puts `conf` at os.conf's place in `root`, replacing whatever the previous case left there.
fn place(conf: &Conf, path: &Path) {
    match path.symlink_metadata() {
        Ok(md) if md.is_dir() => fs::remove_dir(path).unwrap(),
        Ok(_) => fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
    match conf {
        Conf::Bytes(bytes) => fs::write(path, bytes).unwrap(),
        Conf::Directory => fs::create_dir(path).unwrap(),
    }
}

/// What is wrong with one command's run on a hostile file (nothing when it was refused cleanly).
fn judge(command: &str, out: &Output, expect: &Expect, problems: &mut Vec<String>) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut say = |what: String| problems.push(format!("{command}: {what}"));
    if out.status.code() != Some(2) {
        say(format!("{} instead of exit status 2", out.status));
    }
    if let Err(why) = expect.check(&stderr) {
        say(why);
    }
    if command != "check" && !stderr.contains("nothing was changed") {
        say("does not say that nothing was changed".into());
    }
    if !out.stdout.is_empty() {
        say(format!(
            "printed to stdout: {:?}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    for secret in ["$6$", "oldsalt", "qwer1234", "cXdlcjEyMzQK"] {
        if stderr.contains(secret) {
            say(format!("shows {secret:?}"));
        }
    }
}

/// Runs apply and plan on every case in a scratch copy of one example root (made again only when a
/// case changed it); returns the cases not refused cleanly.
fn run_on_root(example: &Path, cases: &[(String, Conf, Expect)]) -> Vec<String> {
    let stack = example.file_name().unwrap().to_string_lossy().into_owned();
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    let fresh = || {
        let _ = fs::remove_dir_all(&root);
        copy_tree(example, &root).unwrap();
        fs::create_dir_all(root.join("boot/aliyun_custom_image")).unwrap();
    };
    fresh();
    let path = root.join("boot/aliyun_custom_image/os.conf");
    let root_arg = root.to_str().unwrap();
    let mut failures = Vec::new();
    for (name, conf, expect) in cases {
        place(conf, &path);
        let before = fingerprint(&root);
        let mut problems = Vec::new();
        let apply = osconf(&["apply", "--root", root_arg, "--no-live"]);
        judge("apply", &apply, expect, &mut problems);
        judge(
            "plan",
            &osconf(&["plan", "--root", root_arg]),
            expect,
            &mut problems,
        );
        if path.symlink_metadata().is_err() {
            problems.push("os.conf was removed".into());
        }
        let after = fingerprint(&root);
        if after != before {
            let diff = osconf::plan::diff::unified(&before, &after, "before", "after");
            problems.push(format!("the tree changed:\n{diff}"));
            fresh();
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{name} on {stack}:\n  {}\n  apply's stderr:\n{}",
                problems.join("\n  "),
                String::from_utf8_lossy(&apply.stderr)
            ));
        }
    }
    failures
}

/// Runs every case against every example root (two at a time), and `check` once per case.
fn run_all(cases: Vec<(String, Conf, Expect)>) {
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("os.conf");
    for (name, conf, expect) in &cases {
        let mut problems = Vec::new();
        place(conf, &path);
        judge(
            "check",
            &osconf(&["check", path.to_str().unwrap()]),
            expect,
            &mut problems,
        );
        if !problems.is_empty() {
            failures.push(format!("{name}:\n  {}", problems.join("\n  ")));
        }
    }
    let roots = example_roots();
    let halves = roots.split_at(roots.len() / 2);
    let on = |half: &[PathBuf]| -> Vec<String> { half.iter().flat_map(|r| run_on_root(r, &cases)).collect() };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| on(halves.0));
        (a.join().unwrap(), on(halves.1))
    });
    failures.extend(a);
    failures.extend(b);
    let runs = cases.len() * roots.len();
    assert!(
        failures.is_empty(),
        "{} of {runs} hostile (os.conf, example root) runs were not refused cleanly:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "hostile: {} files × {} example roots ({runs} apply + {runs} plan runs, {} check runs) refused cleanly",
        cases.len(),
        roots.len(),
        cases.len()
    );
}

#[test]
fn hostile_files_are_refused_and_change_nothing() {
    let mut files: Vec<PathBuf> = fs::read_dir(repo().join("tests/hostile"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    assert!(files.len() >= 100, "only {} hostile files", files.len());
    let cases = files
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = fs::read(path).unwrap();
            let expect = Expect::from_header(&name, &bytes);
            let what = bytes.split(|&b| b == b'\n').nth(1).unwrap_or_default();
            assert!(
                what.starts_with(b"# ") && what.len() > 10,
                "{name}: the second line must say what the file tries"
            );
            (name, Conf::Bytes(bytes), expect)
        })
        .collect();
    run_all(cases);
}

/// The VPC example with `hostname=` replaced by `line`, on line 1.
fn vpc_with_hostname_line(line: &[u8]) -> Vec<u8> {
    let example = fs::read_to_string(repo().join("examples/vpc/os.conf")).unwrap();
    let rest = example.split_once('\n').unwrap().1;
    [line, b"\n", rest.as_bytes()].concat()
}

fn expect(key: &str, line: Option<usize>) -> Expect {
    Expect {
        key: key.to_owned(),
        line,
    }
}

#[test]
fn generated_hostile_files_are_refused_and_change_nothing() {
    let mut one_mib = fs::read(repo().join("examples/vpc/os.conf")).unwrap();
    while one_mib.len() < 1 << 20 {
        one_mib.extend_from_slice(b"# padding padding padding padding padding padding padding padding\n");
    }
    let utf16: Vec<u8> = "hostname=web1\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let cases = vec![
        (
            "NUL byte in the host name".to_owned(),
            Conf::Bytes(vpc_with_hostname_line(b"hostname=web1\0reboot")),
            expect("hostname", Some(1)),
        ),
        (
            "invalid UTF-8 in the host name".to_owned(),
            Conf::Bytes(vpc_with_hostname_line(b"hostname=web\xc3\x281")),
            expect("hostname", Some(1)),
        ),
        (
            "Latin-1 host name".to_owned(),
            Conf::Bytes(vpc_with_hostname_line(b"hostname=caf\xe9")),
            expect("hostname", Some(1)),
        ),
        (
            "1 MiB: a valid os.conf padded with comments".to_owned(),
            Conf::Bytes(one_mib),
            expect("larger than 65536 bytes", None),
        ),
        (
            "UTF-16 (an editor's \"Unicode\")".to_owned(),
            Conf::Bytes([&b"\xff\xfe"[..], &utf16].concat()),
            expect("NUL byte", Some(1)),
        ),
        // os.conf as a link (to /etc/hosts, to /dev/zero) is refused with exit 1, never read:
        // tests/plain/confinement.rs.
        (
            "os.conf is a directory".to_owned(),
            Conf::Directory,
            expect("not a regular file", None),
        ),
    ];
    run_all(cases);
}

#[test]
fn regression_fifo_as_os_conf_does_not_hang() {
    // A FIFO planted at os.conf would block a plain open() forever, and with it the boot.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("os.conf");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_osconf"))
        .arg("check")
        .arg(&fifo)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("osconf check hangs on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(2));
}
