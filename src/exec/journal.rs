//! The journal of a run, `/var/lib/osconf/journal` in the root: what the run is about to replace,
//! what each file was (absent, a link and its target, or a file and the SHA-256 of its bytes), where
//! its backup is, what the run leaves there, the temp names, the directories it creates. It is
//! written before the first temp file, flushed with them, and removed once every rename is on disk
//! and os.conf is gone.
//!
//! A run cut short (power cut, kill -9, panic) leaves it behind, and the next apply rolls that run
//! back before anything else: the old configuration comes back, and os.conf, which is removed only
//! after every rename is on disk, is still there, so the same run is then done again, whole. A run
//! cut after that point (every file listed in its new state, os.conf perhaps gone) is rolled
//! forward instead: only the journal goes. Rolling back needs no
//! knowledge of how far the run got: a file whose bytes still hash to the original's is left alone,
//! any other is put back from its backup (whose hash must match too: a backup not yet flushed when
//! the power went is never restored, and no rename can have happened before it was flushed).

use std::fmt::Write as _;
use std::io;

use sha2::{Digest as _, Sha256};

use super::durable::{self, Saved};
use crate::root::{self, Entry, Root};

/// Where the journal is, in the root.
pub const JOURNAL: &str = "/var/lib/osconf/journal";

const MAGIC: &str = "osconf-journal 1";

/// What a path held before the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Was {
    Absent,
    Link(Vec<u8>),
    File([u8; 32]),
}

impl Was {
    /// What `op` leaves at its path.
    pub fn becomes(op: &crate::plan::FileOp) -> Was {
        use crate::plan::FileOp;
        match op {
            FileOp::Write { contents, .. } => Was::File(hash(contents.as_ref())),
            FileOp::Symlink { target, .. } => Was::Link(target.as_bytes().to_vec()),
            FileOp::Remove { .. } => Was::Absent,
        }
    }

    /// Whether `now` (what is at the path) is this.
    fn is(&self, now: Option<&Saved>) -> bool {
        match (self, now) {
            (Was::Absent, None) => true,
            (Was::Link(t), Some(Saved::Link(n))) => n.as_os_str().as_encoded_bytes() == t.as_slice(),
            (Was::File(h), Some(Saved::File { bytes, .. })) => hash(bytes) == *h,
            _ => false,
        }
    }

    fn render(&self) -> String {
        match self {
            Was::Absent => "absent".to_owned(),
            Was::Link(t) => format!("link:{}", enc(t)),
            Was::File(h) => format!("file:{}", hex(h)),
        }
    }

    fn parse(word: &str) -> Option<Was> {
        match word.split_once(':') {
            None if word == "absent" => Some(Was::Absent),
            Some(("link", t)) => dec(t).map(Was::Link),
            Some(("file", h)) => unhex(h).map(Was::File),
            _ => None,
        }
    }

    pub fn of(saved: Option<&Saved>) -> Was {
        match saved {
            None => Was::Absent,
            Some(Saved::Link(t)) => Was::Link(t.as_os_str().as_encoded_bytes().to_vec()),
            Some(Saved::File { bytes, .. }) => Was::File(hash(bytes)),
        }
    }
}

/// One file of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    /// The temp name beside it, when the run writes one.
    pub tmp: Option<String>,
    pub was: Was,
    /// Where its original is kept, in the root.
    pub backup: Option<String>,
    /// What the run leaves there (`None` in a journal of an older osconf: never rolled forward).
    pub becomes: Option<Was>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Journal {
    /// This run's backup directory, in the root.
    pub backup_dir: Option<String>,
    pub files: Vec<File>,
    /// Directories the run creates, outermost first.
    pub dirs: Vec<String>,
}

pub fn hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Journal {
    pub fn render(&self) -> String {
        let mut out = format!("{MAGIC}\n");
        if let Some(dir) = &self.backup_dir {
            let _ = writeln!(out, "backup {}", enc(dir.as_bytes()));
        }
        for d in &self.dirs {
            let _ = writeln!(out, "dir {}", enc(d.as_bytes()));
        }
        for f in &self.files {
            let opt = |o: &Option<String>| o.as_ref().map_or("-".to_owned(), |s| enc(s.as_bytes()));
            let _ = writeln!(
                out,
                "file {} {} {} {} {}",
                enc(f.path.as_bytes()),
                opt(&f.tmp),
                f.was.render(),
                opt(&f.backup),
                f.becomes.as_ref().map_or("-".to_owned(), Was::render)
            );
        }
        out.push_str("end\n");
        out
    }

    /// Reads a journal; lines that do not parse (a journal cut short by a power cut) are skipped:
    /// rolling back only what is listed is still right, since nothing was renamed before the whole
    /// journal was on disk.
    pub fn parse(text: &str) -> Journal {
        let mut j = Journal::default();
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["backup", dir] => j.backup_dir = dec_string(dir),
                ["dir", d] => j.dirs.extend(dec_string(d)),
                ["file", path, tmp, was, backup, rest @ ..] if rest.len() <= 1 => {
                    let opt = |w: &str| {
                        if w == "-" {
                            Some(None)
                        } else {
                            dec_string(w).map(Some)
                        }
                    };
                    // A line an older osconf wrote has no fifth word.
                    let becomes = match rest.first() {
                        None | Some(&"-") => Some(None),
                        Some(w) => Was::parse(w).map(Some),
                    };
                    if let (Some(path), Some(tmp), Some(was), Some(backup), Some(becomes)) =
                        (dec_string(path), opt(tmp), Was::parse(was), opt(backup), becomes)
                    {
                        j.files.push(File {
                            path,
                            tmp,
                            was,
                            backup,
                            becomes,
                        });
                    }
                }
                _ => {}
            }
        }
        j
    }
}

/// Percent-encodes every byte but a safe few, so that a name with a space or a newline (a hostile
/// image can hold one) stays one word on one line.
fn enc(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"/._-+@:,=~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02x}");
        }
    }
    out
}

fn dec(word: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(word.len());
    let mut bytes = word.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = (bytes.next()? as char).to_digit(16)?;
            let lo = (bytes.next()? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

fn dec_string(word: &str) -> Option<String> {
    String::from_utf8(dec(word)?).ok()
}

fn hex(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Rolls back the run a journal left behind, if any; returns what it did for the log, or what could
/// not be put back (the journal then stays, for the next try).
pub fn recover(root: &Root) -> Result<Option<String>, String> {
    let text = match root.read(JOURNAL) {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("reading the journal of an interrupted run: {e}")),
    };
    let journal = Journal::parse(&text);
    if finished(root, &text, &journal).map_err(|e| format!("reading what an interrupted run left: {e}"))? {
        let entry = root
            .entry(JOURNAL)
            .map_err(|e| format!("{}: {e}", shown(root, JOURNAL)))?;
        durable::remove(&entry).map_err(|e| format!("removing {}: {e}", shown(root, JOURNAL)))?;
        rustix::fs::syncfs(root.fd()).map_err(|e| format!("flushing the end of an interrupted run: {e}"))?;
        return Ok(Some(format!(
            "an interrupted run had put all its {} files in place: completed (its journal removed)",
            journal.files.len()
        )));
    }
    let mut failures = Vec::new();
    let mut restored = 0;
    for f in journal.files.iter().rev() {
        match roll_back(root, f) {
            Ok(true) => restored += 1,
            Ok(false) => {}
            Err(e) => failures.push(match &f.backup {
                Some(b) => format!(
                    "could not put back {} (its original is in {}): {e}",
                    shown(root, &f.path),
                    shown(root, b)
                ),
                None => format!("could not put back {}: {e}", shown(root, &f.path)),
            }),
        }
    }
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    let flush = |what: &str| rustix::fs::syncfs(root.fd()).map_err(|e| format!("flushing {what}: {e}"));
    flush("the rollback of an interrupted run")?;
    if let Some(dir) = &journal.backup_dir {
        remove_tree(root, dir).map_err(|e| format!("removing {}: {e}", shown(root, dir)))?;
    }
    let entry = root
        .entry(JOURNAL)
        .map_err(|e| format!("{}: {e}", shown(root, JOURNAL)))?;
    durable::remove(&entry).map_err(|e| format!("removing {}: {e}", shown(root, JOURNAL)))?;
    for d in journal.dirs.iter().rev() {
        // Removed only when empty: a directory holding something else stays.
        if let Ok(entry) = root.entry(d) {
            let _ = durable::remove_dir(&entry);
        }
    }
    flush("the end of the rollback")?;
    Ok(Some(format!(
        "an interrupted run was rolled back ({restored} of {} files put back)",
        journal.files.len()
    )))
}

/// Whether the run a journal describes had put every file in place (it was cut short after its last
/// rename reached the disk, maybe with os.conf already gone): it is then rolled forward, not back.
/// Never for a journal cut short itself, nor one of an older osconf (no new states).
fn finished(root: &Root, text: &str, journal: &Journal) -> io::Result<bool> {
    if !text.ends_with("end\n") {
        return Ok(false);
    }
    for f in &journal.files {
        let Some(becomes) = &f.becomes else {
            return Ok(false);
        };
        let now = match root::absent_as_none(root.entry(&f.path))? {
            Some(entry) => durable::save(&entry)?,
            None => None,
        };
        if !becomes.is(now.as_ref()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What rolling one file back takes.
enum Fix {
    Nothing,
    /// The run created it.
    Remove,
    /// Put back from its backup (or the link it was), shown with where that comes from.
    Put(Saved, String),
}

/// Decides what rolling `f` back takes, changing nothing; `None` when its directory is gone (one
/// the run created, so nothing was there).
fn assess(root: &Root, f: &File) -> io::Result<Option<(Entry, Fix)>> {
    let entry = match (root::absent_as_none(root.entry(&f.path))?, &f.was) {
        (Some(entry), _) => entry,
        (None, Was::Absent) => return Ok(None),
        (None, _) => return Err(io::Error::other("its directory is gone")),
    };
    let now = durable::save(&entry)?;
    let same = f.was.is(now.as_ref());
    let fix = match &f.was {
        _ if same => Fix::Nothing,
        Was::Absent => Fix::Remove,
        Was::Link(t) => {
            use std::os::unix::ffi::OsStringExt as _;
            let target = std::path::PathBuf::from(std::ffi::OsString::from_vec(t.clone()));
            let from = format!("the link to {} it was", target.display());
            Fix::Put(Saved::Link(target), from)
        }
        Was::File(h) => {
            let backup = f
                .backup
                .as_deref()
                .ok_or_else(|| io::Error::other("no backup recorded"))?;
            match durable::save(&root.entry(backup)?)? {
                Some(saved @ Saved::File { .. }) if matches!(&saved, Saved::File { bytes, .. } if hash(bytes) == *h) => {
                    Fix::Put(saved, shown(root, backup))
                }
                _ => return Err(io::Error::other("its backup is missing or not whole")),
            }
        }
    };
    Ok(Some((entry, fix)))
}

/// Puts one file back as it was; `true` when something had to be done.
fn roll_back(root: &Root, f: &File) -> io::Result<bool> {
    let Some((entry, fix)) = assess(root, f)? else {
        return Ok(false);
    };
    if let Some(tmp) = &f.tmp {
        durable::discard(&entry, std::ffi::OsStr::new(tmp))?;
    }
    match fix {
        Fix::Nothing => Ok(false),
        Fix::Remove => durable::remove(&entry).map(|()| true),
        Fix::Put(saved, _) => {
            let tmp = durable::stage(&entry, &saved)?;
            durable::commit(&entry, &tmp)?;
            Ok(true)
        }
    }
}

/// For `plan`: what the next apply's [`recover`] will do first, changing nothing; `None` when no run
/// was cut short.
pub fn pending(root: &Root) -> Result<Option<String>, String> {
    let text = match root.read(JOURNAL) {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("reading the journal of an interrupted run: {e}")),
    };
    let journal = Journal::parse(&text);
    if finished(root, &text, &journal).map_err(|e| format!("reading what an interrupted run left: {e}"))? {
        return Ok(Some(format!(
            "a run was cut short ({} is there) after it had put all its {} files in place: the next \
             apply only removes its journal",
            shown(root, JOURNAL),
            journal.files.len()
        )));
    }
    let mut fixes = Vec::new();
    for f in journal.files.iter().rev() {
        let path = shown(root, &f.path);
        match assess(root, f) {
            Ok(None | Some((_, Fix::Nothing))) => {}
            Ok(Some((_, Fix::Remove))) => fixes.push(format!("removes {path} (that run made it)")),
            Ok(Some((_, Fix::Put(_, from)))) => fixes.push(format!("puts back {path} from {from}")),
            Err(e) => fixes.push(format!("cannot put back {path}: {e} (apply will fail)")),
        }
    }
    let what = match fixes.is_empty() {
        true => "none of its files changed yet".to_owned(),
        false => fixes.join("; "),
    };
    Ok(Some(format!(
        "a run was cut short ({} is there): the next apply first rolls it back ({} files listed): {what}; \
         removes its backups, temp files and new directories",
        shown(root, JOURNAL),
        journal.files.len()
    )))
}

/// Removes a directory osconf made and everything in it, through the root's handles.
pub fn remove_tree(root: &Root, dir: &str) -> io::Result<()> {
    for name in root.list(dir)? {
        let path = format!("{dir}/{}", name.to_string_lossy());
        let entry = root.entry(&path)?;
        let st = durable::stat(&entry)?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
            remove_tree(root, &path)?;
        } else {
            durable::remove(&entry)?;
        }
    }
    match root::absent_as_none(root.entry(dir))? {
        Some(entry) => match durable::remove_dir(&entry) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
        None => Ok(()),
    }
}

fn shown(root: &Root, path: &str) -> String {
    root.host_path(path).display().to_string()
}

/// Writes the journal (not flushed: the run's first flush takes it with the temp files).
pub fn write(entry: &Entry, journal: &Journal) -> io::Result<()> {
    durable::discard(entry, &entry.name)?;
    durable::create(
        entry,
        &Saved::File {
            bytes: journal.render().into_bytes(),
            meta: durable::Meta::new(0o600),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_odd_names() {
        let j = Journal {
            backup_dir: Some("/var/lib/osconf/backup/X".into()),
            files: vec![
                File {
                    path: "/etc/a b\nc".into(),
                    tmp: Some(".a b\nc.osconf-new".into()),
                    was: Was::File(hash(b"x")),
                    backup: Some("/var/lib/osconf/backup/X/etc/a b\nc".into()),
                    becomes: Some(Was::File(hash(b"y"))),
                },
                File {
                    path: "/etc/l".into(),
                    tmp: None,
                    was: Was::Link(b"../x y".to_vec()),
                    backup: None,
                    becomes: Some(Was::Absent),
                },
                File {
                    path: "/etc/n".into(),
                    tmp: Some(".n.osconf-new".into()),
                    was: Was::Absent,
                    backup: None,
                    becomes: Some(Was::Link(b"/a b".to_vec())),
                },
            ],
            dirs: vec!["/etc/new".into()],
        };
        let text = j.render();
        assert_eq!(Journal::parse(&text), j);
        // Cut short: the whole lines before the cut still parse.
        let cut = &text[..text.find("file /etc/l").unwrap() + 8];
        assert_eq!(Journal::parse(cut).files.len(), 1);
        // An older osconf's line (no new state) parses, and is never rolled forward.
        let old = Journal::parse("file /etc/n .n.osconf-new absent -\nend\n");
        assert_eq!(old.files[0].becomes, None);
    }
}
