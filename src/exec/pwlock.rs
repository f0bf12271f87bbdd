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
//! holds a lock on it meanwhile), so an image is left as it was; the run's journal lists it, so that
//! a run cut short has it removed with the rest.

use std::cell::Cell;
use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::fs::{FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::durable;
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
    /// its commit, so that the journal covers it. Not flushed: an empty lock file left by a power
    /// cut just then is what any `lckpwdf` user leaves.
    pub fn remove_file(&self) -> io::Result<()> {
        if self.created.replace(false) {
            durable::remove(&self.entry)?;
        }
        Ok(())
    }
}

impl Drop for PwdLock {
    fn drop(&mut self) {
        let _ = self.remove_file();
    }
}

/// Takes the lock, waiting up to `wait` for another holder. `Ok(None)` when no process could be
/// rewriting the password files there either: no `/etc`, or one osconf cannot write to (a read-only
/// filesystem; a lock file it may not create), where its own writes will fail, cleanly, anyway.
pub fn lock_passwords(root: &Root, wait: Duration) -> Result<Option<PwdLock>, String> {
    let shown = root.host_path(PWD_LOCK);
    let why = |e: io::Error| format!("locking {}: {e}; nothing was changed", shown.display());
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
                return Err(format!(
                    "{} is locked by another program (passwd, chpasswd, useradd… hold it while they \
                     rewrite /etc/shadow); waited {} s; nothing was changed",
                    shown.display(),
                    wait.as_secs()
                ));
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
                let create = flags | OFlags::CREATE | OFlags::EXCL;
                match rustix::fs::openat(&entry.dir, &entry.name, create, Mode::from_raw_mode(0o600)) {
                    Ok(file) => {
                        // The umask may have taken bits away; lckpwdf's file is 0600.
                        rustix::fs::fchmod(&file, Mode::from_raw_mode(0o600))?;
                        return Ok(Some((file, true)));
                    }
                    Err(Errno::EXIST) => continue,
                    Err(Errno::ROFS | Errno::ACCESS | Errno::PERM) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Err(io::Error::other(
        "created and removed by another program meanwhile",
    ))
}
