//! Btrfs, read natively without mounting (toolkit only: the agent never reaches it): the
//! superblock (primary copy at 64 KiB, its checksum verified: CRC-32C, xxhash64 or SHA-256, `sum`), the chunk map from its
//! `sys_chunk_array` and the chunk tree (`btree`: logical → physical, single and DUP profiles on one
//! device), the root tree and the subvolumes' FS trees walked as bounded B-trees, inodes,
//! directories, inline and regular extents, zlib and zstd compressed ones (`files`, `data`), their
//! sectors checked against the checksum tree (`csum`).
//! Which subvolume is the root: the default one when it holds a root (an os-release or
//! `etc/shadow`, as `image::view` marks one), else a subvolume named `@`, else `root`, directly in
//! it (openSUSE sets its `@/.snapshots/N/snapshot` as default; Ubuntu keeps the top level as
//! default and its root in `@`, Fedora in `root`). Every number from the image is checked before
//! it becomes an offset; every node is checked (checksum, its own address, level, key order).

mod btree;
mod csum;
mod data;
mod files;
mod sum;

pub(crate) use files::name_hash;
pub use files::{Btrfs, Subvolume};

use std::io;

use super::{Filesystem, Kind, ReadAt, le16, le32, le64, read_at};
use crate::disk::corrupt;
pub use sum::Sum;

/// The primary superblock's place and size.
pub(crate) const SUPERBLOCK_AT: u64 = 0x10000;
const SUPERBLOCK_LEN: usize = 4096;
pub(crate) const MAGIC: &[u8; 8] = b"_BHRfS_M";
/// Bytes of `sys_chunk_array` in the superblock.
const SYS_CHUNK_ARRAY_MAX: usize = 2048;

/// Incompatible features this reader follows: mixed backrefs, a default subvolume, mixed block
/// groups, lzo/zstd (refused per extent when lzo), big metadata, extended inode refs, raid56 and
/// raid1c34 (refused per chunk), skinny metadata, no holes, a metadata UUID, simple quotas.
const INCOMPAT_KNOWN: u64 =
    0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x10000;
const INCOMPAT_METADATA_UUID: u64 = 0x400;

/// What the superblock says, checked: sizes are powers of two in range, one device.
#[derive(Debug, Clone)]
pub(crate) struct Super {
    pub fsid: [u8; 16],
    /// What tree blocks carry as their fsid (the metadata UUID when that feature is set).
    pub meta_fsid: [u8; 16],
    pub root: u64,
    pub root_level: u8,
    pub chunk_root: u64,
    pub chunk_root_level: u8,
    pub sector_size: u32,
    pub node_size: u32,
    pub devid: u64,
    pub sys_chunks: Vec<u8>,
    /// How its superblock, nodes and data are checksummed.
    pub sum: Sum,
    label: Option<String>,
}

impl Super {
    pub fn filesystem(&self) -> Filesystem {
        Filesystem {
            kind: Kind::Btrfs,
            uuid: super::uuid(&self.fsid),
            label: self.label.clone(),
            block_size: Some(self.sector_size),
        }
    }
}

/// The Btrfs superblock of `r` (its primary copy), if the magic is there; damage (a checksum that
/// does not match, a size out of range) is an error, and so is what this reader does not follow
/// (`Unsupported`: several devices, a BLAKE2b checksum, unknown features).
pub(crate) fn superblock<R: ReadAt + ?Sized>(r: &R) -> io::Result<Option<Super>> {
    let mut sb = vec![0u8; SUPERBLOCK_LEN];
    if !read_at(r, SUPERBLOCK_AT, &mut sb)? || &sb[0x40..0x48] != MAGIC {
        return Ok(None);
    }
    let unsupported = |what: String| io::Error::new(io::ErrorKind::Unsupported, format!("btrfs: {what}"));
    let sum = Sum::of_type(le16(&sb, 0xc4))?;
    if !sum.matches(&sb[0x20..], &sb) {
        return Err(corrupt("btrfs: the superblock's checksum does not match"));
    }
    if le64(&sb, 0x30) != SUPERBLOCK_AT {
        return Err(corrupt("btrfs: the superblock does not name its own place"));
    }
    let devices = le64(&sb, 0x88);
    if devices != 1 {
        return Err(unsupported(format!(
            "the filesystem spans {devices} devices; osconf reads single-device btrfs only"
        )));
    }
    let incompat = le64(&sb, 0xbc);
    if incompat & !INCOMPAT_KNOWN != 0 {
        return Err(unsupported(format!(
            "incompatible features {:#x} are not read",
            incompat & !INCOMPAT_KNOWN
        )));
    }
    let sector_size = le32(&sb, 0x90);
    let node_size = le32(&sb, 0x94);
    let pow2_in = |v: u32, lo: u32, hi: u32| v.is_power_of_two() && (lo..=hi).contains(&v);
    if !pow2_in(sector_size, 4096, 65536) || !pow2_in(node_size, sector_size, 65536) {
        return Err(corrupt(format!(
            "btrfs: sector size {sector_size} or node size {node_size} out of range"
        )));
    }
    let (root_level, chunk_root_level) = (sb[0xc6], sb[0xc7]);
    if root_level >= btree::MAX_LEVEL || chunk_root_level >= btree::MAX_LEVEL {
        return Err(corrupt("btrfs: a tree root level past 7"));
    }
    let sys_len = le32(&sb, 0xa0) as usize;
    if sys_len > SYS_CHUNK_ARRAY_MAX {
        return Err(corrupt(format!("btrfs: sys_chunk_array of {sys_len} bytes")));
    }
    let fsid: [u8; 16] = sb[0x20..0x30].try_into().expect("16 bytes");
    let meta_fsid = match incompat & INCOMPAT_METADATA_UUID {
        0 => fsid,
        _ => sb[0x23b..0x24b].try_into().expect("16 bytes"),
    };
    Ok(Some(Super {
        fsid,
        meta_fsid,
        root: le64(&sb, 0x50),
        root_level,
        chunk_root: le64(&sb, 0x58),
        chunk_root_level,
        sector_size,
        node_size,
        devid: le64(&sb, 0xc9),
        sys_chunks: sb[0x32b..0x32b + sys_len].to_vec(),
        sum,
        label: super::label(&sb[0x12b..0x22b]),
    }))
}

// CRC-32C (Castagnoli), as Btrfs checksums its superblock, tree blocks and data by default, and
// (unfinished, from seed `!1`) hashes directory entry names: the one table code of `disk::crc`.
pub(crate) use super::crc::{crc32c, crc32c_raw};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_the_name_hash_match_known_values() {
        // RFC 3720's test vector, and btrfs's hash of "default" (mkfs's root tree dir item key).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(files::name_hash(b"default"), 0x8dbfc2d2);
    }
}
