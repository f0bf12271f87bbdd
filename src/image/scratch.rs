//! A copy of a raw image that costs what it holds: a reflink where the filesystem shares blocks
//! (btrfs, XFS: instant, no space), else a sparse copy that writes only the image's data extents
//! (`SEEK_DATA`/`SEEK_HOLE`). `image test` boots one; `prepare` has libguestfs write into one.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use rustix::fs::SeekFrom;

/// Copies `src` to a new file `dst` (replacing one there); says how.
pub fn scratch_copy(src: &Path, dst: &Path) -> io::Result<&'static str> {
    let from = File::open(src)?;
    let len = from.metadata()?.len();
    let to = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dst)?;
    if rustix::fs::ioctl_ficlone(&to, &from).is_ok() {
        return Ok("a reflink copy");
    }
    to.set_len(len)?;
    let mut at = 0u64;
    while at < len {
        let data = match rustix::fs::seek(&from, SeekFrom::Data(at)) {
            Ok(d) => d,
            // No data past `at`: the rest is a hole.
            Err(rustix::io::Errno::NXIO) => break,
            // No SEEK_DATA on this filesystem: everything is data.
            Err(_) if at == 0 => 0,
            Err(e) => return Err(e.into()),
        };
        let hole = rustix::fs::seek(&from, SeekFrom::Hole(data))
            .unwrap_or(len)
            .min(len);
        copy_range(&from, &to, data, hole - data)?;
        at = hole;
    }
    to.sync_all()?;
    Ok("a sparse copy")
}

/// Copies `n` bytes at `offset` (in the kernel, which may share blocks itself).
fn copy_range(from: &File, to: &File, offset: u64, mut n: u64) -> io::Result<()> {
    let (mut off_in, mut off_out) = (offset, offset);
    while n > 0 {
        let chunk = n.min(1 << 30) as usize;
        let done = rustix::fs::copy_file_range(from, Some(&mut off_in), to, Some(&mut off_out), chunk)?;
        if done == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the image shrank while copied",
            ));
        }
        n -= done as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek as _, Write as _};
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn a_sparse_image_is_copied_byte_for_byte_with_its_holes() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("a.raw"), dir.path().join("b.raw"));
        let mut f = File::create(&src).unwrap();
        f.set_len(64 << 20).unwrap();
        for (at, text) in [
            (0u64, &b"mbr"[..]),
            (20 << 20, b"middle"),
            ((64 << 20) - 3, b"end"),
        ] {
            f.seek(io::SeekFrom::Start(at)).unwrap();
            f.write_all(text).unwrap();
        }
        drop(f);
        let how = scratch_copy(&src, &dst).unwrap();
        assert_eq!(
            std::fs::read(&src).unwrap(),
            std::fs::read(&dst).unwrap(),
            "{how}"
        );
        let used = std::fs::metadata(&dst).unwrap().blocks() * 512;
        assert!(
            used < 4 << 20,
            "{how}: {used} bytes allocated for 64 MiB mostly holes"
        );
    }
}
