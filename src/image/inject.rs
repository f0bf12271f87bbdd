//! `osconf image inject DISK OS_CONF`: writes os.conf into `aliyun_custom_image/` on partition 1 of
//! a raw image, as ECS does before a start (the directory is created when missing). The os.conf is
//! validated by osconf's own reader and model first: an invalid one changes nothing (exit 2).
//!
//! The filesystem is edited by the tools made for it, without mounting (the image is hostile until
//! checked, and no root is needed): mtools for FAT, e2fsprogs' `debugfs -w` for ext — on a staged
//! copy of the partition (`stage`), read back through `disk` before anything goes into the image.

use std::path::Path;

use super::convert::Outcome;
use super::stage::{self, Staged};
use super::tool;
use crate::disk::{FileType, Image, Kind};
use crate::error::Error;
use crate::plan::{FileOp, Mode};
use crate::secret::{Secret, Wipe as _};

/// The directory ECS writes os.conf into, and os.conf's path inside partition 1.
pub const CONF_DIR: &str = "aliyun_custom_image";
const CONF_PATH: &str = "aliyun_custom_image/os.conf";

fn refused(what: String) -> Error {
    Error::failed(None, what).unchanged()
}

/// A reader's error on the staged copy (the image's own bytes): damage is the image's.
fn refused_io(path: &str, e: &std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::InvalidData => Error::bad(format!("image damaged: {path}: {e}")).unchanged(),
        _ => refused(format!("{path}: {e}")),
    }
}

/// Why partition `n`, whose ext journal needs recovery, is not written (exit 2). debugfs writes
/// blocks as the image holds them, beneath what the journal holds: the next mount's replay would
/// overwrite what it wrote, or its writes would break what the journal's make. Replaying with
/// `e2fsck -fy` on the staged copy would work, but would also repair whatever else it finds in an
/// image the user asked only to add files to: that repair is the user's to run.
pub(super) fn needs_recovery(n: u32) -> Error {
    Error::bad(format!(
        "partition {n}: the ext journal needs recovery (the image was cut without a clean unmount): \
         writing into it now would lose what the journal holds; run e2fsck -fy on the partition first \
         (losetup --find --show --partscan DISK, then e2fsck -fy /dev/loopNpN), then run this again"
    ))
    .unchanged()
}

/// `/a/b/c` → `a`, `a/b` (relative, outermost first).
fn parents(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    (1..parts.len()).map(|i| parts[..i].join("/")).collect()
}

/// Applies `ops` (paths inside the filesystem) and creates `dirs` in the staged filesystem, with
/// the directories on the way; new files and directories belong to root. FAT takes files and
/// directories only. Everything is read back before it counts.
pub(super) fn apply(staged: &Staged, kind: Kind, dirs: &[&str], ops: &[FileOp]) -> Result<(), Error> {
    let volume = staged.volume().map_err(|e| refused_io("the staged copy", &e))?;
    if volume.recovery().is_some() {
        return Err(needs_recovery(staged.partition()));
    }
    let img = staged.path().as_os_str();
    let mut new_dirs: Vec<String> = Vec::new();
    let wanted = ops
        .iter()
        .flat_map(|op| parents(op.path()))
        .chain(dirs.iter().flat_map(|d| {
            let mut all = parents(d);
            all.push(d.trim_matches('/').to_owned());
            all
        }));
    for dir in wanted {
        if new_dirs.contains(&dir) {
            continue;
        }
        match volume.metadata(&dir) {
            Ok(Some(m)) if m.file_type == FileType::Dir => {}
            Ok(None) if volume.symlink_metadata(&dir).ok().flatten().is_none() => new_dirs.push(dir),
            Ok(m) => return Err(refused(format!("/{dir} is {m:?}, not a directory"))),
            Err(e) => return Err(refused_io(&format!("/{dir}"), &e)),
        }
    }
    let (modes, owners) = modes(ops, |p, follow| match follow {
        true => volume.metadata(p),
        false => volume.symlink_metadata(p),
    })?;
    let mut sources = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if let FileOp::Write { contents, .. } = op {
            let p = staged.scratch(&format!("file{i}"));
            stage_file(&p, contents).map_err(|e| refused(format!("staging {}: {e}", op.path())))?;
            sources.push(p);
        } else {
            sources.push(std::path::PathBuf::new());
        }
    }
    match kind {
        Kind::Fat(_) => {
            for d in &new_dirs {
                tool("mmd", &["-i".as_ref(), img, format!("::/{d}").as_ref()])?;
            }
            for (op, src) in ops.iter().zip(&sources) {
                let FileOp::Write { path, .. } = op else {
                    return Err(refused(format!("{}: FAT has no links", op.path())));
                };
                let to = format!("::/{}", path.trim_start_matches('/'));
                tool(
                    "mcopy",
                    &["-o".as_ref(), "-i".as_ref(), img, src.as_os_str(), to.as_ref()],
                )?;
            }
        }
        Kind::Ext(..) => {
            let kept = kept_attributes(staged, ops, &owners)?;
            let owned_by =
                |p: &str, (u, g): (u32, u32)| format!("sif \"{p}\" uid {u}\nsif \"{p}\" gid {g}\n");
            let owned = |p: &str| owned_by(p, (0, 0));
            let mut script = String::new();
            for d in &new_dirs {
                script += &format!(
                    "mkdir \"/{d}\"\nsif \"/{d}\" mode 040755\n{}",
                    owned(&format!("/{d}"))
                );
            }
            for (i, ((op, src), mode)) in ops.iter().zip(&sources).zip(&modes).enumerate() {
                let path = format!("/{}", op.path().trim_start_matches('/'));
                let (dir, name) = path.rsplit_once('/').expect("absolute");
                script += &format!(
                    "cd \"{}\"\nrm \"{name}\"\n",
                    if dir.is_empty() { "/" } else { dir }
                );
                match op {
                    FileOp::Write { .. } => {
                        script += &format!(
                            "write \"{}\" \"{name}\"\nsif \"{name}\" mode 0{:o}\n{}",
                            src.display(),
                            0o100000 | mode,
                            owned_by(name, owners[i].unwrap_or((0, 0)))
                        );
                        for (attr, value) in &kept[i] {
                            script += &format!("ea_set -f \"{}\" \"{name}\" {attr}\n", value.display());
                        }
                    }
                    FileOp::Symlink { target, .. } => script += &format!("symlink \"{name}\" \"{target}\"\n"),
                    FileOp::Remove { .. } => {}
                }
            }
            let cmds = staged.scratch("debugfs.cmds");
            std::fs::write(&cmds, script).map_err(|e| refused(e.to_string()))?;
            tool("debugfs", &["-w".as_ref(), "-f".as_ref(), cmds.as_os_str(), img])?;
        }
        Kind::Ufs(_) => return Err(refused("UFS is not written by osconf".into())),
        Kind::Btrfs => return Err(refused("Btrfs is not written by osconf".into())),
        Kind::Xfs(_) => return Err(refused("XFS is not written by osconf (it is read only)".into())),
    }
    // The tools say little when they fail (debugfs exits 0): read it all back.
    let volume = staged.volume().map_err(|e| refused(e.to_string()))?;
    for d in dirs {
        if volume
            .metadata(d)
            .ok()
            .flatten()
            .is_none_or(|m| m.file_type != FileType::Dir)
        {
            return Err(refused(format!("{d}/ did not come out as made")));
        }
    }
    for (op, owner) in ops.iter().zip(&owners) {
        let rel = op.path().trim_start_matches('/');
        let ok = match op {
            FileOp::Write { contents, .. } => {
                // What was read back may be os.conf: wiped when dropped.
                let back = volume.read_file(rel).ok().flatten().map(Secret::new);
                let meta = volume.symlink_metadata(rel).ok().flatten();
                back.as_ref().map(Secret::expose) == Some(contents)
                    && meta.map(|m| (m.uid, m.gid)) == Some(owner.unwrap_or((0, 0)))
            }
            FileOp::Symlink { target, .. } => {
                volume.read_link(rel).ok().flatten().as_deref() == Some(target.as_bytes())
            }
            FileOp::Remove { .. } => volume.symlink_metadata(rel).ok().flatten().is_none(),
        };
        if !ok {
            return Err(refused(format!("{} did not come out as written", op.path())));
        }
    }
    Ok(())
}

/// The extended attributes (an SELinux label, ACLs) of each regular file a write of `ops` replaces
/// in the staged ext filesystem, `owners` saying which those are: (name, a scratch file holding its
/// value) per op, for `ea_set` to put on the new inode, which debugfs's `write` makes bare. Read by
/// debugfs's own `ea_list` and `ea_get` (the ext reader does not read xattr blocks). A name that is
/// not plain (letters, digits, `._-@`) is refused rather than passed to debugfs.
fn kept_attributes(
    staged: &Staged,
    ops: &[FileOp],
    owners: &[Option<(u32, u32)>],
) -> Result<Vec<Vec<(String, std::path::PathBuf)>>, Error> {
    let img = staged.path().as_os_str();
    let replaced: Vec<usize> = (0..ops.len())
        .filter(|&i| matches!(ops[i], FileOp::Write { .. }) && owners[i].is_some())
        .collect();
    let mut kept = vec![Vec::new(); ops.len()];
    if replaced.is_empty() {
        return Ok(kept);
    }
    let path = |i: usize| format!("/{}", ops[i].path().trim_start_matches('/'));
    let list: String = replaced
        .iter()
        .map(|&i| format!("ea_list \"{}\"\n", path(i)))
        .collect();
    let cmds = staged.scratch("ea_list.cmds");
    std::fs::write(&cmds, list).map_err(|e| refused(e.to_string()))?;
    // debugfs echoes each command ("debugfs: ea_list …"), then one "  NAME (LEN)…" line per attribute.
    let said = tool("debugfs", &["-f".as_ref(), cmds.as_os_str(), img])?;
    let mut at = None;
    let mut get = String::new();
    for line in said.lines() {
        if let Some(cmd) = line.strip_prefix("debugfs: ") {
            at = replaced
                .iter()
                .copied()
                .find(|&i| cmd == format!("ea_list \"{}\"", path(i)));
        } else if let (Some(i), Some(rest)) = (at, line.strip_prefix("  ")) {
            let name = rest.split(" (").next().unwrap_or_default();
            let plain = |c: char| c.is_ascii_alphanumeric() || "._-@".contains(c);
            if name.is_empty() || !name.chars().all(plain) {
                return Err(refused(format!(
                    "{}: an extended attribute osconf cannot carry over: {rest:?}",
                    path(i)
                )));
            }
            let value = staged.scratch(&format!("ea{i}.{}", kept[i].len()));
            get += &format!("ea_get -f \"{}\" \"{}\" {name}\n", value.display(), path(i));
            kept[i].push((name.to_owned(), value));
        }
    }
    if !get.is_empty() {
        let cmds = staged.scratch("ea_get.cmds");
        std::fs::write(&cmds, get).map_err(|e| refused(e.to_string()))?;
        tool("debugfs", &["-f".as_ref(), cmds.as_os_str(), img])?;
        // debugfs exits 0 whatever failed: each value must be there.
        for (name, value) in kept.iter().flatten() {
            if !value.is_file() {
                return Err(refused(format!("debugfs did not read extended attribute {name}")));
            }
        }
    }
    Ok(kept)
}

/// The mode each of `ops` leaves its file with (0 for a link or a removal), as the executor
/// gives them: an exact mode, a replaced file's own, or another file's; and the owner of each
/// regular file a write replaces, which it keeps (etc/shadow's group is shadow on Debian; a new
/// file is root's). `meta(path, follow)` reads the filesystem as it is. A directory where a file
/// goes is refused.
pub(super) type Owners = Vec<Option<(u32, u32)>>;
pub(super) fn modes(
    ops: &[FileOp],
    meta: impl Fn(&str, bool) -> std::io::Result<Option<crate::disk::Meta>>,
) -> Result<(Vec<u32>, Owners), Error> {
    let mut modes = Vec::new();
    let mut owners = Vec::new();
    for op in ops {
        let rel = op.path().trim_start_matches('/');
        let now = meta(rel, false).map_err(|e| refused_io(op.path(), &e))?;
        if now.is_some_and(|m| m.file_type == FileType::Dir) {
            return Err(refused(format!("{} is a directory", op.path())));
        }
        let replaced = now.filter(|n| n.file_type == FileType::File);
        owners.push(replaced.map(|n| (n.uid, n.gid)));
        modes.push(match op {
            FileOp::Write {
                mode: Mode::Exact(m), ..
            } => *m,
            FileOp::Write {
                mode: Mode::Default(m),
                ..
            } => replaced.map_or(*m, |n| n.mode),
            FileOp::Write {
                mode: Mode::SameAs(other),
                ..
            } => meta(other.trim_start_matches('/'), true)
                .ok()
                .flatten()
                .map_or(0o600, |n| n.mode),
            _ => 0,
        });
    }
    Ok((modes, owners))
}

/// A file for the tool to copy into the image, readable by root only (it may be os.conf).
pub(super) fn stage_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

/// The write of os.conf that `apply` takes, its copy of the bytes (the password) wiped when it is
/// dropped, whatever path the command takes. No `Debug`.
struct ConfOp(FileOp);

impl Drop for ConfOp {
    fn drop(&mut self) {
        if let FileOp::Write { contents, .. } = &mut self.0 {
            contents.wipe();
        }
    }
}

/// `osconf image inject DISK OS_CONF`.
pub fn run(disk: &Path, conf: &Path) -> Result<String, Error> {
    // The very bytes validated are the bytes written.
    let bytes = crate::conf::read(conf)?;
    crate::conf::validate(conf, bytes.expose())?;
    super::convert::edit(
        disk,
        |_| false,
        |raw, _| write_conf(raw, bytes.expose(), stage::commit),
    )
}

/// os.conf into `image test`'s own qcow2 overlay `disk`, as ECS writes it before a start: only the
/// ranges of partition 1 that change are written into the overlay (`stage::commit_qcow2`), where
/// [`run`] would copy the whole disk to raw and back to keep a user's image safe from a crash.
pub fn into_overlay(disk: &Path, conf: &Path) -> Result<String, Error> {
    let bytes = crate::conf::read(conf)?;
    crate::conf::validate(conf, bytes.expose())?;
    write_conf(disk, bytes.expose(), stage::commit_qcow2).map(|o| o.text)
}

/// Writes os.conf's `bytes` into partition 1 of the image `disk` (raw, or read by its format's
/// reader) and has `commit` write what changed into it.
fn write_conf(
    disk: &Path,
    bytes: &[u8],
    commit: fn(&Path, &[&Staged]) -> Result<u64, Error>,
) -> Result<Outcome, Error> {
    // Until the commit, only a staged copy changes.
    let unreadable = |e: std::io::Error| super::unreadable(disk, &e).unchanged();
    let image = Image::open(disk).map_err(unreadable)?;
    let volume = super::first_volume(disk, &image).map_err(Error::unchanged)?;
    let kind = volume.fs.kind;
    let what = volume.fs.describe();
    drop(volume);
    let staged = Staged::new(disk, &image, 1).map_err(|e| e.at(Some(disk)).unchanged())?;
    let op = ConfOp(FileOp::Write {
        path: CONF_PATH.to_owned(),
        contents: bytes.to_vec(),
        mode: Mode::Exact(0o600),
        secret: true,
    });
    apply(&staged, kind, &[], std::slice::from_ref(&op.0)).map_err(|e| in_disk(e, disk).unchanged())?;
    let changed = commit(disk, &[&staged]).map_err(|e| e.at(Some(disk)))?;
    Ok(Outcome {
        text: format!(
            "wrote {CONF_PATH} ({} bytes) into partition 1 ({what}); {changed} bytes of the image changed\n",
            bytes.len()
        ),
        changed,
    })
}

pub(super) fn in_disk(mut e: Error, disk: &Path) -> Error {
    e.path.get_or_insert_with(|| disk.to_owned());
    e
}
