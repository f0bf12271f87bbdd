//! Executor: applies a plan to a root, all or nothing, every path resolved inside the root (see
//! `root`). Durability costs a constant, not a flush per file: every new file goes to a temp name
//! beside its destination and every original to this run's backup directory, then one flush of each
//! filesystem touched; then every rename, and one flush more; os.conf and the journal are removed
//! last, only once everything else has succeeded, and os.conf's directory flushed. When any step fails, every step already
//! done is undone in reverse order, and what could not be undone is named with its backup.

mod durable;
mod hooks;
pub(crate) mod journal;
mod lock;
mod pwlock;
mod recover;

pub use hooks::CRASHED;
pub use journal::MAX_JOURNAL;

/// Whether `bytes` is a journal osconf could have written (for the seed corpus' test): `Err` says
/// which line and why not.
#[doc(hidden)]
pub fn journal_accepted(bytes: &[u8]) -> Result<(), Error> {
    journal::Journal::parse(bytes)
        .map(drop)
        .map_err(|r| Error::bad(r.to_string()))
}
pub use lock::{WAIT, lock};
pub use pwlock::{PWD_LOCK, PWD_WAIT, PwdLock, clean_leftovers as clean_pwd_leftovers, lock_passwords};
pub use recover::{MAX_HASHED, Recovered, pending, recover, remove_tree};

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::error::Error;
use crate::error::Outcome;
use crate::plan::{FileOp, LiveAction, Mode, Plan};
use crate::platform;
use crate::root::{self, ConfFile, Entry, Root};
use crate::timing::{Step, Steps};
use durable::{Meta, Saved};
pub(crate) use hooks::crash_point;
use journal::{JOURNAL, Journal, Was};

/// Where backups go, below the root: one directory per run, named by its UTC time, readable by root
/// only (it holds a copy of /etc/shadow).
pub const BACKUP_DIR: &str = "var/lib/osconf/backup";

/// Mode of the backup directories osconf creates.
const BACKUP_MODE: u32 = 0o700;

#[derive(Debug)]
pub struct Options {
    pub live: bool,
    /// os.conf, removed after success; it may sit on another partition than the root.
    pub config_file: Option<ConfFile>,
    /// UTC time stamp naming this run's backup directory.
    pub stamp: String,
    /// The password files' lock, taken before they were read for the plan (see `pwlock`).
    pub pwd_lock: Option<PwdLock>,
}

/// A failed step, named, and what could not be undone (ideally nothing).
#[derive(Debug)]
pub struct ExecError {
    pub step: String,
    pub error: io::Error,
    pub rollback_failures: Vec<String>,
    /// The steps that ended before the failure, timed.
    pub timings: Vec<Step>,
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.error)?;
        for failure in &self.rollback_failures {
            write!(f, "\nrollback: {failure}")?;
        }
        Ok(())
    }
}

impl ExecError {
    /// What became of the system: every change put back, or how many could not be.
    pub fn outcome(&self) -> Outcome {
        match self.rollback_failures.len() {
            0 => Outcome::RolledBack,
            n => Outcome::NotRolledBack(n),
        }
    }
}

/// What applying did, for the log.
#[derive(Debug, Default)]
pub struct Report {
    pub backup_dir: Option<PathBuf>,
    pub steps: Vec<String>,
    /// Where the time went: each part of the apply, timed (see `timing`).
    pub timings: Steps,
}

/// One file of the plan (or os.conf), ready to be put in place: what was there, and the temp name
/// holding what comes (none for a removal).
struct Staged {
    /// Where it is on this machine, for messages.
    shown: PathBuf,
    entry: Entry,
    saved: Option<Saved>,
    tmp: Option<OsString>,
    /// Its backup, in the root.
    backup: Option<String>,
}

enum Undo {
    /// `staged[i]` has a temp file not renamed yet.
    Discard(usize),
    /// `staged[i]` was renamed over or removed: put back what was there.
    Restore(usize),
    /// A file or directory osconf created (a backup, a parent directory).
    Created {
        shown: PathBuf,
        entry: Entry,
        dir: bool,
    },
    /// The journal: removed (after a flush of everything undone) when the rollback ends.
    Journal(Entry),
    Live(platform::Previous),
}

struct Executor<'a> {
    root: &'a Root,
    stamp: &'a str,
    staged: Vec<Staged>,
    undo: Vec<Undo>,
    journal: Journal,
    /// The journal was removed: the renames are the new configuration, and a rollback must write it
    /// again first.
    committed: bool,
    /// One open directory per filesystem written to, to flush each once.
    filesystems: Vec<(u64, OwnedFd)>,
    report: Report,
}

pub fn apply(plan: &Plan, root: &Root, opts: &Options) -> Result<Report, ExecError> {
    let mut ex = Executor {
        root,
        stamp: &opts.stamp,
        staged: Vec::new(),
        undo: Vec::new(),
        journal: Journal::default(),
        committed: false,
        filesystems: Vec::new(),
        report: Report::default(),
    };
    let step = "rolling back an interrupted run";
    match recover::recover(root) {
        Ok(Some(done)) => ex.report.steps.push(done.to_string()),
        Ok(None) => {}
        Err(e) => {
            return Err(ExecError {
                step: step.to_owned(),
                error: io::Error::other(e),
                rollback_failures: Vec::new(),
                timings: Vec::new(),
            });
        }
    }
    // The caller rolled back any run cut short and timed that: this run's steps begin here.
    ex.report.timings.restart();
    match ex.run(plan, opts) {
        Ok(()) => Ok(ex.report),
        Err((step, error)) => {
            let rollback_failures = ex.rollback();
            ex.report.timings.lap("roll back");
            Err(ExecError {
                step,
                error,
                rollback_failures,
                timings: ex.report.timings.list,
            })
        }
    }
}

type StepError = (String, io::Error);

fn at(step: &str) -> impl FnOnce(io::Error) -> StepError + '_ {
    move |e| (step.to_owned(), e)
}

impl Executor<'_> {
    fn run(&mut self, plan: &Plan, opts: &Options) -> Result<(), StepError> {
        let step = "writing the journal";
        // The journal's own directory first: a run cut short before the journal leaves at most that.
        let mut dirs = Vec::new();
        self.missing_dirs(JOURNAL, &mut dirs).map_err(at(step))?;
        let for_journal = dirs.len();
        for op in &plan.ops {
            self.survey(op, &mut dirs).map_err(at(&describe(op)))?;
        }
        self.journal.dirs = dirs.clone();
        if opts.pwd_lock.as_ref().is_some_and(PwdLock::created) {
            // Made for this run: a run cut short has it removed with the rest.
            self.journal.files.push(journal::File {
                path: PWD_LOCK.to_owned(),
                tmp: None,
                was: Was::Absent,
                backup: None,
                becomes: Was::Absent,
            });
        }
        for d in &dirs[..for_journal] {
            self.make_dir(d).map_err(at(step))?;
        }
        self.write_journal().map_err(at(step))?;
        crash_point(step);
        self.report.timings.lap("write the journal");
        for d in &dirs[for_journal..] {
            let step = format!("creating {d}");
            self.make_dir(d).map_err(at(&step))?;
        }
        for (i, op) in plan.ops.iter().enumerate() {
            let step = describe(op);
            self.stage(i, op).map_err(at(&step))?;
            crash_point(&step);
        }
        self.report.timings.lap("write new files and backups");
        let step = "flushing the new files and the backups";
        self.flush().map_err(at(step))?;
        crash_point(step);
        self.report.timings.lap("flush new files and backups");
        for (i, op) in plan.ops.iter().enumerate() {
            let step = describe(op);
            self.commit(i).map_err(at(&step))?;
            crash_point(&step);
            self.report.steps.push(step);
        }
        self.report.timings.lap("rename into place");
        let step = "flushing the renames";
        self.flush().map_err(at(step))?;
        crash_point(step);
        self.report.timings.lap("flush the renames");
        if opts.live {
            for action in &plan.live {
                let step = format!("live: {}", crate::plan::describe_live(action));
                self.live(action).map_err(at(&step))?;
                self.report.steps.push(step);
                self.report
                    .timings
                    .lap(format!("live: {}", crate::plan::name_live(action)));
            }
        }
        if let Some(lock) = &opts.pwd_lock {
            let step = format!("removing {PWD_LOCK}");
            lock.remove_file().map_err(at(&step))?;
        }
        // Every file is in place and on disk: from here a journal left behind is rolled forward
        // (every file it lists is as the run left it), so os.conf may go before it, and one flush
        // of os.conf's directory ends the run.
        let removal = match &opts.config_file {
            Some(conf) => {
                let step = format!("removing {}", conf.path.display());
                self.remove_config(conf).map_err(at(&step))?;
                crash_point(&step);
                self.report.steps.push(step);
                self.report.timings.lap("remove os.conf");
                Some(conf.dir.try_clone().map_err(at("removing the journal"))?)
            }
            None => None,
        };
        let step = "removing the journal";
        let journal_dir = self.remove_journal().map_err(at(step))?;
        crash_point(step);
        let step = "flushing the removals";
        durable::sync_dir(&removal.unwrap_or(journal_dir)).map_err(at(step))?;
        crash_point(step);
        self.report.timings.lap("remove the journal, flush");
        Ok(())
    }

    /// Reads what `op` replaces and decides the names: its temp, its backup, the directories to make
    /// (added to `dirs`, outermost first). Nothing is written yet.
    fn survey(&mut self, op: &FileOp, dirs: &mut Vec<String>) -> io::Result<()> {
        let path = op.path();
        if !journal::manages(path) {
            // A plan never writes there: the journal of such a run would be refused.
            return Err(io::Error::other(format!(
                "{path} is not among the files osconf manages"
            )));
        }
        if !matches!(op, FileOp::Remove { .. }) {
            self.missing_dirs(path, dirs)?;
        }
        let entry = match root::absent_as_none(self.root.entry(path))? {
            Some(entry) => entry,
            // Its directory is to be made: nothing there yet; the entry is opened once it exists.
            None if dirs.iter().any(|d| Some(d.as_str()) == parent(path)) => Entry {
                dir: self.root.fd().try_clone_to_owned()?,
                name: OsString::new(),
            },
            None => return Err(self.root.entry(path).expect_err("still absent")),
        };
        let saved = match entry.name.is_empty() {
            true => None,
            false => durable::save(&entry)?,
        };
        let backup = match &saved {
            Some(_) => {
                let dest = format!("{}{path}", self.backup_dir()?);
                self.missing_dirs(&dest, dirs)?;
                Some(dest)
            }
            None => None,
        };
        let tmp = match op {
            FileOp::Remove { .. } => None,
            _ => Some(durable::temp_name(OsStr::new(
                path.rsplit('/').next().unwrap_or(path),
            ))),
        };
        self.journal.files.push(journal::File {
            path: path.to_owned(),
            tmp: tmp.as_ref().map(|t| t.to_string_lossy().into_owned()),
            was: Was::of(saved.as_ref()),
            backup: backup.clone(),
            becomes: Was::becomes(op),
        });
        self.staged.push(Staged {
            shown: self.root.host_path(path),
            entry,
            saved,
            tmp,
            backup,
        });
        Ok(())
    }

    /// This run's backup directory in the root, chosen at the first backup: new for each run, even
    /// for two runs in the same second, so no backup overwrites another.
    fn backup_dir(&mut self) -> io::Result<String> {
        if let Some(dir) = &self.journal.backup_dir {
            return Ok(dir.clone());
        }
        let mut name = format!("/{BACKUP_DIR}/{}", self.stamp);
        let mut n = 1;
        while self.root.lstat(&name)?.is_some() {
            n += 1;
            name = format!("/{BACKUP_DIR}/{}-{n}", self.stamp);
        }
        self.report.backup_dir = Some(self.root.host_path(&name));
        self.journal.backup_dir = Some(name.clone());
        Ok(name)
    }

    /// Adds the directories missing above `path` (and not planned yet) to `dirs`, outermost first.
    fn missing_dirs(&self, path: &str, dirs: &mut Vec<String>) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut dir = parent(path);
        while let Some(d) = dir {
            if dirs.iter().any(|p| p == d) || self.root.lstat(d)?.is_some() {
                break;
            }
            missing.push(d.to_owned());
            dir = parent(d);
        }
        dirs.extend(missing.into_iter().rev());
        Ok(())
    }

    /// Writes the journal (its directory exists by now).
    fn write_journal(&mut self) -> io::Result<()> {
        let entry = self.root.entry(JOURNAL)?;
        self.track(&entry.dir)?;
        journal::write(&entry, &self.journal)?;
        self.undo.push(Undo::Journal(entry));
        Ok(())
    }

    /// Removes the journal (not flushed: one left behind lists files all in their new state, and is
    /// rolled forward); returns its directory.
    fn remove_journal(&mut self) -> io::Result<OwnedFd> {
        let Some(Undo::Journal(entry)) = self.undo.iter().find(|u| matches!(u, Undo::Journal(_))) else {
            unreachable!("the journal was written first");
        };
        durable::remove(entry)?;
        self.committed = true;
        entry.dir.try_clone()
    }

    /// Creates one directory of the run: 0700 in the backup tree (it holds a copy of /etc/shadow).
    fn make_dir(&mut self, d: &str) -> io::Result<()> {
        let entry = self.root.entry(d)?;
        let mode = if d.starts_with(&format!("/{BACKUP_DIR}")) {
            BACKUP_MODE
        } else {
            0o755
        };
        durable::make_dir(&entry, mode)?;
        // Undone from here: whatever fails next, the rollback removes it.
        let (dir, name) = (entry.dir.try_clone(), entry.name.clone());
        self.undo.push(Undo::Created {
            shown: self.root.host_path(d),
            entry,
            dir: true,
        });
        let entry = Entry { dir: dir?, name };
        durable::set_dir_mode(&entry, mode)?;
        self.track(&entry.dir)
    }

    /// Copies the original of `staged[i]` to its backup and writes what comes under its temp name.
    fn stage(&mut self, i: usize, op: &FileOp) -> io::Result<()> {
        if self.staged[i].entry.name.is_empty() {
            // Its directory exists now.
            self.staged[i].entry = self.root.entry(op.path())?;
        }
        self.track(&self.staged[i].entry.dir.try_clone()?)?;
        let s = &self.staged[i];
        if let (Some(saved), Some(backup)) = (&s.saved, &s.backup) {
            let entry = self.root.entry(backup)?;
            durable::create(&entry, saved)?;
            let shown = self.root.host_path(backup);
            self.undo.push(Undo::Created {
                shown,
                entry,
                dir: false,
            });
        }
        let s = &self.staged[i];
        // `Mode::SameAs`: the other file as it is now (a disabled copy is written before its
        // original is removed).
        let like = match op {
            FileOp::Write {
                mode: Mode::SameAs(other),
                ..
            } => durable::save(&self.root.entry(other)?)?,
            _ => None,
        };
        let made = match op {
            FileOp::Write { contents, .. } => {
                let meta = meta_for(op, s.saved.as_ref(), like.as_ref());
                Some(durable::stage_file(&s.entry, contents, &meta)?)
            }
            FileOp::Symlink { target, .. } => Some(durable::stage_link(&s.entry, OsStr::new(target))?),
            FileOp::Remove { .. } => None,
        };
        if made.is_some() {
            self.undo.push(Undo::Discard(i));
        }
        Ok(())
    }

    /// Renames `staged[i]`'s temp over its destination, or removes it. Either is atomic: when it
    /// fails, nothing happened.
    fn commit(&mut self, i: usize) -> io::Result<()> {
        let s = &self.staged[i];
        match &s.tmp {
            Some(tmp) => durable::commit(&s.entry, tmp)?,
            None => durable::remove(&s.entry)?,
        }
        self.undo.push(Undo::Restore(i));
        Ok(())
    }

    /// Removes os.conf through its directory's handle (flushed by the run's last step), kept in
    /// memory first so that a removal whose flush fails is undone like any other step.
    fn remove_config(&mut self, conf: &ConfFile) -> io::Result<()> {
        let entry = Entry {
            dir: conf.dir.try_clone()?,
            name: conf.name.clone(),
        };
        let saved = durable::save(&entry)?;
        self.staged.push(Staged {
            shown: conf.path.clone(),
            entry,
            saved,
            tmp: None,
            backup: None,
        });
        let i = self.staged.len() - 1;
        self.commit(i)
    }

    fn live(&mut self, action: &LiveAction) -> io::Result<()> {
        self.undo.push(Undo::Live(platform::snapshot(action)?));
        platform::apply(action)
    }

    /// Remembers the filesystem `dir` is on, to flush it.
    fn track(&mut self, dir: &OwnedFd) -> io::Result<()> {
        let dev = rustix::fs::fstat(dir)?.st_dev;
        if self.filesystems.iter().all(|(d, _)| *d != dev) {
            self.filesystems.push((dev, dir.try_clone()?));
        }
        Ok(())
    }

    /// One `syncfs` per filesystem written to: the new files, their directories' entries and the
    /// backups all reach the disk together.
    fn flush(&self) -> io::Result<()> {
        for (_, fd) in &self.filesystems {
            hooks::fsync_fault(fd)?;
            rustix::fs::syncfs(fd)?;
        }
        Ok(())
    }

    /// Whether `shown` is this run's backup directory, one below or above it.
    fn holds_backups(&self, shown: &std::path::Path) -> bool {
        let Some(backups) = &self.report.backup_dir else {
            return false;
        };
        shown.starts_with(backups) || backups.starts_with(shown)
    }

    /// Undoes every step in reverse, flushes, and returns what could not be undone. After the
    /// commit the journal is written again first, so that a crash while undoing is undone too.
    fn rollback(&mut self) -> Vec<String> {
        let mut failures = Vec::new();
        let mut not_put_back = false;
        if self.committed {
            let rewrite = self.root.entry(JOURNAL).and_then(|entry| {
                journal::write(&entry, &self.journal)?;
                self.flush()
            });
            if let Err(e) = rewrite {
                failures.push(format!("writing the journal again: {e}"));
            }
        }
        while let Some(undo) = self.undo.pop() {
            let (what, result) = match &undo {
                Undo::Discard(i) => {
                    let s = &self.staged[*i];
                    let tmp = s.tmp.as_deref().expect("a temp to discard");
                    (temp_shown(s, tmp), durable::discard(&s.entry, tmp))
                }
                Undo::Restore(i) => (
                    restore_shown(self.root, &self.staged[*i]),
                    restore(&self.staged[*i]),
                ),
                // Backups (and the directories above them) stay while a file could not be put
                // back: the message names them, and the next apply restores from them.
                Undo::Created { shown, .. } if not_put_back && self.holds_backups(shown) => continue,
                Undo::Created { shown, entry, dir } => {
                    let result = match dir {
                        true => durable::remove_dir(entry),
                        false => durable::remove(entry),
                    };
                    (format!("could not remove {}", shown.display()), result)
                }
                Undo::Journal(entry) => {
                    // Kept when a file could not be put back: the next apply tries again from the
                    // backups. A failed flush alone is reported below; the journal goes.
                    if not_put_back {
                        continue;
                    }
                    let _ = self.flush();
                    let result = durable::remove(entry);
                    (
                        format!("could not remove {}", self.root.host_path(JOURNAL).display()),
                        result,
                    )
                }
                Undo::Live(previous) => (format!("live state {previous:?}"), platform::restore(previous)),
            };
            if let Err(e) = result {
                not_put_back |= matches!(undo, Undo::Restore(_));
                failures.push(format!("{what}: {e}"));
            }
        }
        if let Err(e) = self.flush() {
            failures.push(format!("flushing the rollback: {e}"));
        }
        failures
    }
}

fn restore(s: &Staged) -> io::Result<()> {
    match &s.saved {
        Some(saved) => {
            let tmp = durable::stage(&s.entry, saved)?;
            durable::commit(&s.entry, &tmp).inspect_err(|_| {
                let _ = durable::discard(&s.entry, &tmp);
            })?;
            // os.conf may be on a filesystem of its own, which the root's flushes do not reach.
            durable::sync_dir(&s.entry.dir)
        }
        None => durable::remove(&s.entry),
    }
}

fn restore_shown(root: &Root, s: &Staged) -> String {
    match (&s.saved, &s.backup) {
        (Some(_), Some(backup)) => format!(
            "could not put back {} (its original is in {})",
            s.shown.display(),
            root.host_path(backup).display()
        ),
        (Some(_), None) => format!("could not put back {}", s.shown.display()),
        (None, _) => format!("could not remove the new {}", s.shown.display()),
    }
}

fn temp_shown(s: &Staged, tmp: &OsStr) -> String {
    let dir = s.shown.parent().unwrap_or(&s.shown);
    format!("could not remove the temp file {}", dir.join(tmp).display())
}

/// `/etc/a/b` → `/etc/a`; `None` for `/etc` and `/`.
fn parent(path: &str) -> Option<&str> {
    let (parent, _) = path.trim_end_matches('/').rsplit_once('/')?;
    (!parent.is_empty()).then_some(parent)
}

/// The mode, owner and attributes a written file gets: a replaced file's own (its mode overridden by
/// `Mode::Exact`), or the plan's mode for a new file; with `Mode::SameAs`, those of `like`.
fn meta_for(op: &FileOp, saved: Option<&Saved>, like: Option<&Saved>) -> Meta {
    let FileOp::Write { mode, .. } = op else {
        return Meta::new(0o644);
    };
    match (mode, saved) {
        (Mode::SameAs(_), _) => match like {
            Some(Saved::File { meta, .. }) => meta.clone(),
            _ => Meta::new(0o600),
        },
        (Mode::Default(_), Some(Saved::File { meta, .. })) => meta.clone(),
        (Mode::Exact(m), Some(Saved::File { meta, .. })) => Meta {
            mode: *m,
            ..meta.clone()
        },
        (Mode::Default(m) | Mode::Exact(m), _) => Meta::new(*m),
    }
}

fn describe(op: &FileOp) -> String {
    match op {
        FileOp::Write { path, .. } => format!("writing {path}"),
        FileOp::Symlink { path, target } => format!("linking {path} to {target}"),
        FileOp::Remove { path } => format!("removing {path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_of_target_paths() {
        assert_eq!(parent("/etc/a/b"), Some("/etc/a"));
        assert_eq!(parent("/etc"), None);
        assert_eq!(parent("/"), None);
    }
}
