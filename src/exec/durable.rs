//! Durable file primitives on directory entries (a directory handle resolved inside the root, and a
//! name): temp file in the destination directory → write → rename, so that a crash leaves either the
//! old file or the new one, never half of either. Flushing is the caller's: it batches.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::PathBuf;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::root::{self, Entry};

/// What a file was before osconf touched it, kept in memory to restore it exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    Link(PathBuf),
    File { bytes: Vec<u8>, meta: Meta },
}

/// Mode, owner and extended attributes (SELinux labels among them) of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub mode: u32,
    pub owner: Option<(u32, u32)>,
    pub xattrs: Vec<(OsString, Vec<u8>)>,
}

impl Meta {
    /// Metadata for a file osconf creates: this mode, the process's owner, no attributes.
    pub fn new(mode: u32) -> Meta {
        Meta {
            mode,
            owner: None,
            xattrs: Vec::new(),
        }
    }
}

/// Reads what is at the entry: `None` when nothing is there; anything but a regular file or a link
/// is an error (a file was expected).
pub fn save(entry: &Entry) -> io::Result<Option<Saved>> {
    let Some(st) = root::absent_as_none(stat(entry))? else {
        return Ok(None);
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        let target = rustix::fs::readlinkat(&entry.dir, &entry.name, Vec::new())?;
        return Ok(Some(Saved::Link(PathBuf::from(OsString::from_vec(
            target.into_bytes(),
        )))));
    }
    root::check_regular(&st, root::MAX_KEEP)?;
    // Bytes, mode, owner and attributes all come from this one open file, opened without following
    // a link and without blocking on a FIFO planted there meanwhile.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let file = File::from(rustix::fs::openat(&entry.dir, &entry.name, flags, Mode::empty())?);
    let now = rustix::fs::fstat(&file)?;
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
        return Err(io::Error::other("replaced while being read"));
    }
    let meta = Meta {
        mode: now.st_mode & 0o7777,
        owner: Some((now.st_uid, now.st_gid)),
        xattrs: read_xattrs(&file)?,
    };
    let bytes = root::read_bounded(file, root::MAX_KEEP)?;
    Ok(Some(Saved::File { bytes, meta }))
}

pub fn stat(entry: &Entry) -> io::Result<rustix::fs::Stat> {
    Ok(rustix::fs::statat(
        &entry.dir,
        &entry.name,
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Puts a saved file (or link) at the entry's temp name, ready to be renamed into place.
pub fn stage(entry: &Entry, saved: &Saved) -> io::Result<OsString> {
    match saved {
        Saved::Link(target) => stage_link(entry, target.as_os_str()),
        Saved::File { bytes, meta } => stage_file(entry, bytes, meta),
    }
}

/// The temp name beside `name`: fixed, so that a run cut short and the next one use the same
/// name, and the next run's journal recovery or its own `create` removes a leftover.
pub fn temp_name(name: &OsStr) -> OsString {
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(".osconf-new");
    tmp
}

/// Runs `create` on the temp name; a leftover of a run that crashed before its rename is removed and
/// `create` tried once more.
fn create_temp<T>(entry: &Entry, create: impl Fn(&OsStr) -> io::Result<T>) -> io::Result<(OsString, T)> {
    let tmp = temp_name(&entry.name);
    let made = match create(&tmp) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            rustix::fs::unlinkat(&entry.dir, &tmp, AtFlags::empty())?;
            create(&tmp)
        }
        other => other,
    }?;
    Ok((tmp, made))
}

/// Writes `bytes` with `meta` to a new temp file beside the entry (not flushed) and returns its name.
pub fn stage_file(entry: &Entry, bytes: &[u8], meta: &Meta) -> io::Result<OsString> {
    let (tmp, ()) = create_temp(entry, |t| create_file(&entry.dir, t, bytes, meta))?;
    Ok(tmp)
}

/// Creates `name` in `dir` (it must not exist) holding `bytes`, with `meta`; on failure nothing stays.
fn create_file(dir: &OwnedFd, name: &OsStr, bytes: &[u8], meta: &Meta) -> io::Result<()> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut file = File::from(rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600))?);
    let result = file.write_all(bytes).and_then(|()| apply_meta(&file, meta));
    if result.is_err() {
        let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
    }
    result
}

/// Creates the entry, which must not exist, as a copy of `saved` (a backup: in a directory of its own,
/// so no temp name is needed; the journal says whether it is whole).
pub fn create(entry: &Entry, saved: &Saved) -> io::Result<()> {
    match saved {
        Saved::Link(target) => Ok(rustix::fs::symlinkat(
            target.as_os_str(),
            &entry.dir,
            &entry.name,
        )?),
        Saved::File { bytes, meta } => create_file(&entry.dir, &entry.name, bytes, meta),
    }
}

/// Makes a temp link to `target` beside the entry and returns its name.
pub fn stage_link(entry: &Entry, target: &OsStr) -> io::Result<OsString> {
    let (tmp, ()) = create_temp(entry, |t| Ok(rustix::fs::symlinkat(target, &entry.dir, t)?))?;
    Ok(tmp)
}

/// Renames the temp `tmp` over the entry.
pub fn commit(entry: &Entry, tmp: &OsStr) -> io::Result<()> {
    Ok(rustix::fs::renameat(&entry.dir, tmp, &entry.dir, &entry.name)?)
}

/// Removes a leftover temp file; one already gone is fine.
pub fn discard(entry: &Entry, tmp: &OsStr) -> io::Result<()> {
    match rustix::fs::unlinkat(&entry.dir, tmp, AtFlags::empty()) {
        Err(Errno::NOENT) | Ok(()) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes the entry (not a directory); one already gone counts as removed.
pub fn remove(entry: &Entry) -> io::Result<()> {
    match rustix::fs::unlinkat(&entry.dir, &entry.name, AtFlags::empty()) {
        Err(Errno::NOENT) | Ok(()) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub fn remove_dir(entry: &Entry) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(&entry.dir, &entry.name, AtFlags::REMOVEDIR)?)
}

/// Creates the directory `entry` (its mode as the umask leaves `mode`: see [`set_dir_mode`]).
pub fn make_dir(entry: &Entry, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::mkdirat(
        &entry.dir,
        &entry.name,
        Mode::from_raw_mode(mode),
    )?)
}

/// Gives the directory `entry` exactly `mode`, which the umask may have taken bits from. Apart
/// from [`make_dir`], so that a caller records the new directory (to remove it on failure) before
/// anything more can fail.
pub fn set_dir_mode(entry: &Entry, mode: u32) -> io::Result<()> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = rustix::fs::openat(&entry.dir, &entry.name, flags, Mode::empty())?;
    rustix::fs::fchmod(&dir, Mode::from_raw_mode(mode))?;
    Ok(())
}

/// Flushes one directory (its entries: renames, unlinks).
pub fn sync_dir(dir: &OwnedFd) -> io::Result<()> {
    super::hooks::fsync_fault(dir)?;
    Ok(rustix::fs::fsync(dir)?)
}

fn apply_meta(file: &File, meta: &Meta) -> io::Result<()> {
    use rustix::fs::{Gid, Uid, fchmod, fchown, fstat};
    fchmod(file, Mode::from_raw_mode(meta.mode))?;
    if let Some((uid, gid)) = meta.owner {
        let st = fstat(file)?;
        if (st.st_uid, st.st_gid) != (uid, gid) {
            fchown(file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
        }
    }
    for (name, value) in &meta.xattrs {
        match rustix::fs::fsetxattr(file, name.as_os_str(), value, rustix::fs::XattrFlags::empty()) {
            // A filesystem without xattrs (FAT, some tmpfs builds) cannot keep them; nothing to keep then.
            Err(Errno::OPNOTSUPP) => {}
            other => other?,
        }
    }
    Ok(())
}

/// Every extended attribute of a file, whatever its size: the sizes are asked first. A filesystem
/// without attributes has none; any other error is an error (a label silently lost would change
/// what SELinux allows).
fn read_xattrs(file: &File) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let size = match rustix::fs::flistxattr_query(file) {
        Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
        other => other?,
    };
    let mut names = vec![0u8; size];
    let len = rustix::fs::flistxattr(file, &mut names[..])?;
    let mut out = Vec::new();
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        let size = rustix::fs::fgetxattr_query(file.as_fd(), name)?;
        let mut value = vec![0u8; size];
        let len = rustix::fs::fgetxattr(file, name, &mut value[..])?;
        value.truncate(len);
        out.push((name.to_owned(), value));
    }
    Ok(out)
}
