//! The journal of a run, `/var/lib/osconf/journal` in the root: what the run is about to replace,
//! what each file was (absent, a link and its target, or a file and the SHA-256 of its bytes), where
//! its backup is, what the run leaves there, the temp names, the directories it creates. It is
//! written before the first temp file, flushed with them, and removed once every rename is on disk
//! and os.conf is gone. Recovering from it is `recover.rs`.
//!
//! The journal lies in the root, which an image's author can edit: it is input, never a list of
//! commands. [`Journal::parse`] accepts only what [`Journal::render`] can produce for a plan the
//! executor accepts: the known version, lines in their order, words in their canonical encoding,
//! paths among the files osconf manages ([`manages`]), each once, the temp name `durable` derives
//! from the path, backups at `<this run's backup directory><path>`, directories that are parents of
//! what the run writes. Anything else is refused with its line.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::io;

use sha2::{Digest as _, Sha256};

use super::durable::{self, Saved};
use crate::error::Error;
use crate::root::Entry;

/// Where the journal is, in the root.
pub const JOURNAL: &str = "/var/lib/osconf/journal";

const MAGIC: &str = "osconf-journal 1";

/// The most a journal may weigh: a run lists a few dozen files, about 150 bytes each.
pub const MAX_JOURNAL: u64 = 1 << 20;

/// The longest path or link target a journal may name (Linux's `PATH_MAX`).
const MAX_PATH: usize = 4096;

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
    /// What the run leaves there.
    pub becomes: Was,
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
                f.becomes.render()
            );
        }
        out.push_str("end\n");
        out
    }

    /// Reads a journal as [`Journal::render`] writes it, and nothing else; with the number of
    /// the line of each file, and whether it is whole (its `end` line there). A power cut before
    /// the run's first flush can cut it anywhere: the whole lines before the cut must still be
    /// right, the cut one is left out (nothing was renamed before the journal was on disk).
    pub fn parse(bytes: &[u8]) -> Result<Parsed, Refused> {
        let refuse = |line: usize, why: String| Err(Refused { line, why });
        if let Some(at) = bytes
            .iter()
            .position(|&b| b != b'\n' && !(b' '..=b'~').contains(&b))
        {
            let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            return refuse(
                line,
                format!("byte {:#04x}: osconf writes printable ASCII only", bytes[at]),
            );
        }
        let text = std::str::from_utf8(bytes).expect("ASCII");
        let (lines, tail) = match text.rfind('\n') {
            Some(at) => (&text[..at], &text[at + 1..]),
            None => ("", text),
        };
        let mut p = Parsed::default();
        if lines.is_empty() && !text.starts_with('\n') {
            // Cut short in its first line: nothing of the run can have happened.
            return match MAGIC.starts_with(tail) {
                true => Ok(p),
                false => refuse(1, format!("not an osconf journal: it begins {:?}", short(tail))),
            };
        }
        let mut paths = BTreeSet::new();
        let mut ended = false;
        // What may come next: 0 the version, 1 the backup directory, 2 directories, 3 files.
        let mut stage = 0;
        for (i, line) in lines.split('\n').enumerate() {
            let n = i + 1;
            let bad = |why: Error| Refused {
                line: n,
                why: why.message,
            };
            if stage == 0 {
                if line != MAGIC {
                    return match line.strip_prefix("osconf-journal ") {
                        Some(v) => refuse(
                            n,
                            format!("unknown version {:?} (this osconf writes {MAGIC:?})", short(v)),
                        ),
                        None => refuse(n, format!("not an osconf journal: it begins {:?}", short(line))),
                    };
                }
                stage = 1;
                continue;
            }
            if ended {
                return refuse(n, "a line after `end`".to_owned());
            }
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["backup", dir] if stage == 1 => {
                    p.journal.backup_dir = Some(backup_dir(dir).map_err(bad)?);
                    stage = 2;
                }
                ["dir", dir] if stage <= 2 => {
                    p.journal.dirs.push(path(dir).map_err(bad)?);
                    stage = 2;
                }
                ["file", ..] if words.len() == 6 => {
                    let f = file(&words[1..], p.journal.backup_dir.as_deref()).map_err(bad)?;
                    if !paths.insert(f.path.clone()) {
                        return refuse(n, format!("{} listed twice", shown(&f.path)));
                    }
                    p.journal.files.push(f);
                    p.lines.push(n);
                    stage = 3;
                }
                ["end"] => ended = true,
                _ => return refuse(n, format!("not a line osconf writes here: {:?}", short(line))),
            }
        }
        if ended && !tail.is_empty() {
            return refuse(lines.split('\n').count() + 1, "a line after `end`".to_owned());
        }
        p.whole = ended;
        // Every directory the run made lies above something it wrote: a file, a backup, the journal.
        // A journal cut short may lack the file a directory was made for: such a one is left alone.
        let j = &mut p.journal;
        let made: Vec<&str> = j
            .files
            .iter()
            .flat_map(|f| [Some(f.path.as_str()), f.backup.as_deref()])
            .flatten()
            .chain([JOURNAL])
            .collect();
        let mut keep = Vec::new();
        for (i, d) in j.dirs.iter().enumerate() {
            let above = |p: &&str| {
                p.strip_prefix(d.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
            };
            keep.push(made.iter().any(above));
            if !keep[i] && p.whole {
                let line = 2 + i + usize::from(j.backup_dir.is_some());
                return refuse(line, format!("{} lies above nothing the run writes", shown(d)));
            }
            if j.dirs[..i].contains(d) {
                return refuse(
                    2 + i + usize::from(j.backup_dir.is_some()),
                    format!("{} listed twice", shown(d)),
                );
            }
        }
        let mut keep = keep.into_iter();
        j.dirs.retain(|_| keep.next().unwrap_or(false));
        if let Some(dir) = &j.backup_dir
            && p.whole
            && !j.dirs.contains(dir)
        {
            // A run always makes its own backup directory: one that was there is someone else's.
            return refuse(
                2,
                format!("{} is not among the directories the run made", shown(dir)),
            );
        }
        Ok(p)
    }
}

/// A journal read by [`Journal::parse`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub journal: Journal,
    /// The line of each of `journal.files`, for messages.
    pub lines: Vec<usize>,
    /// Its `end` line is there: the run wrote all of it.
    pub whole: bool,
}

/// Why a journal is not one osconf could have written: its line (1 is the first) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub line: usize,
    pub why: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => f.write_str(&self.why),
            n => write!(f, "line {n}: {}", self.why),
        }
    }
}

/// Whether `path` (absolute, clean) is a file osconf writes, the rule both the executor (a plan
/// that writes elsewhere is a bug, refused before anything is written) and a journal's reader hold:
/// `/etc` and `/usr/local/etc` (every renderer, the shared writers, each init system's files, the
/// password files' lock), files directly in ConnMan's `/var/lib/connman` (its provisioning files
/// live there, not in /etc), the binary install puts in place, and osconf's own state
/// (`last-applied.conf`, install's manifest and its copies) — never the journal or a backup.
pub fn manages(path: &str) -> bool {
    let below = |dir: &str| {
        path.strip_prefix(dir)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'))
    };
    below("/etc")
        || below("/usr/local/etc")
        || path
            .strip_prefix(crate::render::connman::DIR)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
        || path == crate::install::BINARY
        || path == crate::plan::LAST_APPLIED
        || path == crate::install::MANIFEST
        || below(crate::install::SAVED)
}

/// A name as the journal spells it (percent-encoded: one printable word), shortened, for a message:
/// a decoded name may hold a newline or an escape sequence.
pub fn shown(name: &str) -> String {
    short(&enc(name.as_bytes()))
}

/// The start of a word or line, for a message.
fn short(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// A word as [`enc`] writes it, decoded; any other spelling of the same bytes is refused.
fn word(w: &str) -> Result<String, Error> {
    dec_string(w)
        .filter(|s| enc(s.as_bytes()) == w)
        .ok_or_else(|| Error::bad(format!("{:?} is not a name as osconf encodes it", short(w))))
}

/// An absolute path without `.`, `..`, empty components or a trailing `/`.
fn path(w: &str) -> Result<String, Error> {
    let p = word(w)?;
    let clean = p.len() <= MAX_PATH
        && p.strip_prefix('/').is_some_and(|rest| {
            rest.split('/')
                .all(|c| !matches!(c, "" | "." | "..") && !c.contains('\0'))
        });
    match clean {
        true => Ok(p),
        false => Err(Error::bad(format!(
            "{} is not an absolute path without . or ..",
            shown(&p)
        ))),
    }
}

/// This run's backup directory: `/<BACKUP_DIR>/<UTC stamp>` or `…-<n>`, as the executor names it.
fn backup_dir(w: &str) -> Result<String, Error> {
    let p = path(w)?;
    match p.strip_prefix(&format!("/{}/", super::BACKUP_DIR)) {
        Some(stamp) if is_stamp(stamp) => Ok(p),
        _ => Err(Error::bad(format!(
            "{} is not a backup directory osconf names (/{}/<time>)",
            shown(&p),
            super::BACKUP_DIR
        ))),
    }
}

/// `20261201T111200Z`, maybe with `-2`…: what `clock::stamp` gives, and the executor's suffix.
fn is_stamp(s: &str) -> bool {
    let (stamp, n) = s.split_once('-').unwrap_or((s, "1"));
    let b = stamp.as_bytes();
    b.len() == 16
        && b.iter().enumerate().all(|(i, c)| match i {
            8 => *c == b'T',
            15 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
        && (1..=6).contains(&n.len())
        && n.bytes().all(|c| c.is_ascii_digit())
}

/// A `file` line's five words, checked against each other as the executor writes them.
fn file(words: &[&str], backup_dir: Option<&str>) -> Result<File, Error> {
    let [p, tmp, was, backup, becomes] = words else {
        unreachable!("five words")
    };
    let path = path(p)?;
    if !manages(&path) {
        return Err(Error::bad(format!(
            "{} is not a file osconf writes",
            shown(&path)
        )));
    }
    let state = |w: &str| {
        Was::parse(w)
            .filter(|s| {
                s.render() == w
                    && !matches!(s, Was::Link(t) if t.len() > MAX_PATH || t.is_empty() || t.contains(&0))
            })
            .ok_or_else(|| Error::bad(format!("{:?} is not a state osconf records", short(w))))
    };
    let (was, becomes) = (state(was)?, state(becomes)?);
    let name = path.rsplit('/').next().expect("a name");
    let tmp = match *tmp {
        "-" => None,
        w => {
            let want = super::durable::temp_name(std::ffi::OsStr::new(name));
            match word(w)? {
                t if std::ffi::OsStr::new(&t) == want => Some(t),
                t => {
                    let want = want.to_string_lossy();
                    return Err(Error::bad(format!(
                        "{} is not the temp name of {} ({})",
                        shown(&t),
                        shown(&path),
                        shown(&want)
                    )));
                }
            }
        }
    };
    // A removal has no temp file; everything else is written under one.
    if tmp.is_none() != (becomes == Was::Absent) {
        return Err(Error::bad(format!(
            "{}: its temp name does not fit what the run leaves there",
            shown(&path)
        )));
    }
    let backup = match *backup {
        "-" => None,
        w => Some(word(w)?),
    };
    // What was there is backed up, at its path below this run's backup directory.
    let want = (was != Was::Absent).then(|| backup_dir.map(|d| format!("{d}{path}")));
    match (&backup, want) {
        (None, None) => {}
        (Some(b), Some(Some(w))) if *b == w => {}
        (Some(b), _) => {
            return Err(Error::bad(format!(
                "{} is not where the run backs {} up",
                shown(b),
                shown(&path)
            )));
        }
        (None, Some(_)) => {
            return Err(Error::bad(format!(
                "{}: no backup of what was there",
                shown(&path)
            )));
        }
    }
    Ok(File {
        path,
        tmp,
        was,
        backup,
        becomes,
    })
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
mod tests;
