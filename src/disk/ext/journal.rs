//! The ext3/4 journal (jbd2, big-endian) of a filesystem cut without a flush (`needs_recovery`),
//! replayed into the view the reader reads — never into the image. One scan of the log from the
//! journal superblock's `s_start` finds the committed transactions (descriptor blocks and their tags
//! in all four sizes, `SAME_UUID`, `ESCAPE`; revoke blocks of 32- and 64-bit records; commit blocks),
//! then the kernel's and e2fsck's two other passes are done on what the scan kept: a revoke cancels
//! the copies of its transaction and the earlier ones, and of the copies left the last committed
//! one wins. The result maps a filesystem block to the journal block holding its newest copy.
//!
//! The checksums of `csum_v2`/`csum_v3` journals are verified: the superblock's, each descriptor's,
//! revoke's and commit's as the scan meets them, and a data block's when a read first takes it
//! (`Replay::restore`), so only what is read is paid for. The old `checksum` feature (v1: the
//! kernel's `crc32_be` over each descriptor block and the blocks it tags, in the commit block;
//! what `journal_checksum` writes on a filesystem without `metadata_csum`) is verified as the
//! kernel's scan does it, reading the tagged blocks then: a commit that fails it ends the log
//! before its transaction, as a failed v2/v3 commit does.
//! Fast commits (ext4's `fast_commit`: logical records of inode and directory changes after the
//! last full commit, in their own area at the journal's end) are not replayed: the full commits
//! are, and when the fast-commit area opens with the head of the transaction after them (what the
//! kernel would go on to replay) the replay says so, with what to do: the view is then the
//! filesystem as of its last full commit, consistent but perhaps missing the last writes.
//!
//! Nothing here is trusted: the scan visits each log block at most once (a log running longer
//! than the journal is damage), every tag's block is checked to lie in the filesystem, every count
//! in a block is bounded by that block.

use std::collections::HashMap;
use std::io;

use crate::disk::crc::{crc32_be, crc32c_raw};
use crate::disk::format::{be16, be32, be64};
use crate::disk::tree::corrupt;
use crate::disk::{le16, le32};

const MAGIC: u32 = 0xC03B_3998;
const DESCRIPTOR: u32 = 1;
const COMMIT: u32 = 2;
const SUPERBLOCK_V1: u32 = 3;
const SUPERBLOCK_V2: u32 = 4;
const REVOKE: u32 = 5;

/// `s_feature_compat`: v1 checksums, one per transaction in its commit block.
const COMPAT_CHECKSUM: u32 = 0x01;
/// A v1 commit block's `h_chksum_type` and `h_chksum_size` for its CRC-32.
const CRC32_CHKSUM: u8 = 1;
const CRC32_CHKSUM_SIZE: u8 = 4;

const INCOMPAT_64BIT: u32 = 0x02;
const INCOMPAT_CSUM_V2: u32 = 0x08;
const INCOMPAT_CSUM_V3: u32 = 0x10;
const INCOMPAT_FAST_COMMIT: u32 = 0x20;
/// revoke, 64bit, async_commit, csum_v2, csum_v3, fast_commit: a revoke block is read whatever
/// the features say, and async_commit changes nothing for a reader that stops at a bad commit.
const INCOMPAT_KNOWN: u32 = 0x3F;
/// `s_checksum_type` of crc32c, the only one v2/v3 journals use.
const CRC32C: u8 = 4;
/// Fast-commit blocks at the journal's end when the superblock gives no number (the kernel's).
const DEFAULT_FAST_COMMIT_BLOCKS: u32 = 256;

const TAG_ESCAPE: u16 = 0x1;
const TAG_SAME_UUID: u16 = 0x2;
const TAG_LAST: u16 = 0x8;

/// The newest committed copy of one filesystem block, in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Copy {
    /// The journal's block (its logical block, in the journal inode) holding it.
    pub block: u32,
    /// Its transaction's sequence number (part of its checksum).
    seq: u32,
    /// Its first four bytes were the journal's magic, stored as zeros (the tag's `ESCAPE`).
    escaped: bool,
    /// The tag's checksum of the block (16 bits of it under v2).
    sum: u32,
}

/// A journal replayed: which filesystem blocks read from where in the journal.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    pub copies: HashMap<u64, Copy>,
    /// Transactions committed in the log, replayed.
    pub transactions: u32,
    /// What the scan met that a reader should know (a commit block whose checksum fails).
    pub notes: Vec<String>,
    /// The checksum seed and whether tags carry 32 bits (v3) or 16 (v2); `None` without checksums.
    csum: Option<(u32, bool)>,
    /// Where the journal's blocks are in the filesystem: (journal block, filesystem block, count)
    /// sorted, set by the reader that replayed it.
    pub places: Vec<(u64, u64, u64)>,
}

/// One transaction as the scan read it.
#[derive(Default)]
struct Transaction {
    /// (filesystem block, journal block, tag flags, tag checksum).
    tags: Vec<(u64, u32, u16, u32)>,
    revoked: Vec<u64>,
    /// A descriptor or revoke block of it failed its checksum.
    bad: Option<String>,
}

/// The journal's superblock, as the scan needs it.
struct Super {
    first: u32,
    /// One past the log's last block (fast-commit blocks come after it).
    last: u32,
    /// The first block of the fast-commit area, when there is one.
    fast_commits: Option<u32>,
    sequence: u32,
    start: u32,
    incompat: u32,
    csum: Option<(u32, bool)>,
    /// Transactions carry v1 checksums (`COMPAT_CHECKSUM`).
    v1: bool,
}

fn bad(what: String) -> io::Error {
    corrupt(format!("ext journal: {what}"))
}

/// Replays the journal of `blocks` blocks of `block_size` bytes, `read(n, buf)` reading its block
/// `n`, for a filesystem of `fs_blocks` blocks.
pub(crate) fn replay(
    blocks: u32,
    block_size: usize,
    fs_blocks: u64,
    read: &mut dyn FnMut(u32, &mut [u8]) -> io::Result<()>,
) -> io::Result<Replay> {
    let mut buf = vec![0u8; block_size];
    if blocks == 0 {
        return Err(bad("the journal inode is empty".into()));
    }
    read(0, &mut buf)?;
    let sb = superblock(&buf, blocks)?;
    if sb.start == 0 {
        // A clean log: e2fsck only clears the flag.
        return Ok(Replay::default());
    }
    let tag_bytes = tag_size(sb.incompat);
    let tail = if sb.csum.is_some() { 4 } else { 0 };
    let wide = sb.incompat & INCOMPAT_64BIT != 0;
    let log_len = sb.last - sb.first;
    let mut out = Replay {
        csum: sb.csum,
        ..Replay::default()
    };
    let (mut pos, mut seq, mut visited) = (sb.start, sb.sequence, 0u32);
    let mut committed: Vec<(u32, Transaction)> = Vec::new();
    let mut now = Transaction::default();
    let mut last_commit_time = 0u64;
    // The v1 checksum of the transaction being read, and a buffer for the blocks it covers.
    let mut v1_sum = !0u32;
    let mut copy = vec![0u8; if sb.v1 { block_size } else { 0 }];
    // Moves to the log's next block; a log longer than the journal is one made to loop.
    let mut step = |pos: &mut u32| {
        visited += 1;
        if visited > log_len {
            return Err(bad(format!(
                "the log from block {} runs longer than the journal's {log_len} blocks",
                sb.start
            )));
        }
        *pos += 1;
        if *pos >= sb.last {
            *pos = sb.first;
        }
        Ok(())
    };
    loop {
        read(pos, &mut buf)?;
        if be32(&buf, 0) != MAGIC || be32(&buf, 8) != seq {
            break;
        }
        let at = pos;
        let sum_fails = |buf: &[u8], hole: usize| {
            sb.csum.is_some_and(|(seed, _)| {
                let c = crc32c_raw(seed, &buf[..hole]);
                let c = crc32c_raw(c, &[0; 4]);
                crc32c_raw(c, &buf[hole + 4..]) != be32(buf, hole)
            })
        };
        match be32(&buf, 4) {
            DESCRIPTOR => {
                if sum_fails(&buf, block_size - 4) {
                    now.bad = Some(format!("descriptor block {at}"));
                }
                let first = now.tags.len();
                let mut t = 12;
                while t + tag_bytes <= block_size - tail {
                    let mut fs_block = u64::from(be32(&buf, t));
                    if wide {
                        fs_block |= u64::from(be32(&buf, t + 8)) << 32;
                    }
                    let flags = be16(&buf, t + 6);
                    let sum = match sb.csum {
                        Some((_, true)) => be32(&buf, t + 12),
                        Some((_, false)) => u32::from(be16(&buf, t + 4)),
                        None => 0,
                    };
                    step(&mut pos)?;
                    now.tags.push((fs_block, pos, flags, sum));
                    t += tag_bytes + if flags & TAG_SAME_UUID == 0 { 16 } else { 0 };
                    if flags & TAG_LAST != 0 {
                        break;
                    }
                }
                if sb.v1 {
                    v1_sum = crc32_be(v1_sum, &buf);
                    for &(_, block, _, _) in &now.tags[first..] {
                        read(block, &mut copy)?;
                        v1_sum = crc32_be(v1_sum, &copy);
                    }
                }
            }
            REVOKE => {
                if sum_fails(&buf, block_size - 4) {
                    now.bad = Some(format!("revoke block {at}"));
                }
                let count = be32(&buf, 12) as usize;
                if count > block_size - tail {
                    return Err(bad(format!(
                        "revoke block {at} of transaction {seq}: {count} bytes of records in a block of {block_size}"
                    )));
                }
                let len = if wide { 8 } else { 4 };
                let mut r = 16;
                while r + len <= count {
                    now.revoked.push(if wide {
                        be64(&buf, r)
                    } else {
                        u64::from(be32(&buf, r))
                    });
                    r += len;
                }
            }
            COMMIT => {
                let time = be64(&buf, 0x30);
                let stale = time < last_commit_time;
                if let Some(what) = now.bad.take() {
                    if stale {
                        break;
                    }
                    return Err(bad(format!(
                        "transaction {seq}: the checksum of its {what} fails"
                    )));
                }
                if sum_fails(&buf, 0x10) || (sb.v1 && !v1_holds(&buf, v1_sum)) {
                    if !stale {
                        out.notes.push(format!(
                            "transaction {seq}'s commit block {at} fails its checksum: the log ends before it, \
                             as the kernel's recovery ends it"
                        ));
                    }
                    break;
                }
                last_commit_time = time;
                v1_sum = !0;
                committed.push((seq, std::mem::take(&mut now)));
                seq = seq.wrapping_add(1);
            }
            _ => break,
        }
        step(&mut pos)?;
    }
    if let Some(fc) = sb.fast_commits {
        read(fc, &mut buf)?;
        if fast_commit_head(&buf) == Some(seq) {
            out.notes.push(format!(
                "the fast commits of transaction {seq} after them are not replayed (osconf replays \
                 full commits only): what they hold is missing from the view; to have it, recover \
                 the filesystem with e2fsck -fy on the partition (losetup --find --show --partscan \
                 DISK, then e2fsck -fy /dev/loopNpN) or by mounting it once"
            ));
        }
    }
    // Revoke pass: the newest transaction (by its index in the log) revoking each block.
    let mut revoked: HashMap<u64, usize> = HashMap::new();
    for (i, (_, t)) in committed.iter().enumerate() {
        for &b in &t.revoked {
            revoked.insert(b, i);
        }
    }
    // Replay pass: the last committed copy not revoked by its own or a later transaction wins.
    for (i, (seq, t)) in committed.iter().enumerate() {
        for &(fs_block, block, flags, sum) in &t.tags {
            if fs_block >= fs_blocks {
                return Err(bad(format!(
                    "transaction {seq}: journal block {block} is a copy of block {fs_block}, outside the \
                     filesystem's {fs_blocks} blocks"
                )));
            }
            if revoked.get(&fs_block).is_some_and(|&r| r >= i) {
                continue;
            }
            let escaped = flags & TAG_ESCAPE != 0;
            let copy = Copy {
                block,
                seq: *seq,
                escaped,
                sum,
            };
            out.copies.insert(fs_block, copy);
        }
    }
    out.transactions = committed.len() as u32;
    Ok(out)
}

/// Makes the journal superblock `b` (block 0) say the journal has `blocks` blocks, its checksum
/// (under csum v2/v3) made right again: how the fuzzer's mutations reach the log past the
/// superblock's own checks (the fuzzing harness of ext journals).
pub(crate) fn seal(b: &mut [u8], blocks: u32) {
    b[0x10..0x14].copy_from_slice(&blocks.to_be_bytes());
    if be32(b, 0x28) & (INCOMPAT_CSUM_V2 | INCOMPAT_CSUM_V3) != 0 {
        let sum = !crate::disk::crc::crc32c_without(&b[..1024], 0xFC);
        b[0xFC..0x100].copy_from_slice(&sum.to_be_bytes());
    }
}

/// The journal superblock in `b` (block 0 of a journal of `blocks` blocks), checked.
fn superblock(b: &[u8], blocks: u32) -> io::Result<Super> {
    let kind = be32(b, 4);
    if be32(b, 0) != MAGIC || !(kind == SUPERBLOCK_V1 || kind == SUPERBLOCK_V2) {
        return Err(bad(format!(
            "block 0 is no journal superblock (magic {:#x}, type {kind})",
            be32(b, 0)
        )));
    }
    let size = be32(b, 0x0C) as usize;
    if size != b.len() {
        return Err(bad(format!(
            "block size {size}, the filesystem's being {}",
            b.len()
        )));
    }
    let (maxlen, first) = (be32(b, 0x10), be32(b, 0x14));
    if maxlen > blocks || first == 0 || first >= maxlen {
        return Err(bad(format!(
            "log blocks {first}..{maxlen} in a journal of {blocks} blocks"
        )));
    }
    let incompat = if kind == SUPERBLOCK_V2 { be32(b, 0x28) } else { 0 };
    if incompat & !INCOMPAT_KNOWN != 0 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "ext journal: incompatible features {:#x} osconf does not replay",
                incompat & !INCOMPAT_KNOWN
            ),
        ));
    }
    let csum = if incompat & (INCOMPAT_CSUM_V2 | INCOMPAT_CSUM_V3) != 0 {
        if b[0x50] != CRC32C {
            return Err(bad(format!("checksum type {}, not crc32c", b[0x50])));
        }
        let (stored, counted) = (be32(b, 0xFC), crate::disk::crc::crc32c_without(&b[..1024], 0xFC));
        // The kernel's crc32c: no final inversion.
        if stored != !counted {
            return Err(bad(format!(
                "superblock checksum {stored:#010x}, its bytes give {:#010x}",
                !counted
            )));
        }
        Some((crc32c_raw(!0, &b[0x30..0x40]), incompat & INCOMPAT_CSUM_V3 != 0))
    } else {
        None
    };
    let v1 = kind == SUPERBLOCK_V2 && be32(b, 0x24) & COMPAT_CHECKSUM != 0;
    if v1 && csum.is_some() {
        // The kernel refuses to load such a journal.
        return Err(bad("checksums v1 and v2/v3 at once".into()));
    }
    let (mut last, mut fast_commits) = (maxlen, None);
    if incompat & INCOMPAT_FAST_COMMIT != 0 {
        let fc = match be32(b, 0x54) {
            0 => DEFAULT_FAST_COMMIT_BLOCKS,
            n => n,
        };
        last = maxlen
            .checked_sub(fc)
            .filter(|l| *l > first)
            .ok_or_else(|| bad(format!("{fc} fast-commit blocks in a log of {maxlen}")))?;
        // The kernel's `j_fc_first`: one block after `j_last`, the log's end.
        fast_commits = Some(last + 1).filter(|&b| b < maxlen);
    }
    let start = be32(b, 0x1C);
    if start != 0 && (start < first || start >= last) {
        return Err(bad(format!(
            "the log starts at block {start}, outside {first}..{last}"
        )));
    }
    Ok(Super {
        first,
        last,
        sequence: be32(b, 0x18),
        start,
        incompat,
        csum,
        v1,
        fast_commits,
    })
}

/// ext4's fast-commit tag that opens a fast commit (`EXT4_FC_TAG_HEAD`), and its value's length.
const FC_TAG_HEAD: u16 = 0x9;
const FC_HEAD_LEN: u16 = 8;

/// The transaction whose fast commits the fast-commit block `b` opens: a head tag (tag, length,
/// then `fc_features` and `fc_tid`, little-endian) first in the block, as ext4's replay scan
/// requires; `None` for anything else (the kernel replays nothing then).
fn fast_commit_head(b: &[u8]) -> Option<u32> {
    (le16(b, 0) == FC_TAG_HEAD && le16(b, 2) == FC_HEAD_LEN).then(|| le32(b, 8))
}

/// Whether the commit block `b` holds `sum`, its transaction's v1 checksum, as the kernel's scan
/// asks: the CRC-32 with its type and size, or no checksum at all (type, size and value zero).
fn v1_holds(b: &[u8], sum: u32) -> bool {
    let (kind, size, stored) = (b[0x0C], b[0x0D], be32(b, 0x10));
    (kind, size, stored) == (CRC32_CHKSUM, CRC32_CHKSUM_SIZE, sum) || (kind, size, stored) == (0, 0, 0)
}

/// Bytes of one descriptor tag (before its UUID): 16 under csum v3; else 8, with 4 more for the
/// high half of a 64-bit block number and 2 more for a v2 checksum.
fn tag_size(incompat: u32) -> usize {
    if incompat & INCOMPAT_CSUM_V3 != 0 {
        return 16;
    }
    let mut size = 8;
    if incompat & INCOMPAT_64BIT != 0 {
        size += 4;
    }
    if incompat & INCOMPAT_CSUM_V2 != 0 {
        size += 2;
    }
    size
}

impl Replay {
    /// Whether it replays nothing.
    pub fn is_empty(&self) -> bool {
        self.copies.is_empty()
    }

    /// Makes `buf`, journal block `copy.block` as read, the copy of filesystem block `fs_block`:
    /// its checksum verified, the escaped magic put back.
    pub fn restore(&self, fs_block: u64, copy: &Copy, buf: &mut [u8]) -> io::Result<()> {
        if let Some((seed, v3)) = self.csum {
            let c = crc32c_raw(crc32c_raw(seed, &copy.seq.to_be_bytes()), buf);
            let (got, want) = if v3 {
                (c, copy.sum)
            } else {
                (c & 0xFFFF, copy.sum & 0xFFFF)
            };
            if got != want {
                return Err(bad(format!(
                    "transaction {}: journal block {}, the copy of block {fs_block}, fails its checksum \
                     ({want:#x} stored, {got:#x} counted)",
                    copy.seq, copy.block
                )));
            }
        }
        if copy.escaped && buf.len() >= 4 {
            buf[..4].copy_from_slice(&MAGIC.to_be_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BS: usize = 1024;

    /// A journal of `n` blocks without checksums or 64-bit tags: superblock v2, log from block 1,
    /// sequence 7.
    fn journal(n: u32) -> Vec<u8> {
        let mut j = vec![0u8; n as usize * BS];
        for (at, v) in [
            (0, MAGIC),
            (4, SUPERBLOCK_V2),
            (0xC, BS as u32),
            (0x10, n),
            (0x14, 1),
            (0x18, 7),
            (0x1C, 1),
        ] {
            j[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
        j
    }

    /// Makes block `n` a header of `kind` for transaction `seq`.
    fn header(j: &mut [u8], n: usize, kind: u32, seq: u32) {
        let b = &mut j[n * BS..];
        b[..4].copy_from_slice(&MAGIC.to_be_bytes());
        b[4..8].copy_from_slice(&kind.to_be_bytes());
        b[8..12].copy_from_slice(&seq.to_be_bytes());
    }

    /// Tag `i` (8 bytes, the first carrying a UUID) of the descriptor in block `n`.
    fn tag(j: &mut [u8], n: usize, i: usize, fs_block: u32, flags: u16) {
        let at = n * BS + 12 + if i == 0 { 0 } else { 24 + 8 * (i - 1) };
        let flags = if i == 0 { flags } else { flags | TAG_SAME_UUID };
        j[at..at + 4].copy_from_slice(&fs_block.to_be_bytes());
        j[at + 6..at + 8].copy_from_slice(&flags.to_be_bytes());
    }

    fn run(j: &[u8], fs_blocks: u64) -> io::Result<Replay> {
        let n = (j.len() / BS) as u32;
        let mut reads = 0;
        let got = replay(n, BS, fs_blocks, &mut |b, buf: &mut [u8]| {
            reads += 1;
            buf.copy_from_slice(&j[b as usize * BS..(b as usize + 1) * BS]);
            Ok(())
        });
        assert!(reads <= n + 1, "{reads} reads of {n} blocks");
        got
    }

    #[test]
    fn transactions_replay_in_order_and_revokes_cancel_earlier_copies() {
        let mut j = journal(16);
        // 7: blocks 100 and 101 (journal blocks 2, 3); 8: block 100 again (5) and revoke 101.
        header(&mut j, 1, DESCRIPTOR, 7);
        tag(&mut j, 1, 0, 100, 0);
        tag(&mut j, 1, 1, 101, TAG_LAST | TAG_ESCAPE);
        header(&mut j, 4, COMMIT, 7);
        header(&mut j, 5, DESCRIPTOR, 8);
        tag(&mut j, 5, 0, 100, TAG_LAST);
        header(&mut j, 7, REVOKE, 8);
        j[7 * BS + 12..7 * BS + 20].copy_from_slice(&[0, 0, 0, 20, 0, 0, 0, 101]);
        header(&mut j, 8, COMMIT, 8);
        // 9 is not committed: its copy of 102 is not replayed.
        header(&mut j, 9, DESCRIPTOR, 9);
        tag(&mut j, 9, 0, 102, TAG_LAST);
        let r = run(&j, 1000).unwrap();
        assert_eq!(r.transactions, 2);
        let blocks: Vec<(u64, u32)> = {
            let mut v: Vec<_> = r.copies.iter().map(|(k, c)| (*k, c.block)).collect();
            v.sort();
            v
        };
        assert_eq!(blocks, [(100, 6)]);
        let mut b = vec![0u8; BS];
        r.restore(100, &r.copies[&100], &mut b).unwrap();
        assert_eq!(b, vec![0u8; BS], "not escaped");
    }

    #[test]
    fn a_crafted_journal_is_refused_in_bounded_work() {
        let refused = |j: &[u8], says: &str| {
            let e = run(j, 1000).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        };
        // A descriptor whose tags claim more blocks than the log has.
        let mut j = journal(8);
        header(&mut j, 1, DESCRIPTOR, 7);
        for i in 0..100 {
            tag(&mut j, 1, i, 5, 0);
        }
        refused(&j, "runs longer than the journal's 7 blocks");
        // A copy of a block outside the filesystem.
        let mut j = journal(8);
        header(&mut j, 1, DESCRIPTOR, 7);
        tag(&mut j, 1, 0, 5000, TAG_LAST);
        header(&mut j, 3, COMMIT, 7);
        refused(&j, "copy of block 5000, outside the filesystem's 1000");
        // A revoke block counting more bytes than it has.
        let mut j = journal(8);
        header(&mut j, 1, REVOKE, 7);
        j[BS + 12..BS + 16].copy_from_slice(&u32::MAX.to_be_bytes());
        refused(&j, "bytes of records");
        // A log longer than the journal inode, or starting outside it; a block size not the
        // filesystem's.
        for (at, value, says) in [
            (0x10, 9u32, "log blocks 1..9"),
            (0x1C, 8, "starts at block 8"),
            (0xC, 4096, "block size 4096"),
        ] {
            let mut j = journal(8);
            j[at..at + 4].copy_from_slice(&value.to_be_bytes());
            refused(&j, says);
        }
        // Unknown features.
        let mut j = journal(8);
        j[0x28..0x2C].copy_from_slice(&0x100u32.to_be_bytes());
        assert_eq!(run(&j, 1000).unwrap_err().kind(), io::ErrorKind::Unsupported);
        // A clean log (s_start 0) replays nothing.
        let mut j = journal(8);
        j[0x1C..0x20].fill(0);
        assert!(run(&j, 1000).unwrap().is_empty());
    }

    /// The fuzz seeds: the first 32 blocks of journals debugfs wrote (`jw -b 300,301` of a block
    /// starting with the magic, `jw -b 300`, `jw -r 301`), csum v3 with 64-bit tags and neither.
    #[test]
    fn the_journals_debugfs_writes_replay() {
        for seed in [
            &include_bytes!("../../../fuzz/corpus/ext_journal/v3-64bit")[..],
            &include_bytes!("../../../fuzz/corpus/ext_journal/plain-32bit")[..],
        ] {
            let mut j = seed.to_vec();
            seal(&mut j[..BS], 32);
            let r = run(&j, 1000).unwrap();
            assert_eq!(r.transactions, 3);
            let copy = r.copies[&300];
            assert_eq!(
                (r.copies.len(), copy.block),
                (1, 6),
                "301 revoked, 300's last copy"
            );
            let mut b = j[6 * BS..7 * BS].to_vec();
            r.restore(300, &copy, &mut b).unwrap();
            assert_eq!(&b[..4], &MAGIC.to_be_bytes(), "escaped");
            b[100] ^= 1;
            assert_eq!(r.restore(300, &copy, &mut b).is_err(), r.csum.is_some());
        }
    }

    #[test]
    fn tag_sizes_follow_the_features() {
        assert_eq!(tag_size(0), 8);
        assert_eq!(tag_size(INCOMPAT_64BIT), 12);
        assert_eq!(tag_size(INCOMPAT_CSUM_V2), 10);
        assert_eq!(tag_size(INCOMPAT_CSUM_V2 | INCOMPAT_64BIT), 14);
        assert_eq!(tag_size(INCOMPAT_CSUM_V3), 16);
        assert_eq!(tag_size(INCOMPAT_CSUM_V3 | INCOMPAT_64BIT), 16);
    }
}
