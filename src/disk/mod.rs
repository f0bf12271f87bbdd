//! Disks as bytes: partition tables (MBR with extended partitions, GPT) and filesystem superblocks
//! (ext2/3/4, FAT12/16/32, UFS1/2, XFS v4/v5), read from any [`ReadAt`] at an offset — a block device and a
//! partition inside an image file alike. It is the one reader of these formats: the partition finder
//! at boot and the image tools both use it. The files inside ext2/3/4 and FAT filesystems are read
//! too, and inside XFS (`volume`: `Image`, `Volume`; `tree`: the path walk). It only reads; it never writes, mounts
//! or runs a tool. Every byte is hostile: every number checked before it becomes an offset (`at`),
//! every name checked before it is returned, every walk bounded per lookup and per command (`work`).
//!
//! What it reports follows `blkid -p` (util-linux), so that `--device UUID=…|LABEL=…` means what an
//! administrator sees in `blkid` and `/dev/disk/by-*`.

pub mod btrfs;
pub(crate) mod crc;
pub mod ext;
pub mod fat;
pub mod format;
pub mod lvm;
pub mod recent;
mod recovery;
pub mod table;
pub mod tree;
pub mod ufs;
pub mod volume;
pub mod work;
pub mod xfs;

use std::fs::File;
use std::io;

pub use recovery::{Log, Recovery};
pub use table::{Partition, PartitionTable, TableKind};
pub use tree::{Entry, FileType, Meta};
pub use volume::{Image, Volume};
pub use work::{Window, Work};

/// A filesystem found by its superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    pub kind: Kind,
    /// As blkid prints it: `xxxxxxxx-xxxx-…` for ext, `XXXX-XXXX` for FAT, 16 hex digits for UFS.
    pub uuid: Option<String>,
    pub label: Option<String>,
    /// The unit blkid reports as BLOCK_SIZE (ext: block size; FAT: sector size).
    pub block_size: Option<u32>,
}

/// Which filesystem, with what distinguishes its versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ext(ext::Flavour, ext::Features),
    Fat(fat::Version),
    Ufs(ufs::Version),
    /// Found by `Volume` only (the agent's `probe` does not look for it).
    Btrfs,
    /// XFS, its superblock's version (4 or 5).
    Xfs(u8),
}

impl Kind {
    /// The name blkid prints as TYPE, which is also the name mount(2) takes (`ufs` aside, which
    /// needs a `ufstype=` option).
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Ext(flavour, _) => flavour.name(),
            Kind::Fat(_) => "vfat",
            Kind::Ufs(_) => "ufs",
            Kind::Btrfs => "btrfs",
            Kind::Xfs(_) => "xfs",
        }
    }

    /// What blkid prints as VERSION (FAT12/16/32, UFS 1/2); ext's revision is left out.
    pub fn version(&self) -> Option<&'static str> {
        match self {
            Kind::Ext(..) | Kind::Btrfs | Kind::Xfs(_) => None,
            Kind::Fat(v) => Some(v.name()),
            Kind::Ufs(v) => Some(v.name()),
        }
    }
}

impl Filesystem {
    /// `ext4 UUID=… LABEL=…`, for messages.
    pub fn describe(&self) -> String {
        let mut s = self.kind.name().to_owned();
        if let Some(v) = self.kind.version() {
            s.push_str(&format!(" ({v})"));
        }
        if let Some(u) = &self.uuid {
            s.push_str(&format!(" UUID={u}"));
        }
        if let Some(l) = &self.label {
            s.push_str(&format!(" LABEL={l:?}"));
        }
        s
    }
}

/// The filesystem whose superblock starts the region at `offset`, if any of ext2/3/4, FAT, UFS or
/// XFS.
/// A region too short to hold a superblock holds none; other read errors are errors.
pub fn probe<R: ReadAt + ?Sized>(r: &R, offset: u64) -> io::Result<Option<Filesystem>> {
    if let Some(fs) = ext::probe(r, offset)? {
        return Ok(Some(fs));
    }
    if let Some(fs) = fat::probe(r, offset)? {
        return Ok(Some(fs));
    }
    if let Some(fs) = ufs::probe(r, offset)? {
        return Ok(Some(fs));
    }
    xfs::probe(r, offset)
}

/// Damage found in an image (`InvalidData`), saying what.
pub(crate) fn corrupt(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// `base + index × unit`: a number read from a disk made a byte offset; past 2^64 it is damage.
pub(crate) fn at(base: u64, index: u64, unit: u64) -> io::Result<u64> {
    index
        .checked_mul(unit)
        .and_then(|o| o.checked_add(base))
        .ok_or_else(|| corrupt(format!("byte {base} + {index} × {unit} is past 2^64")))
}

/// A source of bytes read at offsets (pread), without a cursor: readers take `&self`, so a view of a
/// filesystem inside an image is read through a shared reference, as a root on the host is.
pub trait ReadAt {
    /// Reads into `buf` from `offset`; fewer bytes than asked only at the end (0: at or past it).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// The size in bytes (a block device's too).
    fn size(&self) -> io::Result<u64>;
}

/// Fills `buf` from `offset` with `piece`, which reads as far as one unit (a stripe chunk, a thin
/// block) goes: fewer bytes only at the end, as `ReadAt` promises. A reader paying for each call's
/// length (a `Window`) would otherwise pay again for every unit.
pub fn fill(
    buf: &mut [u8],
    offset: u64,
    mut piece: impl FnMut(&mut [u8], u64) -> io::Result<usize>,
) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = piece(&mut buf[done..], offset + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        // Seeking to the end gives a block device's size too, where metadata says 0; every read is
        // positional, so the cursor it moves is never used.
        io::Seek::seek(&mut &*self, io::SeekFrom::End(0))
    }
}

/// Bytes in memory (fuzzing, tests).
impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.as_slice().read_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }
}

/// Shared (the physical volumes under several logical volumes).
impl<T: ReadAt + ?Sized> ReadAt for std::sync::Arc<T> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }
}

/// Reads `buf.len()` bytes at `offset`; `Ok(false)` when the source ends before that.
pub(crate) fn read_at<R: ReadAt + ?Sized>(r: &R, offset: u64, buf: &mut [u8]) -> io::Result<bool> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset
            .checked_add(done as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "an offset past 2^64"))?;
        match r.read_at(&mut buf[done..], at) {
            Ok(0) => return Ok(false),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The byte-at-a-time table of a reflected CRC-32 polynomial (GPT's IEEE one, Btrfs's Castagnoli).
pub(crate) const fn crc_table(poly: u32) -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = (c >> 1) ^ (poly & (c & 1).wrapping_neg());
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

/// A label field as blkid shows it: up to the first NUL, trailing blanks dropped; `None` if empty.
pub(crate) fn label(raw: &[u8]) -> Option<String> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let text = String::from_utf8_lossy(&raw[..end]);
    let text = text.trim_end_matches([' ', '\t', '\n', '\r']);
    (!text.is_empty()).then(|| text.to_owned())
}

/// A 16-byte UUID in the usual 8-4-4-4-12 lower-case form, as stored (big-endian fields); `None`
/// when all zero, as blkid does.
pub(crate) fn uuid(b: &[u8]) -> Option<String> {
    (!b.iter().all(|&x| x == 0)).then(|| uuid_text(b))
}

/// 16 bytes as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, in their order.
pub fn uuid_text(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_reads_end_at_the_source_end() {
        let bytes = b"0123456789".to_vec();
        let mut buf = [0u8; 4];
        assert!(read_at(&bytes, 6, &mut buf).unwrap());
        assert_eq!(&buf, b"6789");
        assert!(!read_at(&bytes, 7, &mut buf).unwrap());
        assert!(!read_at(&bytes, u64::MAX, &mut buf).unwrap());
        // Positional: reading the same place twice gives the same bytes (no cursor moved).
        assert!(read_at(&bytes, 0, &mut buf).unwrap() && read_at(&bytes, 0, &mut buf).unwrap());
        assert_eq!(&buf, b"0123");
        assert_eq!(bytes.size().unwrap(), 10);
    }
}
