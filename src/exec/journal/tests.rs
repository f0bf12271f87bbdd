//! The journal's format: what the executor writes reads back; anything else is refused with its line.

use super::*;

fn sample() -> Journal {
    Journal {
        backup_dir: Some("/var/lib/osconf/backup/20261201T111200Z".into()),
        files: vec![
            File {
                path: "/etc/a b\nc".into(),
                tmp: Some(".a b\nc.osconf-new".into()),
                was: Was::File(hash(b"x")),
                backup: Some("/var/lib/osconf/backup/20261201T111200Z/etc/a b\nc".into()),
                becomes: Was::File(hash(b"y")),
            },
            File {
                path: "/etc/l".into(),
                tmp: None,
                was: Was::Link(b"../x y".to_vec()),
                backup: Some("/var/lib/osconf/backup/20261201T111200Z/etc/l".into()),
                becomes: Was::Absent,
            },
            File {
                path: "/etc/new/n".into(),
                tmp: Some(".n.osconf-new".into()),
                was: Was::Absent,
                backup: None,
                becomes: Was::Link(b"/a b".to_vec()),
            },
        ],
        dirs: vec![
            "/var/lib/osconf/backup/20261201T111200Z".into(),
            "/var/lib/osconf/backup/20261201T111200Z/etc".into(),
            "/etc/new".into(),
        ],
    }
}

#[test]
fn round_trip_with_odd_names() {
    let j = sample();
    let text = j.render();
    let p = Journal::parse(text.as_bytes()).unwrap();
    assert_eq!(p.journal, j);
    assert!(p.whole);
    assert_eq!(p.lines, [6, 7, 8]);
    // Cut short: the whole lines before the cut still parse; the cut one is left out.
    let cut = &text[..text.find("file /etc/l").unwrap() + 8];
    let p = Journal::parse(cut.as_bytes()).unwrap();
    assert_eq!((p.journal.files.len(), p.whole), (1, false));
    // Cut in its first line, or empty: nothing of the run happened.
    for cut in ["", "osconf-jou"] {
        assert_eq!(Journal::parse(cut.as_bytes()).unwrap(), Parsed::default());
    }
}

/// `text` with its line `n` (1 is the first) replaced by `line`.
fn with_line(n: usize, line: &str) -> String {
    let mut lines: Vec<String> = sample().render().lines().map(str::to_owned).collect();
    lines[n - 1] = line.to_owned();
    lines.join("\n") + "\n"
}

#[test]
fn anything_osconf_could_not_have_written_is_refused_with_its_line() {
    let h = hex(&hash(b"x"));
    let b = "/var/lib/osconf/backup/20261201T111200Z";
    let cases: Vec<(String, usize, &str)> = vec![
        // The temp name word: absolute, climbing, percent-encoded climbing, another file's.
        (
            with_line(8, "file /etc/new/n /etc/passwd absent - link:x"),
            8,
            "not the temp name",
        ),
        (
            with_line(8, "file /etc/new/n ../../../x absent - link:x"),
            8,
            "not the temp name",
        ),
        (
            with_line(8, "file /etc/new/n %2e%2e%2fx absent - link:x"),
            8,
            "not a name as osconf encodes",
        ),
        (
            with_line(8, "file /etc/new/n .hosts.osconf-new absent - link:x"),
            8,
            "not the temp name",
        ),
        // Paths: climbing, not managed, the journal or a backup, twice.
        (
            with_line(8, "file /etc/../root/x .x.osconf-new absent - link:x"),
            8,
            "not an absolute path",
        ),
        (
            with_line(
                8,
                "file /root/.ssh/authorized_keys .authorized_keys.osconf-new absent - link:x",
            ),
            8,
            "not a file osconf writes",
        ),
        (
            with_line(
                8,
                "file /var/lib/osconf/journal .journal.osconf-new absent - link:x",
            ),
            8,
            "not a file osconf writes",
        ),
        (
            with_line(8, &format!("file {b}/x .x.osconf-new absent - link:x")),
            8,
            "not a file osconf writes",
        ),
        (
            with_line(8, "file /etc/l .l.osconf-new absent - link:x"),
            8,
            "listed twice",
        ),
        (
            with_line(8, "file etc/n .n.osconf-new absent - link:x"),
            8,
            "not an absolute path",
        ),
        // Backups: the root, /etc, outside the backup directory, not the file's own.
        (with_line(2, "backup /"), 2, "not an absolute path"),
        (with_line(2, "backup /etc"), 2, "not a backup directory"),
        (
            with_line(2, "backup /var/lib/osconf/backup/../../../../etc"),
            2,
            "not an absolute path",
        ),
        (
            with_line(7, "file /etc/l - link:x /etc/shadow absent"),
            7,
            "not where the run backs",
        ),
        (
            with_line(7, &format!("file /etc/l - link:x {b}/etc/hosts absent")),
            7,
            "not where the run backs",
        ),
        (with_line(7, "file /etc/l - link:x - absent"), 7, "no backup"),
        (
            with_line(
                8,
                &format!("file /etc/new/n .n.osconf-new absent {b}/etc/new/n link:x"),
            ),
            8,
            "not where the run backs",
        ),
        // Directories above nothing the run writes (any empty directory would go).
        (with_line(5, "dir /usr/share"), 5, "above nothing"),
        (with_line(5, "dir /"), 5, "not an absolute path"),
        (with_line(5, "dir /etc/l"), 5, "above nothing"),
        // Versions, order, encodings, states.
        (with_line(1, "osconf-journal 2"), 1, "unknown version"),
        (with_line(1, "#!/bin/sh"), 1, "not an osconf journal"),
        (
            with_line(5, &format!("backup {b}")),
            5,
            "not a line osconf writes",
        ),
        (
            with_line(
                6,
                &format!("file /%65tc/x .x.osconf-new file:{h} {b}/etc/x absent"),
            ),
            6,
            "not a name as osconf encodes",
        ),
        (
            with_line(8, "file /etc/new/n .n.osconf-new absent -"),
            8,
            "not a line osconf writes",
        ),
        (
            with_line(8, "file /etc/new/n .n.osconf-new absent - file:00"),
            8,
            "not a state",
        ),
        (
            with_line(8, "file /etc/new/n .n.osconf-new absent - link:"),
            8,
            "not a state",
        ),
        (
            with_line(8, "file /etc/new/n - absent - link:x"),
            8,
            "temp name does not fit",
        ),
        (
            sample().render() + "file /etc/z .z.osconf-new absent - link:x\n",
            10,
            "after `end`",
        ),
        (sample().render().replace("end\n", "end\nx"), 10, "after `end`"),
        (
            sample().render().replace("dir /etc/new", "dir /etc/new\u{1b}[2J"),
            5,
            "printable ASCII",
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(text, line, why)| match Journal::parse(text.as_bytes()) {
            Err(r) if r.line == *line && r.why.contains(why) => None,
            other => Some(format!("{text}\nwant line {line}: {why}, got {other:?}")),
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn a_whole_journal_names_its_backup_directory_among_the_ones_it_made() {
    let text = sample()
        .render()
        .replace("dir /var/lib/osconf/backup/20261201T111200Z\n", "");
    let refused = Journal::parse(text.as_bytes()).unwrap_err();
    assert!(
        refused.why.contains("not among the directories the run made"),
        "{refused}"
    );
}

#[test]
fn managed_paths() {
    for yes in [
        "/etc/hosts",
        "/etc/a/b",
        "/usr/local/etc/rc.d/osconf_pwd_mkdb",
        "/usr/sbin/osconf",
        "/var/lib/osconf/last-applied.conf",
        "/var/lib/osconf/installed",
        "/var/lib/osconf/installed.orig/etc/x",
    ] {
        assert!(manages(yes), "{yes}");
    }
    for no in [
        "/etc",
        "/etcx/a",
        "/",
        "/usr/bin/sudo",
        "/var/lib/osconf/journal",
        "/var/lib/osconf/backup/x/etc/a",
        "/root/.ssh/authorized_keys",
        "/var/lib/osconf/installed.orig",
    ] {
        assert!(!manages(no), "{no}");
    }
}

#[test]
fn backup_directory_names() {
    for yes in [
        "19700101T000000Z",
        "20261201T111200Z-2",
        "20261201T111200Z-123456",
    ] {
        assert!(is_stamp(yes), "{yes}");
    }
    for no in [
        "",
        "..",
        "20261201T111200Z/..",
        "20261201T111200Z-",
        "20261201x111200Z",
        "20261201T111200Z-1234567",
    ] {
        assert!(!is_stamp(no), "{no}");
    }
}

#[test]
fn manages_connman_provisioning_files_but_nothing_else_of_var_lib() {
    assert!(manages("/var/lib/connman/osconf.config"));
    assert!(manages("/var/lib/connman/lan.config.osconf-disabled"));
    for other in [
        "/var/lib/connman",
        "/var/lib/connman/",
        "/var/lib/connman/ethernet_008cfa5e1423_cable/settings",
        "/var/lib/connmanx/a.config",
        "/var/lib/other/a.config",
    ] {
        assert!(!manages(other), "{other}");
    }
}
