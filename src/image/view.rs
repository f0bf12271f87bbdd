//! A disk image's root partition read as a root: the one rule for which partition that is, and
//! [`System`] over its filesystem (read by `disk`, never mounted), so that detection, the renderers'
//! probes and install's planner run on an image exactly as on a directory.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Item, Verdict, item};
use crate::disk::btrfs::Subvolume;
use crate::disk::format::Disk;
use crate::disk::lvm::{self, Lv};
use crate::disk::{self, FileType, Filesystem, Image, Meta, ReadAt, Volume, Window};
use crate::system::{self, Files, Kind, Stat, System};

/// Where a root keeps its os-release, in the order `System` reads them.
const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// What marks a root, strongest first: an os-release; on roots older than it (CentOS 6, busybox
/// builds) the password file.
const ROOT_MARKS: [&[&str]; 2] = [&OS_RELEASE, &["etc/shadow"]];

/// The root found: where it lies and its filesystem, opened.
pub struct Root {
    /// The partition holding it (a logical volume's: the partition of its VG's first PV).
    pub n: u32,
    /// How messages name it: `partition 2`, `LV rl/root (partition 3)`.
    pub place: String,
    pub fs: Filesystem,
    /// What its logical volume's reader warns of (a thin pool's metadata needing a check, an
    /// external origin).
    pub warnings: Vec<String>,
    /// The thin pool of its logical volume, when it is a thin one.
    pub pool: Option<Pool>,
    volume: Opened,
}

/// A thin volume's pool: `thin_check` is run on its metadata after libguestfs wrote the volume.
pub struct Pool {
    /// `VG/POOL`.
    pub name: String,
    /// Whether the kernel marked its metadata as needing a check.
    pub needs_check: bool,
    /// Its metadata LV.
    pub metadata: LvDevice,
}

/// A logical volume of the image, read through its PVs' windows.
type LvDevice = Lv<Arc<Window<Disk>>>;

/// A root's filesystem on a partition or on a logical volume.
enum Opened {
    Partition(Volume<Disk>),
    Lv(String, Volume<LvDevice>),
}

impl Root {
    /// Whether it lies on an LVM logical volume.
    pub fn is_lv(&self) -> bool {
        matches!(self.volume, Opened::Lv(..))
    }

    /// Which Btrfs subvolume is `/`; `None` elsewhere.
    pub fn subvolume(&self) -> Option<&Subvolume> {
        match &self.volume {
            Opened::Partition(v) => v.subvolume(),
            Opened::Lv(_, v) => v.subvolume(),
        }
    }

    /// What was done about an ext journal or XFS log that needed recovery (`disk::Volume::recovery`).
    pub fn recovery(&self) -> Option<&crate::disk::Recovery> {
        match &self.volume {
            Opened::Partition(v) => v.recovery(),
            Opened::Lv(_, v) => v.recovery(),
        }
    }

    /// The logical volume holding it, `VG/LV`; `None` on a partition.
    pub fn lv(&self) -> Option<&str> {
        match &self.volume {
            Opened::Partition(_) => None,
            Opened::Lv(name, _) => Some(name),
        }
    }

    /// The regular file at `path` (links followed inside the filesystem), `None` when absent.
    pub fn read_file(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        match &self.volume {
            Opened::Partition(v) => v.read_file(path),
            Opened::Lv(_, v) => v.read_file(path),
        }
    }

    /// What `path` is, links followed; `None` when absent.
    pub fn metadata(&self, path: &str) -> io::Result<Option<Meta>> {
        match &self.volume {
            Opened::Partition(v) => v.metadata(path),
            Opened::Lv(_, v) => v.metadata(path),
        }
    }

    pub fn symlink_metadata(&self, path: &str) -> io::Result<Option<Meta>> {
        match &self.volume {
            Opened::Partition(v) => v.symlink_metadata(path),
            Opened::Lv(_, v) => v.symlink_metadata(path),
        }
    }
}

/// The root: the first filesystem, in the table's order, that holds an os-release (partition 1
/// itself on a one-partition image, or when the root is there), else the first holding
/// `etc/shadow`. The logical volumes of an LVM volume group take the place of its first PV's
/// partition, in their metadata's order. A filesystem the reader cannot read is skipped and named
/// in the warning when none is found; an encrypted (LUKS) partition too, in a warning of its own.
pub fn root_partition(image: &Image) -> Result<Root, Item> {
    let (mut found, mut unread, encrypted) = candidates(image);
    let mut pick = None;
    'tiers: for (tier, marks) in ROOT_MARKS.iter().enumerate() {
        for (i, root) in found.iter().enumerate() {
            let mut held = Ok(false);
            for path in marks.iter() {
                held = root.symlink_metadata(path).map(|m| m.is_some());
                if !matches!(held, Ok(false)) {
                    break;
                }
            }
            match held {
                Ok(true) => {
                    pick = Some(i);
                    break 'tiers;
                }
                Ok(false) => {}
                Err(e) if tier == 0 => unread.push(format!("{} ({}): {e}", root.place, root.fs.kind.name())),
                Err(_) => {}
            }
        }
    }
    if let Some(i) = pick {
        return Ok(found.swap_remove(i));
    }
    Err(if !encrypted.is_empty() {
        item(
            "root",
            Verdict::Warn,
            format!(
                "encrypted root: {} LUKS-encrypted: cannot check the agent, SSH host keys, root's \
                 authorized_keys, root password, distribution, init or network stack",
                encrypted.join(", ")
            ),
        )
    } else if unread.is_empty() {
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

/// Every filesystem of the image that may be the root, in order; what could not be opened (why);
/// the encrypted partitions (`partition N is`).
fn candidates(image: &Image) -> (Vec<Root>, Vec<String>, Vec<String>) {
    let (mut found, mut unread, mut encrypted) = (Vec::new(), Vec::new(), Vec::new());
    let numbers: Vec<u32> = image
        .table
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|p| !p.is_extended())
        .map(|p| p.number)
        .collect();
    // Physical volumes first: a volume group may span several partitions.
    let mut pvs = Vec::new();
    for &n in &numbers {
        let Ok(w) = image.window(n) else { continue };
        match lvm::label(&w) {
            Ok(Some(pv)) => pvs.push((n, pv, Arc::new(w))),
            Ok(None) => {}
            Err(e) => unread.push(format!("partition {n}: {e}")),
        }
    }
    let texts: Vec<&[u8]> = pvs.iter().filter_map(|(_, pv, _)| pv.text.as_deref()).collect();
    let groups = lvm::vg::groups(&texts).unwrap_or_else(|e| {
        unread.push(format!("LVM: {e}"));
        Vec::new()
    });
    let devices: Vec<(String, Arc<Window<Disk>>)> = pvs
        .iter()
        .map(|(_, pv, w)| (pv.uuid.clone(), w.clone()))
        .collect();
    let mut done = Vec::new();
    for &n in &numbers {
        if let Some((_, pv, _)) = pvs.iter().find(|(p, ..)| *p == n) {
            let vg = groups.iter().find(|g| g.has_pv(&pv.uuid));
            if vg.is_none() {
                unread.push(format!(
                    "partition {n}: an LVM PV of no volume group the image describes"
                ));
            }
            if let Some(vg) = vg.filter(|g| !done.contains(&g.name)) {
                done.push(vg.name.clone());
                for lv in vg.lv_names() {
                    let name = format!("{}/{lv}", vg.name);
                    let place = format!("LV {name} (partition {n})");
                    let opened = lv_window(image, vg, lv, &devices)
                        .and_then(|(w, warnings, pool)| Ok((Volume::on(w)?, warnings, pool)));
                    match opened {
                        Ok((v, warnings, pool)) => found.push(Root {
                            n,
                            place,
                            fs: v.fs.clone(),
                            warnings,
                            pool,
                            volume: Opened::Lv(name, v),
                        }),
                        Err(e) => {
                            image.work().note(&e);
                            unread.push(format!("{place}: {e}"));
                        }
                    }
                }
            }
            continue;
        }
        match image.partition(n) {
            Ok(v) => found.push(Root {
                n,
                place: format!("partition {n}"),
                fs: v.fs.clone(),
                warnings: Vec::new(),
                pool: None,
                volume: Opened::Partition(v),
            }),
            Err(e) => {
                if image.window(n).is_ok_and(|w| luks(&w)) {
                    encrypted.push(format!("partition {n} is"));
                }
                unread.push(e.to_string());
            }
        }
    }
    (found, unread, encrypted)
}

/// Logical volume `lv` of `vg` as a window paying `image`'s work: each byte read through it is
/// paid there once, its PVs' windows (`pvs`, made by `image.window`) bounding the reads to their
/// partitions without paying a second time (a thin volume's metadata reads: a few nodes per data
/// block paid, each lookup bounded by the tree's depth); what its reader warns of; its thin pool.
fn lv_window(
    image: &Image,
    vg: &lvm::VolumeGroup,
    lv: &str,
    pvs: &[(String, Arc<Window<Disk>>)],
) -> io::Result<(Window<LvDevice>, Vec<String>, Option<Pool>)> {
    let unpaid: Vec<(String, Arc<Window<Disk>>)> = pvs
        .iter()
        .map(|(uuid, w)| (uuid.clone(), Arc::new(w.unpaid())))
        .collect();
    let opened = vg.open(lv, &unpaid)?;
    let warnings = vg.warnings(lv, &opened);
    let pool = vg.thin_pool(lv, &unpaid)?.map(|(name, metadata)| Pool {
        name: format!("{}/{name}", vg.name),
        needs_check: opened.needs_check(),
        metadata,
    });
    Ok((Window::rest(opened, 0, image.work().clone())?, warnings, pool))
}

/// Whether `w` starts with a LUKS header (version 1 or 2).
fn luks<R: ReadAt>(w: &R) -> bool {
    let mut magic = [0u8; 6];
    disk::read_at(w, 0, &mut magic).unwrap_or(false) && &magic == b"LUKS\xba\xbe"
}

/// The system of `root`, found in the image at `disk`.
pub fn system(disk: &Path, root: Root) -> system::Result<System> {
    match root.volume {
        Opened::Partition(volume) => System::over(Box::new(Partition {
            volume,
            shown: PathBuf::from(format!("{}:{}", disk.display(), root.n)),
        })),
        Opened::Lv(name, volume) => System::over(Box::new(Partition {
            volume,
            shown: PathBuf::from(format!("{}:{name}", disk.display())),
        })),
    }
}

/// A partition's (or a logical volume's) filesystem as [`Files`]; shown as `DISK:N`
/// (`DISK:N/etc/hosts`, `DISK:rl/root/etc/hosts`) in messages.
struct Partition<R> {
    volume: Volume<R>,
    shown: PathBuf,
}

impl<R> std::fmt::Debug for Partition<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.shown.display(), self.volume)
    }
}

impl<R: ReadAt + Send + Sync + 'static> Files for Partition<R> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte read through a logical volume is paid to the image's work once, not again through
    /// its PV's window (a read budget then ran out at half the bytes it allows).
    #[test]
    fn a_read_through_a_logical_volume_is_paid_once() {
        // An MBR whose partition 1 (type 8e, LVM) is the 32 MiB PV of vgcreate -s 1M rl with
        // LV rl/root, its first bytes as LVM wrote them (the fuzz seed).
        let pv = include_bytes!("../../fuzz/corpus/lvm/pv");
        let (start, sectors) = (2048u32, 65536u32);
        let mut bytes = vec![0u8; (start + sectors) as usize * 512];
        bytes[450] = 0x8e;
        bytes[454..458].copy_from_slice(&start.to_le_bytes());
        bytes[458..462].copy_from_slice(&sectors.to_le_bytes());
        bytes[510..512].copy_from_slice(&[0x55, 0xaa]);
        let at = start as usize * 512;
        bytes[at..at + pv.len()].copy_from_slice(pv);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lvm.raw");
        std::fs::write(&path, &bytes).unwrap();

        let image = Image::open(&path).unwrap();
        let w = Arc::new(image.window(1).unwrap());
        let label = lvm::label(&*w).unwrap().unwrap();
        let text = label.text.unwrap();
        let vg = lvm::vg::groups(&[&text]).unwrap().remove(0);
        let (lv, ..) = lv_window(&image, &vg, "root", &[(label.uuid, w)]).unwrap();
        let before = image.work().spent().1;
        let mut buf = vec![0u8; 1 << 20];
        assert!(disk::read_at(&lv, 0, &mut buf).unwrap());
        assert_eq!(image.work().spent().1 - before, 1 << 20);
    }
}
