//! The XFS log (internal, v1 or v2) of a filesystem stopped without a clean unmount, read as the
//! kernel's recovery reads it: the head is where the cycle number stamped in the first word of
//! each 512-byte block changes (a binary search), the last record header before it names the tail
//! (`h_tail_lsn`), and unless that record is an unmount record ending at the head the records are
//! walked from the tail: each header checked (magic, cycle, its own LSN, lengths), each data block
//! stamped with the record's cycle (a record written only in part ends the log, as a torn write
//! does for the kernel), v5's CRC-32C of the record verified, the stamped words put back from
//! `h_cycle_data` (and the extended headers of v2 records over 32 KiB). The operations inside are
//! assembled into transactions by their id; a transaction counts once its commit record is read.
//! Log items are kept as the regions logged, for `replay` to apply.
//!
//! Nothing here is trusted: every length is checked against the record it lies in, a walk visits
//! each block of the log at most once, and the reads go through the caller's (paid) reader.

use std::collections::HashMap;
use std::io;

use super::{be16, be32, be64};
use crate::disk::crc::crc32c_without;
use crate::disk::tree::corrupt;

/// Bytes of a log block ("basic block").
pub(crate) const BB: usize = 512;
const MAGIC: u32 = 0xFEED_BABE;
/// Data blocks whose first words one header block keeps (32 KiB of record).
const CYCLE_WORDS: usize = 64;
/// The largest record the kernel writes (`XLOG_MAX_RECORD_BSIZE`).
const MAX_RECORD: u32 = 256 * 1024;
/// Where a record header keeps its CRC, and the sizes of header it covers (x86-64's and i386's).
const CRC_AT: usize = 32;
const HEADER_SUMMED: [usize; 2] = [328, 324];
/// Bytes of an extended header the CRC covers (`xh_cycle` and its cycle data).
const EXT_SUMMED: usize = 4 + 4 * CYCLE_WORDS;
/// How far back from the head the last record header is looked for: the iclogs in flight, each
/// of the largest record size, and one more record.
const SEEK_BACK: u64 = 9 * (MAX_RECORD as u64 / BB as u64 + 2);

const CLIENT_TRANSACTION: u8 = 0x69;
const CLIENT_LOG: u8 = 0xAA;
const OP_START: u8 = 0x01;
const OP_COMMIT: u8 = 0x02;
const OP_CONTINUE: u8 = 0x04;
const OP_WAS_CONTINUED: u8 = 0x08;
const OP_END: u8 = 0x10;
const OP_UNMOUNT: u8 = 0x20;
/// `XFS_TRANS_HEADER_MAGIC` ("TRAN"), written in the byte order of the machine that logged it.
const TRANS_MAGIC: u32 = 0x5452_414E;
const TRANS_HEADER: usize = 16;
/// The most regions one item may have (`XLOG_MAX_REGIONS_IN_ITEM`).
const MAX_REGIONS: u16 = 257;

/// The log as the scan needs it.
pub(crate) struct Geometry {
    /// Its size in 512-byte blocks.
    pub blocks: u64,
    /// A v2 log (`h_size`, extended headers); every v5 filesystem has one.
    pub v2: bool,
    /// Record CRCs are verified (v5).
    pub crc: bool,
}

/// One logged item: its regions, the first being its log format structure.
pub(crate) type Item = Vec<Vec<u8>>;

/// A committed transaction, in log order.
#[derive(Debug)]
pub(crate) struct Transaction {
    /// The LSN of the record its start was in (cycle in the high half, block in the low).
    pub lsn: u64,
    /// Its structures are little-endian (the machine that wrote it): told by its header's magic.
    pub little: bool,
    pub items: Vec<Item>,
}

/// What the scan found between the tail and the head.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub transactions: Vec<Transaction>,
    /// What a reader should know (a record that failed its CRC ended the log).
    pub notes: Vec<String>,
}

/// A transaction being read.
#[derive(Default)]
struct Open {
    lsn: u64,
    /// The transaction header's bytes until all 16 are read.
    header: Vec<u8>,
    /// `None` until the header is whole; then the items, the last one perhaps still short of regions.
    items: Option<Vec<(u16, Item)>>,
}

fn bad(what: String) -> io::Error {
    corrupt(format!("xfs log: {what}"))
}

/// The log's blocks, read through `read` (block number, whole blocks), wrapping at its end.
struct Log<'a> {
    geo: &'a Geometry,
    read: &'a mut dyn FnMut(u64, &mut [u8]) -> io::Result<()>,
}

impl Log<'_> {
    /// `count` blocks from block `start`, wrapping past the end.
    fn blocks(&mut self, start: u64, count: u64) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; count as usize * BB];
        if count == 0 {
            return Ok(out);
        }
        let start = start % self.geo.blocks;
        let first = count.min(self.geo.blocks - start) as usize;
        (self.read)(start, &mut out[..first * BB])?;
        if first < count as usize {
            (self.read)(0, &mut out[first * BB..])?;
        }
        Ok(out)
    }

    /// The cycle a block was written in: a header's `h_cycle`, any other block's first word.
    fn cycle(&mut self, n: u64) -> io::Result<u32> {
        let b = self.blocks(n, 1)?;
        Ok(if be32(&b, 0) == MAGIC {
            be32(&b, 4)
        } else {
            be32(&b, 0)
        })
    }
}

/// Reads the log of `geo`: the committed transactions from its tail to its head (none for a clean
/// or never-written log).
pub(crate) fn scan(
    geo: &Geometry,
    read: &mut dyn FnMut(u64, &mut [u8]) -> io::Result<()>,
) -> io::Result<Scan> {
    if geo.blocks < 2 {
        return Err(bad(format!("{} blocks long", geo.blocks)));
    }
    let mut log = Log { geo, read };
    let first = log.cycle(0)?;
    if first == 0 {
        // Never written (xfs_repair -L and some mkfs leave it zeroed): nothing to recover.
        return Ok(Scan::default());
    }
    let last = log.cycle(geo.blocks - 1)?;
    let head = if first == last {
        // The last write ended at the log's end.
        geo.blocks
    } else {
        // Block 0 is of the newest cycle, the last block of the one before: the head is the
        // first block of the older cycle.
        let (mut lo, mut hi) = (0, geo.blocks - 1);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if log.cycle(mid)? == last {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    };
    let Some((at, header)) = last_header(&mut log, head)? else {
        return Err(bad(format!(
            "no record header in the {SEEK_BACK} blocks before the head at block {head}"
        )));
    };
    let record = Record::parse(geo, at, &header)?;
    let end = (at + record.blocks()) % geo.blocks;
    if end == head % geo.blocks && record.ops == 1 {
        let data = log.blocks(at + record.header_blocks, 1)?;
        if data[9] & OP_UNMOUNT != 0 {
            return Ok(Scan::default());
        }
    }
    let tail = be64(&header, 24);
    walk(&mut log, tail)
}

/// The record header nearest before block `head` (going back past the log's start), if one lies
/// within `SEEK_BACK` blocks.
fn last_header(log: &mut Log, head: u64) -> io::Result<Option<(u64, Vec<u8>)>> {
    let blocks = log.geo.blocks;
    for back in 1..=SEEK_BACK.min(blocks) {
        let n = (head + blocks - back) % blocks;
        let b = log.blocks(n, 1)?;
        if be32(&b, 0) == MAGIC {
            return Ok(Some((n, b)));
        }
    }
    Ok(None)
}

/// A record header's numbers, checked.
struct Record {
    cycle: u32,
    len: u32,
    ops: u32,
    header_blocks: u64,
}

impl Record {
    fn parse(geo: &Geometry, at: u64, h: &[u8]) -> io::Result<Record> {
        let fail = |what: String| Err(bad(format!("record at block {at}: {what}")));
        let version = be32(h, 8);
        if version != if geo.v2 { 2 } else { 1 } {
            return fail(format!(
                "version {version} in a v{} log",
                if geo.v2 { 2 } else { 1 }
            ));
        }
        let len = be32(h, 12);
        let size = if geo.v2 { be32(h, 320) } else { 32 * 1024 };
        if len == 0 || len > MAX_RECORD || size > MAX_RECORD || len > size.max(32 * 1024) {
            return fail(format!("{len} bytes in a record of {size}"));
        }
        let header_blocks = if geo.v2 {
            u64::from(size.div_ceil(32 * 1024)).max(1)
        } else {
            1
        };
        let record = Record {
            cycle: be32(h, 4),
            len,
            ops: be32(h, 40),
            header_blocks,
        };
        if record.blocks() > geo.blocks {
            return fail(format!("{} blocks in a log of {}", record.blocks(), geo.blocks));
        }
        Ok(record)
    }

    /// The blocks it fills: headers and data.
    fn blocks(&self) -> u64 {
        self.header_blocks + u64::from(self.len).div_ceil(BB as u64)
    }
}

/// Walks the records from the tail LSN `tail` until the head (the first block that does not
/// continue the log), assembling the transactions.
fn walk(log: &mut Log, tail: u64) -> io::Result<Scan> {
    let blocks = log.geo.blocks;
    let (mut cycle, mut at) = ((tail >> 32) as u32, tail & 0xFFFF_FFFF);
    if at >= blocks || cycle == 0 {
        return Err(bad(format!(
            "the tail is at block {at} of cycle {cycle}, in a log of {blocks} blocks"
        )));
    }
    let mut out = Scan::default();
    let mut open: HashMap<u32, Open> = HashMap::new();
    let mut walked = 0u64;
    while walked < blocks {
        let h = log.blocks(at, 1)?;
        let lsn = (u64::from(cycle) << 32) | at;
        if be32(&h, 0) != MAGIC || be32(&h, 4) != cycle || be64(&h, 16) != lsn {
            break;
        }
        let record = Record::parse(log.geo, at, &h)?;
        let n = record.blocks();
        if walked + n > blocks {
            return Err(bad(format!(
                "record at block {at}: the log from the tail at block {} runs longer than its {blocks} blocks",
                tail & 0xFFFF_FFFF
            )));
        }
        let rest = log.blocks(at + 1, n - 1)?;
        let (ext, data) = rest.split_at((record.header_blocks as usize - 1) * BB);
        let Some(data) = unpack(log.geo, at, &record, &h, ext, data, &mut out.notes) else {
            break;
        };
        ops(at, lsn, &record, &data, &mut open, &mut out.transactions)?;
        walked += n;
        at += n;
        if at >= blocks {
            at -= blocks;
            cycle = cycle.wrapping_add(1);
            if cycle == MAGIC {
                cycle = cycle.wrapping_add(1);
            }
        }
    }
    Ok(out)
}

/// The record's data as it was logged: `None` (the log ends before it, said in `notes`) when a
/// block of it was not written in its cycle or, on v5, its CRC fails.
fn unpack(
    geo: &Geometry,
    at: u64,
    record: &Record,
    h: &[u8],
    ext: &[u8],
    data: &[u8],
    notes: &mut Vec<String>,
) -> Option<Vec<u8>> {
    let len = record.len as usize;
    // Block `k` of the record (0 its header); those past the log's end were stamped with the next
    // cycle (the magic number skipped).
    let stamp = |k: u64| {
        let wrapped = at + k >= geo.blocks;
        let mut c = record.cycle.wrapping_add(u32::from(wrapped));
        if c == MAGIC {
            c = c.wrapping_add(1);
        }
        c
    };
    let torn = ext
        .chunks_exact(BB)
        .chain(data.chunks_exact(BB))
        .enumerate()
        .any(|(i, b)| be32(b, 0) != stamp(i as u64 + 1));
    if torn {
        notes.push(format!(
            "the record at block {at} was written only in part: the log ends before it, as the kernel's recovery ends it"
        ));
        return None;
    }
    let stored = u32::from_le_bytes(h[CRC_AT..CRC_AT + 4].try_into().expect("4"));
    // mkfs writes records with no CRC (zero), which the kernel takes as valid.
    if geo.crc
        && stored != 0
        && HEADER_SUMMED
            .iter()
            .all(|&size| record_crc(h, ext, data, len, size) != stored)
    {
        notes.push(format!(
            "the record at block {at} fails its CRC: the log ends before it, as the kernel's recovery ends it"
        ));
        return None;
    }
    let mut out = data.to_vec();
    for (i, b) in out.chunks_exact_mut(BB).enumerate() {
        let (j, k) = (i / CYCLE_WORDS, i % CYCLE_WORDS);
        let word = if j == 0 {
            &h[44 + 4 * k..48 + 4 * k]
        } else {
            &ext[(j - 1) * BB + 4 + 4 * k..(j - 1) * BB + 8 + 4 * k]
        };
        b[..4].copy_from_slice(word);
    }
    out.truncate(len);
    Some(out)
}

/// The CRC-32C of a record as written: `size` bytes of its header `h` (its CRC counted as zeros),
/// the cycle data of the extended headers in `ext` that its `len` bytes of data need, the data.
fn record_crc(h: &[u8], ext: &[u8], data: &[u8], len: usize, size: usize) -> u32 {
    let xheads = len.div_ceil(32 * 1024).max(1) - 1;
    let mut summed = Vec::with_capacity(size + xheads * EXT_SUMMED + len);
    summed.extend_from_slice(&h[..size]);
    for x in ext.chunks_exact(BB).take(xheads) {
        summed.extend_from_slice(&x[..EXT_SUMMED]);
    }
    summed.extend_from_slice(&data[..len]);
    crc32c_without(&summed, CRC_AT)
}

/// Makes the CRC of every whole record in `log` (a v2 log's blocks) right: how the fuzzer's
/// mutations reach past the CRC check (the fuzzing harness of XFS logs).
pub(crate) fn seal(log: &mut [u8]) {
    let blocks = log.len() / BB;
    let geo = Geometry {
        blocks: blocks as u64,
        v2: true,
        crc: true,
    };
    for at in 0..blocks {
        if be32(log, at * BB) != MAGIC {
            continue;
        }
        let Ok(r) = Record::parse(&geo, at as u64, &log[at * BB..(at + 1) * BB]) else {
            continue;
        };
        let end = at + r.blocks() as usize;
        if end > blocks {
            continue;
        }
        let (h, rest) = log[at * BB..end * BB].split_at_mut(BB);
        let (ext, data) = rest.split_at((r.header_blocks as usize - 1) * BB);
        let crc = record_crc(h, ext, data, r.len as usize, HEADER_SUMMED[0]);
        h[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Feeds the operations of the record at `at` (its data unpacked) to the open transactions,
/// moving those that commit to `done`.
fn ops(
    at: u64,
    lsn: u64,
    record: &Record,
    data: &[u8],
    open: &mut HashMap<u32, Open>,
    done: &mut Vec<Transaction>,
) -> io::Result<()> {
    let (mut p, mut left) = (0usize, record.ops);
    while p < data.len() && left > 0 {
        let err = |what: String| bad(format!("record at block {at}: operation at byte {p}: {what}"));
        let fail = |what: String| Err(err(what));
        if data.len() - p < 12 {
            return fail("its header runs past the record".into());
        }
        let (tid, len) = (be32(data, p), be32(data, p + 4) as usize);
        let (client, flags) = (data[p + 8], data[p + 9]);
        if client != CLIENT_TRANSACTION && client != CLIENT_LOG {
            return fail(format!("client {client:#x}"));
        }
        if len > data.len() - p - 12 {
            return fail(format!(
                "{len} bytes in the {} left of the record",
                data.len() - p - 12
            ));
        }
        let region = &data[p + 12..p + 12 + len];
        match open.get_mut(&tid) {
            None if flags & OP_START != 0 => {
                open.insert(
                    tid,
                    Open {
                        lsn,
                        ..Open::default()
                    },
                );
            }
            // Slack before a transaction's start, or a transaction begun before the tail.
            None => {}
            Some(t) => {
                let mut f = flags & !OP_END;
                if f & OP_WAS_CONTINUED != 0 {
                    f &= !OP_CONTINUE;
                }
                match f {
                    0 | OP_CONTINUE => add(t, region, false, &err)?,
                    OP_WAS_CONTINUED => add(t, region, true, &err)?,
                    OP_COMMIT => {
                        let t = open.remove(&tid).expect("found");
                        if let Some(items) = t.items {
                            let little =
                                u32::from_le_bytes(t.header[..4].try_into().expect("4")) == TRANS_MAGIC;
                            done.push(Transaction {
                                lsn: t.lsn,
                                little,
                                items: items.into_iter().map(|(_, regions)| regions).collect(),
                            });
                        }
                    }
                    OP_UNMOUNT => {
                        open.remove(&tid);
                    }
                    f => return fail(format!("flags {f:#x} in transaction {tid:#x}")),
                }
            }
        }
        p += 12 + len;
        left -= 1;
    }
    Ok(())
}

/// Adds `region` to transaction `t`: its header first, then each item's regions, an item's
/// region count being in its first region; `more` appends it to the last region instead. `err`
/// names the operation in an error.
fn add(t: &mut Open, region: &[u8], more: bool, err: &dyn Fn(String) -> io::Error) -> io::Result<()> {
    let Some(items) = &mut t.items else {
        if t.header.len() + region.len() > TRANS_HEADER {
            return Err(err(format!(
                "a transaction header of {} bytes",
                t.header.len() + region.len()
            )));
        }
        t.header.extend_from_slice(region);
        if t.header.len() == TRANS_HEADER {
            let magic = be32(&t.header, 0);
            if magic != TRANS_MAGIC && magic.swap_bytes() != TRANS_MAGIC {
                return Err(err("a transaction header without its magic".into()));
            }
            t.items = Some(Vec::new());
        }
        return Ok(());
    };
    if more {
        let last = items
            .last_mut()
            .and_then(|(_, regions)| regions.last_mut())
            .ok_or_else(|| err("a continuation with nothing to continue".into()))?;
        last.extend_from_slice(region);
        return Ok(());
    }
    if region.is_empty() {
        return Ok(());
    }
    let little = u32::from_le_bytes(t.header[..4].try_into().expect("4")) == TRANS_MAGIC;
    if items
        .last()
        .is_none_or(|(total, regions)| regions.len() == usize::from(*total))
    {
        let total = region.get(2..4).map_or(0, |s| {
            let v = [s[0], s[1]];
            if little {
                u16::from_le_bytes(v)
            } else {
                u16::from_be_bytes(v)
            }
        });
        if total == 0 || total > MAX_REGIONS {
            return Err(err(format!("an item of {total} regions")));
        }
        items.push((total, Vec::new()));
    }
    items.last_mut().expect("pushed").1.push(region.to_vec());
    Ok(())
}

/// A number of a log structure in `b` at `at`, in the byte order of the transaction.
pub(super) fn num16(little: bool, b: &[u8], at: usize) -> u16 {
    if little {
        u16::from_le_bytes([b[at], b[at + 1]])
    } else {
        be16(b, at)
    }
}

pub(super) fn num32(little: bool, b: &[u8], at: usize) -> u32 {
    let v = be32(b, at);
    if little { v.swap_bytes() } else { v }
}

pub(super) fn num64(little: bool, b: &[u8], at: usize) -> u64 {
    let v = be64(b, at);
    if little { v.swap_bytes() } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v2 log of `n` blocks written in cycle 1 from block 0, its structures little-endian.
    struct Builder {
        log: Vec<u8>,
        at: usize,
        tail: u64,
    }

    /// An operation: transaction id, flags, data.
    type Op = (u32, u8, Vec<u8>);

    impl Builder {
        fn new(n: usize) -> Builder {
            Builder {
                log: vec![0; n * BB],
                at: 0,
                tail: 1 << 32,
            }
        }

        /// Writes a record of `ops` at the next block; its block.
        fn record(&mut self, ops: &[Op]) -> usize {
            let mut data = Vec::new();
            for (tid, flags, d) in ops {
                data.extend(tid.to_be_bytes());
                data.extend((d.len() as u32).to_be_bytes());
                data.extend([CLIENT_TRANSACTION, *flags, 0, 0]);
                data.extend(d);
            }
            let len = data.len();
            data.resize(len.div_ceil(BB).max(1) * BB, 0);
            let at = self.at;
            let h = &mut self.log[at * BB..(at + 1) * BB];
            for (o, v) in [
                (0, MAGIC),
                (4, 1),
                (8, 2),
                (12, len as u32),
                (40, ops.len() as u32),
                (320, 32768),
            ] {
                h[o..o + 4].copy_from_slice(&v.to_be_bytes());
            }
            h[16..24].copy_from_slice(&((1u64 << 32) | at as u64).to_be_bytes());
            h[24..32].copy_from_slice(&self.tail.to_be_bytes());
            for (i, b) in data.chunks_exact_mut(BB).enumerate() {
                h[44 + 4 * i..48 + 4 * i].copy_from_slice(&b[..4]);
                b[..4].copy_from_slice(&1u32.to_be_bytes());
            }
            self.log[(at + 1) * BB..(at + 1) * BB + data.len()].copy_from_slice(&data);
            self.at += 1 + data.len() / BB;
            at
        }
    }

    fn trans_header() -> Vec<u8> {
        let mut h = TRANS_MAGIC.to_le_bytes().to_vec();
        h.extend([40, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
        h
    }

    /// A buffer item's format region (little-endian): `regions` regions, block 64, one word of map.
    fn buf_format(regions: u16) -> Vec<u8> {
        let mut f = 0x123Cu16.to_le_bytes().to_vec();
        f.extend(regions.to_le_bytes());
        f.extend([0, 0, 8, 0]);
        f.extend(64u64.to_le_bytes());
        f.extend(1u32.to_le_bytes());
        f.extend(1u32.to_le_bytes());
        f
    }

    /// Transaction `tid` whole: start, header, one buffer item of one chunk, commit (or not).
    fn transaction(tid: u32, commit: bool) -> Vec<Op> {
        let mut ops = vec![
            (tid, OP_START, vec![]),
            (tid, 0, trans_header()),
            (tid, 0, buf_format(2)),
            (tid, 0, vec![0xAB; 128]),
        ];
        if commit {
            ops.push((tid, OP_COMMIT, vec![]));
        }
        ops
    }

    fn run(log: &[u8], crc: bool) -> io::Result<Scan> {
        let geo = Geometry {
            blocks: (log.len() / BB) as u64,
            v2: true,
            crc,
        };
        let mut reads = 0u64;
        let got = scan(&geo, &mut |n, buf: &mut [u8]| {
            reads += 1;
            let at = n as usize * BB;
            buf.copy_from_slice(&log[at..at + buf.len()]);
            Ok(())
        });
        assert!(
            reads <= 2 * geo.blocks + 64,
            "{reads} reads of a {}-block log",
            geo.blocks
        );
        got
    }

    #[test]
    fn committed_transactions_are_read_and_others_not() {
        let mut b = Builder::new(64);
        let mut ops = transaction(7, true);
        ops.extend(transaction(8, false));
        b.record(&ops);
        let s = run(&b.log, false).unwrap();
        assert_eq!(s.transactions.len(), 1);
        let t = &s.transactions[0];
        assert!(t.little);
        assert_eq!((t.lsn, t.items.len()), (1 << 32, 1));
        assert_eq!(t.items[0][1], vec![0xAB; 128]);
        // A transaction split over two records, its header and a region continued.
        let mut b = Builder::new(64);
        let ops = transaction(9, true);
        let header = trans_header();
        b.record(&[ops[0].clone(), (9, OP_CONTINUE, header[..10].to_vec())]);
        b.record(&[
            (9, OP_WAS_CONTINUED | OP_END, header[10..].to_vec()),
            ops[2].clone(),
            (9, OP_CONTINUE, vec![0xCD; 100]),
        ]);
        b.record(&[(9, OP_WAS_CONTINUED, vec![0xCD; 28]), ops[4].clone()]);
        let s = run(&b.log, true).unwrap();
        assert_eq!(s.transactions[0].items[0][1], vec![0xCD; 128]);
        // A log never written, and one whose last record is an unmount record at the head.
        assert!(run(&vec![0; 64 * BB], false).unwrap().transactions.is_empty());
        let mut b = Builder::new(64);
        b.record(&[(1, OP_UNMOUNT, vec![0x6e, 0x55, 0, 0, 0, 0, 0, 0])]);
        let s = run(&b.log, false).unwrap();
        assert!(s.transactions.is_empty() && s.notes.is_empty());
    }

    #[test]
    fn crafted_logs_are_refused_naming_the_record() {
        let refused = |log: &[u8], says: &str| {
            let e = run(log, false).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        };
        // An operation longer than its record.
        let mut b = Builder::new(64);
        let at = b.record(&transaction(7, true));
        let op = (at + 1) * BB + 12 * 2 + 16 + 4;
        b.log[op..op + 4].copy_from_slice(&100_000u32.to_be_bytes());
        refused(&b.log, "record at block 0: operation at byte 40: 100000 bytes");
        // A record longer than any; a record longer than the log.
        let mut b = Builder::new(64);
        b.record(&transaction(7, true));
        b.log[12..16].copy_from_slice(&(1u32 << 30).to_be_bytes());
        refused(&b.log, "record at block 0: 1073741824 bytes");
        let mut b = Builder::new(8);
        b.record(&[(7, OP_START, vec![]), (7, 0, vec![0; 2000])]);
        b.log.truncate(4 * BB);
        refused(&b.log, "5 blocks in a log of 4");
        // A tail outside the log; an operation of an unknown client.
        let mut b = Builder::new(64);
        b.tail = (1 << 32) | 999;
        b.record(&transaction(7, true));
        refused(&b.log, "the tail is at block 999");
        let mut b = Builder::new(64);
        b.record(&transaction(7, true));
        b.log[BB + 8] = 0x42;
        refused(&b.log, "record at block 0: operation at byte 0: client 0x42");
        // An item claiming more regions than any has.
        let mut b = Builder::new(64);
        let mut ops = transaction(7, true);
        ops[2].2 = buf_format(999);
        b.record(&ops);
        refused(&b.log, "an item of 999 regions");
    }

    #[test]
    fn a_record_failing_its_crc_ends_the_log() {
        let mut b = Builder::new(64);
        b.record(&transaction(7, true));
        b.record(&transaction(8, true));
        seal(&mut b.log);
        assert_eq!(run(&b.log, true).unwrap().transactions.len(), 2);
        let second = 2 * BB + 100;
        b.log[second] ^= 1;
        let s = run(&b.log, true).unwrap();
        assert_eq!(s.transactions.len(), 1);
        assert!(
            s.notes[0].contains("the record at block 2 fails its CRC"),
            "{:?}",
            s.notes
        );
        // Without CRCs (v4) the record is read as it is.
        assert_eq!(run(&b.log, false).unwrap().transactions.len(), 2);
    }

    /// The fuzz seeds: the first 64 KiB of logs kernels left dirty after making `/etc/new` and a
    /// link to it (v5: the host's, `xfs_io -x -c 'shutdown -f'`; v4: libguestfs's appliance, the
    /// same) — read whole, their CRCs (v5) holding.
    #[test]
    fn the_logs_kernels_leave_are_read() {
        for (seed, crc) in [
            (
                &include_bytes!("../../../fuzz/corpus/xfs_log/v5-shutdown")[..],
                true,
            ),
            (
                &include_bytes!("../../../fuzz/corpus/xfs_log/v4-appliance")[..],
                false,
            ),
        ] {
            let s = run(seed, crc).unwrap();
            assert!(s.notes.is_empty(), "{:?}", s.notes);
            let t = &s.transactions[0];
            assert!(t.little && t.items.len() > 5, "{} items", t.items.len());
            // An inode item of the 64-bit layout (its format 56 bytes).
            assert!(
                t.items
                    .iter()
                    .any(|i| i[0][..2] == [0x3B, 0x12] && i[0].len() == 56)
            );
        }
    }
}
