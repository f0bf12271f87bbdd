//! What took effect, read from the image after a boot, setting by setting: osconf's own report on
//! the console, os.conf gone from partition 1, the host name, each NIC's address, gateway and routes
//! and the name servers in the files the network stacks read, the root hash against os.conf's
//! password; after a boot without os.conf, that nothing was rewritten. Reads the image only (through
//! `disk`'s reader); judges the files, not what osconf said it did. Each check says what was
//! expected and what was found (`--json` gives both).

use super::qemu::{Ended, Outcome};
use std::path::Path;

use crate::disk::Image;
use crate::error::Error;
use crate::image::view;
use crate::image::{Item, Verdict};
use crate::model::Config;
use crate::render::STACKS;
use crate::render::common::shadow;
use crate::system::System;

/// Where os.conf is written, in partition 1.
pub const OS_CONF: &str = "aliyun_custom_image/os.conf";

/// Where a host name is kept besides etc/hostname (SUSE, RHEL 6, FreeBSD, OpenWrt, Gentoo).
const HOSTNAME_FILES: &[&str] = &[
    "etc/HOSTNAME",
    "etc/sysconfig/network",
    "etc/rc.conf",
    "etc/config/system",
    "etc/conf.d/hostname",
];

/// One check: the verdict and its reason, what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub item: Item,
    pub expected: String,
    pub found: String,
}

/// The file at `path` in partition `n`; `None` when absent.
fn read(image: &Image, n: u32, path: &str) -> Result<Option<Vec<u8>>, Error> {
    image
        .partition(n)
        .and_then(|v| v.read_file(path))
        .map_err(|e| Error::io(Path::new(path), &e))
}

fn item(
    key: &'static str,
    ok: bool,
    expected: impl Into<String>,
    found: impl Into<String>,
    reason: impl Into<String>,
) -> Check {
    Check {
        item: Item {
            key,
            verdict: if ok { Verdict::Pass } else { Verdict::Fail },
            reason: reason.into(),
        },
        expected: expected.into(),
        found: found.into(),
    }
}

/// The image's root partition read as a `System`, as image check and prepare find it (as osconf
/// read it at boot); the partition's number with it.
pub fn root_system(disk: &Path, image: &Image) -> Result<(u32, System), Error> {
    let root = view::root_partition(image).map_err(|i| Error::failed(Some(disk), i.reason))?;
    Ok((root.n, view::system(disk, root)?))
}

/// The checks of a boot, in order: `conf` is the os.conf in effect (the one injected, or the last
/// one for a boot without), `expect` how osconf's run should end, `ended` how the boot ended;
/// `disk` is the image's path, for messages.
pub fn check(conf: &Config, expect: Outcome, ended: &Ended, disk: &Path, image: &Image) -> Vec<Check> {
    let mut items = vec![boot_item(ended, expect)];
    let (absent, present) = ("absent", "present");
    items.push(match read(image, 1, OS_CONF) {
        Ok(None) => item(
            "os.conf",
            true,
            absent,
            absent,
            match expect {
                Outcome::NothingToDo => format!("not on partition 1 ({OS_CONF})"),
                _ => format!("removed from partition 1 ({OS_CONF})"),
            },
        ),
        Ok(Some(_)) => item(
            "os.conf",
            false,
            absent,
            present,
            format!("still on partition 1 ({OS_CONF}): osconf did not run or did not finish"),
        ),
        Err(e) => item(
            "os.conf",
            false,
            absent,
            "unread",
            format!("cannot read partition 1: {e}"),
        ),
    });
    let (root, sys) = match root_system(disk, image) {
        Ok(found) => found,
        Err(why) => {
            items.push(item(
                "root",
                false,
                "a readable root partition",
                "none",
                format!("the root partition was not read: {why}"),
            ));
            return items;
        }
    };
    let sys = &sys;
    let bytes = |path: &str| sys.read(path).ok().flatten();
    let text = |path: &str| bytes(path).map(|b| String::from_utf8_lossy(&b).into_owned());
    if let Some(name) = &conf.hostname {
        items.push(hostname_item(name, &text));
    }
    if let Some(pw) = &conf.password {
        let hash = bytes("/etc/shadow").and_then(|s| shadow::root_hash(&s).map(str::to_owned));
        let expected = "root's hash verifies os.conf's password";
        items.push(match hash {
            Some(h) if shadow::is_hash_of(pw.expose(), &h) => item(
                "password",
                true,
                expected,
                format!("{} hash that verifies", scheme(&h)),
                format!("root's hash in etc/shadow (partition {root}) verifies os.conf's password"),
            ),
            Some(h) => item(
                "password",
                false,
                expected,
                format!("{} hash that does not verify", scheme(&h)),
                format!(
                    "root's hash in etc/shadow ({}) does not verify os.conf's password",
                    scheme(&h)
                ),
            ),
            None => item(
                "password",
                false,
                expected,
                "no root line",
                "no root line in etc/shadow",
            ),
        });
    }
    let network = network_files(sys);
    for nic in &conf.nics {
        items.push(nic_item(nic, &network));
    }
    if !conf.nameservers.is_empty() {
        let mut places = network.clone();
        places.extend(text("/etc/resolv.conf").map(|t| ("/etc/resolv.conf".to_owned(), t)));
        let missing: Vec<String> = conf
            .nameservers
            .iter()
            .map(ToString::to_string)
            .filter(|ns| !places.iter().any(|(_, t)| has_token(t, ns)))
            .collect();
        let all = conf
            .nameservers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        items.push(if missing.is_empty() {
            let found = holders(&places, &conf.nameservers[0].to_string());
            item(
                "dns",
                true,
                &all,
                format!("in {found}"),
                format!("{all} in {found}"),
            )
        } else {
            item(
                "dns",
                false,
                &all,
                format!("missing {}", missing.join(" ")),
                format!(
                    "{} in neither etc/resolv.conf nor a network file",
                    missing.join(" ")
                ),
            )
        });
    }
    items
}

/// What a boot's run should say, for the report.
fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Applied => "applied",
        Outcome::NothingToDo => "nothing to do",
        Outcome::Failed => "failed",
    }
}

fn boot_item(ended: &Ended, expect: Outcome) -> Check {
    let expected = outcome_name(&expect);
    match ended {
        Ended::Reported(outcome, line, at) => item(
            "boot",
            *outcome == expect,
            expected,
            outcome_name(outcome),
            format!("osconf reported after {}: {}", seconds(*at), quote(line)),
        ),
        Ended::Exited(how) => item(
            "boot",
            false,
            expected,
            "no report",
            format!("{how} before osconf reported"),
        ),
        Ended::TimedOut { after, silent: false } => item(
            "boot",
            false,
            expected,
            "no report",
            format!(
                "osconf did not report within {} s (--timeout); the guest was stopped",
                after.as_secs()
            ),
        ),
        // What took effect is still read from the disk.
        Ended::TimedOut { after, silent: true } => Check {
            item: Item {
                key: "boot",
                verdict: Verdict::Warn,
                reason: format!(
                    "the guest printed nothing on its serial console in {} s (no console= for its \
                     serial port on its kernel command line?); stopped at --timeout",
                    after.as_secs()
                ),
            },
            expected: expected.to_owned(),
            found: "a silent console".to_owned(),
        },
    }
}

/// `12.3 s`, in integers: formatting an `f64` costs the static binary 16 KB.
pub fn seconds(d: std::time::Duration) -> String {
    let tenths = d.as_millis() / 100;
    format!("{}.{} s", tenths / 10, tenths % 10)
}

/// osconf's line without what came before it on the console (a time stamp, a unit's name).
fn quote(line: &str) -> &str {
    line.find("osconf: ").map_or(line, |at| &line[at..])
}

fn hostname_item(name: &str, text: &dyn Fn(&str) -> Option<String>) -> Check {
    let etc = text("etc/hostname");
    let first = etc.as_deref().and_then(|t| t.lines().next()).unwrap_or("").trim();
    if first == name {
        return item("hostname", true, name, first, format!("{name} in etc/hostname"));
    }
    if let Some(path) = HOSTNAME_FILES
        .iter()
        .find(|p| text(p).is_some_and(|t| has_token(&t, name)))
    {
        return item("hostname", true, name, name, format!("{name} in {path}"));
    }
    let got = match etc {
        Some(_) => format!("etc/hostname holds {first:?}"),
        None => "there is no etc/hostname".to_owned(),
    };
    item(
        "hostname",
        false,
        name,
        first,
        format!("{name} is in no host name file: {got}"),
    )
}

/// One file a reboot must leave as it was: its path, bytes and modification time (every root
/// reader has one: ext, XFS, Btrfs, FAT).
pub type Kept = (String, Vec<u8>, Option<i64>);

/// What a boot without os.conf must leave as it was, read before and after it: every file osconf
/// writes that the image's root has (host name, password, resolver and network files; osconf's
/// last-run record) with its bytes and mtime, and the names in osconf's backup directory (a
/// rewrite leaves a backup there even when the bytes come out the same).
pub fn snapshot(disk: &Path, image: &Image) -> Result<Vec<Kept>, Error> {
    let (_, sys) = root_system(disk, image)?;
    let volume = view::root_partition(image).map_err(|i| Error::failed(Some(disk), i.reason))?;
    let mut paths: Vec<String> = network_files(&sys).into_iter().map(|(p, _)| p).collect();
    paths.extend(
        [
            "etc/hostname",
            "etc/shadow",
            "etc/resolv.conf",
            "var/lib/osconf/last-run",
        ]
        .iter()
        .chain(HOSTNAME_FILES)
        .map(|p| (*p).to_owned()),
    );
    let mut files: Vec<Kept> = Vec::new();
    for p in paths {
        let Ok(Some(bytes)) = sys.read(&p) else {
            continue;
        };
        let mtime = volume.metadata(&p).ok().flatten().and_then(|m| m.mtime);
        files.push((p, bytes, mtime));
    }
    let backups = sys.list(crate::exec::BACKUP_DIR).unwrap_or_default();
    files.extend(
        backups
            .into_iter()
            .map(|n| (format!("{}/{n}", crate::exec::BACKUP_DIR), Vec::new(), None)),
    );
    files.sort();
    files.dedup();
    Ok(files)
}

/// The check of a boot without os.conf: the snapshot after it is the one before.
pub fn unchanged(before: &[Kept], after: &[Kept]) -> Check {
    let find = |list: &[Kept], p: &str| list.iter().find(|k| k.0 == p).cloned();
    let mut changed: Vec<String> = Vec::new();
    for (path, bytes, mtime) in after {
        match find(before, path) {
            None => changed.push(format!("{path} (new)")),
            Some((_, b, _)) if b != *bytes => changed.push(format!("{path} (its bytes)")),
            Some((_, _, m)) if m != *mtime => changed.push(format!("{path} (its mtime)")),
            Some(_) => {}
        }
    }
    changed.extend(
        before
            .iter()
            .filter(|k| find(after, &k.0).is_none())
            .map(|k| format!("{} (gone)", k.0)),
    );
    let expected = "nothing rewritten";
    let timed = after.iter().filter(|k| k.2.is_some()).count();
    if changed.is_empty() {
        item(
            "unchanged",
            true,
            expected,
            format!("{} files and backups as before", after.len()),
            format!(
                "the {} files osconf writes and its backups are as before this boot ({timed} with \
                 the same mtime)",
                after.len()
            ),
        )
    } else {
        item(
            "unchanged",
            false,
            expected,
            format!("changed: {}", changed.join(", ")),
            format!(
                "a boot without os.conf changed {} (a new backup is a rewrite)",
                changed.join(", ")
            ),
        )
    }
}

/// (path, text) of every network configuration file in the root partition: where each stack osconf
/// knows keeps its NICs (`Stack::network_files`), whichever stack the image uses.
fn network_files(sys: &System) -> Vec<(String, String)> {
    let mut paths: Vec<String> = Vec::new();
    for place in STACKS.iter().flat_map(|s| s.network_files) {
        match place.strip_suffix('/') {
            Some(dir) => {
                let names = sys.list(dir).unwrap_or_default();
                paths.extend(names.into_iter().map(|n| format!("{dir}/{n}")));
            }
            None => paths.push((*place).to_owned()),
        }
    }
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter_map(|p| Some((p.clone(), sys.read_text(&p).ok()??)))
        .collect()
}

fn nic_item(nic: &crate::model::Nic, files: &[(String, String)]) -> Check {
    let key = match nic.index {
        0 => "eth0",
        1 => "eth1",
        _ => "nic",
    };
    let mut wanted = vec![("address", nic.address.to_string())];
    wanted.extend(nic.gateway.map(|g| ("gateway", g.to_string())));
    wanted.extend(nic.default_gateway.map(|g| ("default route via", g.to_string())));
    wanted.extend(nic.routes.iter().map(|r| ("route to", r.dest.addr.to_string())));
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(_, v)| !files.iter().any(|(_, t)| has_token(t, v)))
        .map(|(what, v)| format!("{what} {v}"))
        .collect();
    let name = nic.name();
    let mac = nic.mac.map(|m| format!(" (MAC {m})")).unwrap_or_default();
    let what: Vec<String> = wanted.iter().map(|(w, v)| format!("{w} {v}")).collect();
    let expected = format!("{name}{mac}: {}", what.join(", "));
    if missing.is_empty() {
        let found = holders(files, &nic.address.to_string());
        item(
            key,
            true,
            &expected,
            format!("in {found}"),
            format!("{expected} in {found}"),
        )
    } else {
        let looked = if files.is_empty() {
            "there is no network configuration file".to_owned()
        } else {
            format!(
                "looked in {}",
                files
                    .iter()
                    .map(|(p, _)| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        item(
            key,
            false,
            expected,
            format!("missing {}", missing.join(", ")),
            format!(
                "{name}{mac}: {} in no network file ({looked})",
                missing.join(", ")
            ),
        )
    }
}

/// The files holding `token`, for the report.
fn holders(files: &[(String, String)], token: &str) -> String {
    let found: Vec<&str> = files
        .iter()
        .filter(|(_, t)| has_token(t, token))
        .map(|(p, _)| p.as_str())
        .collect();
    found.join(", ")
}

/// `word` in `text` as a whole token: `10.0.0.1` is not found in `10.0.0.12` nor `110.0.0.1`.
fn has_token(text: &str, word: &str) -> bool {
    let part = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let mut after = text[at + word.len()..].chars();
        let end = match after.next() {
            None => true,
            // A dot then no letter or digit ends a sentence or a name, not a longer address.
            Some('.') => !after.next().is_some_and(|d| d.is_ascii_alphanumeric()),
            Some(c) => !part(c),
        };
        !before.is_some_and(part) && end
    })
}

/// `$6$` (SHA-512 crypt), `!`/`*` (locked): what a hash is, without its value.
fn scheme(hash: &str) -> String {
    match hash {
        "" => "empty".to_owned(),
        h if h.starts_with('!') || h.starts_with('*') => format!("{:?}: locked", &h[..1]),
        h if h.starts_with('$') => format!("${}$…", h.split('$').nth(1).unwrap_or("")),
        _ => "DES or unknown".to_owned(),
    }
}

/// The report as text: one line per check, as `image check` prints its items.
pub fn text(checks: &[Check]) -> String {
    crate::image::text(checks.iter().map(|c| &c.item))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_whole_addresses() {
        for (text, word, want) in [
            ("address 10.0.0.1/24", "10.0.0.1", true),
            ("Address=10.0.0.1\n", "10.0.0.1", true),
            ("IPADDR=\"10.0.0.1\"", "10.0.0.1", true),
            ("- 10.0.0.1/24", "10.0.0.1", true),
            ("nameserver 10.0.0.1.", "10.0.0.1", true),
            ("address 10.0.0.12", "10.0.0.1", false),
            ("address 110.0.0.1", "10.0.0.1", false),
            ("address 10.0.0.1.5", "10.0.0.1", false),
            ("host-a", "host", false),
            ("HOSTNAME=host", "host", true),
        ] {
            assert_eq!(has_token(text, word), want, "{word} in {text:?}");
        }
    }

    #[test]
    fn a_reboot_must_leave_bytes_mtimes_and_backups_as_they_were() {
        let kept = |p: &str, b: &str, m: Option<i64>| (p.to_owned(), b.as_bytes().to_vec(), m);
        let before = vec![
            kept("etc/hostname", "a\n", Some(100)),
            kept("etc/shadow", "root:x\n", Some(100)),
            kept("var/lib/osconf/backup/1", "", None),
        ];
        let same = unchanged(&before, &before);
        assert_eq!(same.item.verdict, Verdict::Pass, "{same:?}");
        assert!(same.item.reason.contains("(2 with the same mtime)"), "{same:?}");
        for (after, says) in [
            (
                vec![
                    kept("etc/hostname", "a\n", Some(160)),
                    before[1].clone(),
                    before[2].clone(),
                ],
                "etc/hostname (its mtime)",
            ),
            (
                vec![
                    kept("etc/hostname", "b\n", Some(100)),
                    before[1].clone(),
                    before[2].clone(),
                ],
                "etc/hostname (its bytes)",
            ),
            (
                [before.clone(), vec![kept("var/lib/osconf/backup/2", "", None)]].concat(),
                "var/lib/osconf/backup/2 (new)",
            ),
            (before[1..].to_vec(), "etc/hostname (gone)"),
        ] {
            let c = unchanged(&before, &after);
            assert_eq!(c.item.verdict, Verdict::Fail, "{says}");
            assert!(c.found.contains(says) && c.item.reason.contains(says), "{c:?}");
        }
    }

    #[test]
    fn seconds_with_one_decimal() {
        assert_eq!(seconds(std::time::Duration::from_millis(12_345)), "12.3 s");
        assert_eq!(seconds(std::time::Duration::from_millis(99)), "0.0 s");
    }

    #[test]
    fn a_hash_is_named_by_its_scheme_only() {
        assert_eq!(scheme("$6$abc$def"), "$6$…");
        assert_eq!(scheme("!$6$abc$def"), "\"!\": locked");
        assert_eq!(scheme("*"), "\"*\": locked");
        assert_eq!(scheme(""), "empty");
    }
}
