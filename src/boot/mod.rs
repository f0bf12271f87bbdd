//! Finding os.conf on a running system: partition 1 of the disk that holds `/` (or `/boot`, when
//! that is on another disk), or the device `--device` names; then its mount — the one already there
//! (autofs triggered by access), or one osconf makes under `/run` and undoes when dropped.
//!
//! It reads `/proc/self/mountinfo`, sysfs and superblocks under roots given as parameters (fake
//! trees in tests); it mounts only in [`find`], and only partition 1 (or `--device`), never writing
//! to a filesystem mounted elsewhere except through that mount.

pub mod device;
pub mod mount;
pub mod mountinfo;
pub mod sysfs;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use device::DeviceSpec;
use mount::{OwnMount, Remounted};
use mountinfo::{DevNum, Mount};

use crate::disk::{self, Filesystem};
use crate::error::Error;

/// The directory ECS writes at the root of partition 1, holding os.conf.
pub const CONF_DIR: &str = "aliyun_custom_image";
/// Where osconf mounts partition 1 when nothing else has: `<run>/osconf/p1.<pid>`, one per process,
/// so that a stale mount of a killed run or a second osconf running at once never sits in the way.
fn own_mount(roots: &Roots) -> PathBuf {
    roots.run.join(format!("osconf/p1.{}", std::process::id()))
}

/// Where the host's views are: `/proc`, `/sys`, `/dev`, the root that mount points are relative to,
/// and `/run`. Tests point them at fake trees.
#[derive(Debug, Clone)]
pub struct Roots {
    pub proc: PathBuf,
    pub sys: PathBuf,
    pub dev: PathBuf,
    pub fs: PathBuf,
    pub run: PathBuf,
}

impl Roots {
    pub fn host() -> Roots {
        Roots {
            proc: "/proc".into(),
            sys: "/sys".into(),
            dev: "/dev".into(),
            fs: "/".into(),
            run: "/run".into(),
        }
    }

    /// A mount point as a path here.
    fn on_host(&self, mount_point: &Path) -> PathBuf {
        self.fs.join(mount_point.strip_prefix("/").unwrap_or(mount_point))
    }

    fn mounts(&self) -> Result<Vec<Mount>, Error> {
        let path = self.proc.join("self/mountinfo");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::failed(None, format!("reading {}: {e}", path.display())))?;
        Ok(mountinfo::parse(&text))
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub device: Option<DeviceSpec>,
    pub wait: Duration,
    /// Mount read-write (for apply), else read-only (plan, detect).
    pub writable: bool,
}

/// Why there is no os.conf to read.
#[derive(Debug, PartialEq, Eq)]
pub enum FindError {
    /// There is no partition 1 here (a container, an unpartitioned disk): nothing to do.
    NoPartition(String),
    /// Something that should be there is not, or would not mount: an error.
    Failed(String),
}

impl std::fmt::Display for FindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FindError::NoPartition(s) | FindError::Failed(s) => f.write_str(s),
        }
    }
}

fn failed(e: impl std::fmt::Display) -> FindError {
    FindError::Failed(e.to_string())
}

/// The device os.conf lives on, and why that one.
#[derive(Debug, Clone)]
pub struct Target {
    pub node: PathBuf,
    pub dev: DevNum,
    /// Read only when needed (to mount it, or to match `--device UUID=…`).
    pub fs: Option<Filesystem>,
    /// `partition 1 of vda, the disk holding /`.
    pub what: String,
    pub notes: Vec<String>,
}

/// The target and the mount it already has, if any: what [`locate`] finds without mounting.
#[derive(Debug)]
pub struct Spot {
    pub target: Target,
    pub mount: Option<Mount>,
}

/// Finds the target and its existing mount, triggering autofs mounts when it has none; mounts
/// nothing. `trigger` is called with `<autofs mount point>/aliyun_custom_image` (a `stat` in
/// [`find`]; tests simulate the automounter with it).
pub fn locate(roots: &Roots, opts: &Options, trigger: &mut dyn FnMut(&Path)) -> Result<Spot, FindError> {
    let mounts = roots.mounts().map_err(failed)?;
    let target = match &opts.device {
        Some(spec) => {
            let d = device::resolve(roots, spec, opts.wait).map_err(failed)?;
            Target {
                node: d.node,
                dev: d.dev,
                fs: d.fs,
                what: format!("--device {spec}"),
                notes: Vec::new(),
            }
        }
        None => first_partition(roots, &mounts, opts.wait)?,
    };
    if let Some(m) = mounted(&mounts, target.dev) {
        return Ok(Spot {
            target,
            mount: Some(m),
        });
    }
    let autofs: Vec<&Mount> = mounts
        .iter()
        .filter(|m| {
            m.fstype == "autofs"
                && !["/proc", "/sys", "/dev"]
                    .iter()
                    .any(|p| m.mount_point.starts_with(p))
        })
        .collect();
    if autofs.is_empty() {
        return Ok(Spot { target, mount: None });
    }
    for m in autofs {
        trigger(&roots.on_host(&m.mount_point).join(CONF_DIR));
    }
    let mount = mounted(&roots.mounts().map_err(failed)?, target.dev);
    Ok(Spot { target, mount })
}

/// The mount showing all of the filesystem on `dev` (not a bind mount of a directory of it).
fn mounted(mounts: &[Mount], dev: DevNum) -> Option<Mount> {
    mounts
        .iter()
        .find(|m| m.dev == dev && m.root == Path::new("/"))
        .cloned()
}

/// The visible mount on `point`: the last one there.
fn mount_on<'a>(mounts: &'a [Mount], point: &str) -> Option<&'a Mount> {
    mounts.iter().rev().find(|m| m.mount_point == Path::new(point))
}

/// The block device behind a mount: its number, or for filesystems that show an anonymous one
/// (btrfs), the number of the `/dev/…` node it names as its source.
fn mount_dev(roots: &Roots, m: &Mount) -> Option<DevNum> {
    if m.dev.major != 0 {
        return Some(m.dev);
    }
    let rest = m.source.strip_prefix("/dev/").ok()?;
    device::node(&roots.dev.join(rest)).ok().flatten().map(|d| d.dev)
}

/// The disk holding the filesystem mounted on `point`, with how it was reached.
fn disk_of(
    roots: &Roots,
    mounts: &[Mount],
    point: &str,
) -> Result<Option<(sysfs::Block, Vec<String>)>, FindError> {
    let Some(dev) = mount_on(mounts, point).and_then(|m| mount_dev(roots, m)) else {
        return Ok(None);
    };
    let Some(block) = sysfs::by_number(&roots.sys, dev).map_err(failed)? else {
        return Ok(None);
    };
    block
        .disk()
        .map(Some)
        .map_err(|e| failed(format!("the disk under {}: {e}", block.name)))
}

/// Partition 1 of the disk that holds `/` (or `/boot`, when that is on another disk).
fn first_partition(roots: &Roots, mounts: &[Mount], wait: Duration) -> Result<Target, FindError> {
    let root = disk_of(roots, mounts, "/")?;
    let boot = disk_of(roots, mounts, "/boot")?;
    let (point, (disk, chain)) = match (root, boot) {
        (Some(r), Some(b)) if r.0.dev != b.0.dev => ("/boot", b),
        (Some(r), _) => ("/", r),
        (None, Some(b)) => ("/boot", b),
        (None, None) => {
            return Err(FindError::NoPartition(
                "neither / nor /boot is on a block device".to_owned(),
            ));
        }
    };
    let parts = disk.partitions().map_err(failed)?;
    let holding = if chain.len() > 2 {
        format!("the disk holding {point} ({})", chain.join(" → "))
    } else {
        format!("the disk holding {point}")
    };
    let Some(p1) = parts.iter().find(|p| p.partition == Some(1)) else {
        return Err(FindError::NoPartition(format!(
            "{}, {holding}, has no partition 1",
            disk.name
        )));
    };
    let notes = parts
        .iter()
        .filter(|p| matches!((p.start, p1.start), (Some(s), Some(s1)) if s < s1))
        .map(|p| {
            format!(
                "{} (partition {}) starts before {} on the disk (sector {} < {}); using partition 1 all the same",
                p.name,
                p.partition.unwrap_or(0),
                p1.name,
                p.start.unwrap_or(0),
                p1.start.unwrap_or(0)
            )
        })
        .collect();
    let node = p1.node(&roots.dev);
    // The kernel knows the partition; its node may still be on its way.
    device::poll(wait, &node.display().to_string(), || {
        Ok(node.exists().then_some(()))
    })
    .map_err(failed)?;
    Ok(Target {
        node,
        dev: p1.dev,
        fs: None,
        what: format!("partition 1 of {}, {holding}", disk.name),
        notes,
    })
}

/// os.conf's place, found and mounted; unmounted (or made read-only again) when dropped.
#[derive(Debug)]
pub struct Located {
    /// `<mount point>/aliyun_custom_image`, a host path.
    pub dir: PathBuf,
    pub target: Target,
    existing: Option<Mount>,
    // Dropped in this order: read-only again first, then unmounted.
    remounted: Option<Remounted>,
    own: Option<OwnMount>,
}

impl Located {
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("os.conf")
    }

    /// One line: where and how, for `plan`, `detect` and the log.
    pub fn describe(&self) -> String {
        let fs = match (&self.target.fs, &self.existing) {
            (Some(fs), _) => fs.describe(),
            (None, Some(m)) => m.fstype.clone(),
            (None, None) => "?".to_owned(),
        };
        let mount = match (&self.existing, &self.own) {
            (Some(m), _) if self.remounted.is_some() => {
                format!(
                    "mounted at {} read-only, made writable until done",
                    m.mount_point.display()
                )
            }
            (Some(m), _) if m.read_only() => format!("mounted at {} read-only", m.mount_point.display()),
            (Some(m), _) => format!("mounted at {}", m.mount_point.display()),
            (None, Some(own)) => format!("mounted by osconf on {} until done", own.target.display()),
            (None, None) => "not mounted".to_owned(),
        };
        format!(
            "{}: {} ({fs}), {mount}",
            self.target.what,
            self.target.node.display()
        )
    }

    /// Makes the mount writable for the removal of os.conf when it is read-only (saying so); a clear
    /// error, before anything changed, when that is impossible.
    pub fn make_writable(&mut self, roots: &Roots) -> Result<Option<String>, Error> {
        match &self.existing {
            Some(m) if m.read_only() && self.remounted.is_none() => {
                self.remounted = Some(Remounted::new(m, &roots.on_host(&m.mount_point))?);
                Ok(Some(format!(
                    "{} made writable to remove os.conf; read-only again when done",
                    m.mount_point.display()
                )))
            }
            _ => Ok(None),
        }
    }
}

/// What `detect` shows: where os.conf would be taken from and whether it is there, mounting nothing.
pub fn survey(roots: &Roots, opts: &Options) -> Result<String, FindError> {
    let spot = locate(roots, opts, &mut stat)?;
    let t = &spot.target;
    Ok(match &spot.mount {
        Some(m) => {
            let file = roots.on_host(&m.mount_point).join(CONF_DIR).join("os.conf");
            format!(
                "{}: {} ({}), mounted at {}{}; {} {}",
                t.what,
                t.node.display(),
                m.fstype,
                m.mount_point.display(),
                if m.read_only() { " read-only" } else { "" },
                file.display(),
                if file.exists() { "is there" } else { "is absent" }
            )
        }
        None => format!(
            "{}: {}, not mounted (plan and apply mount it on {} while they run)",
            t.what,
            t.node.display(),
            own_mount(roots).display()
        ),
    })
}

/// Triggers an automount by looking at a path below it.
fn stat(path: &Path) {
    let _ = std::fs::metadata(path);
}

/// Finds os.conf's place and makes sure it is mounted: the existing mount, or partition 1 mounted
/// by osconf (read-write when `opts.writable`, else read-only) on `<run>/osconf/p1.<pid>`.
pub fn find(roots: &Roots, opts: &Options) -> Result<Located, FindError> {
    let cleaned = mount::clean_stale(&roots.run, &roots.proc);
    let spot = locate(roots, opts, &mut stat)?;
    let mut target = spot.target;
    target.notes.extend(cleaned);
    if let Some(m) = spot.mount {
        return Ok(Located {
            dir: roots.on_host(&m.mount_point).join(CONF_DIR),
            target,
            existing: Some(m),
            remounted: None,
            own: None,
        });
    }
    let fs = match target.fs.clone() {
        Some(fs) => fs,
        None => {
            let file =
                File::open(&target.node).map_err(|e| failed(format!("{}: {e}", target.node.display())))?;
            disk::probe(&file, 0)
                .map_err(|e| failed(format!("reading {}: {e}", target.node.display())))?
                .ok_or_else(|| {
                    failed(format!(
                        "{} ({}) holds no filesystem osconf can mount (ext2/3/4, vfat, ufs)",
                        target.node.display(),
                        target.what
                    ))
                })?
        }
    };
    target.fs = Some(fs.clone());
    let own = OwnMount::new(&target.node, &fs, &own_mount(roots), opts.writable).map_err(failed)?;
    Ok(Located {
        dir: own.target.join(CONF_DIR),
        target,
        existing: None,
        remounted: None,
        own: Some(own),
    })
}
