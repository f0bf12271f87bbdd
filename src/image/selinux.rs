//! SELinux labels for the paths `image prepare` writes through libguestfs: on a root whose
//! `/etc/selinux/config` says `SELINUX=enforcing` or `permissive`, each file, link and directory
//! written gets the `security.selinux` label its policy's `file_contexts` gives it — what
//! `setfiles` (virt-customize's `--selinux-relabel`) would set, for just those paths, so the image
//! needs no `/.autorelabel` (a relabel of everything at first boot, and a reboot). A policy that
//! is missing or that this module cannot read is said in a note, never a guess.
//!
//! The lookup is libselinux's (`label_file.c`): the spec files read in order (`file_contexts`,
//! then `file_contexts.local`), the specs without regex characters moved after the others, the
//! last spec whose regex (anchored `^` + spec + `$`) and file type match wins, `<<none>>` means
//! no label; the path first rewritten by `file_contexts.subs`, then `.subs_dist` (an alias's
//! first matching line from the end: `/etc/systemd/system` → `/usr/lib/systemd/system`). It runs
//! here, not through the appliance's `setfiles` (guestfish `setfiles`/`selinux-relabel`): Debian's
//! and Ubuntu's appliances have no `setfiles` (policycoreutils is not among their packages), and
//! the guest's own would run the image's code. The policy is read from the image, so it is
//! hostile: read through `System` (bounded), every regex compiled with bounds (`regex`).

mod regex;

use std::cell::OnceCell;

use self::regex::Refused;
use crate::system::{Kind, System};

/// One label to set: the path in the root, its context, and whether it is a link (its own label,
/// not its target's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub path: String,
    pub context: String,
    pub link: bool,
}

struct Spec {
    /// `file_contexts:12`, for messages.
    at: String,
    pattern: String,
    kind: Option<Kind>,
    context: String,
    regex: OnceCell<Result<regex::Regex, Refused>>,
}

/// A policy's file contexts, ready for lookups.
struct Contexts {
    /// In lookup order: the first that matches wins.
    specs: Vec<Spec>,
    /// `file_contexts.subs` then `.subs_dist`, each (alias, path) in the order tried.
    subs: [Vec<(String, String)>; 2],
}

/// The labels for `paths` (each with what it is) under the root's SELinux policy, and what to say
/// of them: how many were labeled by which policy, or why none (no SELinux, or a note why not).
pub fn labels(sys: &System, paths: &[(String, Kind)]) -> crate::system::Result<(Vec<Label>, Option<String>)> {
    let Some(config) = sys.read_text("/etc/selinux/config")? else {
        return Ok((Vec::new(), None));
    };
    // The first line that sets it, as libselinux's `selinux_getenforcemode` reads it.
    let value = |key: &str| {
        config
            .lines()
            .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().to_owned())
    };
    let mode = value("SELINUX").unwrap_or_default();
    if !["enforcing", "permissive"]
        .iter()
        .any(|m| mode.eq_ignore_ascii_case(m))
    {
        return Ok((Vec::new(), None));
    }
    let unlabeled = |why: String| {
        Ok((
            Vec::new(),
            Some(format!(
                "SELINUX={mode} in /etc/selinux/config, but {why}: the files written are not \
                 labeled (create /.autorelabel in the image to relabel everything at its first boot)"
            )),
        ))
    };
    let name = value("SELINUXTYPE").unwrap_or_else(|| "targeted".into());
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"_-.".contains(&b);
    if name.is_empty() || name.starts_with('.') || name.len() > 255 || !name.bytes().all(plain) {
        return unlabeled(format!("SELINUXTYPE={name:?} is not a policy's name"));
    }
    let dir = format!("/etc/selinux/{name}/contexts/files");
    let base = format!("{dir}/file_contexts");
    let Some(main) = sys.read_text(&base)? else {
        return unlabeled(format!("its policy has no {base}"));
    };
    let local = sys.read_text(&format!("{base}.local"))?.unwrap_or_default();
    let subs = sys.read_text(&format!("{base}.subs"))?.unwrap_or_default();
    let dist = sys.read_text(&format!("{base}.subs_dist"))?.unwrap_or_default();
    let local_name = format!("{base}.local");
    let files = [
        (base.as_str(), main.as_str()),
        (local_name.as_str(), local.as_str()),
    ];
    let contexts = match Contexts::parse(&files, [subs.as_str(), dist.as_str()]) {
        Ok(c) => c,
        Err(e) => return unlabeled(e.0),
    };
    let mut out = Vec::new();
    for (path, kind) in paths {
        match contexts.lookup(path, *kind) {
            Ok(Some(context)) => out.push(Label {
                path: path.clone(),
                context: context.to_owned(),
                link: *kind == Kind::Link,
            }),
            Ok(None) => {}
            Err(e) => return unlabeled(e.0),
        }
    }
    let said = format!(
        "SELinux ({mode}): {} of the paths written labeled as policy {name}'s {base} says",
        out.len()
    );
    Ok((out, Some(said)))
}

impl Contexts {
    /// Reads the spec files `files` ((name, text), in order) and the substitution files `subs`.
    fn parse(files: &[(&str, &str)], subs: [&str; 2]) -> Result<Contexts, Refused> {
        let (mut regexes, mut exact) = (Vec::new(), Vec::new());
        for (name, text) in files {
            for (i, line) in text.lines().enumerate() {
                let at = format!("{name}:{}", i + 1);
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let words: Vec<&str> = line.split_whitespace().collect();
                let (pattern, kind, context) = match words[..] {
                    [p, c] => (p, None, c),
                    [p, k, c] => match kind_of(k) {
                        Some(kind) => (p, Some(kind), c),
                        None => return Err(Refused(format!("{at}: file type {k:?}"))),
                    },
                    _ => return Err(Refused(format!("{at}: not PATTERN [TYPE] CONTEXT"))),
                };
                let spec = Spec {
                    at,
                    // libselinux anchors the spec as it is, without a group.
                    pattern: format!("^{pattern}$"),
                    kind,
                    context: context.to_owned(),
                    regex: OnceCell::new(),
                };
                match has_meta(pattern) {
                    true => regexes.push(spec),
                    false => exact.push(spec),
                }
            }
        }
        regexes.extend(exact);
        regexes.reverse();
        let subs = subs.map(|text| {
            let mut list: Vec<(String, String)> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    Some((w.next()?.to_owned(), w.next()?.to_owned()))
                })
                .collect();
            // libselinux prepends each line to its list: the last line is tried first.
            list.reverse();
            list
        });
        Ok(Contexts { specs: regexes, subs })
    }

    /// The context of `path` (a `kind`), `None` for no label; a spec that cannot be compiled is
    /// an error naming its file and line.
    fn lookup(&self, path: &str, kind: Kind) -> Result<Option<&str>, Refused> {
        let mut key = path.to_owned();
        for list in &self.subs {
            if let Some(s) = substitute(list, &key) {
                key = s;
            }
        }
        for spec in &self.specs {
            if spec.kind.is_some_and(|k| k != kind) {
                continue;
            }
            let regex = spec
                .regex
                .get_or_init(|| regex::Regex::new(&spec.pattern))
                .as_ref()
                .map_err(|e| Refused(format!("{}: {e}", spec.at)))?;
            if regex.is_match(key.as_bytes()) {
                return Ok((spec.context != "<<none>>").then_some(spec.context.as_str()));
            }
        }
        Ok(None)
    }
}

/// `path` with the first alias in `list` that is it or one of its parents replaced, as
/// libselinux's `selabel_sub` does.
fn substitute(list: &[(String, String)], path: &str) -> Option<String> {
    list.iter().find_map(|(alias, real)| {
        let rest = path.strip_prefix(alias.as_str())?;
        match rest.as_bytes().first() {
            None => Some(real.clone()),
            Some(b'/') if real == "/" => Some(rest.to_owned()),
            Some(b'/') => Some(format!("{real}{rest}")),
            Some(_) => None,
        }
    })
}

/// A spec's file type.
fn kind_of(word: &str) -> Option<Kind> {
    Some(match word {
        "--" => Kind::File,
        "-d" => Kind::Dir,
        "-l" => Kind::Link,
        "-b" | "-c" | "-p" | "-s" => Kind::Other,
        _ => return None,
    })
}

/// Whether a spec has a regex character outside a `\` escape (libselinux's `spec_hasMetaChars`).
fn has_meta(pattern: &str) -> bool {
    let mut bytes = pattern.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'.' | b'^' | b'$' | b'?' | b'*' | b'+' | b'|' | b'[' | b'(' | b'{' => return true,
            b'\\' => {
                bytes.next();
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_matching_spec_wins_exact_paths_over_regexes_local_over_the_policy() {
        let main = "# comment\n\
            /.*\t\tsystem_u:object_r:default_t:s0\n\
            /usr/sbin(/.*)?\tsystem_u:object_r:bin_t:s0\n\
            /usr/lib/systemd/system(/.*)?\tsystem_u:object_r:systemd_unit_file_t:s0\n\
            /usr/sbin/osconf\t--\tsystem_u:object_r:exact_t:s0\n\
            /usr/sbin/x.*\t-l\tsystem_u:object_r:link_t:s0\n\
            /usr/sbin/none\t<<none>>\n\
            /opt/a\tsystem_u:object_r:exact_t:s0\n\
            /opt/.*\tsystem_u:object_r:later_regex_t:s0\n";
        let local = "/srv(/.*)?\tsystem_u:object_r:local_t:s0\n";
        let c = Contexts::parse(
            &[("fc", main), ("fc.local", local)],
            [
                "",
                "/sbin /usr/sbin\n/etc/systemd/system /usr/lib/systemd/system\n",
            ],
        )
        .unwrap();
        let got = |p: &str, k: Kind| c.lookup(p, k).unwrap().unwrap_or("(none)").to_owned();
        assert_eq!(
            got("/usr/sbin/osconf", Kind::File),
            "system_u:object_r:exact_t:s0"
        );
        assert_eq!(got("/usr/sbin/osconf", Kind::Link), "system_u:object_r:bin_t:s0");
        assert_eq!(got("/usr/sbin/xy", Kind::Link), "system_u:object_r:link_t:s0");
        assert_eq!(got("/usr/sbin/xy", Kind::File), "system_u:object_r:bin_t:s0");
        assert_eq!(got("/sbin/ip", Kind::File), "system_u:object_r:bin_t:s0");
        assert_eq!(
            got("/etc/systemd/system/osconf.service", Kind::File),
            "system_u:object_r:systemd_unit_file_t:s0"
        );
        assert_eq!(got("/usr/sbin/none", Kind::File), "(none)");
        // An exact spec wins over a later regex.
        assert_eq!(got("/opt/a", Kind::File), "system_u:object_r:exact_t:s0");
        assert_eq!(got("/srv/x", Kind::Dir), "system_u:object_r:local_t:s0");
        assert_eq!(got("/etc/x", Kind::Dir), "system_u:object_r:default_t:s0");
        assert_eq!(
            substitute(&[("/a".into(), "/".into())], "/a/b").as_deref(),
            Some("/b")
        );
        assert_eq!(substitute(&[("/a".into(), "/b".into())], "/ab"), None);
    }

    #[test]
    fn a_root_says_whether_its_files_are_labeled_and_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let ask = || {
            labels(
                &System::probe(r).unwrap(),
                &[("/usr/sbin/osconf".into(), Kind::File)],
            )
            .unwrap()
        };
        assert_eq!(ask(), (vec![], None), "no /etc/selinux/config");
        std::fs::create_dir_all(r.join("etc/selinux/targeted/contexts/files")).unwrap();
        let config = |text: &str| std::fs::write(r.join("etc/selinux/config"), text).unwrap();
        config("SELINUX=disabled\nSELINUXTYPE=targeted\n");
        assert_eq!(ask(), (vec![], None));
        config("# SELINUX=enforcing\nSELINUX=Enforcing\n");
        let (none, note) = ask();
        assert!(none.is_empty());
        let note = note.unwrap();
        assert!(
            note.contains("its policy has no /etc/selinux/targeted/contexts/files/file_contexts")
                && note.contains("/.autorelabel"),
            "{note}"
        );
        config("SELINUX=permissive\nSELINUXTYPE=../../x\n");
        assert!(
            ask()
                .1
                .unwrap()
                .contains("SELINUXTYPE=\"../../x\" is not a policy's name")
        );
        config("SELINUX=permissive\nSELINUXTYPE=targeted\n");
        let fc = r.join("etc/selinux/targeted/contexts/files/file_contexts");
        std::fs::write(&fc, "/usr/sbin(/.*)?\tsystem_u:object_r:bin_t:s0\n").unwrap();
        let (labels, note) = ask();
        assert_eq!(
            labels,
            [Label {
                path: "/usr/sbin/osconf".into(),
                context: "system_u:object_r:bin_t:s0".into(),
                link: false
            }]
        );
        assert_eq!(
            note.unwrap(),
            "SELinux (permissive): 1 of the paths written labeled as policy targeted's \
             /etc/selinux/targeted/contexts/files/file_contexts says"
        );
        // A spec osconf cannot compile: no label at all, said with its line.
        std::fs::write(&fc, "/.*\tsystem_u:object_r:default_t:s0\n/usr/(?=s)\tx\n").unwrap();
        let (labels, note) = ask();
        assert!(labels.is_empty());
        assert!(note.unwrap().contains("file_contexts:2: (? at byte"));
    }

    #[test]
    fn a_spec_file_osconf_cannot_read_is_named_with_its_line() {
        let e = Contexts::parse(&[("fc", "/a\n")], ["", ""]).err().unwrap();
        assert_eq!(e.0, "fc:1: not PATTERN [TYPE] CONTEXT");
        let e = Contexts::parse(&[("fc", "/a -x ctx\n")], ["", ""]).err().unwrap();
        assert_eq!(e.0, "fc:1: file type \"-x\"");
        let c = Contexts::parse(&[("fc", "/.*\tctx_a\n/usr/(?<=x)y\tctx_b\n")], ["", ""]).unwrap();
        let e = c.lookup("/usr/y", Kind::File).unwrap_err();
        assert!(e.0.starts_with("fc:2: (? at byte"), "{e}");
    }
}
