//! XFS (v4 and v5): the superblock (`probe`: what blkid shows), and `Xfs`, the files inside one read
//! without mounting — inodes found by number from the superblock's geometry (`inode`), data forks
//! in local, extents and btree form (`fork`), directories in shortform, block, leaf and node form,
//! symlinks inline or remote (`dir`). On v5 every metadata block's CRC-32C is verified: a mismatch
//! is "image damaged" naming the block. Everything is big-endian; every number is checked before it
//! becomes an offset, and every read goes through the command's `Work`.

mod dir;
mod fork;
mod inode;
pub(crate) mod log;
mod replay;

pub use inode::Inode;

use std::io;

use super::crc::crc32c_without;
use super::tree::corrupt;
use super::{Filesystem, Kind, Log, ReadAt, Recovery, read_at};

const MAGIC: &[u8; 4] = b"XFSB";
/// The superblock's CRC, v5.
const SB_CRC_AT: usize = 224;
/// v4: the directory entries carry a file type (`features2`).
const V4_FTYPE: u32 = 0x0200;
/// v4: version 2 directories; without it the directories are the pre-1998 v1 format.
const V4_DIRV2: u16 = 0x2000;
/// `sb_versionnum`: the log is v2 (always so on v5).
const V4_LOGV2: u16 = 0x0400;
/// v5 incompatible features: ftype, sparse inodes, meta_uuid, bigtime, needsrepair, nrext64 — the
/// ones this reader follows (none but ftype and nrext64 changes what it reads).
const V5_FTYPE: u32 = 0x01;
const V5_NREXT64: u32 = 0x20;
const V5_KNOWN: u32 = 0x3F;

/// A number from `b` at `at`, big-endian.
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The XFS filesystem at `offset`, if its superblock carries the magic and a version (4 or 5).
pub fn probe<R: ReadAt + ?Sized>(r: &R, offset: u64) -> io::Result<Option<Filesystem>> {
    let mut sb = [0u8; 512];
    if !read_at(r, offset, &mut sb)? || &sb[..4] != MAGIC {
        return Ok(None);
    }
    let version = (be16(&sb, 100) & 0xF) as u8;
    if !(4..=5).contains(&version) {
        return Ok(None);
    }
    Ok(Some(Filesystem {
        kind: Kind::Xfs(version),
        uuid: super::uuid(&sb[32..48]),
        label: super::label(&sb[108..120]),
        // blkid's BLOCK_SIZE for XFS is the sector size.
        block_size: Some(u32::from(be16(&sb, 102))),
    }))
}

/// An open XFS filesystem: its geometry, checked.
pub struct Xfs<R> {
    r: R,
    v5: bool,
    ftype: bool,
    nrext64: bool,
    block_log: u32,
    blocks: u64,
    ag_blocks: u64,
    ag_count: u64,
    ag_block_log: u32,
    inode_size: u64,
    inodes_per_block_log: u32,
    dir_block_log: u32,
    root: u64,
    /// Directories read lately, by inode number, oldest first.
    dirs: super::recent::Recent<dir::Listing>,
    /// The log replayed into what is read (`replay`): empty unless it needed recovery.
    overlay: replay::Overlay,
    recovery: Option<Recovery>,
}

impl<R: ReadAt> Xfs<R> {
    /// The XFS filesystem at the start of `r`: `Ok(None)` without the magic; an error when its
    /// superblock is damaged (numbers that do not agree, a v5 CRC that fails) or asks for what this
    /// reader cannot follow (`Unsupported`, naming it).
    pub fn open(r: R) -> io::Result<Option<Xfs<R>>> {
        let mut head = [0u8; 512];
        if !read_at(&r, 0, &mut head)? || &head[..4] != MAGIC {
            return Ok(None);
        }
        let bad = |what: String| Err(corrupt(format!("xfs superblock: {what}")));
        let version = be16(&head, 100);
        let sector = u64::from(be16(&head, 102));
        if !sector.is_power_of_two() || !(512..=32768).contains(&sector) {
            return bad(format!("sector size {sector}"));
        }
        let mut sb = vec![0u8; sector as usize];
        if !read_at(&r, 0, &mut sb)? {
            return bad("shorter than its sector".into());
        }
        let v5 = match version & 0xF {
            4 => false,
            5 => true,
            v => return bad(format!("version {v}")),
        };
        if v5 {
            let stored = u32::from_le_bytes(sb[SB_CRC_AT..SB_CRC_AT + 4].try_into().expect("4"));
            if crc32c_without(&sb, SB_CRC_AT) != stored {
                return Err(corrupt("xfs: checksum mismatch at the superblock (byte 0)"));
            }
        }
        let incompat = be32(&sb, 216);
        if v5 && incompat & !V5_KNOWN != 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "xfs: incompatible features {:#x} are not read",
                    incompat & !V5_KNOWN
                ),
            ));
        }
        if !v5 && version & V4_DIRV2 == 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "xfs: version 1 directories are not read",
            ));
        }
        let mut fs = Xfs {
            r,
            v5,
            ftype: if v5 {
                incompat & V5_FTYPE != 0
            } else {
                be32(&sb, 200) & V4_FTYPE != 0
            },
            nrext64: v5 && incompat & V5_NREXT64 != 0,
            block_log: u32::from(sb[120]),
            blocks: be64(&sb, 8),
            ag_blocks: u64::from(be32(&sb, 84)),
            ag_count: u64::from(be32(&sb, 88)),
            ag_block_log: u32::from(sb[124]),
            inode_size: u64::from(be16(&sb, 104)),
            inodes_per_block_log: u32::from(sb[123]),
            dir_block_log: u32::from(sb[192]),
            root: be64(&sb, 56),
            dirs: dir::kept(),
            overlay: replay::Overlay::default(),
            recovery: None,
        };
        let block = be32(&sb, 4);
        if !(9..=16).contains(&fs.block_log) || block != 1 << fs.block_log {
            return bad(format!("block size {block} (log {})", fs.block_log));
        }
        if fs.ag_blocks == 0
            || fs.ag_count == 0
            || fs.ag_block_log > 31
            || fs.ag_blocks > 1 << fs.ag_block_log
        {
            return bad(format!(
                "{} groups of {} blocks (log {})",
                fs.ag_count, fs.ag_blocks, fs.ag_block_log
            ));
        }
        let groups_hold = fs.ag_count.checked_mul(fs.ag_blocks);
        if fs.blocks == 0 || groups_hold.is_none_or(|n| n < fs.blocks || n - fs.blocks >= fs.ag_blocks) {
            return bad(format!(
                "{} blocks in {} groups of {}",
                fs.blocks, fs.ag_count, fs.ag_blocks
            ));
        }
        if super::at(0, fs.blocks, fs.block_size()).is_err() {
            return bad(format!("{} blocks", fs.blocks));
        }
        let min_inode = if v5 { 512 } else { 256 };
        if !fs.inode_size.is_power_of_two()
            || fs.inode_size < min_inode
            || fs.inode_size > 2048
            || fs.inode_size << fs.inodes_per_block_log != fs.block_size()
        {
            return bad(format!(
                "inode size {} with 2^{} per block",
                fs.inode_size, fs.inodes_per_block_log
            ));
        }
        if fs.block_log + fs.dir_block_log > 16 {
            return bad(format!("directory blocks of 2^{} blocks", fs.dir_block_log));
        }
        fs.recover(&sb, v5 || version & V4_LOGV2 != 0)?;
        Ok(Some(fs))
    }

    /// Replays the internal log into the view when it needs recovery; an external one (the
    /// superblock's `sb_logstart` 0) cannot be, and is said so.
    fn recover(&mut self, sb: &[u8], v2: bool) -> io::Result<()> {
        let (start, blocks) = (be64(sb, 48), u64::from(be32(sb, 96)));
        if start == 0 {
            self.recovery = Some(Recovery::External(Log::Xfs));
            return Ok(());
        }
        let (at, room) = self.block_at(start)?;
        if blocks == 0 || blocks > room {
            return Err(corrupt(format!(
                "xfs superblock: a log of {blocks} blocks from block {start}, {room} left in its group"
            )));
        }
        self.recovery = self.replay(at, blocks << (self.block_log - 9), v2)?;
        Ok(())
    }

    /// What opening did about a log that needed recovery; `None` when none did.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    fn block_size(&self) -> u64 {
        1 << self.block_log
    }

    /// The byte offset of filesystem block `fsb` (AG number in the high bits, as XFS stores block
    /// pointers), and how many blocks from there stay inside its AG and the filesystem.
    fn block_at(&self, fsb: u64) -> io::Result<(u64, u64)> {
        let ag = fsb >> self.ag_block_log;
        let agb = fsb & ((1 << self.ag_block_log) - 1);
        let linear = ag
            .checked_mul(self.ag_blocks)
            .and_then(|b| b.checked_add(agb))
            .filter(|&b| ag < self.ag_count && agb < self.ag_blocks && b < self.blocks)
            .ok_or_else(|| {
                corrupt(format!(
                    "xfs: block {fsb} (group {ag}, block {agb}) is past the filesystem's {} groups of {} blocks",
                    self.ag_count, self.ag_blocks
                ))
            })?;
        let room = (self.ag_blocks - agb).min(self.blocks - linear);
        Ok((linear << self.block_log, room))
    }

    /// `count` blocks from filesystem block `fsb`, which must lie in one AG of the filesystem.
    fn read_blocks(&self, fsb: u64, count: u64) -> io::Result<Vec<u8>> {
        let (at, room) = self.block_at(fsb)?;
        if count > room {
            return Err(corrupt(format!(
                "xfs: blocks {fsb}+{count} run past their group or the filesystem"
            )));
        }
        let mut buf = vec![0u8; (count << self.block_log) as usize];
        if !self.read(at, &mut buf)? {
            return Err(corrupt(format!(
                "xfs: block {fsb} is beyond the end of the device"
            )));
        }
        Ok(buf)
    }

    /// On v5, that `buf`'s CRC-32C (at `crc_at`, little-endian) holds; `what` names the block.
    fn verify(&self, buf: &[u8], crc_at: usize, what: impl FnOnce() -> String) -> io::Result<()> {
        if !self.v5 {
            return Ok(());
        }
        let stored = u32::from_le_bytes(buf[crc_at..crc_at + 4].try_into().expect("4"));
        if crc32c_without(buf, crc_at) != stored {
            return Err(corrupt(format!("xfs: checksum mismatch at {}", what())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reads_what_blkid_shows() {
        let mut sb = vec![0u8; 512];
        sb[..4].copy_from_slice(MAGIC);
        sb[100..102].copy_from_slice(&0xB4A5u16.to_be_bytes());
        sb[102..104].copy_from_slice(&512u16.to_be_bytes());
        sb[108..112].copy_from_slice(b"root");
        sb[32] = 0xAB;
        let fs = probe(sb.as_slice(), 0).unwrap().unwrap();
        assert_eq!(fs.kind, Kind::Xfs(5));
        assert_eq!(fs.label.as_deref(), Some("root"));
        assert_eq!(fs.block_size, Some(512));
        assert!(fs.uuid.unwrap().starts_with("ab000000-"));
        sb[101] = 0xA3;
        assert!(probe(sb.as_slice(), 0).unwrap().is_none());
        // A v5 superblock whose CRC fails is damage, named.
        sb[101] = 0xA5;
        let e = Xfs::open(sb.as_slice()).err().unwrap();
        assert!(
            e.to_string().contains("checksum mismatch at the superblock"),
            "{e}"
        );
    }
}
