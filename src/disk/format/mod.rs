//! Virtual disk formats: RAW, QCOW2 (v2 and v3, compressed clusters, a backing file), VHD (fixed and
//! dynamic) and VMDK (monolithicSparse, streamOptimized), told apart by the file's bytes (never its
//! name) and read as the virtual disk through [`Disk`], the [`ReadAt`] the partition-table and
//! filesystem readers take. Reads only; the toolkit alone reaches it (the agent reads devices).
//!
//! Every byte of an image file is hostile: each table is read whole once with its size bounded, each
//! entry checked against the file's length before it becomes an offset, a compressed cluster inflates
//! into one cluster's buffer at most, and a backing file is a name to resolve beside the image
//! (regular files only, never through a link, the chain bounded and never looping back).

pub mod qcow2;
pub mod vhd;
pub mod vmdk;

use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ReadAt, corrupt, read_at};

/// The most files a backing chain holds (the image included); qemu has no bound, images in use
/// have two or three.
pub const MAX_CHAIN: usize = 8;
/// The largest table (qcow2's L1, VHD's BAT, VMDK's grain directory) read into memory: enough for
/// a 32 TiB qcow2 with 64 KiB clusters, as qemu's own bound.
pub const MAX_TABLE: u64 = 32 << 20;

/// What a file holds, as qemu-img names formats (`raw`, `qcow2`, `vpc`, `vmdk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow2 { version: u32 },
    Vhd { dynamic: bool },
    Vmdk { stream: bool },
}

impl Format {
    /// The name qemu-img takes (`-f`, `-O`, `-F`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 { .. } => "qcow2",
            Format::Vhd { .. } => "vpc",
            Format::Vmdk { .. } => "vmdk",
        }
    }

    /// For messages: `qcow2 (v3)`, `VHD (dynamic)`, `VMDK (streamOptimized)`.
    pub fn describe(self) -> String {
        match self {
            Format::Raw => "raw".into(),
            Format::Qcow2 { version } => format!("qcow2 (v{version})"),
            Format::Vhd { dynamic } => format!("VHD ({})", if dynamic { "dynamic" } else { "fixed" }),
            Format::Vmdk { stream } => format!(
                "VMDK ({})",
                if stream {
                    "streamOptimized"
                } else {
                    "monolithicSparse"
                }
            ),
        }
    }

    /// Whether the virtual disk's bytes are the file's bytes at the same offsets (raw, and a fixed
    /// VHD, whose footer follows them): such a file is written in place, with the undo file.
    pub fn in_place(self) -> bool {
        matches!(self, Format::Raw | Format::Vhd { dynamic: false })
    }
}

/// A format's reader: the virtual disk's bytes, and what writing it back in its format takes.
pub trait Reader: ReadAt + Send + Sync {
    /// Whether any cluster or grain is stored compressed (scans the tables; bounded by the file).
    fn compressed(&self) -> io::Result<bool> {
        Ok(false)
    }

    /// Checks every table entry against the file, and what the format keeps twice (a reader checks
    /// an entry only when it reads through it): for a written format no `qemu-img check` checks.
    fn verify(&self) -> io::Result<()> {
        Ok(())
    }
}

/// A file's bytes, shared by every reader of one chain.
pub type Source = Arc<dyn ReadAt + Send + Sync>;

/// The backing file an image names: the name as stored and the format it has (or declares).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backing {
    pub name: Vec<u8>,
    pub format: Format,
}

/// A virtual disk: what one image file (and its backing chain) presents, read by offset.
#[derive(Clone)]
pub struct Disk {
    reader: Arc<dyn Reader>,
    pub format: Format,
    /// The virtual size in bytes.
    pub size: u64,
    /// `-o` options for `qemu-img convert -O FORMAT` that keep this image's layout.
    pub options: Vec<String>,
    pub backing: Option<Backing>,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Disk({}, {} bytes)", self.format.describe(), self.size)
    }
}

impl ReadAt for Disk {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.reader.read_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }
}

impl Disk {
    /// Whether any cluster or grain of the image itself is compressed.
    pub fn compressed(&self) -> io::Result<bool> {
        self.reader.compressed()
    }

    /// See [`Reader::verify`] (the image itself, not its backing files).
    pub fn verify(&self) -> io::Result<()> {
        self.reader.verify()
    }
}

/// A raw file: its bytes are the disk.
struct Raw(Source);

impl ReadAt for Raw {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        self.0.size()
    }
}

impl Reader for Raw {}

/// Opens the backing file a format names (`name` as stored, the format it declares if any).
pub type Opener<'a> = dyn FnMut(&[u8], Option<Format>) -> io::Result<Disk> + 'a;

/// Tells the format from the bytes of `src` (its first 512 and last 512) and opens its reader;
/// formats osconf does not read (VHDX, VDI, a VMDK split into files) are `Unsupported`, named.
pub fn from_source(src: Source, backing: &mut Opener<'_>) -> io::Result<Disk> {
    let len = src.size()?;
    let mut head = [0u8; 512];
    read_at(&*src, 0, &mut head[..(len.min(512) as usize)])?;
    let unsupported = |what: &str| {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{what}, which osconf does not read; convert it first (qemu-img convert -O qcow2 IMAGE NEW.qcow2)"
            ),
        ))
    };
    if head.starts_with(qcow2::MAGIC) {
        return qcow2::open(src, backing);
    }
    if head.starts_with(vmdk::MAGIC) {
        return vmdk::open(src);
    }
    if head.starts_with(vhd::COOKIE) {
        return vhd::open(src);
    }
    if head.starts_with(b"# Disk DescriptorFile") {
        return unsupported("a VMDK descriptor whose extents are other files");
    }
    if head.starts_with(b"COWD") {
        return unsupported("a VMDK version 3 (ESX COWD) sparse extent");
    }
    if head.starts_with(b"vhdxfile") {
        return unsupported("a VHDX image");
    }
    if head.get(64..68) == Some(&[0x7f, 0x10, 0xda, 0xbe]) {
        return unsupported("a VDI (VirtualBox) image");
    }
    if len >= 512 {
        let mut tail = [0u8; 512];
        read_at(&*src, len - 512, &mut tail)?;
        if tail.starts_with(vhd::COOKIE) {
            return vhd::open(src);
        }
    }
    let size = src.size()?;
    Ok(Disk {
        reader: Arc::new(Raw(src)),
        format: Format::Raw,
        size,
        options: Vec::new(),
        backing: None,
    })
}

/// Opens the image at `path` (a link to it is followed: the user named it) and its backing chain.
pub fn open(path: &Path) -> io::Result<Disk> {
    let file = open_file(path, false)?;
    let mut seen = Vec::new();
    open_chain(file, path, &mut seen)
}

/// `path` opened for reading, non-blocking (a FIFO must not hang the open); anything but a
/// regular file is refused; `nofollow`: a link is refused too (a backing file).
fn open_file(path: &Path, nofollow: bool) -> io::Result<File> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut flags = OFlags::NONBLOCK | OFlags::CLOEXEC;
    if nofollow {
        flags |= OFlags::NOFOLLOW;
    }
    let file = File::options()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(n) if nofollow && n == rustix::io::Errno::LOOP.raw_os_error() => {
                corrupt(format!("backing file {}: a link (refused)", path.display()))
            }
            _ => e,
        })?;
    if !file.metadata()?.is_file() {
        let what = "not a regular file (an image file is expected)";
        return Err(if nofollow {
            corrupt(format!("backing file {}: {what}", path.display()))
        } else {
            io::Error::new(io::ErrorKind::InvalidInput, what)
        });
    }
    Ok(file)
}

/// Opens `file` (at `path`) and, through it, its backing files: each name resolved beside the
/// file naming it, never twice in one chain, at most [`MAX_CHAIN`] files.
fn open_chain(file: File, path: &Path, seen: &mut Vec<(u64, u64)>) -> io::Result<Disk> {
    let meta = file.metadata()?;
    if seen.contains(&(meta.dev(), meta.ino())) {
        return Err(corrupt(format!(
            "backing file {}: the chain loops back to a file in it",
            path.display()
        )));
    }
    if seen.len() >= MAX_CHAIN {
        return Err(corrupt(format!(
            "backing file {}: a chain of more than {MAX_CHAIN} files",
            path.display()
        )));
    }
    seen.push((meta.dev(), meta.ino()));
    let dir = path.parent().map_or_else(|| PathBuf::from("."), Path::to_owned);
    let mut backing = |name: &[u8], declared: Option<Format>| -> io::Result<Disk> {
        let p = backing_path(&dir, name)?;
        let disk = open_file(&p, true).and_then(|f| open_chain(f, &p, seen));
        let disk = disk.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("backing file {:?}: {e}", String::from_utf8_lossy(name)),
            )
        })?;
        match declared {
            Some(d) if d.name() != disk.format.name() => Err(corrupt(format!(
                "backing file {:?} is {}, the image says {}",
                String::from_utf8_lossy(name),
                disk.format.name(),
                d.name()
            ))),
            _ => Ok(disk),
        }
    };
    from_source(Arc::new(file), &mut backing)
}

/// A backing file's name as a path: relative to `dir` (the directory of the image naming it), as
/// qemu resolves it; an empty name, a NUL or a `protocol:` name (`nbd:`, `http:`) is refused.
fn backing_path(dir: &Path, name: &[u8]) -> io::Result<PathBuf> {
    let shown = String::from_utf8_lossy(name);
    if name.is_empty() || name.contains(&0) {
        return Err(corrupt(format!(
            "backing file name {shown:?}: empty or holding NUL"
        )));
    }
    let protocol = name
        .iter()
        .position(|&b| b == b':')
        .is_some_and(|at| !name[..at].contains(&b'/'));
    if protocol {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("backing file {shown:?}: a protocol, not a file osconf reads"),
        ));
    }
    Ok(dir.join(std::ffi::OsStr::from_bytes(name)))
}

/// Whether `[offset, offset + len)` lies inside a file of `file_len` bytes; damage (naming `what`)
/// when it does not.
pub(crate) fn inside(what: &dyn std::fmt::Display, offset: u64, len: u64, file_len: u64) -> io::Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= file_len => Ok(()),
        _ => Err(corrupt(format!(
            "{what} at byte {offset} ({len} bytes) lies past the end of the file ({file_len} bytes)"
        ))),
    }
}

/// Reads a whole table of `len` bytes at `offset` of `src` (bounded by [`MAX_TABLE`] and the file).
pub(crate) fn table(src: &dyn ReadAt, what: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    if len > MAX_TABLE {
        return Err(corrupt(format!(
            "its {what} of {len} bytes is larger than {MAX_TABLE} (an image of a size no import takes?)"
        )));
    }
    inside(&what, offset, len, src.size()?)?;
    let mut buf = vec![0u8; len as usize];
    if !read_at(src, offset, &mut buf)? {
        return Err(corrupt(format!("its {what} is cut short")));
    }
    Ok(buf)
}

/// Reads exactly `buf.len()` bytes at `offset`, checked to lie inside the file (damage naming `what`).
pub(crate) fn read_exact(
    src: &dyn ReadAt,
    what: &dyn std::fmt::Display,
    offset: u64,
    buf: &mut [u8],
) -> io::Result<()> {
    inside(what, offset, buf.len() as u64, src.size()?)?;
    if !read_at(src, offset, buf)? {
        return Err(corrupt(format!("{what} is cut short")));
    }
    Ok(())
}

/// Inflates one compressed cluster or grain into `out` (which it fills; what the stream does not
/// give is zero): `zlib` for VMDK's zlib streams, raw deflate for qcow2's. Never more than `out`.
pub(crate) fn inflate(
    input: &[u8],
    out: &mut [u8],
    zlib: bool,
    what: &dyn std::fmt::Display,
) -> io::Result<usize> {
    let n = miniz_oxide::inflate::decompress_slice_iter_to_slice(out, std::iter::once(input), zlib, false)
        .map_err(|e| corrupt(format!("{what} does not inflate ({e:?})")))?;
    out[n..].fill(0);
    Ok(n)
}

/// Reads `buf` at `offset` of a virtual disk of `size` bytes made of `unit`-byte blocks (clusters,
/// grains): `block(position, offset within its block, piece)` fills each piece of `buf` that lies
/// in one block. The bytes read: fewer than asked only at the end of the disk.
pub(crate) fn by_block(
    buf: &mut [u8],
    offset: u64,
    size: u64,
    unit: u64,
    mut block: impl FnMut(u64, u64, &mut [u8]) -> io::Result<()>,
) -> io::Result<usize> {
    let n = (buf.len() as u64).min(size.saturating_sub(offset)) as usize;
    let mut done = 0;
    while done < n {
        let pos = offset + done as u64;
        let within = pos % unit;
        let len = ((unit - within) as usize).min(n - done);
        block(pos, within, &mut buf[done..done + len])?;
        done += len;
    }
    Ok(n)
}

/// Reads `buf` at `offset` of an optional backing disk: zeros where there is none or past its end.
pub(crate) fn read_backing(backing: Option<&Disk>, buf: &mut [u8], offset: u64) -> io::Result<()> {
    buf.fill(0);
    if let Some(b) = backing
        && offset < b.size
    {
        let n = (buf.len() as u64).min(b.size - offset) as usize;
        if !read_at(b, offset, &mut buf[..n])? {
            return Err(corrupt("the backing file is shorter than it says"));
        }
    }
    Ok(())
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Opens bytes in memory as an image with no backing file (fuzzing, tests).
pub fn from_bytes(bytes: Vec<u8>) -> io::Result<Disk> {
    from_source(Arc::new(bytes), &mut |name, _| {
        Err(corrupt(format!(
            "backing file {:?}: none in memory",
            String::from_utf8_lossy(name)
        )))
    })
}
