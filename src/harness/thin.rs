//! dm-thin metadata made in code, and the thin reader's fuzz entry point. [`metadata`] lays out a
//! pool as the kernel would find it — superblock, device details tree, the two-level mapping tree,
//! a device's tree split into leaves under an internal node when it maps many blocks — so the unit
//! tests can break one thing at a time and the fuzzer starts from a valid pool. A fuzz input is the
//! metadata device's bytes, its checksums made right ([`seal`]), every device of it read.

use std::io;

use crate::disk::lvm::thin::{BLOCK, MAGIC, NODE_XOR, SUPERBLOCK_XOR, Thin, checksum};
use crate::disk::{ReadAt, le32, le64};

/// Sectors per data block of the pools made here (64 KiB, dm-thin's least).
pub const CHUNK: u32 = 128;
/// Entries of a leaf of 8-byte values (`(4096 - 32) / 16`, rounded down to a multiple of 3).
const MAX_ENTRIES: usize = 252;
/// Node flags.
const INTERNAL: u32 = 1;
const LEAF: u32 = 2;

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Appends a node of `flags` holding `entries` (key, value bytes) to `m`; its block number.
fn node(m: &mut Vec<u8>, flags: u32, entries: &[(u64, Vec<u8>)], value_size: usize) -> u64 {
    let at = (m.len() / BLOCK) as u64;
    let max = (BLOCK - 32) / (8 + value_size) / 3 * 3;
    assert!(entries.len() <= max);
    let mut b = vec![0u8; BLOCK];
    put32(&mut b, 4, flags);
    put64(&mut b, 8, at);
    put32(&mut b, 16, entries.len() as u32);
    put32(&mut b, 20, max as u32);
    put32(&mut b, 24, value_size as u32);
    for (i, (k, v)) in entries.iter().enumerate() {
        put64(&mut b, 32 + 8 * i, *k);
        let vat = 32 + 8 * max + value_size * i;
        b[vat..vat + value_size].copy_from_slice(v);
    }
    m.extend_from_slice(&b);
    at
}

/// The tree holding `entries` (8-byte values): one leaf, or leaves under an internal node.
fn tree(m: &mut Vec<u8>, entries: &[(u64, Vec<u8>)]) -> u64 {
    if entries.len() <= MAX_ENTRIES {
        return node(m, LEAF, entries, 8);
    }
    let leaves: Vec<(u64, Vec<u8>)> = entries
        .chunks(MAX_ENTRIES)
        .map(|c| (c[0].0, node(m, LEAF, c, 8).to_le_bytes().to_vec()))
        .collect();
    node(m, INTERNAL, &leaves, 8)
}

/// A pool's metadata: for each device (id, its mappings: virtual block → data block), with
/// `data_blocks` data blocks of [`CHUNK`] sectors; `flags` in the superblock. Checksums made right.
pub fn metadata(devices: &[(u64, Vec<(u64, u64)>)], data_blocks: u64, flags: u32) -> Vec<u8> {
    let mut m = vec![0u8; BLOCK];
    let details: Vec<(u64, Vec<u8>)> = devices
        .iter()
        .map(|(id, map)| {
            let mut v = vec![0u8; 24];
            put64(&mut v, 0, map.len() as u64);
            (*id, v)
        })
        .collect();
    let details = node(&mut m, LEAF, &details, 24);
    let roots: Vec<(u64, Vec<u8>)> = devices
        .iter()
        .map(|(id, map)| {
            let entries: Vec<(u64, Vec<u8>)> = map
                .iter()
                .map(|&(v, d)| (v, (d << 24 | 1).to_le_bytes().to_vec()))
                .collect();
            (*id, tree(&mut m, &entries).to_le_bytes().to_vec())
        })
        .collect();
    let mapping = node(&mut m, LEAF, &roots, 8);
    let sb = &mut m[..BLOCK];
    put32(sb, 4, flags);
    put64(sb, 32, MAGIC);
    put32(sb, 40, 2);
    put64(sb, 64, data_blocks);
    put64(sb, 320, mapping);
    put64(sb, 328, details);
    put32(sb, 336, CHUNK);
    put32(sb, 340, (BLOCK / 512) as u32);
    let blocks = (m.len() / BLOCK) as u64;
    put64(&mut m, 344, blocks);
    seal(&mut m);
    m
}

/// Makes the checksums of `m` right: the superblock's (block 0) and every block's that reads as a
/// node (its flags internal or leaf).
pub fn seal(m: &mut [u8]) {
    for (i, b) in m.chunks_exact_mut(BLOCK).enumerate() {
        let xor = match (i, le32(b, 4)) {
            (0, _) => SUPERBLOCK_XOR,
            (_, INTERNAL | LEAF) => NODE_XOR,
            _ => continue,
        };
        let sum = checksum(b, xor);
        put32(b, 0, sum);
    }
}

/// The seed: two devices, one mapping 300 blocks (two leaves under an internal node), one a few.
pub fn seed() -> Vec<u8> {
    let many = (0..300).map(|v| (v * 2, v)).collect();
    metadata(&[(1, many), (2, vec![(0, 300), (7, 301)])], 512, 0)
}

/// A data device of `blocks` blocks whose every byte says its block (`block % 251`).
pub fn data(blocks: u64) -> Vec<u8> {
    let block = u64::from(CHUNK) * 512;
    (0..blocks * block).map(|i| ((i / block) % 251) as u8).collect()
}

/// Thin device `id` of the metadata `m` over `data`, 1 GiB, as the LVM reader opens it.
pub fn open<'a>(m: &'a [u8], data: &'a [u8], id: u64) -> io::Result<Thin<&'a [u8], &'a [u8]>> {
    Thin::open("pool".into(), m, data, None, id, u64::from(CHUNK), 1 << 30)
}

/// A device of zeros of the size it holds.
struct Zeros(u64);

impl ReadAt for Zeros {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.0.saturating_sub(offset)) as usize;
        buf[..n].fill(0);
        Ok(n)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0)
    }
}

/// Metadata bytes → each device of ids 0 to 3 read at its first blocks and across the device:
/// never a panic, never a read past the data or the metadata.
pub fn thin(input: &[u8]) {
    let mut m = input.to_vec();
    m.resize(input.len().div_ceil(BLOCK).max(1) * BLOCK, 0);
    seal(&mut m);
    let chunk = if m.len() >= BLOCK {
        u64::from(le32(&m, 336))
    } else {
        0
    };
    let data = Zeros(le64(&m, 64).saturating_mul(chunk * 512).min(1 << 32));
    for id in 0..4 {
        let Ok(t) = Thin::open("fuzz".into(), m.as_slice(), &data, None, id, chunk, 1 << 30) else {
            continue;
        };
        let mut buf = vec![0u8; 4096];
        for at in (0..16).map(|k| k * chunk * 512).chain([1 << 29, (1 << 30) - 1]) {
            if let Ok(n) = t.read_at(&mut buf, at) {
                assert!(n <= buf.len());
            }
        }
    }
}
