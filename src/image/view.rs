//! A disk image's root partition read as a root: the one rule for which partition that is, and
//! [`System`] over its filesystem (read by `disk`, never mounted), so that detection, the renderers'
//! probes and install's planner run on an image exactly as on a directory.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};

use super::{Item, Verdict, item};
use crate::disk::{FileType, Image, Volume};
use crate::system::{self, Files, Kind, Stat, System};

/// Where a root keeps its os-release, in the order `System` reads them.
const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// What marks a root on systems older than os-release (CentOS 6, busybox builds).
const SHADOW: [&str; 1] = ["etc/shadow"];

/// Whether `v` holds one of `paths` (a link counts).
fn holds(v: &Volume<File>, paths: &[&str]) -> std::io::Result<bool> {
    for path in paths {
        if v.symlink_metadata(path)?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The root partition: the first partition, in the table's order, whose filesystem holds an
/// os-release (partition 1 itself on a one-partition image, or when the root is there), else the
/// first holding `etc/shadow`. A partition the reader cannot read is skipped and named in the
/// warning when none is found.
pub fn root_partition(image: &Image) -> Result<(u32, Volume<File>), Item> {
    let mut unread = Vec::new();
    let numbers: Vec<u32> = image
        .table
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|p| !p.is_extended())
        .map(|p| p.number)
        .collect();
    // Each partition is opened once: the first holding the password file is kept in case none
    // holds an os-release.
    let mut by_shadow = None;
    for &n in &numbers {
        let v = match image.partition(n) {
            Ok(v) => v,
            Err(e) => {
                unread.push(e.to_string());
                continue;
            }
        };
        match holds(&v, &OS_RELEASE) {
            Ok(true) => return Ok((n, v)),
            Ok(false) => {}
            Err(e) => unread.push(format!("partition {n} ({}): {e}", v.fs.kind.name())),
        }
        if by_shadow.is_none() && matches!(holds(&v, &SHADOW), Ok(true)) {
            by_shadow = Some((n, v));
        }
    }
    if let Some(found) = by_shadow {
        return Ok(found);
    }
    Err(if unread.is_empty() {
        item(
            "root",
            Verdict::Fail,
            "no partition holds etc/os-release, usr/lib/os-release or etc/shadow: no root filesystem found",
        )
    } else {
        item(
            "root",
            Verdict::Warn,
            format!(
                "no readable partition holds etc/os-release; not read: {}; the root-partition checks \
                 (agent, SSH keys, root password) were not made",
                unread.join("; ")
            ),
        )
    })
}

/// The system in partition `n` of the image at `disk`, read through `volume`.
pub fn system(disk: &Path, n: u32, volume: Volume<File>) -> system::Result<System> {
    System::over(Box::new(Partition {
        volume,
        shown: PathBuf::from(format!("{}:{n}", disk.display())),
    }))
}

/// A partition's filesystem as [`Files`]; shown as `DISK:N` (`DISK:N/etc/hosts`) in messages.
struct Partition {
    volume: Volume<File>,
    shown: PathBuf,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.shown.display(), self.volume)
    }
}

impl Files for Partition {
    fn path(&self) -> &Path {
        &self.shown
    }

    fn host_path(&self, path: &str) -> PathBuf {
        PathBuf::from(format!(
            "{}/{}",
            self.shown.display(),
            path.trim_start_matches('/')
        ))
    }

    fn read_up_to(&self, path: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
        self.volume.read_up_to(path, limit)
    }

    fn stat(&self, path: &str, follow: bool) -> io::Result<Option<Stat>> {
        let meta = match follow {
            true => self.volume.metadata(path)?,
            false => self.volume.symlink_metadata(path)?,
        };
        Ok(meta.map(|m| Stat {
            kind: match m.file_type {
                FileType::File => Kind::File,
                FileType::Dir => Kind::Dir,
                FileType::Symlink => Kind::Link,
                FileType::Other => Kind::Other,
            },
            mode: m.mode & 0o7777,
        }))
    }

    fn read_link(&self, path: &str) -> io::Result<Option<PathBuf>> {
        match self.volume.symlink_metadata(path)? {
            Some(m) if m.file_type == FileType::Symlink => Ok(self
                .volume
                .read_link(path)?
                .map(|t| PathBuf::from(OsString::from_vec(t)))),
            _ => Ok(None),
        }
    }

    fn list(&self, dir: &str) -> io::Result<Vec<OsString>> {
        Ok(self
            .volume
            .list_dir(dir)?
            .unwrap_or_default()
            .into_iter()
            .map(|e| OsString::from(e.name))
            .collect())
    }
}
