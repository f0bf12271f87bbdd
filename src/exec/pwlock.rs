//! The password files' lock, taken as shadow-utils' and glibc's `lckpwdf` take it: a write lock
//! (`fcntl` `F_SETLK`, the whole file) on `<root>/etc/.pwd.lock`, created 0600 when absent, held
//! from before `/etc/shadow` (or `/etc/master.passwd`) is read for the plan until the run ends, so
//! that `passwd`, `chpasswd`, `useradd`… and osconf never rewrite it at the same time and neither
//! loses the other's change. Never a lock on anything outside the root.
//!
//! `lckpwdf` blocks in `F_SETLKW` for at most 15 s (an alarm); here the same bound is kept by trying
//! `F_SETLK` every 50 ms, which excludes the other holders just the same.
//!
//! A lock file osconf had to create is removed again when the run ends (still locked, so nobody
//! holds a lock on it meanwhile), so an image is left as it was. It is made under its temp name
//! (`..pwd.lock.osconf-new`, as `durable` names temp files) and linked into place, and that second
//! link stays until the lock file is removed: so a run killed at any point — before its journal,
//! which lists the lock file too, exists — leaves a lock file the next run knows for osconf's own
//! ([`clean_leftovers`]), never one a person cannot tell from shadow-utils'.

use std::cell::Cell;
use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::durable;
use crate::error::Error;
use crate::root::{self, Entry, Root};

/// The lock file, in the root.
pub const PWD_LOCK: &str = "/etc/.pwd.lock";

/// How long `lckpwdf` waits for another holder.
pub const PWD_WAIT: Duration = Duration::from_secs(15);

/// The held lock; released (and the file removed if osconf created it) on drop.
#[derive(Debug)]
pub struct PwdLock {
    entry: Entry,
    file: OwnedFd,
    /// osconf created the lock file, and has not removed it yet.
    created: Cell<bool>,
}

impl PwdLock {
    /// Whether osconf created the lock file (it goes when the run ends).
    pub fn created(&self) -> bool {
        self.created.get()
    }

    /// Removes the lock file osconf created, still holding the lock: the last step of a run before
    /// its commit, so that the journal covers it; then its temp name. Not flushed: an empty lock
    /// file left by a power cut just then is what any `lckpwdf` user leaves.
    pub fn remove_file(&self) -> io::Result<()> {
        if self.created.get() {
            durable::remove(&self.entry)?;
            durable::discard(&self.entry, &durable::temp_name(&self.entry.name))?;
            self.created.set(false);
        }
        Ok(())
    }

    /// Ends a run that did not get to remove the lock file it created: removes it, or says why it
    /// could not (the next run removes it: its temp name marks it as osconf's).
    pub fn release(self) -> Result<(), Error> {
        self.remove_file().map_err(|e| {
            let shown = self.entry.name.to_string_lossy().into_owned();
            let left = format!("/etc/{shown}, which osconf created, could not be removed: {e}");
            Error::failed(None, left)
        })
    }
}

impl Drop for PwdLock {
    fn drop(&mut self) {
        let _ = self.remove_file();
    }
}

/// Removes the lock file a run killed before it could (it is still linked under its temp name, so
/// it is osconf's) and a temp name left alone; a lock file another program holds right now stays.
/// Called once per apply, before this run takes the lock (never while it holds it: closing any
/// descriptor of a file drops this process's `fcntl` locks on it). Says what it removed.
pub fn clean_leftovers(root: &Root) -> Result<Option<String>, Error> {
    let shown = root.host_path(PWD_LOCK);
    let why = |e: io::Error| Error::io(&shown, &e);
    let Some(entry) = root::absent_as_none(root.entry(PWD_LOCK)).map_err(why)? else {
        return Ok(None);
    };
    let tmp = durable::temp_name(&entry.name);
    let Some(twin) = root::absent_as_none(durable::stat(&Entry {
        dir: entry.dir.try_clone().map_err(why)?,
        name: tmp.clone(),
    }))
    .map_err(why)?
    else {
        return Ok(None);
    };
    let ours = root::absent_as_none(durable::stat(&entry))
        .map_err(why)?
        .is_some_and(|st| (st.st_dev, st.st_ino) == (twin.st_dev, twin.st_ino));
    if ours {
        let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let file =
            rustix::fs::openat(&entry.dir, &entry.name, flags, Mode::empty()).map_err(|e| why(e.into()))?;
        match rustix::fs::fcntl_lock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => durable::remove(&entry).map_err(why)?,
            // Someone locked the leftover meanwhile: it stays until the next run.
            Err(Errno::AGAIN | Errno::ACCESS) => return Ok(None),
            Err(e) => return Err(why(e.into())),
        }
    }
    durable::discard(&entry, &tmp).map_err(why)?;
    Ok(Some(match ours {
        true => format!(
            "removed {}, left by a run of osconf that was cut short",
            shown.display()
        ),
        false => format!(
            "removed {}, left by a run of osconf that was cut short",
            shown.with_file_name(&tmp).display()
        ),
    }))
}

/// Takes the lock, waiting up to `wait` for another holder. `Ok(None)` when no process could be
/// rewriting the password files there either: no `/etc`, or one osconf cannot write to (a read-only
/// filesystem; a lock file it may not create), where its own writes will fail, cleanly, anyway.
pub fn lock_passwords(root: &Root, wait: Duration) -> Result<Option<PwdLock>, Error> {
    let shown = root.host_path(PWD_LOCK);
    let why = |e: io::Error| Error::failed(None, format!("locking {}: {e}", shown.display())).unchanged();
    let entry = match root::absent_as_none(root.entry(PWD_LOCK)).map_err(why)? {
        Some(entry) => entry,
        None => return Ok(None),
    };
    let Some((file, created)) = open(&entry).map_err(why)? else {
        return Ok(None);
    };
    let lock = PwdLock {
        entry,
        file,
        created: Cell::new(created),
    };
    let start = Instant::now();
    loop {
        match rustix::fs::fcntl_lock(&lock.file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(Some(lock)),
            Err(Errno::AGAIN | Errno::ACCESS) if start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(Errno::AGAIN | Errno::ACCESS) => {
                let why = format!(
                    "{} is locked by another program (passwd, chpasswd, useradd… hold it while they \
                     rewrite /etc/shadow); waited {} s",
                    shown.display(),
                    wait.as_secs()
                );
                return Err(Error::failed(None, why).unchanged());
            }
            Err(e) => return Err(why(e.into())),
        }
    }
}

/// Opens the lock file for writing, creating it 0600 when absent (`true`); a regular file only,
/// never through a link, never blocking. `None` where it can be neither opened nor made for the
/// reasons [`lock_passwords`] gives.
fn open(entry: &Entry) -> io::Result<Option<(OwnedFd, bool)>> {
    let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    for _ in 0..2 {
        match root::absent_as_none(durable::stat(entry))? {
            Some(st) => {
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    root::check_regular(&st, root::MAX_READ)?;
                }
                let file = match rustix::fs::openat(&entry.dir, &entry.name, flags, Mode::empty()) {
                    Err(Errno::ROFS) => return Ok(None),
                    Err(Errno::NOENT) => continue,
                    other => other?,
                };
                let now = rustix::fs::fstat(&file)?;
                if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
                    return Err(io::Error::other("replaced while being opened"));
                }
                return Ok(Some((file, false)));
            }
            None => {
                // Empty and 0600, as lckpwdf's; on failure nothing stays (`stage_file`).
                let tmp = match durable::stage_file(entry, b"", &durable::Meta::new(0o600)) {
                    Err(e)
                        if matches!(
                            Errno::from_io_error(&e),
                            Some(Errno::ROFS | Errno::ACCESS | Errno::PERM)
                        ) =>
                    {
                        return Ok(None);
                    }
                    other => other?,
                };
                let linked = rustix::fs::openat(&entry.dir, &tmp, flags, Mode::empty()).and_then(|file| {
                    rustix::fs::linkat(&entry.dir, &tmp, &entry.dir, &entry.name, AtFlags::empty())?;
                    Ok(file)
                });
                match linked {
                    // The temp name stays linked to it until it is removed.
                    Ok(file) => return Ok(Some((file, true))),
                    Err(e) => {
                        durable::discard(entry, &tmp)?;
                        match e {
                            Errno::EXIST => continue,
                            e => return Err(e.into()),
                        }
                    }
                }
            }
        }
    }
    Err(io::Error::other(
        "created and removed by another program meanwhile",
    ))
}
