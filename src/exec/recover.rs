//! Recovery from a run cut short (power cut, kill -9, panic): the journal it left is read as osconf
//! writes it ([`Journal::parse`]), and the run is rolled back — or forward, when every file it lists
//! is in its new state — before anything else, by [`recover`]; [`pending`] says the same for `plan`,
//! changing nothing. Both start from one prologue, [`load`]: read (bounded, a regular file only),
//! parse, look once at each listed file (bounded bytes hashed), decide.
//!
//! Rolling back needs no knowledge of how far the run got: a file still in the state the run found
//! is left alone, one in the state the run left is put back (from its backup, whose hash must match:
//! a backup not yet flushed when the power went is never restored, and no rename can have happened
//! before it was flushed). A file in any third state was changed by something else since, or the
//! journal lies: as for any journal osconf could not have written, nothing is done, and the
//! journal is set aside (`journal.rejected.<time>`, the newest few kept) for a person to read, with
//! a warning that names it and its line; the run then goes on against the files as they are.

use std::ffi::OsStr;
use std::fmt;
use std::fs::File as StdFile;
use std::io;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::durable::{self, Saved};
use super::journal::{self, File, JOURNAL, Journal, Parsed, Refused, Was, hash};
use super::pwlock::PWD_LOCK;
use crate::error::Error;
use crate::root::{self, Entry, Root};

/// The most bytes one recovery reads to hash: each listed file once, and each backup it restores.
/// The files osconf writes are small configuration files (and its own binary).
pub const MAX_HASHED: u64 = 64 << 20;

/// How many refused journals are kept aside; older ones go.
const KEEP_REFUSED: usize = 3;

/// What recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// Rolled back: for the log.
    Done(String),
    /// Rolled forward: the run had put every file in place (os.conf perhaps gone, its status
    /// record not written yet). What it changed, for a record of it.
    Completed {
        text: String,
        /// `write /etc/hosts`, `link …`, `remove …`, as the status record lists them.
        files: Vec<String>,
        backup: Option<String>,
    },
    /// The journal was not one osconf could have written: set aside, never acted on. A warning.
    Refused(String),
}

impl fmt::Display for Recovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recovered::Done(s) | Recovered::Completed { text: s, .. } => f.write_str(s),
            Recovered::Refused(s) => write!(f, "warning: {s}"),
        }
    }
}

/// What rolling one file back takes.
enum Fix {
    Nothing,
    /// The run created it (or the password files' lock osconf made).
    Remove,
    /// Put back from its backup (or the link it was), shown with where that comes from.
    Put(Saved, String),
}

/// A journal left behind, read and checked, with what each of its files needs.
struct Loaded {
    parsed: Parsed,
    /// Every file listed is in its new state (osconf's own lock perhaps still there) and the
    /// journal is whole: roll forward.
    finished: bool,
    /// That lock, when rolling forward finds it still there: removed with the journal.
    leftover_lock: Option<Entry>,
    /// Per file (in the journal's order): its entry, or `None` when its directory is gone (one the
    /// run made, so nothing was there), and the fix.
    fixes: Vec<Option<(Entry, Fix)>>,
}

/// The prologue of [`recover`] and [`pending`]: `None` when no journal is there; `Err(Refused)`
/// for one osconf could not have written; an I/O error reading the root is an error.
fn load(root: &Root) -> Result<Option<Result<Loaded, Refused>>, Error> {
    let why = |e: io::Error| Error::failed(None, format!("reading the journal of an interrupted run: {e}"));
    let Some(bytes) = read_journal(root).map_err(why)? else {
        return Ok(None);
    };
    let parsed = match bytes.and_then(|b| Journal::parse(&b)) {
        Ok(p) => p,
        Err(refused) => return Ok(Some(Err(refused))),
    };
    let mut budget = MAX_HASHED;
    let mut now = Vec::new();
    for (f, &line) in parsed.journal.files.iter().zip(&parsed.lines) {
        let entry = root::absent_as_none(root.entry(&f.path))
            .map_err(|e| Error::failed(None, format!("{}: {e}", shown(root, &f.path))))?;
        let state = match &entry {
            Some(entry) => state(entry, &mut budget)
                .map_err(|e| Error::failed(None, format!("{}: {e}", shown(root, &f.path))))?,
            None => Some(Was::Absent),
        };
        match state {
            Some(s) => now.push((entry, s)),
            None => return Ok(Some(Err(over_budget(line)))),
        }
    }
    // osconf's own lock may still be there: its removal comes after the renames' flush, and a
    // power cut can lose it while os.conf's removal (flushed on its own file system) holds.
    let finished = parsed.whole
        && parsed
            .journal
            .files
            .iter()
            .zip(&now)
            .all(|(f, (_, s))| *s == f.becomes || is_own_lock(f, s));
    let mut leftover_lock = None;
    if finished {
        leftover_lock = parsed
            .journal
            .files
            .iter()
            .zip(&mut now)
            .find(|(f, (_, s))| *s != f.becomes && is_own_lock(f, s))
            .and_then(|(_, (entry, _))| entry.take());
    }
    let mut fixes = Vec::new();
    if !finished {
        for ((f, &line), (entry, now)) in parsed.journal.files.iter().zip(&parsed.lines).zip(now) {
            match assess(root, f, entry, &now, &mut budget) {
                Ok(fix) => fixes.push(fix),
                Err(Some(why)) => return Ok(Some(Err(Refused { line, why }))),
                Err(None) => return Ok(Some(Err(over_budget(line)))),
            }
        }
    }
    Ok(Some(Ok(Loaded {
        parsed,
        finished,
        leftover_lock,
        fixes,
    })))
}

/// The lock file osconf made for the run: an empty file, until the run removed it.
fn is_own_lock(f: &File, now: &Was) -> bool {
    f.path == PWD_LOCK && *now == Was::File(hash(b""))
}

fn over_budget(line: usize) -> Refused {
    Refused {
        line,
        why: format!(
            "rolling it back would read more than {} MiB; the files osconf writes are far smaller",
            MAX_HASHED >> 20
        ),
    }
}

/// The journal's bytes: `None` when absent; `Err(Refused)` when it is not a regular file of at
/// most [`journal::MAX_JOURNAL`] bytes (never followed through a link, never blocking).
fn read_journal(root: &Root) -> io::Result<Option<Result<Vec<u8>, Refused>>> {
    let Some(entry) = root::absent_as_none(root.entry(JOURNAL))? else {
        return Ok(None);
    };
    let Some(st) = root::absent_as_none(durable::stat(&entry))? else {
        return Ok(None);
    };
    let refused = |e: io::Error| Refused {
        line: 0,
        why: e.to_string(),
    };
    if let Err(e) = root::check_regular(&st, journal::MAX_JOURNAL) {
        return Ok(Some(Err(refused(e))));
    }
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let file = StdFile::from(rustix::fs::openat(&entry.dir, &entry.name, flags, Mode::empty())?);
    Ok(Some(
        root::read_bounded(file, journal::MAX_JOURNAL).map_err(refused),
    ))
}

/// What is at the entry now, hashing at most `budget` more bytes (`None` once it is spent). A FIFO,
/// a directory or a device is no state osconf leaves: it shows as a link to nothing, which no
/// journal records (`Journal::parse` refuses an empty target).
fn state(entry: &Entry, budget: &mut u64) -> io::Result<Option<Was>> {
    let Some(st) = root::absent_as_none(durable::stat(entry))? else {
        return Ok(Some(Was::Absent));
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(&entry.dir, &entry.name, Vec::new())?;
            Ok(Some(Was::Link(target.into_bytes())))
        }
        FileType::RegularFile => {
            let size = st.st_size as u64;
            if size > *budget {
                return Ok(None);
            }
            *budget -= size;
            let flags =
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
            let file = StdFile::from(rustix::fs::openat(&entry.dir, &entry.name, flags, Mode::empty())?);
            Ok(Some(Was::File(hash(&root::read_bounded(file, size)?))))
        }
        // Never a state the journal records: refused as a third state.
        _ => Ok(Some(Was::Link(Vec::new()))),
    }
}

/// Decides what rolling `f` back takes, changing nothing. `Err(Some(why))`: the file is in a state
/// the run cannot have left; `Err(None)`: the budget is spent.
fn assess(
    root: &Root,
    f: &File,
    entry: Option<Entry>,
    now: &Was,
    budget: &mut u64,
) -> Result<Option<(Entry, Fix)>, Option<String>> {
    let Some(entry) = entry else {
        return match f.was {
            Was::Absent => Ok(None),
            _ => Err(Some(format!(
                "{}: its directory is gone",
                journal::shown(&f.path)
            ))),
        };
    };
    let own_lock = is_own_lock(f, now);
    let fix = match &f.was {
        was if was == now => Fix::Nothing,
        _ if *now != f.becomes && !own_lock => {
            return Err(Some(format!(
                "{} is neither what the run found there nor what it wrote: changed since by something else",
                journal::shown(&f.path)
            )));
        }
        Was::Absent => Fix::Remove,
        Was::Link(t) => {
            use std::os::unix::ffi::OsStringExt as _;
            let target = std::path::PathBuf::from(std::ffi::OsString::from_vec(t.clone()));
            let from = format!("the link to {} it was", target.display());
            Fix::Put(Saved::Link(target), from)
        }
        Was::File(h) => {
            let backup = f.backup.as_deref().expect("parse: a file has its backup");
            let not_whole = || {
                let (path, backup) = (journal::shown(&f.path), journal::shown(backup));
                Some(format!("{path}: its backup {backup} is missing or not whole"))
            };
            let saved = root.entry(backup).and_then(|e| bounded_save(&e, budget));
            match saved {
                Ok(Some(Some(saved @ Saved::File { .. }))) if matches!(&saved, Saved::File { bytes, .. } if hash(bytes) == *h) => {
                    Fix::Put(saved, shown(root, backup))
                }
                Ok(None) => return Err(None),
                _ => return Err(not_whole()),
            }
        }
    };
    Ok(Some((entry, fix)))
}

/// [`durable::save`] within the budget: `None` when it is spent.
fn bounded_save(entry: &Entry, budget: &mut u64) -> io::Result<Option<Option<Saved>>> {
    if let Some(st) = root::absent_as_none(durable::stat(entry))? {
        let size = st.st_size as u64;
        if size > *budget {
            return Ok(None);
        }
        *budget -= size;
    }
    durable::save(entry).map(Some)
}

/// Rolls back (or forward) the run a journal left behind, if any; sets aside a journal osconf
/// could not have written. An error is what could not be put back (the journal then stays, for the
/// next try).
pub fn recover(root: &Root) -> Result<Option<Recovered>, Error> {
    let loaded = match load(root)? {
        None => return Ok(None),
        Some(Err(refused)) => return set_aside(root, &refused).map(|s| Some(Recovered::Refused(s))),
        Some(Ok(loaded)) => loaded,
    };
    let journal = &loaded.parsed.journal;
    let flush = |what: &str| {
        rustix::fs::syncfs(root.fd()).map_err(|e| Error::failed(None, format!("flushing {what}: {e}")))
    };
    if loaded.finished {
        if let Some(lock) = &loaded.leftover_lock {
            durable::remove(lock)
                .map_err(|e| Error::failed(None, format!("removing {}: {e}", shown(root, PWD_LOCK))))?;
        }
        remove_journal(root)?;
        flush("the end of an interrupted run")?;
        let files = journal
            .files
            .iter()
            .filter(|f| f.path != PWD_LOCK)
            .map(|f| match &f.becomes {
                Was::Absent => format!("remove {}", f.path),
                Was::Link(t) => format!("link {} -> {}", f.path, String::from_utf8_lossy(t)),
                Was::File(_) => format!("write {}", f.path),
            })
            .collect();
        return Ok(Some(Recovered::Completed {
            text: format!(
                "an interrupted run had put all its {} files in place: completed (its journal removed)",
                journal.files.len()
            ),
            files,
            backup: journal.backup_dir.as_deref().map(|d| shown(root, d)),
        }));
    }
    let mut failures = Vec::new();
    let mut restored = 0;
    for (f, fix) in journal.files.iter().zip(loaded.fixes).rev() {
        let Some((entry, fix)) = fix else { continue };
        match roll_back(f, &entry, fix) {
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
        return Err(Error::failed(None, failures.join("; ")));
    }
    flush("the rollback of an interrupted run")?;
    // Only what the run made: its backups, then (below) its directories when empty.
    for b in journal.files.iter().filter_map(|f| f.backup.as_deref()) {
        if let Some(entry) = root::absent_as_none(root.entry(b))
            .map_err(|e| Error::failed(None, format!("{}: {e}", shown(root, b))))?
        {
            durable::remove(&entry)
                .map_err(|e| Error::failed(None, format!("removing {}: {e}", shown(root, b))))?;
        }
    }
    remove_journal(root)?;
    for d in journal.dirs.iter().rev() {
        // Removed only when empty: a directory holding something else stays.
        let _ = root.remove_empty_dir(d);
    }
    flush("the end of the rollback")?;
    Ok(Some(Recovered::Done(format!(
        "an interrupted run was rolled back ({restored} of {} files put back)",
        journal.files.len()
    ))))
}

fn remove_journal(root: &Root) -> Result<(), Error> {
    let entry = root
        .entry(JOURNAL)
        .map_err(|e| Error::failed(None, format!("{}: {e}", shown(root, JOURNAL))))?;
    durable::remove(&entry)
        .map_err(|e| Error::failed(None, format!("removing {}: {e}", shown(root, JOURNAL))))
}

/// Puts one file back as it was; `true` when something had to be done. Its temp file goes, by the
/// one name `durable` gives it.
fn roll_back(f: &File, entry: &Entry, fix: Fix) -> io::Result<bool> {
    if f.tmp.is_some() {
        durable::discard(entry, &durable::temp_name(&entry.name))?;
    }
    match fix {
        Fix::Nothing => Ok(false),
        Fix::Remove => durable::remove(entry).map(|()| true),
        Fix::Put(saved, _) => {
            let tmp = durable::stage(entry, &saved)?;
            durable::commit(entry, &tmp)?;
            Ok(true)
        }
    }
}

/// Where a refused journal goes: beside it, named by the time, with a counter after the names
/// already `kept` from the same second so that the newest always sorts last (and is kept longest).
fn aside_name(kept: &[std::ffi::OsString]) -> String {
    let base = format!("journal.rejected.{}", crate::clock::stamp());
    let last = kept
        .iter()
        .filter_map(|k| k.to_str()?.strip_prefix(base.as_str()))
        .map(|rest| rest.strip_prefix('-').map_or(Some(1), |n| n.parse::<u32>().ok()))
        .max();
    match last {
        None => base,
        Some(n) => format!("{base}-{:03}", n.unwrap_or(999).saturating_add(1)),
    }
}

/// The journal's directory in the root.
fn journal_dir() -> &'static str {
    JOURNAL.rsplit_once('/').expect("a directory").0
}

/// The refused journals already kept, oldest first, and the name the next one gets: what
/// [`set_aside`] does and what [`pending`] says it will do.
fn aside(root: &Root) -> Result<(Vec<std::ffi::OsString>, String), Error> {
    let dir = journal_dir();
    let mut kept: Vec<_> = root
        .list(dir)
        .map_err(|e| Error::io(&root.host_path(dir), &e))?
        .into_iter()
        .filter(|n| n.as_encoded_bytes().starts_with(b"journal.rejected."))
        .collect();
    kept.sort();
    let name = aside_name(&kept);
    Ok((kept, name))
}

/// Moves a refused journal aside for a person (the oldest beyond [`KEEP_REFUSED`] removed) and
/// returns the warning to give.
fn set_aside(root: &Root, refused: &Refused) -> Result<String, Error> {
    let entry = root
        .entry(JOURNAL)
        .map_err(|e| Error::failed(None, format!("{}: {e}", shown(root, JOURNAL))))?;
    let dir = journal_dir();
    let (kept, name) = aside(root)?;
    for old in kept.iter().take((kept.len() + 1).saturating_sub(KEEP_REFUSED)) {
        // A regular file osconf set aside; anything else planted there stays (unlinkat refuses a
        // directory).
        let _ = rustix::fs::unlinkat(&entry.dir, old.as_os_str(), AtFlags::empty());
    }
    rustix::fs::renameat(&entry.dir, &entry.name, &entry.dir, OsStr::new(&name))
        .map_err(|e| Error::failed(None, format!("setting {} aside: {e}", shown(root, JOURNAL))))?;
    rustix::fs::fsync(&entry.dir)
        .map_err(|e| Error::failed(None, format!("flushing {}: {e}", shown(root, dir))))?;
    Ok(format!(
        "{} is not a journal osconf could have written ({refused}): nothing in it was done; it is kept \
         as {} for a person to read, and this run goes on against the files as they are",
        shown(root, JOURNAL),
        shown(root, &format!("{dir}/{name}"))
    ))
}

/// For `plan`: what the next apply's [`recover`] will do first, changing nothing; `None` when no
/// run was cut short.
pub fn pending(root: &Root) -> Result<Option<String>, Error> {
    let journal = shown(root, JOURNAL);
    let loaded = match load(root)? {
        None => return Ok(None),
        Some(Err(refused)) => {
            return Ok(Some(format!(
                "{journal} is not a journal osconf could have written ({refused}): the next apply does \
                 nothing it says, sets it aside as {} and warns",
                shown(root, &format!("{}/{}", journal_dir(), aside(root)?.1))
            )));
        }
        Some(Ok(loaded)) => loaded,
    };
    let files = &loaded.parsed.journal.files;
    if loaded.finished {
        return Ok(Some(format!(
            "a run was cut short ({journal} is there) after it had put all its {} files in place: the \
             next apply only removes its journal",
            files.len()
        )));
    }
    let mut fixes = Vec::new();
    for (f, fix) in files.iter().zip(&loaded.fixes).rev() {
        let path = shown(root, &f.path);
        match fix {
            None | Some((_, Fix::Nothing)) => {}
            Some((_, Fix::Remove)) => fixes.push(format!("removes {path} (that run made it)")),
            Some((_, Fix::Put(_, from))) => fixes.push(format!("puts back {path} from {from}")),
        }
    }
    let what = match fixes.is_empty() {
        true => "none of its files changed yet".to_owned(),
        false => fixes.join("; "),
    };
    Ok(Some(format!(
        "a run was cut short ({journal} is there): the next apply first rolls it back ({} files listed): \
         {what}; removes its backups, temp files and new directories",
        files.len()
    )))
}

/// Removes a directory osconf made in this run and everything in it, through the root's handles,
/// never below a mount point (a filesystem mounted inside it is left, and named).
pub fn remove_tree(root: &Root, dir: &str) -> io::Result<()> {
    let Some(top) = root.lstat(dir)? else {
        return Ok(());
    };
    if FileType::from_raw_mode(top.st_mode) != FileType::Directory {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            shown(root, dir)
        )));
    }
    let parent = dir
        .rsplit_once('/')
        .map_or("/", |(p, _)| if p.is_empty() { "/" } else { p });
    if root.lstat(parent)?.map(|st| st.st_dev) != Some(top.st_dev) {
        return Err(io::Error::other(format!("{} is a mount point", shown(root, dir))));
    }
    remove_below(root, dir, top.st_dev)
}

fn remove_below(root: &Root, dir: &str, dev: u64) -> io::Result<()> {
    for name in root.list(dir)? {
        let path = format!("{dir}/{}", name.to_string_lossy());
        let entry = root.entry(&path)?;
        let st = durable::stat(&entry)?;
        if st.st_dev != dev {
            return Err(io::Error::other(format!(
                "{} is a mount point",
                shown(root, &path)
            )));
        }
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            remove_below(root, &path, dev)?;
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
