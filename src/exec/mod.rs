//! Executor: applies a plan to a root directory, all or nothing. Every file it replaces or removes is
//! backed up first; when any step fails, every step already done is undone in reverse order. os.conf
//! is removed last, only once everything else has succeeded.

mod durable;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::plan::{FileOp, LiveAction, Mode, Plan};
use crate::platform;
use durable::{Meta, Saved};

/// Where backups go, below the root: one directory per run, named by its UTC time.
pub const BACKUP_DIR: &str = "var/lib/osconf/backup";

#[derive(Debug)]
pub struct Options {
    pub live: bool,
    /// os.conf, removed after success; a host path (it may sit on another partition than the root).
    pub config_file: Option<PathBuf>,
    /// UTC time stamp naming this run's backup directory.
    pub stamp: String,
}

/// A failed step, named, and what went wrong while undoing (ideally nothing).
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

enum Undo {
    Restore(PathBuf, Saved),
    Delete(PathBuf),
    RemoveDir(PathBuf),
    Live(platform::Previous),
}

struct Executor<'a> {
    root: &'a Path,
    stamp: &'a str,
    undo: Vec<Undo>,
    report: Report,
}

pub fn apply(plan: &Plan, root: &Path, opts: &Options) -> Result<Report, ExecError> {
    let mut ex = Executor {
        root,
        stamp: &opts.stamp,
        undo: Vec::new(),
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

impl Executor<'_> {
    fn run(&mut self, plan: &Plan, opts: &Options) -> Result<(), StepError> {
        for op in &plan.ops {
            let step = describe(op);
            self.file_op(op).map_err(|e| (step.clone(), e))?;
            self.report.steps.push(step);
        }
        if opts.live {
            for action in &plan.live {
                let step = format!("live: {}", crate::plan::describe_live(action));
                self.live(action).map_err(|e| (step.clone(), e))?;
                self.report.steps.push(step);
            }
        }
        if let Some(conf) = &opts.config_file {
            let step = format!("removing {}", conf.display());
            self.remove_config(conf).map_err(|e| (step.clone(), e))?;
            self.report.steps.push(step);
        }
        Ok(())
    }

    fn host(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn file_op(&mut self, op: &FileOp) -> io::Result<()> {
        let path = self.host(op.path());
        let saved = durable::save(&path)?;
        if let Some(saved) = &saved {
            self.backup(op.path(), saved)?;
        }
        if !matches!(op, FileOp::Remove { .. }) {
            let made = durable::create_parents(&path)?;
            self.undo.extend(made.into_iter().map(Undo::RemoveDir));
        }
        // `Mode::SameAs`: the other file as it is now (a disabled copy is written before its
        // original is removed).
        let like = match op {
            FileOp::Write {
                mode: Mode::SameAs(other),
                ..
            } => durable::save(&self.host(other))?,
            _ => None,
        };
        let meta = meta_for(op, saved.as_ref(), like.as_ref());
        self.undoable(path, saved, |path| match op {
            FileOp::Write { contents, .. } => durable::write_atomic(path, contents, &meta),
            FileOp::Symlink { target, .. } => durable::replace_with_link(path, Path::new(target)),
            FileOp::Remove { .. } => durable::remove(path),
        })
    }

    /// Removes os.conf, kept in memory first so that a removal that fails after the unlink (the
    /// directory fsync failed) is undone like any other step.
    fn remove_config(&mut self, conf: &Path) -> io::Result<()> {
        let saved = durable::save(conf)?;
        self.undoable(conf.to_owned(), saved, durable::remove)
    }

    /// Runs `step` on `path`, which held `saved`. A step can fail after it took effect (renamed or
    /// unlinked, then the directory fsync failed): it is undone unless the path is still as it was.
    fn undoable(
        &mut self,
        path: PathBuf,
        saved: Option<Saved>,
        step: impl FnOnce(&Path) -> io::Result<()>,
    ) -> io::Result<()> {
        let result = step(&path);
        if result.is_ok() || !durable::is_unchanged(&path, saved.as_ref()) {
            self.undo.push(match saved {
                Some(saved) => Undo::Restore(path, saved),
                None => Undo::Delete(path),
            });
        }
        result
    }

    /// Copies the original into this run's backup directory, created on first use. The directory is
    /// new for each run, even for two runs in the same second, so no backup overwrites another.
    fn backup(&mut self, path: &str, saved: &Saved) -> io::Result<()> {
        let dir = match &self.report.backup_dir {
            Some(dir) => dir.clone(),
            None => {
                let base = self.root.join(BACKUP_DIR);
                let dir = (1..)
                    .map(|n| match n {
                        1 => base.join(self.stamp),
                        n => base.join(format!("{}-{n}", self.stamp)),
                    })
                    .find(|d| d.symlink_metadata().is_err())
                    .expect("some name is free");
                self.report.backup_dir = Some(dir.clone());
                dir
            }
        };
        let dest = dir.join(path.trim_start_matches('/'));
        let made = durable::create_parents(&dest)?;
        self.undo.extend(made.into_iter().map(Undo::RemoveDir));
        self.undo.push(Undo::Delete(dest.clone()));
        durable::restore(&dest, saved)
    }

    fn live(&mut self, action: &LiveAction) -> io::Result<()> {
        self.undo.push(Undo::Live(platform::snapshot(action)?));
        platform::apply(action)
    }

    /// Undoes every step in reverse; returns what could not be undone.
    fn rollback(&mut self) -> Vec<String> {
        let mut failures = Vec::new();
        while let Some(undo) = self.undo.pop() {
            let (what, result) = match &undo {
                Undo::Restore(path, saved) => (path.display().to_string(), durable::restore(path, saved)),
                Undo::Delete(path) => (path.display().to_string(), durable::remove(path)),
                Undo::RemoveDir(path) => (path.display().to_string(), std::fs::remove_dir(path)),
                Undo::Live(previous) => (format!("live state {previous:?}"), platform::restore(previous)),
            };
            if let Err(e) = result {
                failures.push(format!("{what}: {e}"));
            }
        }
        failures
    }
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
    fn os_conf_removed_by_a_step_that_then_fails_is_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("os.conf");
        std::fs::write(&conf, "hostname=a\n").unwrap();
        let mut ex = Executor {
            root: dir.path(),
            stamp: "x",
            undo: Vec::new(),
            report: Report::default(),
        };
        let saved = durable::save(&conf).unwrap();
        let failed = ex.undoable(conf.clone(), saved, |p| {
            durable::remove(p)?;
            Err(io::Error::other("directory fsync failed"))
        });
        assert!(failed.is_err());
        assert!(!conf.exists());
        assert_eq!(ex.rollback(), Vec::<String>::new());
        assert_eq!(std::fs::read(&conf).unwrap(), b"hostname=a\n");
    }
}
