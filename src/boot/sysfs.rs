//! Block devices as sysfs shows them (`<sys>/class/block/<name>` → `<sys>/devices/…/block/<disk>/
//! <partition>`): number, partition number and start, the disk a partition belongs to, and the
//! devices under a device-mapper or md device (`slaves/`). Reads only.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::mountinfo::DevNum;

/// How deep `slaves/` is followed (dm over dm over md…); a loop in a fake tree ends there too.
const MAX_STACK: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The kernel's name (`vda1`, `nvme0n1p1`, `dm-0`).
    pub name: String,
    /// Its directory under `<sys>/devices`, symbolic links resolved.
    pub dir: PathBuf,
    pub dev: DevNum,
    /// The partition number, for a partition.
    pub partition: Option<u32>,
    /// Where a partition starts on its disk, in 512-byte sectors.
    pub start: Option<u64>,
}

fn read_trimmed(path: &Path) -> io::Result<String> {
    Ok(fs::read_to_string(path)?.trim().to_owned())
}

fn optional<T: std::str::FromStr>(path: &Path) -> io::Result<Option<T>> {
    match read_trimmed(path) {
        Ok(s) => Ok(s.parse().ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Block {
    /// The device whose sysfs directory (or a link to it) is `path`.
    pub fn at(path: &Path) -> io::Result<Block> {
        let dir = fs::canonicalize(path)?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dev = DevNum::parse(&read_trimmed(&dir.join("dev"))?).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}/dev is not MAJ:MIN", dir.display()),
            )
        })?;
        Ok(Block {
            partition: optional(&dir.join("partition"))?,
            start: optional(&dir.join("start"))?,
            name,
            dir,
            dev,
        })
    }

    /// The node devtmpfs gives it under `dev` (`!` in a sysfs name stands for `/`).
    pub fn node(&self, dev: &Path) -> PathBuf {
        dev.join(self.name.replace('!', "/"))
    }

    /// Size in 512-byte sectors (0 for an unused loop device).
    pub fn sectors(&self) -> u64 {
        optional(&self.dir.join("size")).ok().flatten().unwrap_or(0)
    }

    /// The partitions of this disk, by partition number: its subdirectories named after it (`vda1`,
    /// `nvme0n1p1`) that have a `partition` file — the name filter spares a look into each of the
    /// disk's thirty-odd other entries, at every boot.
    pub fn partitions(&self) -> io::Result<Vec<Block>> {
        let mut parts = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let named = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&self.name));
            if named && entry.file_type()?.is_dir() && entry.path().join("partition").is_file() {
                parts.push(Block::at(&entry.path())?);
            }
        }
        parts.sort_by_key(|p| p.partition);
        Ok(parts)
    }

    /// The devices this one is built on (device-mapper, md), sorted by name.
    pub fn slaves(&self) -> io::Result<Vec<Block>> {
        let dir = self.dir.join("slaves");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut slaves = entries
            .map(|e| Block::at(&e?.path()))
            .collect::<io::Result<Vec<_>>>()?;
        slaves.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(slaves)
    }

    /// The whole disk this device lives on, with the chain that led there (`dm-0 → vda2 → vda`):
    /// a partition's disk is its parent directory; a device-mapper or md device's is that of the
    /// first of its `slaves/` that leads to one; a device with neither is a disk itself.
    pub fn disk(&self) -> io::Result<(Block, Vec<String>)> {
        let mut chain = vec![self.name.clone()];
        let disk = self.disk_within(&mut chain, MAX_STACK)?;
        chain.push(disk.name.clone());
        chain.dedup();
        Ok((disk, chain))
    }

    fn disk_within(&self, chain: &mut Vec<String>, depth: usize) -> io::Result<Block> {
        if self.partition.is_some() {
            let parent = self.dir.parent().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} has no parent disk", self.name),
                )
            })?;
            return Block::at(parent);
        }
        let slaves = self.slaves()?;
        if slaves.is_empty() || depth == 0 {
            return Ok(self.clone());
        }
        for slave in &slaves {
            chain.push(slave.name.clone());
            if slave.partition.is_some() || !slave.slaves()?.is_empty() {
                return slave.disk_within(chain, depth - 1);
            }
            chain.pop();
        }
        // Built directly on whole disks (LVM on an unpartitioned disk): the first one.
        chain.push(slaves[0].name.clone());
        Ok(slaves[0].clone())
    }
}

/// The device numbered `dev`: through `<sys>/dev/block/MAJ:MIN`, else by looking at each entry of
/// `<sys>/class/block`.
pub fn by_number(sys: &Path, dev: DevNum) -> io::Result<Option<Block>> {
    match Block::at(&sys.join("dev/block").join(dev.to_string())) {
        Ok(b) => return Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(all(sys)?.into_iter().find(|b| b.dev == dev))
}

/// Every block device of `<sys>/class/block`.
pub fn all(sys: &Path) -> io::Result<Vec<Block>> {
    let mut blocks = Vec::new();
    for entry in fs::read_dir(sys.join("class/block"))? {
        match Block::at(&entry?.path()) {
            Ok(b) => blocks.push(b),
            // A device that went away between the listing and the look.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    blocks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(blocks)
}
