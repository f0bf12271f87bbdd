//! Where an ext inode's data is: ext4's extent tree (depth at most 5, every node's header checked,
//! a budget of nodes so a tree that points at itself ends) or the old block map (12 direct blocks,
//! single, double and triple indirect), only as far as the file's size reaches; holes and
//! uninitialised extents read as zeros. Fast link targets and inline data come from the inode.

use std::io;

use super::csum;
use super::fs::{Ext, FLAG_EXTENTS, FLAG_INLINE_DATA, Inode};
use crate::disk::tree::corrupt;
use crate::disk::{ReadAt, le16, le32};

const EXTENT_MAGIC: u16 = 0xF30A;
const MAX_DEPTH: u16 = 5;

/// `len` blocks from logical block `logical` stored from physical block `physical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Run {
    pub logical: u64,
    pub physical: u64,
    pub len: u64,
    /// Uninitialised (allocated, reads as zeros).
    pub zero: bool,
}

impl<R: ReadAt> Ext<R> {
    /// The inode's data: its first `size` bytes, `size` being at most `max` or an error.
    pub fn data(&self, inode: &Inode, max: u64) -> io::Result<Vec<u8>> {
        if inode.size > max {
            return Err(corrupt(format!(
                "ext: inode {} holds {} bytes, more than the {max} read",
                inode.number, inode.size
            )));
        }
        let size = inode.size as usize;
        if inode.flags & FLAG_INLINE_DATA != 0 {
            let mut data = inode.block.to_vec();
            data.extend(self.inline_rest(inode)?);
            if data.len() < size {
                return Err(corrupt(format!(
                    "ext: inode {}: {size} bytes but {} inline",
                    inode.number,
                    data.len()
                )));
            }
            data.truncate(size);
            return Ok(data);
        }
        let is_link = inode.mode & 0xF000 == 0xA000;
        if is_link && size < inode.block.len() && inode.flags & FLAG_EXTENTS == 0 {
            // A fast link: the target is in i_block (e2fsprogs' rule).
            return Ok(inode.block[..size].to_vec());
        }
        let blocks = inode.size.div_ceil(self.block_size);
        let runs = self.runs(inode, blocks)?;
        let mut data = vec![0u8; size];
        let bs = self.block_size;
        for run in runs {
            if run.zero || run.logical >= blocks {
                continue;
            }
            let start = run.logical * bs;
            let end = ((run.logical + run.len.min(blocks - run.logical)) * bs).min(inode.size);
            self.read_blocks(run.physical, &mut data[start as usize..end as usize])?;
        }
        Ok(data)
    }

    /// Where the inode's first `blocks` blocks are (extents or block map), in no promised order.
    pub(super) fn runs(&self, inode: &Inode, blocks: u64) -> io::Result<Vec<Run>> {
        if inode.flags & FLAG_EXTENTS != 0 {
            let mut budget = 2 * blocks + 8;
            let mut runs = Vec::new();
            self.extents(inode, &inode.block, None, blocks, &mut budget, &mut runs)?;
            Ok(runs)
        } else {
            self.block_map(inode, blocks)
        }
    }

    /// Collects the leaves of the extent (sub)tree in `node`, `depth` being what its parent said
    /// it must be (`None` at the root, which lives in the inode).
    fn extents(
        &self,
        inode: &Inode,
        node: &[u8],
        depth: Option<u16>,
        blocks: u64,
        budget: &mut u64,
        out: &mut Vec<Run>,
    ) -> io::Result<()> {
        let bad = |what: &str| corrupt(format!("ext: inode {}: extent tree: {what}", inode.number));
        if *budget == 0 {
            return Err(bad("more nodes than the file has blocks"));
        }
        *budget -= 1;
        if le16(node, 0) != EXTENT_MAGIC {
            return Err(bad(&format!("header magic {:#06x}", le16(node, 0))));
        }
        let (entries, max, level) = (
            usize::from(le16(node, 2)),
            usize::from(le16(node, 4)),
            le16(node, 6),
        );
        if entries > max
            || 12 + 12 * max > node.len()
            || level > MAX_DEPTH
            || depth.is_some_and(|d| d != level)
        {
            return Err(bad(&format!("header entries {entries} max {max} depth {level}")));
        }
        for i in 0..entries {
            let e = &node[12 + 12 * i..24 + 12 * i];
            let first = u64::from(le32(e, 0));
            if first >= blocks {
                continue;
            }
            if level == 0 {
                let raw = le16(e, 4);
                let (len, zero) = if raw > 32768 {
                    (raw - 32768, true)
                } else {
                    (raw, false)
                };
                let physical = u64::from(le16(e, 6)) << 32 | u64::from(le32(e, 8));
                out.push(Run {
                    logical: first,
                    physical,
                    len: u64::from(len),
                    zero,
                });
            } else {
                let child = u64::from(le16(e, 8)) << 32 | u64::from(le32(e, 4));
                let block = self.block(child)?;
                if let Some(seed) = inode.seed {
                    let max = usize::from(le16(&block, 4));
                    csum::extent_block(seed, inode.number, child, &block, max)?;
                }
                self.extents(inode, &block, Some(level - 1), blocks, budget, out)?;
            }
        }
        Ok(())
    }

    /// The block map's runs for the first `blocks` logical blocks (zero entries are holes).
    fn block_map(&self, inode: &Inode, blocks: u64) -> io::Result<Vec<Run>> {
        let mut runs = Vec::new();
        let per = self.block_size / 4;
        let mut push = |logical: u64, physical: u32| {
            if physical == 0 || logical >= blocks {
                return;
            }
            let physical = u64::from(physical);
            match runs.last_mut() {
                Some(Run {
                    logical: l,
                    physical: p,
                    len,
                    ..
                }) if *l + *len == logical && *p + *len == physical => *len += 1,
                _ => runs.push(Run {
                    logical,
                    physical,
                    len: 1,
                    zero: false,
                }),
            }
        };
        for i in 0..12 {
            push(i, le32(&inode.block, 4 * i as usize));
        }
        let mut start = 12;
        for (level, slot) in [(1u32, 12usize), (2, 13), (3, 14)] {
            let span = per.pow(level);
            if start < blocks {
                self.indirect(le32(&inode.block, 4 * slot), level, start, blocks, &mut push)?;
            }
            start += span;
        }
        Ok(runs)
    }

    /// Visits the blocks an indirect block of `level` maps, from logical block `start`.
    fn indirect(
        &self,
        block: u32,
        level: u32,
        start: u64,
        blocks: u64,
        push: &mut dyn FnMut(u64, u32),
    ) -> io::Result<()> {
        if block == 0 || start >= blocks {
            return Ok(());
        }
        let data = self.block(u64::from(block))?;
        let per = self.block_size / 4;
        let span = per.pow(level - 1);
        for i in 0..per {
            let logical = start + i * span;
            if logical >= blocks {
                break;
            }
            let next = le32(&data, 4 * i as usize);
            if level == 1 {
                push(logical, next);
            } else {
                self.indirect(next, level - 1, logical, blocks, push)?;
            }
        }
        Ok(())
    }
}
