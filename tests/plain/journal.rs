//! The journal is input: a journal left in a root (an image from elsewhere, a crafted one) that
//! osconf could not have written is refused with its line, set aside for a person, never acted on,
//! and never blocks a later run — with the real binary, `plan`, `apply` and `install` (which
//! recover first). Each test fingerprints the tree around the root (the scratch directory holding
//! the root, a host directory beside it, os.conf) and bounds the time taken.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::journal::{JOURNAL, STAMP, bounded, head, put_journal, sha, sha_of};
use crate::common::{example_conf, fingerprint};

/// A scratch directory holding a centos7 root, `host/` (what must never change: files beside the
/// root), and the classic os.conf.
struct Scratch {
    dir: tempfile::TempDir,
    root: PathBuf,
    host: PathBuf,
    conf: PathBuf,
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let root = crate::common::example_root(dir.path(), "centos7");
    let host = dir.path().join("host");
    fs::create_dir_all(host.join("dir")).unwrap();
    fs::write(host.join("victim"), "a host file\n").unwrap();
    fs::write(host.join("dir/keep"), "kept\n").unwrap();
    let conf = dir.path().join("os.conf");
    fs::write(&conf, example_conf("classic")).unwrap();
    Scratch {
        dir,
        root,
        host,
        conf,
    }
}

impl Scratch {
    fn put_journal(&self, text: &[u8]) {
        put_journal(&self.root, text);
    }

    /// The tree around the root: everything in the scratch directory but the root and os.conf
    /// (which apply consumes).
    fn around(&self) -> String {
        let mut names: Vec<String> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "os.conf")
            .collect();
        names.sort();
        format!("{names:?}\n{}", fingerprint(&self.host))
    }

    fn osconf(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_osconf"));
        cmd.args(args).arg("--root").arg(&self.root);
        if args[0] != "install" {
            cmd.args(["--no-live", "--config"]).arg(&self.conf);
        }
        bounded(&mut cmd, Duration::from_secs(300))
    }

    fn aside(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.root.join("var/lib/osconf"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("journal.rejected.")
            })
            .collect();
        v.sort();
        v
    }
}

/// A line osconf could have written for /etc/hostname, as the run found it (never renamed).
fn hostname_line(root: &Path) -> String {
    format!(
        "file /etc/hostname .hostname.osconf-new file:{} /var/lib/osconf/backup/{STAMP}/etc/hostname file:{}",
        sha_of(root, "etc/hostname"),
        sha(b"another\n")
    )
}

/// `plan` says the journal is refused (naming `line`) and changes nothing; `apply` warns the same,
/// sets it aside byte for byte, goes on (exit 0) and changes nothing around the root; a second
/// apply gives no warning. Returns the scratch for the caller's checks of the root.
fn refused(s: &Scratch, journal: &[u8], line: &str) {
    s.put_journal(journal);
    let around = s.around();
    let before = fingerprint(&s.root);
    let plan = s.osconf(&["plan"]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.status.success(), "{}", String::from_utf8_lossy(&plan.stderr));
    let said = format!("is not a journal osconf could have written ({line}");
    assert!(text.contains(&said), "{said:?} not in:\n{text}");
    assert!(text.contains("the next apply does nothing it says"), "{text}");
    assert_eq!(fingerprint(&s.root), before, "plan changed the root");
    let out = s.osconf(&["apply"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warning = format!(
        "osconf: warning: {} is not a journal osconf could have written ({line}",
        s.root.join(JOURNAL).display()
    );
    assert!(stderr.contains(&warning), "{warning:?} not in:\n{stderr}");
    assert_eq!(s.around(), around, "the tree around the root changed:\n{stderr}");
    assert!(!s.root.join(JOURNAL).exists(), "the journal stayed");
    let aside = s.aside();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        fs::read(&aside[0]).unwrap(),
        journal,
        "the journal set aside differs"
    );
    assert!(!s.conf.exists(), "the run did not go on");
    // Never blocking: the next run has nothing to warn about.
    fs::write(&s.conf, example_conf("classic")).unwrap();
    let again = s.osconf(&["apply"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success() && !stderr.contains("warning"), "{stderr}");
}

#[test]
fn a_temp_name_word_never_unlinks_outside_the_root() {
    for (tmp, line) in [
        // Absolute, climbing out of etc/, percent-encoded climbing, another file's temp name.
        (String::new(), "line 5: "),
        ("../../host/victim".to_owned(), "line 5: "),
        ("%2e%2e/%2e%2e/host/victim".to_owned(), "line 5: "),
        (".passwd.osconf-new".to_owned(), "line 5: "),
    ] {
        let s = scratch();
        let tmp = match tmp.is_empty() {
            true => s.host.join("victim").display().to_string(),
            false => tmp,
        };
        let journal = hostname_line(&s.root).replace(".hostname.osconf-new", &tmp);
        let journal = format!("{}{journal}\nend\n", head());
        // The temp name of another file (one the plan does not write): it must stay.
        fs::write(s.root.join("etc/.passwd.osconf-new"), "x\n").unwrap();
        refused(&s, journal.as_bytes(), line);
        assert!(s.host.join("victim").exists());
        assert!(s.root.join("etc/.passwd.osconf-new").exists());
    }
}

#[test]
fn install_recovers_first_and_refuses_the_same() {
    let s = scratch();
    let journal = hostname_line(&s.root).replace(".hostname.osconf-new", "../../host/victim");
    s.put_journal(format!("{}{journal}\nend\n", head()).as_bytes());
    fs::create_dir_all(s.root.join("boot")).unwrap();
    let around = s.around();
    let out = s.osconf(&["install", "--init", "systemd"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("is not a journal osconf could have written (line 5: "),
        "{stderr}"
    );
    assert_eq!(s.around(), around, "{stderr}");
    assert_eq!(s.aside().len(), 1);
}

#[test]
fn a_backup_directory_of_the_root_or_of_etc_removes_nothing() {
    for dir in [
        "/",
        "/etc",
        "/var/lib/osconf/backup/../../../../etc",
        "/var/lib/osconf",
    ] {
        let s = scratch();
        let journal = format!(
            "osconf-journal 1\nbackup {dir}\nfile /etc/hostname .hostname.osconf-new file:{} - file:{}\nend\n",
            sha_of(&s.root, "etc/hostname"),
            sha(b"x\n")
        );
        let passwd = fs::read(s.root.join("etc/passwd")).unwrap();
        refused(&s, journal.as_bytes(), "line 2: ");
        assert_eq!(fs::read(s.root.join("etc/passwd")).unwrap(), passwd, "{dir}");
    }
}

#[test]
fn a_forged_rollback_writes_no_chosen_bytes_or_links() {
    // A backup "restoring" /etc/shadow with an empty root password, where /etc/shadow is in neither
    // state the journal gives.
    let s = scratch();
    let evil = b"root::19000:0:99999:7:::\n";
    let backup = s.root.join(format!("var/lib/osconf/backup/{STAMP}/etc"));
    fs::create_dir_all(&backup).unwrap();
    fs::write(backup.join("shadow"), evil).unwrap();
    let journal = format!(
        "{}file /etc/shadow .shadow.osconf-new file:{} /var/lib/osconf/backup/{STAMP}/etc/shadow file:{}\nend\n",
        head(),
        sha(evil),
        sha(b"what the run wrote\n"),
    );
    refused(
        &s,
        journal.as_bytes(),
        "line 5: /etc/shadow is neither what the run found",
    );
    let shadow = fs::read_to_string(s.root.join("etc/shadow")).unwrap();
    assert!(shadow.starts_with("root:$6$"), "{shadow}");
    // A file osconf never writes, even with both states consistent.
    let s = scratch();
    let keys = s.root.join("root/.ssh/authorized_keys");
    fs::create_dir_all(keys.parent().unwrap()).unwrap();
    fs::write(&keys, "ssh-ed25519 AAAA owner\n").unwrap();
    let journal = format!(
        "osconf-journal 1\nfile /root/.ssh/authorized_keys .authorized_keys.osconf-new absent - file:{}\nend\n",
        sha(b"ssh-ed25519 AAAA owner\n")
    );
    refused(
        &s,
        journal.as_bytes(),
        "line 2: /root/.ssh/authorized_keys is not a file osconf writes",
    );
    assert!(keys.exists());
}

#[test]
fn an_unknown_version_is_refused() {
    let s = scratch();
    let journal = format!("osconf-journal 2\n{}\nend\n", hostname_line(&s.root));
    refused(&s, journal.as_bytes(), "line 1: unknown version");
}

#[test]
fn dir_lines_remove_no_directory_the_run_did_not_make() {
    let s = scratch();
    fs::create_dir_all(s.root.join("usr/share/empty")).unwrap();
    let journal = format!(
        "{}dir /usr/share/empty\n{}\nend\n",
        head(),
        hostname_line(&s.root)
    );
    refused(
        &s,
        journal.as_bytes(),
        "line 5: /usr/share/empty lies above nothing the run writes",
    );
    assert!(s.root.join("usr/share/empty").is_dir());
}

#[test]
fn recovery_work_is_bounded() {
    // A journal over its bound is refused unread.
    let s = scratch();
    let mut big = head();
    while big.len() <= 2 << 20 {
        big.push_str(&hostname_line(&s.root));
        big.push('\n');
    }
    refused(&s, big.as_bytes(), "larger than 1 MiB");
    // Files listed once each, 100 MiB in all: refused after at most 64 MiB hashed, each file once.
    let s = scratch();
    let mut journal = head();
    for i in 0..100 {
        let f = fs::File::create(s.root.join(format!("etc/big{i}"))).unwrap();
        f.set_len(1 << 20).unwrap();
        journal.push_str(&format!(
            "file /etc/big{i} .big{i}.osconf-new file:{} /var/lib/osconf/backup/{STAMP}/etc/big{i} file:{}\n",
            sha(b"x"),
            sha(b"y")
        ));
    }
    journal.push_str("end\n");
    refused(
        &s,
        journal.as_bytes(),
        "line 69: rolling it back would read more than 64 MiB",
    );
}

#[test]
fn refused_journals_kept_aside_are_bounded() {
    let s = scratch();
    for i in 0..5 {
        s.put_journal(format!("osconf-journal {i}x\n").as_bytes());
        fs::write(&s.conf, example_conf("classic")).unwrap();
        let out = s.osconf(&["apply"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let aside = s.aside();
    assert_eq!(aside.len(), 3, "{aside:?}");
    // The newest three.
    assert_eq!(fs::read(aside.last().unwrap()).unwrap(), b"osconf-journal 4x\n");
}

#[test]
fn a_link_or_fifo_at_the_journal_is_refused_unread() {
    let s = scratch();
    fs::create_dir_all(s.root.join("var/lib/osconf")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", s.root.join(JOURNAL)).unwrap();
    let out = s.osconf(&["apply"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("not a regular file (a symbolic link)"),
        "{stderr}"
    );
    let s = scratch();
    fs::create_dir_all(s.root.join("var/lib/osconf")).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        s.root.join(JOURNAL),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let out = s.osconf(&["apply"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("not a regular file (a FIFO)"),
        "{stderr}"
    );
}

/// `plan` names a refused journal by the very name apply then sets it aside under, counter
/// included when one from the same second is kept already (it named it without the counter). A
/// refused journal is planted for each of the next 60 seconds, so whichever second each run
/// falls in, the name carries the counter.
#[test]
fn plan_names_the_aside_file_apply_uses() {
    let s = scratch();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    fs::create_dir_all(s.root.join("var/lib/osconf")).unwrap();
    for t in now..now + 60 {
        let name = format!("var/lib/osconf/journal.rejected.{}", osconf::clock::stamp_at(t));
        fs::write(s.root.join(name), "x\n").unwrap();
    }
    s.put_journal(b"osconf-journal 9x\n");
    let plan = s.osconf(&["plan"]);
    let text = String::from_utf8_lossy(&plan.stdout).into_owned();
    let apply = s.osconf(&["apply"]);
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    let named = text
        .split("sets it aside as ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no name in:\n{text}"));
    assert!(named.ends_with("-002"), "{named}");
    let made: Vec<_> = s
        .aside()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("-002"))
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    // The same second: the very same name.
    let second = |p: &str| p.rsplit('.').next().unwrap().to_owned();
    if second(named) == second(&made[0].to_string_lossy()) {
        assert_eq!(Path::new(named), made[0]);
    }
}
