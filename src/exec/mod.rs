//! Executor: applies a plan to a root, all or nothing, every path resolved inside the root (see
//! `root`). Durability costs a constant, not a flush per file: every new file goes to a temp name
//! beside its destination and every original to this run's backup directory, then one flush of each
//! filesystem touched; then every rename, and one flush more; os.conf is removed last, only once
//! everything else has succeeded, and its directory flushed. When any step fails, every step already
//! done is undone in reverse order, and what could not be undone is named with its backup.

mod durable;
mod hooks;

pub use hooks::CRASHED;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::plan::{FileOp, LiveAction, Mode, Plan};
use crate::platform;
use crate::root::{ConfFile, Entry, Root};
use durable::{Meta, Saved};
use hooks::crash_point;

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
}

/// A failed step, named, and what could not be undone (ideally nothing).
#[derive(Debug)]
pub struct ExecError {
    pub step: String,
    pub error: io::Error,
    pub rollback_failures: Vec<String>,
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

/// What applying did, for the log.
#[derive(Debug, Default)]
pub struct Report {
    pub backup_dir: Option<PathBuf>,
    pub steps: Vec<String>,
}

/// One file of the plan (or os.conf), ready to be put in place: what was there, and the temp name
/// holding what comes (none for a removal).
struct Staged {
    /// Where it is on this machine, for messages.
    shown: PathBuf,
    entry: Entry,
    saved: Option<Saved>,
    tmp: Option<OsString>,
    backup: Option<PathBuf>,
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
    Live(platform::Previous),
}

struct Executor<'a> {
    root: &'a Root,
    stamp: &'a str,
    staged: Vec<Staged>,
    undo: Vec<Undo>,
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
        filesystems: Vec::new(),
        report: Report::default(),
    };
    match ex.run(plan, opts) {
        Ok(()) => Ok(ex.report),
        Err((step, error)) => {
            let rollback_failures = ex.rollback();
            Err(ExecError {
                step,
                error,
                rollback_failures,
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
        for op in &plan.ops {
            let step = describe(op);
            self.prepare(op).map_err(at(&step))?;
            crash_point(&step);
        }
        let step = "flushing the new files and the backups";
        self.flush().map_err(at(step))?;
        crash_point(step);
        for (i, op) in plan.ops.iter().enumerate() {
            let step = describe(op);
            self.commit(i).map_err(at(&step))?;
            crash_point(&step);
            self.report.steps.push(step);
        }
        let step = "flushing the renames";
        self.flush().map_err(at(step))?;
        crash_point(step);
        if opts.live {
            for action in &plan.live {
                let step = format!("live: {}", crate::plan::describe_live(action));
                self.live(action).map_err(at(&step))?;
                self.report.steps.push(step);
            }
        }
        if let Some(conf) = &opts.config_file {
            let step = format!("removing {}", conf.path.display());
            self.remove_config(conf).map_err(at(&step))?;
            crash_point(&step);
            self.report.steps.push(step);
        }
        Ok(())
    }

    /// Backs up what `op` replaces, creates missing directories, and writes the new file or link
    /// under a temp name beside its destination. Nothing is flushed yet.
    fn prepare(&mut self, op: &FileOp) -> io::Result<()> {
        let path = op.path();
        if !matches!(op, FileOp::Remove { .. }) {
            self.create_parents(path, 0o755)?;
        }
        let entry = self.root.entry(path)?;
        self.track(&entry.dir)?;
        let saved = durable::save(&entry)?;
        let backup = match &saved {
            Some(saved) => Some(self.backup(path, saved)?),
            None => None,
        };
        // `Mode::SameAs`: the other file as it is now (a disabled copy is written before its
        // original is removed).
        let like = match op {
            FileOp::Write {
                mode: Mode::SameAs(other),
                ..
            } => durable::save(&self.root.entry(other)?)?,
            _ => None,
        };
        let tmp = match op {
            FileOp::Write { contents, .. } => {
                let meta = meta_for(op, saved.as_ref(), like.as_ref());
                Some(durable::stage_file(&entry, contents, &meta)?)
            }
            FileOp::Symlink { target, .. } => Some(durable::stage_link(&entry, OsStr::new(target))?),
            FileOp::Remove { .. } => None,
        };
        let has_tmp = tmp.is_some();
        self.staged.push(Staged {
            shown: self.root.host_path(path),
            entry,
            saved,
            tmp,
            backup,
        });
        if has_tmp {
            self.undo.push(Undo::Discard(self.staged.len() - 1));
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

    /// Removes os.conf through its directory's handle, kept in memory first so that a removal whose
    /// flush fails is undone like any other step.
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
        self.commit(i)?;
        durable::sync_dir(&self.staged[i].entry.dir)
    }

    /// Creates the missing directories above `path`, outermost first, each undone on failure.
    fn create_parents(&mut self, path: &str, mode: u32) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut dir = parent(path);
        while let Some(d) = dir {
            if self.root.lstat(d)?.is_some() {
                break;
            }
            missing.push(d);
            dir = parent(d);
        }
        for d in missing.into_iter().rev() {
            let entry = self.root.entry(d)?;
            durable::make_dir(&entry, mode)?;
            self.track(&entry.dir)?;
            self.undo.push(Undo::Created {
                shown: self.root.host_path(d),
                entry,
                dir: true,
            });
        }
        Ok(())
    }

    /// Copies the original into this run's backup directory, created on first use (0700). The
    /// directory is new for each run, even for two runs in the same second, so no backup overwrites
    /// another.
    fn backup(&mut self, path: &str, saved: &Saved) -> io::Result<PathBuf> {
        let dir = match &self.report.backup_dir {
            Some(_) => self.run_backup_dir(),
            None => {
                let mut name = format!("/{BACKUP_DIR}/{}", self.stamp);
                let mut n = 1;
                while self.root.lstat(&name)?.is_some() {
                    n += 1;
                    name = format!("/{BACKUP_DIR}/{}-{n}", self.stamp);
                }
                self.report.backup_dir = Some(self.root.host_path(&name));
                name
            }
        };
        let dest = format!("{dir}{path}");
        self.create_parents(&dest, BACKUP_MODE)?;
        let entry = self.root.entry(&dest)?;
        durable::create(&entry, saved)?;
        let shown = self.root.host_path(&dest);
        self.undo.push(Undo::Created {
            shown: shown.clone(),
            entry,
            dir: false,
        });
        Ok(shown)
    }

    /// This run's backup directory as a path in the root.
    fn run_backup_dir(&self) -> String {
        let shown = self
            .report
            .backup_dir
            .as_ref()
            .expect("chosen at the first backup");
        let rel = shown.strip_prefix(self.root.path()).expect("below the root");
        format!("/{}", rel.display())
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

    /// Undoes every step in reverse, flushes, and returns what could not be undone.
    fn rollback(&mut self) -> Vec<String> {
        let mut failures = Vec::new();
        while let Some(undo) = self.undo.pop() {
            let (what, result) = match &undo {
                Undo::Discard(i) => {
                    let s = &self.staged[*i];
                    let tmp = s.tmp.as_deref().expect("a temp to discard");
                    (temp_shown(s, tmp), durable::discard(&s.entry, tmp))
                }
                Undo::Restore(i) => (restore_shown(&self.staged[*i]), restore(&self.staged[*i])),
                Undo::Created { shown, entry, dir } => {
                    let result = match dir {
                        true => durable::remove_dir(entry),
                        false => durable::remove(entry),
                    };
                    (format!("could not remove {}", shown.display()), result)
                }
                Undo::Live(previous) => (format!("live state {previous:?}"), platform::restore(previous)),
            };
            if let Err(e) = result {
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

fn restore_shown(s: &Staged) -> String {
    match (&s.saved, &s.backup) {
        (Some(_), Some(backup)) => format!(
            "could not put back {} (its original is in {})",
            s.shown.display(),
            backup.display()
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
