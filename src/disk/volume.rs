//! A disk image (raw, qcow2, VHD, VMDK: `format`) and the filesystems of its partitions, read without mounting anything:
//! `Image::open(path)?.partition(n)?` gives a `Volume` whose files are read with `read_file`,
//! `list_dir`, `metadata` and `read_link`, paths resolved inside that filesystem as a chroot would
//! (see `tree`). ext2/3/4, FAT, Btrfs and XFS are read; for other filesystems the error names
//! what is there (LVM, LUKS…). A hostile image gives errors, never a panic or a huge allocation, and
//! within the work one command may do over it (`work`): every partition of an `Image` shares it,
//! and each filesystem is read through a window on its own partition.

use std::io;
use std::path::Path;

use super::btrfs::{Btrfs, Subvolume};
use super::ext::Ext;
use super::fat::Fat;
use super::format::{self, Disk};
use super::tree::{self, Entry, MAX_FILE, Meta};
use super::work::{Window, Work};
use super::xfs::Xfs;
use super::{Filesystem, Kind, Partition, PartitionTable, ReadAt, read_at, table};

/// A disk image opened for reading: raw, qcow2, VHD or VMDK (`format`), read as its virtual disk.
#[derive(Debug)]
pub struct Image {
    disk: Disk,
    /// `None` for a disk without a partition table.
    pub table: Option<PartitionTable>,
    /// The virtual size (a raw file's length).
    pub size: u64,
    /// What reading it has cost so far, shared by its partitions.
    work: Work,
}

impl Image {
    /// Opens an image in any format `format` reads (told by its bytes) and reads its partition
    /// table. A format osconf does not read is `Unsupported`, named.
    pub fn open(path: &Path) -> io::Result<Image> {
        let disk = format::open(path)?;
        let table = table::read(&disk)?;
        Ok(Image {
            size: disk.size,
            disk,
            table,
            work: Work::new(),
        })
    }

    /// The MBR's boot code (the disk's first 440 bytes; zeros past a shorter file): all zero when
    /// a BIOS has nothing to run, which is how `image test` tells a UEFI-only image.
    pub fn boot_code(&self) -> io::Result<[u8; 440]> {
        let mut code = [0u8; 440];
        read_at(&self.disk, 0, &mut code)?;
        Ok(code)
    }

    /// The virtual disk, as read.
    pub fn disk(&self) -> &Disk {
        &self.disk
    }

    /// The work shared by every reader of this image (the staged copies of its partitions too).
    pub fn work(&self) -> &Work {
        &self.work
    }

    /// The first damage a reader found in the image, if any.
    pub fn damage(&self) -> Option<String> {
        self.work.damage()
    }

    /// Partition `n` of the table, as the kernel numbers them.
    pub fn partition_entry(&self, n: u32) -> io::Result<&Partition> {
        let t = self
            .table
            .as_ref()
            .ok_or_else(|| not_found("no MBR or GPT partition table".into()))?;
        t.partition(n)
            .ok_or_else(|| not_found(format!("the {} table has no partition {n}", t.kind.name())))
    }

    /// Where partition `n` starts and how long it is, in bytes (inside the image: the table's
    /// reader checked it).
    pub fn extent(&self, n: u32) -> io::Result<(u64, u64)> {
        let p = self.partition_entry(n)?;
        let t = self.table.as_ref().expect("a partition has a table");
        Ok(t.extent(p))
    }

    /// The bytes of partition `n`, each read paid to the image's work.
    pub fn window(&self, n: u32) -> io::Result<Window<Disk>> {
        let (offset, len) = self.extent(n)?;
        Window::new(self.disk.clone(), offset, len, self.work.clone())
    }

    /// The filesystem of partition `n`, opened for reading. `NotFound`: no such partition;
    /// `Unsupported`: a filesystem this reader does not read (the message names it) or none.
    pub fn partition(&self, n: u32) -> io::Result<Volume<Disk>> {
        self.window(n).and_then(Volume::on).map_err(|e| {
            let e = io::Error::new(e.kind(), format!("partition {n}: {e}"));
            self.work.note(&e);
            e
        })
    }
}

fn not_found(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, what)
}

/// A filesystem opened for reading its files.
pub struct Volume<R> {
    pub fs: Filesystem,
    inner: Inner<Window<R>>,
    work: Work,
}

impl<R> std::fmt::Debug for Volume<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Volume({})", self.fs.describe())
    }
}

enum Inner<R> {
    Ext(Box<Ext<R>>),
    Fat(Fat<R>),
    Btrfs(Box<Btrfs<R>>),
    Xfs(Xfs<R>),
}

/// Calls the `tree` function `$f` on whichever reader the volume has, noting damage it finds.
macro_rules! on_tree {
    ($v:expr, $f:ident($($a:expr),*)) => {{
        let work = &$v.work;
        let got = match &$v.inner {
            Inner::Ext(t) => tree::$f(&**t, work, $($a),*),
            Inner::Fat(t) => tree::$f(t, work, $($a),*),
            Inner::Btrfs(t) => tree::$f(&**t, work, $($a),*),
            Inner::Xfs(t) => tree::$f(t, work, $($a),*),
        };
        if let Err(e) = &got {
            work.note(e);
        }
        got
    }};
}

impl<R: ReadAt> Volume<R> {
    /// The filesystem at `offset` of `r` (to its end, with a work budget of its own): ext2/3/4, FAT,
    /// Btrfs or XFS; anything else is `Unsupported`, named.
    pub fn open(r: R, offset: u64) -> io::Result<Volume<R>> {
        Volume::on(Window::rest(r, offset, Work::new())?)
    }

    /// The filesystem that fills window `w`.
    pub fn on(w: Window<R>) -> io::Result<Volume<R>> {
        let work = w.work().clone();
        let Some(fs) = super::probe(&w, 0)? else {
            // Btrfs is looked for here only, not by `probe`: the agent's boot path never reaches
            // its reader.
            if let Some(sb) = super::btrfs::superblock(&w)? {
                let fs = sb.filesystem();
                let inner = Inner::Btrfs(Box::new(Btrfs::open(w, work.clone(), sb)?));
                return Ok(Volume { fs, inner, work });
            }
            let what = match other(&w, 0)? {
                Some(name) => format!("holds {name}, which osconf cannot read"),
                None => "holds no filesystem osconf recognises".to_owned(),
            };
            return Err(io::Error::new(io::ErrorKind::Unsupported, what));
        };
        let inner = match fs.kind {
            Kind::Ext(..) => Ext::open(w, 0)?.map(|e| Inner::Ext(Box::new(e))),
            Kind::Fat(_) => Fat::open(w, 0)?.map(Inner::Fat),
            Kind::Xfs(_) => Xfs::open(w)?.map(Inner::Xfs),
            Kind::Ufs(_) | Kind::Btrfs => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("holds {}, whose files osconf does not read", fs.kind.name()),
                ));
            }
        };
        let inner = inner.ok_or_else(|| tree::corrupt("the superblock changed while it was read"))?;
        Ok(Volume { fs, inner, work })
    }

    /// Which subvolume is `/` on Btrfs; `None` elsewhere.
    pub fn subvolume(&self) -> Option<&Subvolume> {
        match &self.inner {
            Inner::Btrfs(t) => Some(t.root_subvolume()),
            _ => None,
        }
    }

    /// What was done about an ext journal or an XFS log that needed recovery (replayed into the
    /// view, or not at hand); `None` for any other filesystem and for a clean one.
    pub fn recovery(&self) -> Option<&super::Recovery> {
        match &self.inner {
            Inner::Ext(t) => t.recovery(),
            Inner::Xfs(t) => t.recovery(),
            _ => None,
        }
    }

    /// The regular file at `path` (links followed inside the filesystem), `None` when a name on the
    /// way is absent; anything but a regular file, or one over 64 MiB, is an error.
    pub fn read_file(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        self.read_up_to(path, MAX_FILE)
    }

    /// [`Volume::read_file`] with another bound.
    pub fn read_up_to(&self, path: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
        on_tree!(self, read_file(path, max))
    }

    /// The entries of the directory at `path` (`.` and `..` left out), `None` when absent.
    pub fn list_dir(&self, path: &str) -> io::Result<Option<Vec<Entry>>> {
        on_tree!(self, list_dir(path))
    }

    /// What `path` is, links followed; `None` when absent.
    pub fn metadata(&self, path: &str) -> io::Result<Option<Meta>> {
        on_tree!(self, metadata(path, true))
    }

    /// What `path` is, a last component that is a link not followed; `None` when absent.
    pub fn symlink_metadata(&self, path: &str) -> io::Result<Option<Meta>> {
        on_tree!(self, metadata(path, false))
    }

    /// The target of the link at `path`, `None` when absent; an error when it is not a link.
    pub fn read_link(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        on_tree!(self, read_link(path))
    }
}

/// The name (blkid's TYPE) of a filesystem or volume this reader does not read, by its magic.
fn other<R: ReadAt + ?Sized>(r: &R, offset: u64) -> io::Result<Option<&'static str>> {
    const MAGICS: [(u64, &[u8], &str); 3] = [
        (0x218, b"LVM2 001", "LVM2_member (LVM)"),
        (0, b"LUKS\xba\xbe", "crypto_LUKS (LUKS)"),
        (4086, b"SWAPSPACE2", "swap"),
    ];
    for (at, magic, name) in MAGICS {
        let mut b = vec![0u8; magic.len()];
        if read_at(r, offset + at, &mut b)? && b == magic {
            return Ok(Some(name));
        }
    }
    Ok(None)
}
