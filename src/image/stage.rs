//! Writing into a partition of a raw image so that a failure leaves the image as it was: the
//! partition is copied (its data only: the copy stays sparse) into a work directory beside the
//! image, the tools edit the copy, the caller checks the copy with `disk`'s reader, and only then
//! are the bytes that differ written back — after their old contents went to an undo file
//! (`DISK.osconf-undo`, flushed first). A write-back that fails is undone from memory at once; one
//! cut short by a crash is undone by the next `image inject` or `prepare` ([`recover`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::disk::{Image, Volume};

/// Compared and copied in chunks of this size; changes are found to this granularity.
const CHUNK: u64 = 64 << 10;
const PAGE: usize = 4096;
const UNDO_MAGIC: &[u8] = b"osconf-undo 1\n";
const UNDO_END: &[u8] = b"end\n";

/// A copy of one partition of the image, for tools to edit.
pub struct Staged {
    disk: PathBuf,
    dir: PathBuf,
    copy: PathBuf,
    offset: u64,
    len: u64,
}

fn undo_path(disk: &Path) -> PathBuf {
    let mut p = disk.as_os_str().to_owned();
    p.push(".osconf-undo");
    PathBuf::from(p)
}

impl Staged {
    /// Copies partition `n` of `image` (opened from `disk`) into a work directory beside `disk`.
    pub fn new(disk: &Path, image: &Image, n: u32) -> Result<Staged, String> {
        let (offset, len) = image.extent(n).map_err(|e| e.to_string())?;
        let mut dir = disk.as_os_str().to_owned();
        dir.push(format!(".osconf-work.{}.p{n}", std::process::id()));
        let dir = PathBuf::from(dir);
        fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let staged = Staged {
            disk: disk.to_owned(),
            copy: dir.join(format!("partition{n}")),
            dir,
            offset,
            len,
        };
        staged
            .extract()
            .map_err(|e| format!("copying partition {n} of {}: {e}", disk.display()))?;
        Ok(staged)
    }

    fn extract(&self) -> io::Result<()> {
        let src = File::open(&self.disk)?;
        let out = File::create(&self.copy)?;
        out.set_len(self.len)?;
        let mut buf = vec![0u8; CHUNK as usize];
        let mut at = 0;
        while let Some(start) = next_data(&src, self.offset + at, self.offset + self.len)? {
            at = start - self.offset;
            let n = CHUNK.min(self.len - at) as usize;
            src.read_exact_at(&mut buf[..n], start)?;
            if buf[..n].iter().any(|&b| b != 0) {
                out.write_all_at(&buf[..n], at)?;
            }
            at += n as u64;
        }
        Ok(())
    }

    /// The copy, for a tool to edit (a whole filesystem: no offset needed).
    pub fn path(&self) -> &Path {
        &self.copy
    }

    /// A scratch file in the work directory (a tool's input).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The copy's filesystem, to check what the tools did before anything is written back.
    pub fn volume(&self) -> io::Result<Volume<File>> {
        Volume::open(File::open(&self.copy)?, 0)
    }

    /// The pages that differ, with their bytes in the image (old) and in the copy (new).
    fn changes(&self) -> io::Result<Vec<Change>> {
        let image = File::open(&self.disk)?;
        let copy = File::open(&self.copy)?;
        let mut out: Vec<Change> = Vec::new();
        let (mut a, mut b) = (vec![0u8; CHUNK as usize], vec![0u8; CHUNK as usize]);
        let mut at = 0;
        while at < self.len {
            // Skip what is a hole in both.
            let next = [
                next_data(&image, self.offset + at, self.offset + self.len)?.map(|d| d - self.offset),
                next_data(&copy, at, self.len)?,
            ];
            let Some(start) = next.into_iter().flatten().min() else {
                break;
            };
            at = start - start % CHUNK;
            let n = CHUNK.min(self.len - at) as usize;
            image.read_exact_at(&mut a[..n], self.offset + at)?;
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
pub fn commit(disk: &Path, staged: &[&Staged]) -> Result<u64, String> {
    let mut changes = Vec::new();
    for s in staged {
        changes.extend(
            s.changes()
                .map_err(|e| format!("comparing the copy with the image: {e}; nothing was changed"))?,
        );
    }
    if changes.is_empty() {
        return Ok(0);
    }
    let undo = undo_path(disk);
    write_undo(&undo, &changes).map_err(|e| {
        let _ = fs::remove_file(&undo);
        format!("writing {}: {e}; nothing was changed", undo.display())
    })?;
    let image = OpenOptions::new()
        .write(true)
        .open(disk)
        .map_err(|e| format!("opening {} to write: {e}; nothing was changed", disk.display()))?;
    let written = changes
        .iter()
        .try_for_each(|c| image.write_all_at(&c.new, c.at))
        .and_then(|()| image.sync_all());
    if let Err(e) = written {
        let put_back = changes
            .iter()
            .try_for_each(|c| image.write_all_at(&c.old, c.at))
            .and_then(|()| image.sync_all());
        return Err(match put_back {
            Ok(()) => {
                let _ = fs::remove_file(&undo);
                format!(
                    "writing {}: {e}; the image was put back as it was",
                    disk.display()
                )
            }
            Err(e2) => format!(
                "writing {}: {e}; putting it back failed too ({e2}): its old bytes are in {}, \
                 which the next osconf image inject or prepare writes back",
                disk.display(),
                undo.display()
            ),
        });
    }
    fs::remove_file(&undo).map_err(|e| format!("removing {}: {e}", undo.display()))?;
    Ok(changes.iter().map(|c| c.new.len() as u64).sum())
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
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

/// The undo file: magic, then (offset, length, old bytes) records, then the end mark; flushed, and
/// its directory too, before the image is touched.
fn write_undo(path: &Path, changes: &[Change]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(UNDO_MAGIC)?;
    for c in changes {
        f.write_all(&c.at.to_le_bytes())?;
        f.write_all(&(c.old.len() as u64).to_le_bytes())?;
        f.write_all(&c.old)?;
    }
    f.write_all(UNDO_END)?;
    f.sync_all()?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Puts back what an interrupted write left in `DISK.osconf-undo`: a complete undo file is written
/// back into the image and removed; an incomplete one (the image was not touched yet) is removed.
/// Says what it did, `None` when there was nothing.
pub fn recover(disk: &Path) -> Result<Option<String>, String> {
    let undo = undo_path(disk);
    let mut data = Vec::new();
    match File::open(&undo) {
        Ok(mut f) => f
            .read_to_end(&mut data)
            .map_err(|e| format!("{}: {e}", undo.display()))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", undo.display())),
    };
    let records = parse_undo(&data);
    let Some(records) = records else {
        fs::remove_file(&undo).map_err(|e| format!("removing {}: {e}", undo.display()))?;
        return Ok(Some(format!(
            "removed {}: an interrupted write that had not touched the image yet",
            undo.display()
        )));
    };
    let image = OpenOptions::new()
        .write(true)
        .open(disk)
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    records
        .iter()
        .try_for_each(|(at, old)| image.write_all_at(old, *at))
        .and_then(|()| image.sync_all())
        .map_err(|e| format!("putting back {} into {}: {e}", undo.display(), disk.display()))?;
    fs::remove_file(&undo).map_err(|e| format!("removing {}: {e}", undo.display()))?;
    Ok(Some(format!(
        "put back {} bytes an interrupted osconf image write had changed (from {})",
        records.iter().map(|(_, b)| b.len()).sum::<usize>(),
        undo.display()
    )))
}

/// The records of a complete undo file; `None` when it is cut short or not one.
fn parse_undo(data: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    let mut rest = data.strip_prefix(UNDO_MAGIC)?;
    let mut out = Vec::new();
    loop {
        if rest == UNDO_END {
            return Some(out);
        }
        let at = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
        let len = usize::try_from(u64::from_le_bytes(rest.get(8..16)?.try_into().ok()?)).ok()?;
        let bytes = rest.get(16..16usize.checked_add(len)?)?;
        out.push((at, bytes));
        rest = &rest[16 + len..];
    }
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
        write_undo(&path, &[change]).unwrap();
        let data = fs::read(&path).unwrap();
        assert_eq!(parse_undo(&data), Some(vec![(4096, &[1u8, 2, 3][..])]));
        for cut in 0..data.len() {
            assert_eq!(parse_undo(&data[..cut]), None, "{cut}");
        }
    }
}
