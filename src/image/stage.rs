//! Writing into a partition of a raw image so that a failure leaves the image as it was: the
//! partition is copied (its data only: the copy stays sparse) into a work directory beside the
//! image, the tools edit the copy, the caller checks the copy with `disk`'s reader, and only then
//! are the bytes that differ written back — after their old contents went to an undo file
//! (`DISK.osconf-undo`, flushed first). A write-back that fails is undone from memory at once; one
//! cut short by a crash is undone by the next `image inject` or `prepare` ([`recover`]), which also
//! removes the work directories of runs that were killed.
//!
//! The undo file is input like the image: anyone holding the image may have put it there. It is
//! opened as osconf opens foreign files (no link, regular only, non-blocking, size bounded), and
//! acted on only when it lists partitions of the image's own table and every record lies inside
//! them; anything else is refused and kept for a person (exit 2), the image untouched.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt as _, FileExt, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use crate::disk::format::Disk;
use crate::disk::{Image, Volume, Window, Work};
use crate::error::{Error, Outcome};

/// Compared and copied in chunks of this size; changes are found to this granularity.
const CHUNK: u64 = 64 << 10;
const PAGE: usize = 4096;
/// The most `write` commands given to one qemu-io (its command line stays far below the kernel's
/// bound).
const QEMU_IO_WRITES: usize = 256;
/// Version 2 lists the partitions it may write (version 1, which did not, is not acted on).
const UNDO_MAGIC: &[u8] = b"osconf-undo 2\n";
const UNDO_END: &[u8] = b"end\n";
/// The largest undo file written or read: what one command may change of an image (the osconf
/// binary, a few files and the metadata they take).
const MAX_UNDO: u64 = 512 << 20;
/// The most partitions an undo file lists (osconf stages two at most).
const MAX_UNDO_PARTS: u64 = 16;

/// A copy of one partition of the image, for tools to edit.
pub struct Staged {
    disk: PathBuf,
    dir: PathBuf,
    copy: PathBuf,
    offset: u64,
    len: u64,
    /// The image's work budget: reading the copy is reading the image.
    work: Work,
    /// Which partition of the table it is.
    n: u32,
    /// The virtual disk, read through its format's reader, when the file's bytes are not the
    /// disk's (a qcow2 written by [`commit_qcow2`]); `None`: the file is read at the same offsets.
    virt: Option<Disk>,
}

fn undo_path(disk: &Path) -> PathBuf {
    let mut p = disk.as_os_str().to_owned();
    p.push(".osconf-undo");
    PathBuf::from(p)
}

impl Staged {
    /// Copies partition `n` of `image` (opened from `disk`) into a work directory beside `disk`.
    pub fn new(disk: &Path, image: &Image, n: u32) -> Result<Staged, Error> {
        let (offset, len) = image.extent(n).map_err(|e| Error::io(disk, &e))?;
        let mut dir = disk.as_os_str().to_owned();
        dir.push(format!(".osconf-work.{}.p{n}", std::process::id()));
        let dir = PathBuf::from(dir);
        // Its own only: the copy may hold os.conf, with the root password.
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::failed(None, format!("creating {}: {e}", dir.display())))?;
        let staged = Staged {
            disk: disk.to_owned(),
            copy: dir.join(format!("partition{n}")),
            dir,
            offset,
            len,
            work: image.work().clone(),
            n,
            virt: (!image.disk().format.in_place()).then(|| image.disk().clone()),
        };
        staged
            .extract()
            .map_err(|e| Error::failed(None, format!("copying partition {n} of {}: {e}", disk.display())))?;
        crate::exec::crash_point("image-staged");
        Ok(staged)
    }

    /// Copies the partition's chunks that hold anything but zeros: so the copy's holes are zeros
    /// in the image too.
    fn extract(&self) -> io::Result<()> {
        let out = File::create(&self.copy)?;
        out.set_len(self.len)?;
        let mut buf = vec![0u8; CHUNK as usize];
        let mut at = 0;
        let src = File::open(&self.disk)?;
        while at < self.len {
            if self.virt.is_none() {
                // A file's holes are skipped; a format's reader gives its unwritten clusters as
                // zeros fast.
                let Some(start) = next_data(&src, self.offset + at, self.offset + self.len)? else {
                    break;
                };
                at = start - self.offset;
            }
            let n = CHUNK.min(self.len - at) as usize;
            self.read_image(&src, &mut buf[..n], at)?;
            if buf[..n].iter().any(|&b| b != 0) {
                out.write_all_at(&buf[..n], at)?;
            }
            at += n as u64;
        }
        Ok(())
    }

    /// Fills `buf` from the image at `at` of the partition: the file's bytes, or the virtual disk's.
    fn read_image(&self, file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
        match &self.virt {
            None => file.read_exact_at(buf, self.offset + at),
            Some(d) if crate::disk::read_at(d, self.offset + at, buf)? => Ok(()),
            Some(_) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the virtual disk ends inside the partition",
            )),
        }
    }

    /// The copy, for a tool to edit (a whole filesystem: no offset needed).
    pub fn path(&self) -> &Path {
        &self.copy
    }

    /// Which partition of the image it is.
    pub fn partition(&self) -> u32 {
        self.n
    }

    /// A scratch file in the work directory (a tool's input).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The copy's filesystem, to check what the tools did before anything is written back.
    pub fn volume(&self) -> io::Result<Volume<File>> {
        Volume::on(Window::rest(File::open(&self.copy)?, 0, self.work.clone())?)
    }

    /// The pages that differ, with their bytes in the image (old) and in the copy (new).
    fn changes(&self) -> io::Result<Vec<Change>> {
        let image = File::open(&self.disk)?;
        let copy = File::open(&self.copy)?;
        let mut out: Vec<Change> = Vec::new();
        let (mut a, mut b) = (vec![0u8; CHUNK as usize], vec![0u8; CHUNK as usize]);
        let mut at = 0;
        while at < self.len {
            // Skip what is a hole in both (a hole in the copy is zeros in a virtual disk: see
            // `extract`; its file's holes say nothing of that).
            let in_image = match self.virt {
                None => next_data(&image, self.offset + at, self.offset + self.len)?.map(|d| d - self.offset),
                Some(_) => None,
            };
            let next = [in_image, next_data(&copy, at, self.len)?];
            let Some(start) = next.into_iter().flatten().min() else {
                break;
            };
            at = start - start % CHUNK;
            let n = CHUNK.min(self.len - at) as usize;
            self.read_image(&image, &mut a[..n], at)?;
            copy.read_exact_at(&mut b[..n], at)?;
            for (i, (old, new)) in a[..n].chunks(PAGE).zip(b[..n].chunks(PAGE)).enumerate() {
                if old == new {
                    continue;
                }
                let abs = self.offset + at + (i * PAGE) as u64;
                match out.last_mut() {
                    Some(c) if c.at + c.new.len() as u64 == abs => {
                        c.old.extend_from_slice(old);
                        c.new.extend_from_slice(new);
                    }
                    _ => out.push(Change {
                        at: abs,
                        old: old.to_vec(),
                        new: new.to_vec(),
                    }),
                }
            }
            at += n as u64;
        }
        Ok(out)
    }
}

/// Writes the bytes that differ between each staged copy and the image back into the image (one
/// undo file for all: they go in together), the old ones saved first; returns how many bytes
/// changed. On failure the image is as it was, or the message says where its old bytes are.
pub fn commit(disk: &Path, staged: &[&Staged]) -> Result<u64, Error> {
    let mut changes = Vec::new();
    for s in staged {
        changes.extend(
            s.changes()
                .map_err(|e| Error::failed(None, format!("comparing the copy with the image: {e}")))?,
        );
    }
    if changes.is_empty() {
        return Ok(0);
    }
    let old: u64 = changes.iter().map(|c| 16 + c.old.len() as u64).sum();
    if old > MAX_UNDO {
        return Err(Error::failed(
            None,
            format!(
                "{old} bytes of the image would change, more than the {MAX_UNDO} an undo file holds; \
"
            ),
        ));
    }
    let undo = undo_path(disk);
    let parts: Vec<(u64, u64)> = staged.iter().map(|s| (s.offset, s.len)).collect();
    write_undo(&undo, &parts, &changes).map_err(|e| {
        let _ = fs::remove_file(&undo);
        Error::failed(None, format!("writing {}: {e}", undo.display()))
    })?;
    let image = OpenOptions::new()
        .write(true)
        .open(disk)
        .map_err(|e| Error::failed(None, format!("opening {} to write: {e}", disk.display())))?;
    let written = changes
        .iter()
        .try_for_each(|c| image.write_all_at(&c.new, c.at))
        .and_then(|()| image.sync_all());
    if let Err(e) = written {
        let put_back = changes
            .iter()
            .try_for_each(|c| image.write_all_at(&c.old, c.at))
            .and_then(|()| image.sync_all());
        let failed = Error::failed(None, format!("writing {}: {e}", disk.display()));
        return Err(match put_back {
            Ok(()) => {
                let _ = fs::remove_file(&undo);
                failed.with_outcome(Outcome::RolledBack)
            }
            Err(e2) => failed.leaving(format!(
                "putting it back failed too ({e2}): its old bytes are in {}, which the next osconf \
                 image inject or prepare writes back",
                undo.display()
            )),
        });
    }
    fs::remove_file(&undo).map_err(|e| Error::failed(None, format!("removing {}: {e}", undo.display())))?;
    Ok(changes.iter().map(|c| c.new.len() as u64).sum())
}

/// Writes the bytes that differ between each staged copy and the qcow2 image `disk` into it, by
/// qemu-io (`write -s FILE OFFSET LENGTH`: qemu's own qcow2 writer allocates the clusters and keeps
/// the refcounts, where a mistake would corrupt the image), then reads them back through osconf's
/// reader; returns how many bytes changed. Only the changed ranges are written: no raw copy of the
/// disk. No undo file either: this is for `image test`'s scratch overlay, which nobody keeps after
/// a failed run (a user's image goes through `convert`, crash-safe).
pub fn commit_qcow2(disk: &Path, staged: &[&Staged]) -> Result<u64, Error> {
    let failed = |e: String| Error::failed(None, e);
    let mut changed = 0;
    for s in staged {
        let changes = s
            .changes()
            .map_err(|e| failed(format!("comparing the copy with the image: {e}")))?;
        let image = std::path::absolute(disk).map_err(|e| failed(format!("{}: {e}", disk.display())))?;
        for (n, batch) in changes.chunks(QEMU_IO_WRITES).enumerate() {
            // Named relative to the work directory: qemu-io splits its commands at spaces.
            let mut args: Vec<String> = vec!["-f".into(), "qcow2".into()];
            for (i, c) in batch.iter().enumerate() {
                let name = format!("change{n}.{i}");
                private_file(&s.dir.join(&name), &c.new)
                    .map_err(|e| failed(format!("staging a change for qemu-io: {e}")))?;
                args.extend([
                    "-c".into(),
                    format!("write -q -s {name} {} {}", c.at, c.new.len()),
                ]);
            }
            let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
            all.push(image.as_os_str());
            super::tool_in("qemu-io", &all, Some(&s.dir))?;
        }
        // qemu-io reports a failed command on stderr, not always in its exit status: read back.
        let back = Image::open(disk).map_err(|e| failed(format!("reading {} again: {e}", disk.display())))?;
        for c in &changes {
            let mut got = vec![0u8; c.new.len()];
            let read = crate::disk::read_at(back.disk(), c.at, &mut got);
            if !read.is_ok_and(|full| full) || got != c.new {
                return Err(failed(format!(
                    "qemu-io did not write bytes {}+{} of {}",
                    c.at,
                    c.new.len(),
                    disk.display()
                )));
            }
            changed += c.new.len() as u64;
        }
    }
    Ok(changed)
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A new file only its owner reads, holding `bytes` (a change may hold os.conf).
fn private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(bytes)
}

struct Change {
    at: u64,
    old: Vec<u8>,
    new: Vec<u8>,
}

/// Where the next data at or after `pos` (before `end`) is, holes skipped; `None` when only holes
/// remain. A filesystem without SEEK_DATA makes everything data.
fn next_data(f: &File, pos: u64, end: u64) -> io::Result<Option<u64>> {
    if pos >= end {
        return Ok(None);
    }
    match rustix::fs::seek(f, rustix::fs::SeekFrom::Data(pos)) {
        Ok(d) if d < end => Ok(Some(d)),
        Ok(_) | Err(rustix::io::Errno::NXIO) => Ok(None),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::OPNOTSUPP) => Ok(Some(pos)),
        Err(e) => Err(e.into()),
    }
}

/// The undo file: magic, the partitions (offset, length) the changes lie in, then (offset, length,
/// old bytes) records, then the end mark (all numbers u64 little-endian); flushed, and its
/// directory too, before the image is touched.
fn write_undo(path: &Path, parts: &[(u64, u64)], changes: &[Change]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(UNDO_MAGIC)?;
    f.write_all(&(parts.len() as u64).to_le_bytes())?;
    for (at, len) in parts {
        f.write_all(&at.to_le_bytes())?;
        f.write_all(&len.to_le_bytes())?;
    }
    for c in changes {
        f.write_all(&c.at.to_le_bytes())?;
        f.write_all(&(c.old.len() as u64).to_le_bytes())?;
        f.write_all(&c.old)?;
    }
    f.write_all(UNDO_END)?;
    f.sync_all()?;
    sync_dir(path)
}

pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Puts back what an interrupted write left in `DISK.osconf-undo`: a complete undo file is written
/// back into the image and removed; one cut short (the image was not touched yet) is removed. The
/// work directories of killed runs are removed too. Says what it did, `None` when nothing; an undo
/// file osconf could not have written is refused (exit 2), kept, and the image left alone.
pub fn recover(disk: &Path) -> Result<Option<String>, Error> {
    let mut notes = sweep(disk);
    let undo = undo_path(disk);
    let refuse = |why: Error| {
        let why = format!(
            "{why}: not applied and kept for a person to look at (remove it if no osconf image \
             command was cut short)"
        );
        Error::invalid(&undo, why).unchanged()
    };
    let Some(data) = read_undo(&undo).map_err(refuse)? else {
        return Ok((!notes.is_empty()).then(|| notes.join("\n")));
    };
    let removed = |what: String| {
        fs::remove_file(&undo)
            .map(|()| what)
            .map_err(|e| Error::failed(Some(&undo), format!("removing it: {e}")))
    };
    let note = match parse_undo(&data) {
        Parsed::CutShort => removed(format!(
            "removed {}: an interrupted write that had not touched the image yet",
            undo.display()
        ))?,
        Parsed::Foreign => return Err(refuse(Error::bad("not an undo file this osconf writes"))),
        Parsed::Complete { parts, records } => {
            check_undo(disk, &parts, &records).map_err(refuse)?;
            let image = OpenOptions::new()
                .write(true)
                .open(disk)
                .map_err(|e| Error::failed(Some(disk), e.to_string()))?;
            records
                .iter()
                .try_for_each(|(at, old)| image.write_all_at(old, *at))
                .and_then(|()| image.sync_all())
                .map_err(|e| Error::failed(Some(disk), format!("putting back {}: {e}", undo.display())))?;
            removed(format!(
                "put back {} bytes an interrupted osconf image write had changed (from {})",
                records.iter().map(|(_, b)| b.len()).sum::<usize>(),
                undo.display()
            ))?
        }
    };
    notes.push(note);
    Ok(Some(notes.join("\n")))
}

/// The undo file's bytes, `None` when there is none; refused (why) when it is a link, not a
/// regular file, or larger than any undo file osconf writes. Never blocks, never follows a link.
fn read_undo(undo: &Path) -> Result<Option<Vec<u8>>, Error> {
    use rustix::fs::OFlags;
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let f = match File::options()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(undo)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(Error::bad("a link, not the file osconf writes"));
        }
        Err(e) => return Err(Error::bad(e.to_string())),
    };
    let meta = f.metadata().map_err(|e| Error::bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(Error::failed(
            None,
            format!("not a regular file ({:?})", meta.file_type()),
        ));
    }
    if meta.len() > MAX_UNDO + 4096 {
        return Err(Error::failed(
            None,
            format!("{} bytes, larger than any undo file osconf writes", meta.len()),
        ));
    }
    let mut data = Vec::new();
    f.take(MAX_UNDO + 4097)
        .read_to_end(&mut data)
        .map_err(|e| Error::bad(e.to_string()))?;
    if data.len() as u64 > MAX_UNDO + 4096 {
        return Err(Error::bad(
            "larger than any undo file osconf writes (it grew while read)",
        ));
    }
    Ok(Some(data))
}

/// Whether the partitions an undo file lists are partitions of the image's table, and its records
/// lie inside them: only then may it write into the image.
fn check_undo(disk: &Path, parts: &[(u64, u64)], records: &[(u64, &[u8])]) -> Result<(), Error> {
    let image = Image::open(disk).map_err(|e| Error::io(disk, &e))?;
    let table: Vec<(u64, u64)> = image
        .table
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| t.extent(p)))
        .collect();
    vet(&table, parts, records)
}

/// [`check_undo`] against the image's partitions `table` (offset, length in bytes).
pub(crate) fn vet(table: &[(u64, u64)], parts: &[(u64, u64)], records: &[(u64, &[u8])]) -> Result<(), Error> {
    for (at, len) in parts {
        if !table.contains(&(*at, *len)) {
            return Err(Error::failed(
                None,
                format!("it lists bytes {at}+{len}, not a partition of the image"),
            ));
        }
    }
    for (at, old) in records {
        let end = at.checked_add(old.len() as u64);
        let inside = parts
            .iter()
            .any(|(p, len)| *at >= *p && end.is_some_and(|e| e <= p + len));
        if !inside {
            return Err(Error::failed(
                None,
                format!(
                    "a record at byte {at} ({} bytes) lies outside the partitions it lists",
                    old.len()
                ),
            ));
        }
    }
    Ok(())
}

/// What an undo file's bytes are.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed<'a> {
    /// A complete undo file: the partitions it lists, its records.
    Complete {
        parts: Vec<(u64, u64)>,
        records: Vec<(u64, &'a [u8])>,
    },
    /// The beginning of one, cut short before its end mark.
    CutShort,
    /// Not one osconf writes.
    Foreign,
}

/// Parses an undo file (see [`write_undo`]).
pub(crate) fn parse_undo(data: &[u8]) -> Parsed<'_> {
    let Some(rest) = data.strip_prefix(UNDO_MAGIC) else {
        return if UNDO_MAGIC.starts_with(data) {
            Parsed::CutShort
        } else {
            Parsed::Foreign
        };
    };
    let word = |b: &[u8], at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
    };
    let Some(count) = word(rest, 0) else {
        return Parsed::CutShort;
    };
    if count > MAX_UNDO_PARTS {
        return Parsed::Foreign;
    }
    let mut parts = Vec::new();
    for i in 0..count as usize {
        match (word(rest, 8 + 16 * i), word(rest, 16 + 16 * i)) {
            (Some(at), Some(len)) => parts.push((at, len)),
            _ => return Parsed::CutShort,
        }
    }
    let mut rest = &rest[8 + 16 * count as usize..];
    let mut records = Vec::new();
    loop {
        if rest == UNDO_END {
            return Parsed::Complete { parts, records };
        }
        let (Some(at), Some(len)) = (word(rest, 0), word(rest, 8)) else {
            return Parsed::CutShort;
        };
        let Some(bytes) = usize::try_from(len)
            .ok()
            .and_then(|len| rest.get(16..16usize.checked_add(len)?))
        else {
            return Parsed::CutShort;
        };
        records.push((at, bytes));
        rest = &rest[16 + bytes.len()..];
    }
}

/// Removes the work directories (`DISK.osconf-work.PID.pN`, `.convert`, `.guestfs`, and `.new` files) of runs that were killed, whose PID no
/// process has any more; says what it removed. Another run's (a live PID, or the PID reused) are
/// left alone; a link or a file of that name is not osconf's and is left alone too.
fn sweep(disk: &Path) -> Vec<String> {
    let Some(name) = disk.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let prefix = format!("{name}.osconf-work.");
    let dir = match disk.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut notes = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let file_name = entry.file_name();
        let Some((pid, part)) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|rest| rest.split_once('.'))
        else {
            continue;
        };
        // pN: a staged partition; convert: `convert`'s raw copy; guestfs: the files libguestfs
        // uploads (directories); new: `convert`'s new image or the copy libguestfs writes, not
        // renamed into place yet (a file).
        let file = part == "new";
        let ours = file
            || part == "convert"
            || part == "guestfs"
            || part.strip_prefix('p').is_some_and(|n| n.parse::<u32>().is_ok());
        let Some(pid) = pid.parse::<i32>().ok().and_then(rustix::process::Pid::from_raw) else {
            continue;
        };
        let dead = matches!(
            rustix::process::test_kill_process(pid),
            Err(rustix::io::Errno::SRCH)
        );
        let path = entry.path();
        let kind = path.symlink_metadata().map(|m| m.file_type());
        if !ours || !dead || !kind.is_ok_and(|k| if file { k.is_file() } else { k.is_dir() }) {
            continue;
        }
        let removed = if file {
            fs::remove_file(&path)
        } else {
            fs::remove_dir_all(&path)
        };
        notes.push(match removed {
            Ok(()) => format!(
                "removed {}: the work files of an osconf image run that was killed",
                path.display()
            ),
            Err(e) => format!("could not remove {} (left by a killed run): {e}", path.display()),
        });
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undo_file_cut_short_is_no_undo_file() {
        let change = Change {
            at: 4096,
            old: vec![1, 2, 3],
            new: vec![4, 5, 6],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u");
        write_undo(&path, &[(1024, 8192)], &[change]).unwrap();
        let data = fs::read(&path).unwrap();
        assert_eq!(
            parse_undo(&data),
            Parsed::Complete {
                parts: vec![(1024, 8192)],
                records: vec![(4096, &[1u8, 2, 3][..])]
            }
        );
        for cut in 0..data.len() {
            assert_eq!(parse_undo(&data[..cut]), Parsed::CutShort, "{cut}");
        }
        assert_eq!(parse_undo(b"osconf-undo 1\nend\n"), Parsed::Foreign);
        let mut many = UNDO_MAGIC.to_vec();
        many.extend(u64::MAX.to_le_bytes());
        assert_eq!(parse_undo(&many), Parsed::Foreign);
        let mut huge = UNDO_MAGIC.to_vec();
        huge.extend(0u64.to_le_bytes());
        huge.extend(0u64.to_le_bytes());
        huge.extend(u64::MAX.to_le_bytes());
        assert_eq!(parse_undo(&huge), Parsed::CutShort);
    }
}
