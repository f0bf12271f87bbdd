//! The command-line contract that image builders script against: commands, exit codes (0 applied or
//! nothing to do, 1 failed and rolled back, 2 invalid os.conf or command line), what goes to stdout
//! and stderr, and that the root password — plain, base64 or hashed — never appears in either.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::{copy_tree, fingerprint};

const CONF: &str = "boot/aliyun_custom_image/os.conf";
const PASSWORD: &str = "qwer1234";
const PASSWORD_BASE64: &str = "cXdlcjEyMzQK";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn osconf<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A scratch centos7 root, with `conf` (bytes of an os.conf) in place when given.
struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Scratch {
    fn new(conf: Option<&[u8]>) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        copy_tree(&repo().join("examples/rootfs/centos7"), &root).unwrap();
        if let Some(bytes) = conf {
            let path = root.join(CONF);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        }
        Scratch { _dir: dir, root }
    }

    fn example(name: &str) -> Scratch {
        Scratch::new(Some(
            &fs::read(repo().join("examples").join(name).join("os.conf")).unwrap(),
        ))
    }

    fn conf(&self) -> PathBuf {
        self.root.join(CONF)
    }

    fn run(&self, command: &str, extra: &[&str]) -> Output {
        let mut args = vec![command, "--root", self.root.to_str().unwrap()];
        if command == "apply" {
            args.push("--no-live");
        }
        args.extend_from_slice(extra);
        osconf(&args)
    }

    /// The root's hash in /etc/shadow.
    fn root_hash(&self) -> String {
        let shadow = fs::read_to_string(self.root.join("etc/shadow")).unwrap();
        let line = shadow.lines().find(|l| l.starts_with("root:")).unwrap();
        line.split(':').nth(1).unwrap().to_owned()
    }
}

#[test]
fn apply_without_os_conf_says_so_in_one_line_and_exits_0() {
    for command in ["apply", "plan"] {
        let s = Scratch::new(None);
        let before = fingerprint(&s.root);
        let out = s.run(command, &[]);
        assert_eq!(out.status.code(), Some(0), "{command}: {}", stderr(&out));
        let lines: Vec<String> = stderr(&out).lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 1, "{command}: {lines:?}");
        assert!(
            lines[0].starts_with("osconf: no os.conf found (looked at "),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains(&s.root.join(CONF).display().to_string()),
            "{}",
            lines[0]
        );
        assert!(lines[0].ends_with("nothing to do"), "{}", lines[0]);
        assert_eq!(stdout(&out), "", "{command}");
        assert_eq!(fingerprint(&s.root), before, "{command} changed the tree");
    }
}

/// An explicit --config that is missing is bad input, as `check` has it (exit 2), never "nothing
/// to do": a typo in an image builder's script must not pass unseen.
#[test]
fn regression_a_missing_config_file_exits_2_as_check_does() {
    // In the scratch directory: a host path such as /nonexistent may exist (unreadable) on the machine.
    for command in ["apply", "plan", "check"] {
        let s = Scratch::new(None);
        let missing = s.root.with_file_name("missing").join("os.conf");
        let missing = missing.to_str().unwrap();
        let before = fingerprint(&s.root);
        let out = match command {
            "check" => Command::new(env!("CARGO_BIN_EXE_osconf"))
                .args(["check", missing])
                .output()
                .unwrap(),
            _ => s.run(command, &["--config", missing]),
        };
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        assert!(stderr(&out).contains(&format!("{missing}: ")), "{}", stderr(&out));
        assert_eq!(fingerprint(&s.root), before, "{command} changed the tree");
    }
    let s = Scratch::new(None);
    let missing = s.root.with_file_name("missing").join("os.conf");
    let out = s.run("apply", &["--config", missing.to_str().unwrap()]);
    assert_eq!(
        stderr(&out),
        format!(
            "osconf: {}: no such file (given with --config); nothing was changed\n",
            missing.display()
        )
    );
}

#[test]
fn apply_configures_removes_os_conf_and_records_without_password() {
    let s = Scratch::example("classic");
    let old_hash = s.root_hash();
    let out = s.run("apply", &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(stdout(&out), "");
    assert!(!s.conf().exists(), "os.conf must be removed after success");
    assert!(
        err.lines().last().unwrap().starts_with("osconf: applied "),
        "{err}"
    );
    assert!(err.contains("originals backed up in "), "{err}");
    let record = fs::read_to_string(s.root.join("var/lib/osconf/last-applied.conf")).unwrap();
    assert!(record.contains("hostname=\"iZ23r29djmjZ\""), "{record}");
    assert!(!record.lines().any(|l| l.starts_with("password")), "{record}");
    assert!(
        !record.contains(PASSWORD_BASE64) && !record.contains(PASSWORD),
        "{record}"
    );
    assert_ne!(s.root_hash(), old_hash, "the password was not set");
    // A second run finds nothing to do.
    let again = s.run("apply", &[]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(stderr(&again).lines().count(), 1);
}

#[test]
fn plan_changes_nothing_and_prints_a_diff() {
    let s = Scratch::example("classic");
    let before = fingerprint(&s.root);
    let out = s.run("plan", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fingerprint(&s.root), before, "plan changed the tree");
    let text = stdout(&out);
    assert!(text.starts_with("stack: sysconfig\n"), "{text}");
    for expected in [
        "--- /etc/hostname\n+++ /etc/hostname\n",
        "-localhost.localdomain\n+iZ23r29djmjZ\n",
        "--- /dev/null\n+++ /etc/sysconfig/network-scripts/ifcfg-eth1\n",
        "+IPADDR=42.120.74.105\n",
        "--- /etc/shadow\n+++ /etc/shadow\n",
        "-root:(not shown):19000:",
        "+root:(new, not shown):",
        "live: set the kernel host name to iZ23r29djmjZ\n",
    ] {
        assert!(text.contains(expected), "plan output lacks {expected:?}:\n{text}");
    }
    // --no-live is accepted and changes nothing either; --live looks for the NICs' kernel names,
    // and when a MAC is nowhere after --wait, says which and changes nothing.
    let out = s.run("plan", &["--no-live"]);
    assert_eq!(out.status.code(), Some(0));
    let out = s.run("plan", &["--live", "--wait", "0"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no NIC with MAC 00:8c:fa:5e:14:23 (os.conf eth0)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fingerprint(&s.root), before, "plan changed the tree");
}

#[test]
fn check_exit_codes() {
    let valid = repo().join("examples/vpc/os.conf");
    let out = osconf(&[Path::new("check"), &valid]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}: valid\n", valid.display()));

    let dir = tempfile::tempdir().unwrap();
    let invalid = dir.path().join("os.conf");
    fs::write(&invalid, "hostname=-x\neth0_ip_addr=10.0.0.5\n").unwrap();
    let out = osconf(&[Path::new("check"), &invalid]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    let shown = invalid.display();
    assert!(
        err.contains(&format!("osconf: {shown}: line 1: hostname: ")),
        "{err}"
    );
    assert!(
        err.contains(&format!("osconf: {shown}: line 2: eth0_ip_addr: ")),
        "{err}"
    );
    assert!(err.contains("(2 errors); nothing was changed"), "{err}");

    for missing in [dir.path().join("absent"), dir.path().to_owned()] {
        let out = osconf(&[Path::new("check"), &missing]);
        assert_eq!(out.status.code(), Some(2), "check {}", missing.display());
        assert!(stderr(&out).contains(&missing.display().to_string()));
    }
    // Warnings alone do not make a file invalid.
    fs::write(&invalid, "hostname=web1\nfuture_key=1\n").unwrap();
    let out = osconf(&[Path::new("check"), &invalid]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("line 2: future_key: unknown key, ignored"));
}

#[test]
fn help_works_on_every_command() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "Usage:"),
        (&["--help"], "Usage:"),
        (&["-h"], "Usage:"),
        (&["apply", "--help"], "osconf apply"),
        (&["apply", "-h"], "osconf apply"),
        (&["apply", "--root", "/nonexistent", "--help"], "osconf apply"),
        (&["plan", "--help"], "osconf plan"),
        (&["check", "--help"], "osconf check FILE"),
        (&["detect", "--help"], "osconf detect"),
    ];
    for (args, expected) in cases {
        let out = osconf(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(stdout(&out).contains(expected), "{args:?}: {}", stdout(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}

/// The agent alone (as `osconf install` puts it into an image): `osconf image …` says what to
/// install, exit 3, yet its help is there; beside the toolkit, the same command line runs it, and
/// the toolkit takes `osconf image`'s command line without the word `image`.
#[test]
fn image_commands_run_the_toolkit_beside_the_agent_or_say_what_to_install() {
    // The programs are hard-linked beside each other, never copied: a copy is a file open for
    // writing, which a child another test thread forks meanwhile holds until it execs, and exec
    // (ours, or the agent's of the toolkit) then fails with ETXTBSY. The scratch directory is in
    // cargo's target directory, on the binaries' file system.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let agent = dir.path().join("osconf");
    fs::hard_link(env!("CARGO_BIN_EXE_osconf"), &agent).unwrap();
    // No program on PATH: a directory that does not exist (in the scratch directory: a host path
    // such as /nonexistent may exist, unreadable).
    let no_path = dir.path().join("no-such-dir");
    let run = |program: &Path, args: &[&str]| {
        Command::new(program)
            .args(args)
            .env("PATH", &no_path)
            .output()
            .unwrap()
    };
    let disk = dir.path().join("disk.raw");
    let disk = disk.to_str().unwrap();
    let alone = run(&agent, &["image", "check", disk]);
    assert_eq!(alone.status.code(), Some(3), "{}", stderr(&alone));
    assert!(
        stderr(&alone).contains("the image toolkit, osconf-image, which is not installed"),
        "{}",
        stderr(&alone)
    );
    let help = run(&agent, &["image", "test", "--help"]);
    assert!(help.status.success() && stdout(&help).contains("--accel NAME"));
    // A command line the agent refuses never reaches the toolkit: exit 2, not 3.
    assert_eq!(
        run(&agent, &["image", "check", disk, "--timeout", "5"])
            .status
            .code(),
        Some(2)
    );

    let toolkit = dir.path().join("osconf-image");
    fs::hard_link(env!("CARGO_BIN_EXE_osconf-image"), &toolkit).unwrap();
    for (program, args) in [
        (&agent, &["image", "--json", "check", disk][..]),
        (&toolkit, &["check", "--json", disk]),
    ] {
        let out = run(program, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("disk.raw: cannot open"), "{}", stderr(&out));
    }
    let help = run(&toolkit, &["--help"]);
    assert!(
        stdout(&help).contains("osconf image prepare DISK"),
        "{}",
        stdout(&help)
    );
    let version = run(&toolkit, &["--version"]);
    assert_eq!(stdout(&version), stdout(&osconf(&["--version"])));
}

#[test]
fn version_names_the_commit_and_the_target() {
    for flag in ["--version", "-V"] {
        let out = osconf(&[flag]);
        assert_eq!(out.status.code(), Some(0));
        let text = stdout(&out);
        let commit = Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(repo())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map_or("unknown".to_owned(), |o| {
                String::from_utf8(o.stdout).unwrap().trim().to_owned()
            });
        let target = format!("{}-unknown-linux-", std::env::consts::ARCH);
        let expected = format!(
            "osconf {} (commit {commit}, target {target}",
            env!("CARGO_PKG_VERSION")
        );
        assert!(
            text.starts_with(&expected),
            "{text:?} does not start with {expected:?}"
        );
        assert!(text.ends_with(")\n") && text.lines().count() == 1, "{text:?}");
    }
}

#[test]
fn misuse_exits_2_and_changes_nothing() {
    let s = Scratch::example("vpc");
    let root = s.root.to_str().unwrap();
    let before = fingerprint(&s.root);
    let cases: &[&[&str]] = &[
        &["frobnicate"],
        &["--frobnicate"],
        &["apply", "--root", root, "--frobnicate"],
        &["apply", "--root", root, "extra"],
        &["apply", "--root", root, "--stack", "nosuchstack"],
        &["apply", "--root", root, "--ifname", "eth0"],
        &["apply", "--root", root, "--ifname", "eth0=a/b"],
        &["apply", "--root", root, "--ifname", "eth0=waytoolongname00"],
        &["apply", "--root"],
        &["plan", "--root", root, "--frobnicate"],
        &["check"],
        &["check", "a", "b"],
        &["check", "--root", root],
        &["detect", "--config", "x"],
    ];
    for args in cases {
        let out = osconf(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "{args:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("osconf: ") && err.contains("Usage:"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        fingerprint(&s.root),
        before,
        "a refused command line changed the tree"
    );
}

/// Every output of every run, for the password checks.
fn outputs(runs: &[Output]) -> String {
    runs.iter()
        .map(|o| format!("{}{}", stdout(o), stderr(o)))
        .collect()
}

#[test]
fn password_never_appears_in_any_output() {
    let mut runs = Vec::new();
    // Success: check, plan (shadow diff masked), apply.
    let s = Scratch::example("classic");
    runs.push(osconf(&[Path::new("check"), &s.conf()]));
    runs.push(s.run("plan", &[]));
    runs.push(s.run("apply", &[]));
    assert_eq!(runs.last().unwrap().status.code(), Some(0));
    let new_hash = s.root_hash();
    assert!(new_hash.starts_with("$6$"), "{new_hash}");
    // Re-planning on the applied system compares against the new hash.
    fs::write(s.conf(), fs::read(repo().join("examples/vpc/os.conf")).unwrap()).unwrap();
    runs.push(s.run("plan", &[]));
    // Hashes that do not start with `$` (locked, DES) are masked too.
    let s = Scratch::example("vpc");
    let shadow = "root:!$6$lockedsalt$LOCKEDHASH:19000:0:99999:7:::\nold:abDESHASHxyz1:19000::::::\n";
    fs::write(s.root.join("etc/shadow"), shadow).unwrap();
    runs.push(s.run("plan", &[]));
    assert_eq!(runs.last().unwrap().status.code(), Some(0));

    // Invalid files with the password on a malformed line, or valid next to another error.
    for conf in [
        "password= cXdlcjEyMzQK\nhostname=web1\n",
        "password cXdlcjEyMzQK\nhostname=web1\n",
        "password=cXdlcjEyMzQK extra\nhostname=web1\n",
        "password=\"cXdl\ncjEyMzQK\"\nhostname=web1\n",
        "password=cXdlcjEyMzQK\nhostname=-bad\n",
        "password=cXdlcjEyMzQK\npassword=cXdlcjEyMzQK\n",
        "password=cXdlcjEyMzQK!\n",
    ] {
        let s = Scratch::new(Some(conf.as_bytes()));
        runs.push(osconf(&[Path::new("check"), &s.conf()]));
        runs.push(s.run("plan", &[]));
        runs.push(s.run("apply", &[]));
        assert_eq!(runs.last().unwrap().status.code(), Some(2), "{conf:?}");
    }

    // Refused on the command line: an unknown stack. Failing after planning: a write that fails
    // and is rolled back.
    let s = Scratch::example("vpc");
    runs.push(s.run("plan", &["--stack", "nosuchstack"]));
    fs::remove_file(s.root.join("etc/hostname")).unwrap();
    fs::create_dir(s.root.join("etc/hostname")).unwrap();
    runs.push(s.run("apply", &[]));
    assert_eq!(runs.last().unwrap().status.code(), Some(1));
    // Planning fails: no root line in /etc/shadow.
    let s = Scratch::example("vpc");
    fs::write(s.root.join("etc/shadow"), "bin:*:18353:0:99999:7:::\n").unwrap();
    fs::set_permissions(s.root.join("etc/shadow"), fs::Permissions::from_mode(0o000)).unwrap();
    runs.push(s.run("apply", &[]));
    assert_eq!(runs.last().unwrap().status.code(), Some(1));

    let all = outputs(&runs);
    let secrets = [PASSWORD, PASSWORD_BASE64, "cjEyMzQK", &new_hash, "$6$", "oldsalt"];
    for secret in secrets
        .into_iter()
        .chain(["lockedsalt", "LOCKEDHASH", "abDESHASHxyz1"])
    {
        assert!(!all.contains(secret), "{secret:?} appears in the output:\n{all}");
    }
}

#[test]
fn top_level_help_lists_every_stack_in_detection_order() {
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let listed: Vec<&str> = text
        .split("in detection order:\n")
        .nth(1)
        .expect("a stack list")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let order = [
        "openwrt",
        "freebsd",
        "slackware",
        "dhcpcd",
        "connman",
        "netifrc",
        "openrc-network",
        "busybox",
        "netplan",
        "wicked",
        "sysconfig",
        "networkmanager",
        "networkd",
        "ifupdown",
    ];
    assert_eq!(listed, order);
}

#[test]
fn regression_a_non_utf8_file_is_left_alone_not_mangled() {
    // A Latin-1 comment in /etc/sysconfig/network: rewriting it as text would turn the byte into
    // U+FFFD. Refusing (exit 1, nothing changed, os.conf kept) is the safe outcome.
    let s = Scratch::example("classic");
    let network = s.root.join("etc/sysconfig/network");
    let mut bytes = fs::read(&network).unwrap();
    bytes.extend_from_slice(b"# Konfiguration f\xfcr das Netz\n");
    fs::write(&network, &bytes).unwrap();
    let before = fingerprint(&s.root);
    let out = s.run("apply", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/etc/sysconfig/network is not valid UTF-8"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fingerprint(&s.root), before);
    assert!(s.conf().exists());
}

#[test]
fn two_nics_given_one_interface_name_are_refused() {
    for ifnames in [&["eth0=foo", "eth1=foo"][..], &["eth0=eth1"][..]] {
        let s = Scratch::example("classic");
        let before = fingerprint(&s.root);
        let mut args = Vec::new();
        for pair in ifnames {
            args.extend(["--ifname", *pair]);
        }
        let out = s.run("apply", &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{ifnames:?}: {err}");
        assert!(
            err.contains("eth0 and eth1 would both be written as interface"),
            "{err}"
        );
        assert!(err.contains("nothing was changed"), "{err}");
        assert_eq!(fingerprint(&s.root), before, "{ifnames:?} changed the tree");
    }
}

#[test]
fn os_conf_at_the_partition_root_is_found_when_boot_has_none() {
    // The first partition may be mounted as the root itself, not at /boot.
    let s = Scratch::new(None);
    let conf = s.root.join("aliyun_custom_image/os.conf");
    fs::create_dir_all(conf.parent().unwrap()).unwrap();
    fs::copy(repo().join("examples/vpc/os.conf"), &conf).unwrap();
    let out = s.run("apply", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!conf.exists(), "os.conf at the partition root was not consumed");
    assert_eq!(
        fs::read_to_string(s.root.join("etc/hostname")).unwrap(),
        "iZ23r29djmjZ\n"
    );
}

/// Runs osconf with stdout and stderr as given (`None`: captured).
fn osconf_to(args: &[&str], stdout: Option<Stdio>, stderr: Option<Stdio>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_osconf"));
    cmd.args(args);
    cmd.stdout(stdout.unwrap_or_else(Stdio::piped));
    cmd.stderr(stderr.unwrap_or_else(Stdio::piped));
    cmd.output().unwrap()
}

/// A pipe whose reading end is already closed, as after `| head -1` has exited.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

fn dev_full() -> Stdio {
    fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
        .into()
}

/// Every command that prints something on stdout, on a scratch root with the classic sample.
fn printing_commands(s: &Scratch) -> Vec<Vec<String>> {
    let root = s.root.to_str().unwrap().to_owned();
    let conf = s.conf().to_str().unwrap().to_owned();
    [
        vec!["--help"],
        vec!["--version"],
        vec!["apply", "--help"],
        vec!["generate", "man"],
        vec!["check", &conf],
        vec!["detect", "--root", &root],
        vec!["plan", "--root", &root],
    ]
    .into_iter()
    .map(|args| args.into_iter().map(str::to_owned).collect())
    .collect()
}

#[test]
fn regression_stdout_on_a_closed_pipe_ends_quietly_with_exit_0() {
    // `osconf detect | head -2` used to panic with exit 101.
    let s = Scratch::example("classic");
    let before = fingerprint(&s.root);
    for args in printing_commands(&s) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = osconf_to(&args, Some(closed_pipe()), None);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
    assert_eq!(fingerprint(&s.root), before);
}

#[test]
fn regression_stdout_on_a_full_disk_exits_1_with_a_message() {
    // `osconf plan > /dev/full` used to exit 0 having written nothing.
    let s = Scratch::example("classic");
    let before = fingerprint(&s.root);
    for args in printing_commands(&s) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = osconf_to(&args, Some(dev_full()), None);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            "osconf: writing to stdout: No space left on device (os error 28)\n",
            "{args:?}"
        );
    }
    assert_eq!(fingerprint(&s.root), before);
}

#[test]
fn regression_stderr_that_cannot_be_written_changes_neither_the_run_nor_its_exit_code() {
    // `osconf apply 2>/dev/full` used to panic with exit 101 after applying. The exit code tells what
    // happened to the system, so a run that applied exits 0 and one that rolled back exits 1.
    for (name, err) in [
        ("/dev/full", dev_full as fn() -> Stdio),
        ("a closed pipe", closed_pipe),
    ] {
        let s = Scratch::example("classic");
        let out = osconf_to(
            &["apply", "--no-live", "--root", s.root.to_str().unwrap()],
            None,
            Some(err()),
        );
        assert_eq!(out.status.code(), Some(0), "stderr on {name}");
        assert!(!s.conf().exists(), "stderr on {name}: os.conf not consumed");
        assert_eq!(
            fs::read_to_string(s.root.join("etc/hostname")).unwrap(),
            "iZ23r29djmjZ\n"
        );

        let s = Scratch::example("classic");
        fs::remove_file(s.root.join("etc/hostname")).unwrap();
        fs::create_dir(s.root.join("etc/hostname")).unwrap();
        let before = fingerprint(&s.root);
        let out = osconf_to(
            &["apply", "--no-live", "--root", s.root.to_str().unwrap()],
            None,
            Some(err()),
        );
        assert_eq!(out.status.code(), Some(1), "stderr on {name}");
        assert_eq!(fingerprint(&s.root), before, "stderr on {name}: not rolled back");

        let s = Scratch::new(Some(b"hostname=-bad\n"));
        let out = osconf_to(&["check", s.conf().to_str().unwrap()], None, Some(err()));
        assert_eq!(out.status.code(), Some(2), "stderr on {name}");
        let out = osconf_to(&["frobnicate"], None, Some(err()));
        assert_eq!(out.status.code(), Some(2), "stderr on {name}");
    }
}
