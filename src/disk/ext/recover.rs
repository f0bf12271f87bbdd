//! An ext filesystem whose journal needs recovery, read as the kernel would mount it: the journal
//! (inode `s_journal_inum`, found through the same extent and block-map code as any file, in the
//! image's own bytes as the kernel reads them) replayed by `journal` into the view, never into the
//! image. Every later read of the reader goes through [`Ext::read`], which lays the newest
//! committed copy of each block over the image's bytes; the superblock is read again through it.
//! An external journal (a `jbd` device) is not at hand: the filesystem is read as it is, and
//! [`Recovery::External`] says so.

use std::io;

use super::fs::Ext;
use super::journal;
use super::{COMPAT_HAS_JOURNAL, MAGIC, SUPERBLOCK_AT};
use crate::disk::tree::corrupt;
use crate::disk::{Log, ReadAt, Recovery, at, le16, le32};

impl<R: ReadAt> Ext<R> {
    /// This filesystem (opened from the image's superblock `sb`, which says `needs_recovery`) with
    /// its journal replayed into the view.
    pub(super) fn recover(mut self, sb: &[u8]) -> io::Result<Ext<R>> {
        if le32(sb, 0x5C) & COMPAT_HAS_JOURNAL == 0 {
            return Err(corrupt("ext superblock: needs_recovery without a journal"));
        }
        let inum = le32(sb, 0xE0);
        if inum == 0 {
            self.recovery = Some(Recovery::External(Log::ExtJournal));
            return Ok(self);
        }
        self.verify_bitmaps = false;
        let inode = self.inode(inum).map_err(|e| in_journal(inum, e))?;
        let blocks = inode.size / self.block_size;
        let blocks = u32::try_from(blocks)
            .map_err(|_| corrupt(format!("ext journal: inode {inum} holds {blocks} blocks")))?;
        let mut places: Vec<(u64, u64, u64)> = self
            .runs(&inode, u64::from(blocks))
            .map_err(|e| in_journal(inum, e))?
            .into_iter()
            .filter(|r| !r.zero)
            .map(|r| (r.logical, r.physical, r.len))
            .collect();
        places.sort_unstable();
        let mut read = |n: u32, buf: &mut [u8]| self.read_blocks(journal_block(&places, n)?, buf);
        let mut replay = journal::replay(blocks, self.block_size as usize, self.blocks, &mut read)?;
        replay.places = places;
        let recovery = Recovery::Replayed {
            log: Log::ExtJournal,
            transactions: replay.transactions,
            copies: format!("{} blocks", replay.copies.len()),
            notes: replay.notes.clone(),
        };
        self.replay = replay;
        // The superblock may have a newer copy in the journal too: the filesystem is what it says.
        let mut sb = [0u8; 1024];
        if !self.read(SUPERBLOCK_AT, &mut sb)? || le16(&sb, 0x38) != MAGIC {
            return Err(corrupt("ext journal: the replayed superblock is not one"));
        }
        let Ext {
            r, offset, replay, ..
        } = self;
        let mut fs = Ext::from_superblock(r, offset, &sb)?;
        fs.replay = replay;
        fs.recovery = Some(recovery);
        Ok(fs)
    }

    /// The filesystem's bytes from `byte` on as the view has them: the image's, with the replayed
    /// journal's copies over them. False past the image's end.
    pub(super) fn read(&self, byte: u64, buf: &mut [u8]) -> io::Result<bool> {
        if !self.read_raw(byte, buf)? {
            return Ok(false);
        }
        if self.replay.is_empty() || buf.is_empty() {
            return Ok(true);
        }
        let bs = self.block_size;
        let end = byte + buf.len() as u64;
        let mut copy = vec![0u8; bs as usize];
        for block in byte / bs..end.div_ceil(bs) {
            let Some(c) = self.replay.copies.get(&block) else {
                continue;
            };
            let physical = journal_block(&self.replay.places, c.block)?;
            if !self.read_raw(at(0, physical, bs)?, &mut copy)? {
                return Err(corrupt(format!(
                    "ext journal: its block {} is beyond the end of the image",
                    c.block
                )));
            }
            self.replay.restore(block, c, &mut copy)?;
            // The part of this block inside [byte, end).
            let (from, to) = ((block * bs).max(byte), ((block + 1) * bs).min(end));
            buf[(from - byte) as usize..(to - byte) as usize]
                .copy_from_slice(&copy[(from - block * bs) as usize..(to - block * bs) as usize]);
        }
        Ok(true)
    }

    /// What opening did about a journal that needed recovery; `None` when none did.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }
}

/// Where the journal's block `n` is in the filesystem, by its `places` (sorted runs).
fn journal_block(places: &[(u64, u64, u64)], n: u32) -> io::Result<u64> {
    let n = u64::from(n);
    let i = places.partition_point(|&(logical, _, len)| logical.saturating_add(len) <= n);
    match places.get(i) {
        Some(&(logical, physical, _)) if logical <= n => physical
            .checked_add(n - logical)
            .ok_or_else(|| corrupt(format!("ext journal: its block {n} lies past 2^64"))),
        _ => Err(corrupt(format!("ext journal: its block {n} is a hole"))),
    }
}

fn in_journal(inum: u32, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("ext journal (inode {inum}): {e}"))
}
