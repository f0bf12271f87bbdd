//! XFS inodes: where inode N lies (AG, block in the AG, slot in the block, from the superblock's
//! logs), the dinode core (v1/v2; v3 on v5 filesystems, its CRC and own number checked) and its
//! data fork's bytes.

use std::io;

use super::{Xfs, be16, be32, be64};
use crate::disk::ReadAt;
use crate::disk::tree::corrupt;

const MAGIC: u16 = 0x494E;
/// v3's CRC and its own inode number.
const CRC_AT: usize = 100;
const INO_AT: usize = 152;
/// `di_flags2`: the extent counters are the wide ones (nrext64).
const FLAG2_NREXT64: u64 = 1 << 4;
/// `di_flags2`: timestamps are nanoseconds since 1901-12-13 (bigtime), not seconds since 1970.
const FLAG2_BIGTIME: u64 = 1 << 3;
/// Seconds from bigtime's epoch (the least 32-bit time, 1901-12-13) to 1970.
const BIGTIME_EPOCH: i64 = 1 << 31;

/// How a fork holds its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A device: no data.
    Dev,
    /// In the inode itself (short directories, short link targets).
    Local,
    Extents,
    Btree,
}

/// An inode as read: what the readers need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    pub number: u64,
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Last modification, seconds since 1970.
    pub mtime: i64,
    pub format: Format,
    /// Extent records in the data fork (extents form).
    pub extents: u64,
    /// The data fork's bytes, as they lie in the inode.
    pub fork: Vec<u8>,
}

impl Inode {
    pub fn is_dir(&self) -> bool {
        self.mode & 0xF000 == 0x4000
    }
}

impl<R: ReadAt> Xfs<R> {
    /// The root directory's inode number.
    pub(super) fn root_number(&self) -> u64 {
        self.root
    }

    /// Inode `number`: its place checked against the geometry, its core against itself.
    pub fn inode(&self, number: u64) -> io::Result<Inode> {
        let slot_log = self.inodes_per_block_log;
        let ag = number.checked_shr(self.ag_block_log + slot_log).unwrap_or(0);
        let agb = (number >> slot_log) & ((1 << self.ag_block_log) - 1);
        let slot = number & ((1 << slot_log) - 1);
        if number == 0 || ag >= self.ag_count || agb >= self.ag_blocks {
            return Err(corrupt(format!(
                "xfs: inode number {number} is past the filesystem's {} groups of {} blocks",
                self.ag_count, self.ag_blocks
            )));
        }
        let (block, _) = self.block_at((ag << self.ag_block_log) | agb)?;
        let mut b = vec![0u8; self.inode_size as usize];
        if !self.read(block + slot * self.inode_size, &mut b)? {
            return Err(corrupt(format!(
                "xfs: inode {number} is beyond the end of the device"
            )));
        }
        let bad = |what: &str| Err(corrupt(format!("xfs: inode {number}: {what}")));
        if be16(&b, 0) != MAGIC {
            return bad("no inode magic");
        }
        let version = b[4];
        let core = match (self.v5, version) {
            (true, 3) => 176,
            (false, 1 | 2) => 100,
            _ => {
                return bad(&format!(
                    "version {version} on a v{} filesystem",
                    if self.v5 { 5 } else { 4 }
                ));
            }
        };
        if self.v5 {
            self.verify(&b, CRC_AT, || format!("inode {number}"))?;
            if be64(&b, INO_AT) != number {
                return bad(&format!("it says it is inode {}", be64(&b, INO_AT)));
            }
        }
        let mode = be16(&b, 2);
        if mode == 0 {
            return bad("a free inode is in use");
        }
        let size = be64(&b, 56);
        if size > i64::MAX as u64 {
            return bad(&format!("size {size}"));
        }
        let literal = self.inode_size as usize - core;
        let fork_len = match usize::from(b[82]) * 8 {
            0 => literal,
            n if n <= literal => n,
            n => {
                return bad(&format!(
                    "attribute fork at byte {n} of a {literal}-byte literal area"
                ));
            }
        };
        let flags2 = if version == 3 { be64(&b, 120) } else { 0 };
        let mtime = if flags2 & FLAG2_BIGTIME != 0 {
            (be64(&b, 40) / 1_000_000_000) as i64 - BIGTIME_EPOCH
        } else {
            i64::from(be32(&b, 40) as i32)
        };
        let wide = self.nrext64 && flags2 & FLAG2_NREXT64 != 0;
        let extents = if wide {
            be64(&b, 24)
        } else {
            u64::from(be32(&b, 76))
        };
        let format = match b[5] {
            0 => Format::Dev,
            1 => Format::Local,
            2 => Format::Extents,
            3 => Format::Btree,
            f => return bad(&format!("data fork format {f}")),
        };
        Ok(Inode {
            number,
            mode,
            uid: be32(&b, 8),
            gid: be32(&b, 12),
            size,
            mtime,
            format,
            extents,
            fork: b[core..core + fork_len].to_vec(),
        })
    }
}
