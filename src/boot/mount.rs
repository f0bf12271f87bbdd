//! The mounts osconf makes and undoes itself: partition 1 mounted on a private directory under
//! `/run` (unmounted and the directory removed on drop, whatever happened in between), and a
//! read-only mount made writable for the removal of os.conf (made read-only again on drop). Nothing
//! else here; the decisions are in `boot`. The release binary aborts on a panic (`panic = "abort"`):
//! no destructor runs then, so each guard is also listed here and the panic hook undoes what is
//! listed ([`undo_after_panic`]).

use std::fs;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use rustix::mount::{MountFlags, UnmountFlags};

use super::mountinfo::{Mount, has_option};
use crate::disk::{Filesystem, Kind, ufs};
use crate::error::Error;

/// What a guard undoes, listed from its making until its drop.
#[derive(Debug, Clone, PartialEq)]
enum Undo {
    Unmount(PathBuf),
    /// Make `target` read-only again: the filesystem when it was (`super_ro`), and/or the mount.
    ReadOnly {
        target: PathBuf,
        flags: MountFlags,
        super_ro: bool,
        mount_ro: bool,
    },
}

static PENDING: Mutex<Vec<Undo>> = Mutex::new(Vec::new());

fn pending() -> MutexGuard<'static, Vec<Undo>> {
    PENDING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Lists `undo` for the panic hook; a guard calls it once made.
fn listed(undo: Undo) -> Undo {
    pending().push(undo.clone());
    undo
}

/// A guard's drop: takes `undo` off the list and runs it.
fn done(undo: &Undo) {
    {
        let mut list = pending();
        if let Some(at) = list.iter().rposition(|u| u == undo) {
            list.remove(at);
        }
    }
    undo.run(false);
}

/// For the panic hook: undoes every mount change still listed, newest first. A panic while the list
/// was held (it never is for long) leaves it alone rather than wait.
pub fn undo_after_panic() {
    let mut list = match PENDING.try_lock() {
        Ok(list) => list,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => return,
    };
    while let Some(undo) = list.pop() {
        undo.run(false);
    }
}

/// For a signal handler (SIGTERM: systemd's stop timeout): [`undo_after_panic`] without a message
/// and without freeing memory (the signal may have come inside the allocator): system calls only.
pub fn undo_on_signal() {
    let list = match PENDING.try_lock() {
        Ok(list) => list,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => return,
    };
    list.iter().rev().for_each(|undo| undo.run(true));
}

/// Undoes what killed runs of osconf left under `<run>/osconf` (`p1.PID` of a PID that is no
/// osconf any more, read in `proc`): a kill at the wrong moment leaves partition 1 mounted there,
/// read-write, and the finder would take that mount for one someone else made. Says what it did.
pub fn clean_stale(run: &Path, proc: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(run.join("osconf")) else {
        return Vec::new();
    };
    let mut done = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("p1.").and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let comm = fs::read_to_string(proc.join(pid.to_string()).join("comm")).unwrap_or_default();
        if pid == std::process::id() || comm == "osconf\n" {
            continue;
        }
        let target = entry.path();
        // Mounted more than once, maybe: until the kernel says it is no mount point (EINVAL).
        let mut unmounted = false;
        for _ in 0..8 {
            match rustix::mount::unmount(&target, UnmountFlags::empty()) {
                Ok(()) => unmounted = true,
                Err(rustix::io::Errno::BUSY) => {
                    let _ = rustix::mount::unmount(&target, UnmountFlags::DETACH);
                    unmounted = true;
                }
                Err(_) => break,
            }
        }
        if fs::remove_dir(&target).is_ok() || unmounted {
            done.push(format!(
                "{} was left by a run of osconf that was killed: {}",
                target.display(),
                if unmounted {
                    "unmounted and removed"
                } else {
                    "removed"
                }
            ));
        }
    }
    done
}

impl Undo {
    /// Runs it; `quiet` for a signal handler (no message, no allocation).
    fn run(&self, quiet: bool) {
        match self {
            Undo::Unmount(target) => {
                if let Err(e) = rustix::mount::unmount(target, UnmountFlags::empty()) {
                    // Something still holds it: detach it now, the kernel finishes when it is let go.
                    if !quiet {
                        eprintln!("osconf: unmounting {}: {e}; detaching it", target.display());
                    }
                    let _ = rustix::mount::unmount(target, UnmountFlags::DETACH);
                }
                let _ = fs::remove_dir(target);
            }
            Undo::ReadOnly {
                target,
                flags,
                super_ro,
                mount_ro,
            } => {
                let mut result = Ok(());
                if *super_ro {
                    result = remount(target, *flags | MountFlags::RDONLY);
                    if result.is_ok() && !mount_ro {
                        result = remount(target, *flags | MountFlags::BIND);
                    }
                } else if *mount_ro {
                    result = remount(target, *flags | MountFlags::BIND | MountFlags::RDONLY);
                }
                if let Err(e) = result
                    && !quiet
                {
                    eprintln!(
                        "osconf: {}: could not make it read-only again: {e}",
                        target.display()
                    );
                }
            }
        }
    }
}

/// Partition 1, mounted by osconf at `target`.
#[derive(Debug)]
pub struct OwnMount {
    pub target: PathBuf,
    undo: Undo,
}

impl OwnMount {
    /// Mounts `node` (holding `fs`) at `target`, read-write or read-only, never executable.
    /// `target` and its parent are created 0700 when missing.
    pub fn new(node: &Path, fs: &Filesystem, target: &Path, writable: bool) -> Result<OwnMount, Error> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(target)
            .map_err(|e| Error::failed(None, format!("creating {}: {e}", target.display())))?;
        let mut flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC | MountFlags::SILENT;
        if !writable {
            flags |= MountFlags::RDONLY;
        }
        let data = match fs.kind {
            Kind::Ufs(ufs::Version::Ufs2) => Some(c"ufstype=ufs2"),
            Kind::Ufs(ufs::Version::Ufs1) => Some(c"ufstype=44bsd"),
            _ => None,
        };
        let name = fs.kind.name();
        let mut result = rustix::mount::mount(node, target, name, flags, data);
        // A kernel whose ext4 driver serves ext2 and ext3 may have no driver by their own names.
        if result == Err(rustix::io::Errno::NODEV) && matches!(fs.kind, Kind::Ext(..)) && name != "ext4" {
            result = rustix::mount::mount(node, target, "ext4", flags, data);
        }
        match result {
            Ok(()) => Ok(OwnMount {
                target: target.to_owned(),
                undo: listed(Undo::Unmount(target.to_owned())),
            }),
            Err(e) => {
                let _ = fs::remove_dir(target);
                Err(Error::failed(
                    None,
                    format!(
                        "mounting {} ({name}) on {} {}: {e}",
                        node.display(),
                        target.display(),
                        if writable { "read-write" } else { "read-only" }
                    ),
                ))
            }
        }
    }
}

impl Drop for OwnMount {
    fn drop(&mut self) {
        done(&self.undo);
    }
}

/// A read-only mount made writable; made read-only again, as it was, on drop.
#[derive(Debug)]
pub struct Remounted {
    undo: Undo,
}

impl Remounted {
    /// Makes `m` writable: the filesystem itself when it is read-only (which also makes this mount
    /// writable), else only this mount.
    pub fn new(m: &Mount, target: &Path) -> Result<Remounted, Error> {
        let flags = mount_flags(&m.options);
        let super_ro = has_option(&m.super_options, "ro");
        // Listed before the remount: a failed one is undone as well, which leaves it as it was.
        let r = Remounted {
            undo: listed(Undo::ReadOnly {
                target: target.to_owned(),
                flags,
                super_ro,
                mount_ro: has_option(&m.options, "ro"),
            }),
        };
        let how = if super_ro { flags } else { flags | MountFlags::BIND };
        remount(target, how).map_err(|e| {
            let why = format!(
                "{} is mounted read-only and cannot be made writable to remove os.conf: {e}",
                target.display()
            );
            Error::failed(None, why)
        })?;
        Ok(r)
    }
}

impl Drop for Remounted {
    fn drop(&mut self) {
        done(&self.undo);
    }
}

fn remount(target: &Path, flags: MountFlags) -> rustix::io::Result<()> {
    rustix::mount::mount_remount(target, flags, c"")
}

/// The per-mount flags a remount must repeat (it sets them all), read-only left out; the atime
/// flags are kept by the kernel when none is given.
fn mount_flags(options: &str) -> MountFlags {
    [
        ("nosuid", MountFlags::NOSUID),
        ("nodev", MountFlags::NODEV),
        ("noexec", MountFlags::NOEXEC),
    ]
    .iter()
    .filter(|(name, _)| has_option(options, name))
    .fold(MountFlags::empty(), |f, (_, flag)| f | *flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remount_repeats_the_flags_it_must_keep() {
        assert_eq!(
            mount_flags("ro,nosuid,nodev,noexec,relatime"),
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC
        );
        assert_eq!(mount_flags("rw,relatime"), MountFlags::empty());
    }
}
