//! An XFS log that needs recovery, replayed into the view the reader reads — never into the image —
//! as the kernel's two passes do: the first counts the buffers cancelled (`XFS_BLF_CANCEL`: freed
//! blocks whose earlier copies must not come back), the second applies each committed transaction
//! in log order, its buffer items before its inode items. A buffer item lays only its logged
//! 128-byte chunks over the block (its dirty bitmap); an inode item's core, logged in the byte order
//! of the machine that wrote it, is turned into the big-endian on-disk dinode and written with its
//! data and attribute forks at the inode's place in its cluster. On v5 the blocks the reader checks
//! (inodes, directory, link and extent-tree blocks) get their CRC made again over the replayed
//! bytes, as the kernel's write verifiers do when recovery writes them back.
//!
//! Items that cannot change what is read (intents and their done items, dquots, icreate, the
//! unlinked-list inode buffers) are passed over and named in the report. The replayed bytes are an
//! [`Overlay`] of 512-byte sectors with a mask of the bytes set; reads lay it over the image's.

use std::collections::{BTreeMap, HashMap};
use std::io;

use super::log::{self, Transaction, num16, num32, num64};
use super::{Xfs, be16};
use crate::disk::crc::crc32c_without;
use crate::disk::tree::corrupt;
use crate::disk::{ReadAt, Recovery, read_at};

const LI_BUF: u16 = 0x123C;
const LI_INODE: u16 = 0x123B;
/// Item types passed over, by the names `xfs_logprint` gives them.
const PASSED: [(u16, &str); 22] = [
    (0x1236, "EFI"),
    (0x1237, "EFD"),
    (0x1238, "IUNLINK"),
    (0x123D, "DQUOT"),
    (0x123E, "QUOTAOFF"),
    (0x123F, "ICREATE"),
    (0x1240, "RUI"),
    (0x1241, "RUD"),
    (0x1242, "CUI"),
    (0x1243, "CUD"),
    (0x1244, "BUI"),
    (0x1245, "BUD"),
    (0x1246, "ATTRI"),
    (0x1247, "ATTRD"),
    (0x1248, "XMI"),
    (0x1249, "XMD"),
    (0x124A, "EFI_RT"),
    (0x124B, "EFD_RT"),
    (0x124C, "RUI_RT"),
    (0x124D, "RUD_RT"),
    (0x124E, "CUI_RT"),
    (0x124F, "CUD_RT"),
];

/// `blf_flags`: an inode buffer's unlinked pointers only; a freed buffer; dquot buffers.
const BLF_INODE_BUF: u16 = 1 << 0;
const BLF_CANCEL: u16 = 1 << 1;
const BLF_DQUOT_BUFS: u16 = (1 << 2) | (1 << 3) | (1 << 4);
/// The buffer's type (`XFS_BLFT_*`), in the top five bits of `blf_flags`.
const BLFT_SHIFT: u16 = 11;
const BLFT_BTREE: u16 = 4;
const BLFT_DINO: u16 = 8;
const BLFT_SYMLINK: u16 = 9;
const BLFT_DIR_BLOCK: u16 = 10;
const BLFT_DIR_DATA: u16 = 11;
/// `XFS_BLF_DATAMAP_SIZE`: words of dirty bitmap for the largest block.
const MAX_MAP_WORDS: u32 = 17;
const CHUNK: usize = 128;

/// `ilf_fields`.
const ILOG_DDATA: u32 = 0x002;
const ILOG_DEXT: u32 = 0x004;
const ILOG_DBROOT: u32 = 0x008;
const ILOG_DEV: u32 = 0x010;
const ILOG_ADATA: u32 = 0x040;
const ILOG_AEXT: u32 = 0x080;
const ILOG_DFORK: u32 = ILOG_DDATA | ILOG_DEXT | ILOG_DBROOT;
const DINODE_MAGIC: u16 = 0x494E;
/// `di_flags2`: timestamps are one 64-bit number.
const FLAG2_BIGTIME: u64 = 1 << 3;

/// One 512-byte sector's replayed bytes and which of them are set.
type Sector = Box<([u8; 512], [bool; 512])>;

/// Bytes replayed over the image, by 512-byte sector.
#[derive(Debug, Default)]
pub(super) struct Overlay {
    sectors: BTreeMap<u64, Sector>,
}

impl Overlay {
    /// Sets the bytes from `byte` on to `data`.
    fn put(&mut self, byte: u64, data: &[u8]) {
        let mut done = 0;
        while done < data.len() {
            let at = byte + done as u64;
            let (n, from) = (at / 512, (at % 512) as usize);
            let k = (512 - from).min(data.len() - done);
            let s = self
                .sectors
                .entry(n)
                .or_insert_with(|| Box::new(([0; 512], [false; 512])));
            s.0[from..from + k].copy_from_slice(&data[done..done + k]);
            s.1[from..from + k].fill(true);
            done += k;
        }
    }

    /// Lays the replayed bytes over `buf`, the image's bytes from `byte` on.
    pub(super) fn over(&self, byte: u64, buf: &mut [u8]) {
        let end = byte + buf.len() as u64;
        for (&n, s) in self.sectors.range(byte / 512..end.div_ceil(512)) {
            // The part of sector n inside [byte, end).
            let (from, to) = ((n * 512).max(byte), ((n + 1) * 512).min(end));
            for at in from..to {
                let i = (at - n * 512) as usize;
                if s.1[i] {
                    buf[(at - byte) as usize] = s.0[i];
                }
            }
        }
    }
}

/// A block whose CRC the replay makes again: where, how long, where its CRC is, which magic it
/// must start with.
struct Seal {
    byte: u64,
    len: usize,
    crc_at: usize,
    magic: &'static [u8],
}

/// What pass 2 did.
#[derive(Default)]
struct Tally {
    buffers: usize,
    inodes: usize,
    passed: BTreeMap<&'static str, usize>,
    seals: Vec<Seal>,
}

impl<R: ReadAt> Xfs<R> {
    /// Replays the log found at byte `log_at` (`blocks` 512-byte blocks) into the view, if it
    /// needs recovery; says what was done.
    pub(super) fn replay(&mut self, log_at: u64, blocks: u64, v2: bool) -> io::Result<Option<Recovery>> {
        let geo = log::Geometry {
            blocks,
            v2,
            crc: self.v5,
        };
        let r = &self.r;
        let mut read = |n: u64, buf: &mut [u8]| {
            if read_at(r, log_at + n * log::BB as u64, buf)? {
                Ok(())
            } else {
                Err(corrupt(format!(
                    "xfs log: its block {n} is beyond the end of the device"
                )))
            }
        };
        let scan = log::scan(&geo, &mut read)?;
        if scan.transactions.is_empty() && scan.notes.is_empty() {
            return Ok(None);
        }
        let mut cancelled: HashMap<(u64, u16), u32> = HashMap::new();
        for t in &scan.transactions {
            for item in &t.items {
                if num16(t.little, &item[0], 0) == LI_BUF {
                    let b = Buf::parse(t, item)?;
                    if b.flags & BLF_CANCEL != 0 {
                        *cancelled.entry((b.blkno, b.len)).or_default() += 1;
                    }
                }
            }
        }
        let mut tally = Tally::default();
        for t in &scan.transactions {
            for item in t.items.iter().filter(|i| num16(t.little, &i[0], 0) == LI_BUF) {
                self.buffer(t, item, &mut cancelled, &mut tally)?;
            }
            for item in &t.items {
                match num16(t.little, &item[0], 0) {
                    LI_BUF => {}
                    LI_INODE => self.inode_item(t, item, &cancelled, &mut tally)?,
                    kind => {
                        let name = PASSED
                            .iter()
                            .find(|(k, _)| *k == kind)
                            .map(|(_, n)| *n)
                            .ok_or_else(|| bad(t, format!("an item of unknown type {kind:#x}")))?;
                        *tally.passed.entry(name).or_default() += 1;
                    }
                }
            }
        }
        for s in &tally.seals {
            self.seal(s)?;
        }
        let mut notes = scan.notes;
        if !tally.passed.is_empty() {
            let seen: Vec<String> = tally.passed.iter().map(|(n, c)| format!("{c} {n}")).collect();
            notes.push(format!(
                "items that change nothing read, passed over: {}",
                seen.join(", ")
            ));
        }
        Ok(Some(Recovery::Replayed {
            log: crate::disk::Log::Xfs,
            transactions: scan.transactions.len() as u32,
            copies: format!("{} buffers, {} inodes", tally.buffers, tally.inodes),
            notes,
        }))
    }

    /// The filesystem's size in bytes.
    fn fs_bytes(&self) -> u64 {
        self.blocks << self.block_log
    }

    /// Checks that `len` bytes from 512-byte block `blkno` lie in the filesystem: their byte offset.
    fn place(&self, t: &Transaction, blkno: u64, len: u64) -> io::Result<u64> {
        blkno
            .checked_mul(512)
            .filter(|b| b.checked_add(len).is_some_and(|end| end <= self.fs_bytes()))
            .ok_or_else(|| {
                bad(
                    t,
                    format!(
                        "{len} bytes at block {blkno} lie outside the filesystem's {} bytes",
                        self.fs_bytes()
                    ),
                )
            })
    }

    /// Pass 2 of a buffer item: its logged chunks laid over the block, unless it was cancelled.
    fn buffer(
        &mut self,
        t: &Transaction,
        item: &[Vec<u8>],
        cancelled: &mut HashMap<(u64, u16), u32>,
        tally: &mut Tally,
    ) -> io::Result<()> {
        let b = Buf::parse(t, item)?;
        if let Some(n) = cancelled.get_mut(&(b.blkno, b.len)).filter(|n| **n > 0) {
            if b.flags & BLF_CANCEL != 0 {
                *n -= 1;
            }
            return Ok(());
        }
        if b.flags & (BLF_INODE_BUF | BLF_DQUOT_BUFS) != 0 {
            let name = if b.flags & BLF_INODE_BUF != 0 {
                "inode buffers (unlinked lists)"
            } else {
                "dquot buffers"
            };
            *tally.passed.entry(name).or_default() += 1;
            return Ok(());
        }
        let len = u64::from(b.len) * 512;
        let byte = self.place(t, b.blkno, len)?;
        let (mut bit, mut region) = (0usize, 1usize);
        let bits = b.map.len() * 32;
        let set = |i: usize| b.map[i / 32] & (1 << (i % 32)) != 0;
        while bit < bits {
            if !set(bit) {
                bit += 1;
                continue;
            }
            let mut run = 1;
            while bit + run < bits && set(bit + run) {
                run += 1;
            }
            let data = item.get(region).ok_or_else(|| {
                bad(
                    t,
                    format!(
                        "buffer at block {}: more dirty runs than the {} regions logged",
                        b.blkno,
                        item.len() - 1
                    ),
                )
            })?;
            // A run may have been logged in parts (a page boundary in the buffer).
            let run = run.min(data.len() / CHUNK);
            if run == 0 || ((bit + run) * CHUNK) as u64 > len {
                return Err(bad(
                    t,
                    format!(
                        "buffer at block {}: chunks {bit}+{run} of a {len}-byte buffer",
                        b.blkno
                    ),
                ));
            }
            self.overlay
                .put(byte + (bit * CHUNK) as u64, &data[..run * CHUNK]);
            bit += run;
            region += 1;
        }
        tally.buffers += 1;
        if self.v5 {
            let block = self.block_size() as usize;
            let (crc_at, magic, whole): (usize, &[u8], usize) = match b.flags >> BLFT_SHIFT {
                BLFT_BTREE => (64, b"BMA3", block),
                BLFT_SYMLINK => (12, b"XSLM", block),
                BLFT_DIR_BLOCK => (4, b"XDB3", block << self.dir_block_log),
                BLFT_DIR_DATA => (4, b"XDD3", block << self.dir_block_log),
                BLFT_DINO => {
                    let size = self.inode_size as usize;
                    for i in 0..len as usize / size {
                        tally.seals.push(Seal {
                            byte: byte + (i * size) as u64,
                            len: size,
                            crc_at: 100,
                            magic: b"IN",
                        });
                    }
                    return Ok(());
                }
                _ => return Ok(()),
            };
            // A directory block logged in segments (over several extents) is not sealed whole.
            if whole as u64 == len {
                tally.seals.push(Seal {
                    byte,
                    len: whole,
                    crc_at,
                    magic,
                });
            }
        }
        Ok(())
    }

    /// Pass 2 of an inode item: the logged core made the on-disk dinode, with its forks.
    fn inode_item(
        &mut self,
        t: &Transaction,
        item: &[Vec<u8>],
        cancelled: &HashMap<(u64, u16), u32>,
        tally: &mut Tally,
    ) -> io::Result<()> {
        let little = t.little;
        let f = &item[0];
        // The 64-bit layout (56 bytes) or the packed one of 32-bit machines (52).
        let wide = match f.len() {
            56 => 4,
            52 => 0,
            n => return Err(bad(t, format!("an inode item's format of {n} bytes"))),
        };
        let regions = num16(little, f, 2);
        let fields = num32(little, f, 4);
        let (asize, dsize) = (num16(little, f, 8), num16(little, f, 10));
        let ino = num64(little, f, 12 + wide);
        let rdev = num32(little, f, 20 + wide);
        let blkno = num64(little, f, 36 + wide);
        let cluster = num32(little, f, 44 + wide);
        let offset = num32(little, f, 48 + wide);
        let what = |w: String| bad(t, format!("inode {ino}: {w}"));
        let len16 = u16::try_from(cluster).map_err(|_| what(format!("a cluster of {cluster} blocks")))?;
        if cancelled.get(&(blkno, len16)).is_some_and(|n| *n > 0) {
            return Ok(());
        }
        let size = self.inode_size;
        if u64::from(offset) + size > u64::from(cluster) * 512 {
            return Err(what(format!("at byte {offset} of a {cluster}-block cluster")));
        }
        let byte = self.place(t, blkno, u64::from(cluster) * 512)? + u64::from(offset);
        // The logged core stops before di_next_unlinked on v4 (96 bytes); on disk the v4 core
        // is 100 bytes with it, the v3 one 176 either way.
        let (logged, on_disk) = if self.v5 { (176, 176) } else { (96, 100) };
        let core = item
            .get(1)
            .filter(|c| c.len() >= logged)
            .ok_or_else(|| what(format!("its core is shorter than {logged} bytes")))?;
        if num16(little, core, 0) != DINODE_MAGIC {
            return Err(what("its logged core has no inode magic".into()));
        }
        let d = dinode(little, &core[..logged], self.v5, t.lsn);
        // The logged fork offset decides where the forks go.
        let literal = size as usize - on_disk;
        let forkoff = usize::from(d[82]) * 8;
        if forkoff > literal {
            return Err(what(format!("attribute fork at byte {forkoff} of {literal}")));
        }
        let dsize_room = if forkoff == 0 { literal } else { forkoff };
        // di_next_unlinked is not logged: the image's stays.
        self.overlay.put(byte, &d[..96]);
        if self.v5 {
            self.overlay.put(byte + 100, &d[100..]);
        }
        let fork_at = byte + on_disk as u64;
        if fields & ILOG_DEV != 0 {
            self.overlay.put(fork_at, &rdev.to_be_bytes());
        }
        let mut next = 2;
        if regions > 2 && fields & ILOG_DFORK != 0 {
            let src = item
                .get(2)
                .ok_or_else(|| what("its data fork is not logged".into()))?;
            let src = &src[..src.len().min(usize::from(dsize).next_multiple_of(4))];
            if fields & ILOG_DFORK == ILOG_DBROOT {
                self.bmdr(src, fork_at, dsize_room, &what)?;
            } else if src.len() <= dsize_room {
                self.overlay.put(fork_at, src);
            } else {
                return Err(what(format!(
                    "a data fork of {} bytes in {dsize_room}",
                    src.len()
                )));
            }
            next = 3;
        }
        // An attribute fork's btree root is not replayed: no attribute is read.
        if regions > 2 && fields & (ILOG_ADATA | ILOG_AEXT) != 0 && forkoff != 0 {
            let src = item
                .get(next)
                .ok_or_else(|| what("its attribute fork is not logged".into()))?;
            let src = &src[..src.len().min(usize::from(asize).next_multiple_of(4))];
            if src.len() > literal - forkoff {
                return Err(what(format!(
                    "an attribute fork of {} bytes in {}",
                    src.len(),
                    literal - forkoff
                )));
            }
            self.overlay.put(fork_at + forkoff as u64, src);
        }
        tally.inodes += 1;
        if self.v5 {
            tally.seals.push(Seal {
                byte,
                len: size as usize,
                crc_at: 100,
                magic: b"IN",
            });
        }
        Ok(())
    }

    /// Writes the in-memory extent-tree root `src` (a btree block header, then keys and pointers
    /// for as many records as it has room for) as the on-disk root (`xfs_bmdr_block`) of a fork of
    /// `room` bytes at `at`; `what` names the inode in an error.
    fn bmdr(
        &mut self,
        src: &[u8],
        at: u64,
        room: usize,
        what: &dyn Fn(String) -> io::Error,
    ) -> io::Result<()> {
        let header = if self.v5 { 72 } else { 24 };
        if src.len() < header || room < 4 {
            return Err(what(format!("an extent-tree root of {} bytes", src.len())));
        }
        let (level, recs) = (&src[4..6], usize::from(be16(src, 6)));
        let (max, room_max) = ((src.len() - header) / 16, (room - 4) / 16);
        if recs > max || recs > room_max {
            return Err(what(format!("an extent-tree root of {recs} records")));
        }
        self.overlay.put(at, level);
        self.overlay.put(at + 2, &src[6..8]);
        self.overlay.put(at + 4, &src[header..header + recs * 8]);
        let ptrs = header + max * 8;
        self.overlay
            .put(at + 4 + (room_max * 8) as u64, &src[ptrs..ptrs + recs * 8]);
        Ok(())
    }

    /// Makes the CRC of a replayed block right over its bytes as the view has them.
    fn seal(&mut self, s: &Seal) -> io::Result<()> {
        let mut b = vec![0u8; s.len];
        if !self.read(s.byte, &mut b)? {
            return Err(corrupt(format!(
                "xfs log: a replayed block at byte {} is beyond the end of the device",
                s.byte
            )));
        }
        if b.starts_with(s.magic) {
            let crc = crc32c_without(&b, s.crc_at);
            self.overlay.put(s.byte + s.crc_at as u64, &crc.to_le_bytes());
        }
        Ok(())
    }

    /// Bytes `byte..` of the filesystem as the view has them: the image's, the replay over them.
    pub(super) fn read(&self, byte: u64, buf: &mut [u8]) -> io::Result<bool> {
        if !read_at(&self.r, byte, buf)? {
            return Ok(false);
        }
        self.overlay.over(byte, buf);
        Ok(true)
    }
}

/// A buffer item's format structure.
struct Buf {
    flags: u16,
    len: u16,
    blkno: u64,
    map: Vec<u32>,
}

impl Buf {
    fn parse(t: &Transaction, item: &[Vec<u8>]) -> io::Result<Buf> {
        let f = &item[0];
        let little = t.little;
        if f.len() < 20 {
            return Err(bad(t, format!("a buffer item's format of {} bytes", f.len())));
        }
        let words = num32(little, f, 16);
        if words > MAX_MAP_WORDS || f.len() < 20 + 4 * words as usize {
            return Err(bad(
                t,
                format!("a buffer item's dirty map of {words} words in {} bytes", f.len()),
            ));
        }
        Ok(Buf {
            flags: num16(little, f, 4),
            len: num16(little, f, 6),
            blkno: num64(little, f, 8),
            map: (0..words as usize)
                .map(|i| num32(little, f, 20 + 4 * i))
                .collect(),
        })
    }
}

/// The big-endian on-disk dinode core from the logged one (`core`, its bytes in the writer's
/// order): each field turned, timestamps as two 32-bit halves unless bigtime, the v2 flush counter
/// reset and the v3 LSN made the transaction's, as the kernel's recovery does.
fn dinode(little: bool, core: &[u8], v3: bool, lsn: u64) -> Vec<u8> {
    let mut d = core.to_vec();
    let flags2 = if v3 { num64(little, core, 120) } else { 0 };
    let bigtime = flags2 & FLAG2_BIGTIME != 0;
    let mut fields: Vec<(usize, usize)> = vec![
        (2, 2),
        (6, 2),
        (8, 4),
        (12, 4),
        (16, 4),
        (20, 2),
        (22, 2),
        (56, 8),
        (64, 8),
        (72, 4),
        (76, 4),
        (80, 2),
        (84, 4),
        (88, 2),
        (90, 2),
        (92, 4),
    ];
    let times: &[usize] = if v3 { &[32, 40, 48, 144] } else { &[32, 40, 48] };
    for &at in times {
        if bigtime {
            fields.push((at, 8));
        } else {
            fields.extend([(at, 4), (at + 4, 4)]);
        }
    }
    if v3 {
        fields.extend([(24, 8), (104, 8), (120, 8), (128, 4), (152, 8)]);
    }
    if little {
        for (at, len) in fields {
            d[at..at + len].reverse();
        }
    }
    d[..2].copy_from_slice(&DINODE_MAGIC.to_be_bytes());
    if v3 {
        d[112..120].copy_from_slice(&lsn.to_be_bytes());
    } else {
        d[30..32].fill(0);
    }
    d
}

fn bad(t: &Transaction, what: String) -> io::Error {
    corrupt(format!(
        "xfs log: the transaction at LSN {}/{}: {what}",
        t.lsn >> 32,
        t.lsn & 0xFFFF_FFFF
    ))
}

#[cfg(test)]
mod tests {
    use super::super::{be32, be64};
    use super::*;

    #[test]
    fn an_overlay_sets_only_the_bytes_put() {
        let mut o = Overlay::default();
        o.put(510, &[1, 2, 3, 4]);
        let mut b = [9u8; 8];
        o.over(508, &mut b);
        assert_eq!(b, [9, 9, 1, 2, 3, 4, 9, 9]);
        let mut b = [9u8; 2];
        o.over(511, &mut b);
        assert_eq!(b, [2, 3]);
    }

    #[test]
    fn a_little_endian_core_turns_big_endian() {
        let mut core = vec![0u8; 176];
        core[..2].copy_from_slice(&DINODE_MAGIC.to_le_bytes());
        core[2..4].copy_from_slice(&0o100644u16.to_le_bytes());
        core[4] = 3;
        core[40..44].copy_from_slice(&1_700_000_000i32.to_le_bytes());
        core[56..64].copy_from_slice(&12345u64.to_le_bytes());
        core[152..160].copy_from_slice(&131u64.to_le_bytes());
        let d = dinode(true, &core, true, 7 << 32 | 9);
        assert_eq!(be16(&d, 0), DINODE_MAGIC);
        assert_eq!(be16(&d, 2), 0o100644);
        assert_eq!(be32(&d, 40), 1_700_000_000);
        assert_eq!(be64(&d, 56), 12345);
        assert_eq!(be64(&d, 152), 131);
        assert_eq!(be64(&d, 112), 7 << 32 | 9);
        // Written big-endian, nothing turns.
        let again = dinode(false, &d, true, 7 << 32 | 9);
        assert_eq!(again, d);
    }
}
