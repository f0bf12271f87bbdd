//! Durable file primitives: temp file in the destination directory → write → fsync → rename → fsync
//! the directory, so that a crash leaves either the old file or the new one, never half of either.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, symlink};
use std::path::{Path, PathBuf};

/// What a file was before osconf touched it, kept in memory to restore it exactly.
#[derive(Debug, Clone)]
pub enum Saved {
    Link(PathBuf),
    File { bytes: Vec<u8>, meta: Meta },
}

/// Mode, owner and extended attributes (SELinux labels among them) of a file.
#[derive(Debug, Clone)]
pub struct Meta {
    pub mode: u32,
    pub owner: Option<(u32, u32)>,
    pub xattrs: Vec<(String, Vec<u8>)>,
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

/// Reads what is at `path`: `None` when nothing is there; a directory is an error (a file was expected).
pub fn save(path: &Path) -> io::Result<Option<Saved>> {
    let md = match path.symlink_metadata() {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if md.file_type().is_symlink() {
        return Ok(Some(Saved::Link(fs::read_link(path)?)));
    }
    if !md.is_file() {
        return Err(io::Error::other(
            "expected a regular file, found a directory or device",
        ));
    }
    // Bytes, mode, owner and attributes all come from this one open file, even if the path is
    // replaced meanwhile (not through a link, and without blocking on a FIFO planted there).
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)?;
    let md = file.metadata()?;
    if !md.is_file() {
        return Err(io::Error::other("expected a regular file, found something else"));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let meta = Meta {
        mode: md.mode() & 0o7777,
        owner: Some((md.uid(), md.gid())),
        xattrs: read_xattrs(&file),
    };
    Ok(Some(Saved::File { bytes, meta }))
}

/// Puts a saved file (or link) back at `path` atomically.
pub fn restore(path: &Path, saved: &Saved) -> io::Result<()> {
    match saved {
        Saved::Link(target) => replace_with_link(path, target),
        Saved::File { bytes, meta } => write_atomic(path, bytes, meta),
    }
}

/// True when `path` still holds what `saved` recorded (or, with nothing saved, still nothing).
pub fn is_unchanged(path: &Path, saved: Option<&Saved>) -> bool {
    match (save(path), saved) {
        (Ok(None), None) => true,
        (Ok(Some(Saved::Link(now))), Some(Saved::Link(was))) => &now == was,
        (Ok(Some(Saved::File { bytes: now, .. })), Some(Saved::File { bytes: was, .. })) => &now == was,
        _ => false,
    }
}

fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("path has no file name"))?;
    let tmp = format!(".{}.osconf-{}", name.to_string_lossy(), std::process::id());
    Ok(path.with_file_name(tmp))
}

/// Runs `create` on the temp path; a leftover of a run that crashed before its rename (boot-time pids
/// repeat, so it may bear ours) is removed and `create` tried once more.
fn create_temp<T>(tmp: &Path, create: impl Fn(&Path) -> io::Result<T>) -> io::Result<T> {
    match create(tmp) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(tmp)?;
            create(tmp)
        }
        other => other,
    }
}

/// Replaces `path` with `bytes`, giving the new file `meta`.
pub fn write_atomic(path: &Path, bytes: &[u8], meta: &Meta) -> io::Result<()> {
    let tmp = temp_path(path)?;
    let result = (|| {
        let mut file = create_temp(&tmp, |t| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(t)
        })?;
        file.write_all(bytes)?;
        apply_meta(&file, meta)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_parent(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Replaces whatever is at `path` with a symbolic link to `target`.
pub fn replace_with_link(path: &Path, target: &Path) -> io::Result<()> {
    let tmp = temp_path(path)?;
    create_temp(&tmp, |t| symlink(target, t))?;
    let result = fs::rename(&tmp, path).and_then(|()| sync_parent(path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes a file; one that is already gone counts as removed.
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => sync_parent(path),
    }
}

/// Creates the missing directories above `path`, returning them outermost first (for undo).
pub fn create_parents(path: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d.symlink_metadata().is_ok() {
            break;
        }
        missing.push(d.to_owned());
        dir = d.parent();
    }
    missing.reverse();
    for (i, d) in missing.iter().enumerate() {
        // On failure the directories made so far are removed: the caller gets no list to undo.
        let created = fs::create_dir(d);
        let made = &missing[..i + usize::from(created.is_ok())];
        if let Err(e) = created.and_then(|()| sync_parent(d)) {
            for made in made.iter().rev() {
                let _ = fs::remove_dir(made);
            }
            return Err(e);
        }
    }
    Ok(missing)
}

pub fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(parent)?.sync_all()
}

fn apply_meta(file: &File, meta: &Meta) -> io::Result<()> {
    use rustix::fs::{Gid, Mode, Uid, fchmod, fchown, fstat};
    fchmod(file, Mode::from_raw_mode(meta.mode))?;
    if let Some((uid, gid)) = meta.owner {
        let st = fstat(file)?;
        if (st.st_uid, st.st_gid) != (uid, gid) {
            fchown(file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
        }
    }
    for (name, value) in &meta.xattrs {
        match rustix::fs::fsetxattr(file, name.as_str(), value, rustix::fs::XattrFlags::empty()) {
            // A filesystem without xattrs (FAT, some tmpfs builds) cannot keep them; nothing to keep then.
            Err(rustix::io::Errno::OPNOTSUPP) => {}
            other => other?,
        }
    }
    Ok(())
}

fn read_xattrs(file: &File) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let Ok(len) = rustix::fs::flistxattr(file, &mut names) else {
        return Vec::new();
    };
    names[..len]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .filter_map(|n| {
            let name = String::from_utf8(n.to_vec()).ok()?;
            let mut value = vec![0u8; 4096];
            let len = rustix::fs::fgetxattr(file, name.as_str(), &mut value).ok()?;
            value.truncate(len);
            Some((name, value))
        })
        .collect()
}
