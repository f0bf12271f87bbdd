//! A thin logical volume read as a device: dm-thin's own metadata (the pool's metadata LV, as the
//! kernel's `dm-thin-metadata.c` and `persistent-data/dm-btree*.c` lay it out) says which data
//! block of the pool holds each of the volume's virtual blocks; a block it does not map reads as
//! zeros (or from the volume's external origin). Only lookups are made — one path from a tree's
//! root to a leaf for each block read, never a walk of a whole tree — so the work is a few node
//! reads per data block, bounded by the depth allowed ([`MAX_DEPTH`]) whatever the trees hold.
//! Every node is checked before one of its numbers is used: checksum, its own block number, flags,
//! `nr_entries ≤ max_entries` fitting the block, the value size its tree has, keys in order.

use std::io;
use std::sync::{Arc, Mutex};

use crate::disk::crc::crc32c_raw;
use crate::disk::{ReadAt, corrupt, le32, le64, read_at};

/// dm-thin's metadata block (the kernel's `THIN_METADATA_BLOCK_SIZE`).
pub const BLOCK: usize = 4096;
/// The superblock's magic (`THIN_SUPERBLOCK_MAGIC`).
pub const MAGIC: u64 = 27_022_010;
/// What the superblock's and the nodes' CRC-32C are xored with (`SUPERBLOCK_CSUM_XOR`,
/// `BTREE_CSUM_XOR`).
pub const SUPERBLOCK_XOR: u32 = 160_774;
pub const NODE_XOR: u32 = 121_107;
/// Node flags.
const INTERNAL: u32 = 1;
const LEAF: u32 = 2;
/// The superblock's flag saying the metadata needs `thin_check`/`thin_repair` first.
const NEEDS_CHECK: u32 = 1;
/// A node's header: csum, flags, blocknr, nr_entries, max_entries, value_size, padding.
const HEADER: usize = 32;
/// Levels of one B-tree, at most: 254-way nodes reach 2^64 keys in 8.
const MAX_DEPTH: usize = 8;
/// Nodes kept in memory (a lookup's path, the trees' upper levels).
const CACHED: usize = 64;

/// The checksum dm-persistent-data stores for `b` (its first four bytes left out): CRC-32C seeded
/// with all ones, not inverted, xored with `xor` (`dm_bm_checksum`).
pub fn checksum(b: &[u8], xor: u32) -> u32 {
    crc32c_raw(!0, &b[4..]) ^ xor
}

/// One thin device of a pool: its metadata (`M`), the pool's data (`D`), what it maps.
pub struct Thin<M, D> {
    /// How messages name the pool's metadata: `LV vg/pool's metadata`.
    name: String,
    meta: M,
    data: D,
    /// Its external origin: what a block the pool does not map reads as.
    origin: Option<D>,
    /// The device's own mapping tree.
    root: u64,
    /// Bytes per data block.
    block: u64,
    /// Data blocks the pool has.
    data_blocks: u64,
    /// Metadata blocks.
    meta_blocks: u64,
    /// Its size in bytes (the LV's).
    size: u64,
    /// Whether the superblock says the metadata needs a check.
    pub needs_check: bool,
    cache: Mutex<Vec<(u64, Arc<[u8]>)>>,
}

impl<M, D> std::fmt::Debug for Thin<M, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "thin device of {}, mapping tree at block {}",
            self.name, self.root
        )
    }
}

impl<M: ReadAt, D: ReadAt> Thin<M, D> {
    /// Thin device `device_id` of `size` bytes of the pool whose metadata is `meta` and data
    /// `data`, `chunk` sectors per data block (the pool's `chunk_size`, which the superblock must
    /// repeat); `name` names the metadata in messages.
    pub fn open(
        name: String,
        meta: M,
        data: D,
        origin: Option<D>,
        device_id: u64,
        chunk: u64,
        size: u64,
    ) -> io::Result<Thin<M, D>> {
        let bad = |w: String| corrupt(format!("{name}: {w}"));
        let mut sb = [0u8; BLOCK];
        if !read_at(&meta, 0, &mut sb)? {
            return Err(bad("it is smaller than its superblock".into()));
        }
        if le64(&sb, 32) != MAGIC {
            return Err(bad("no dm-thin superblock (its magic is wrong)".into()));
        }
        if checksum(&sb, SUPERBLOCK_XOR) != le32(&sb, 0) || le64(&sb, 8) != 0 {
            return Err(bad("the superblock's checksum or block number is wrong".into()));
        }
        let (version, incompat) = (le32(&sb, 40), le32(&sb, 360));
        if !(1..=2).contains(&version) || incompat != 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{name}: dm-thin metadata version {version}, incompatible features {incompat:#x}"),
            ));
        }
        let (data_block, meta_block) = (le32(&sb, 336), le32(&sb, 340));
        if u64::from(data_block) != chunk || meta_block as usize != BLOCK / 512 {
            return Err(bad(format!(
                "its superblock says blocks of {data_block} data and {meta_block} metadata \
                 sectors, the volume group a chunk of {chunk}"
            )));
        }
        // Chunks of 64 KiB to 1 GiB, as dm-thin takes them.
        if !(128..=1 << 21).contains(&chunk) || !chunk.is_multiple_of(128) {
            return Err(bad(format!("a chunk of {chunk} sectors")));
        }
        let block = chunk * 512;
        let meta_blocks = le64(&sb, 344);
        // The data space map's root starts with the number of data blocks.
        let data_blocks = le64(&sb, 64);
        if meta_blocks
            .checked_mul(BLOCK as u64)
            .is_none_or(|b| b > meta.size().unwrap_or(0))
        {
            return Err(bad(format!("{meta_blocks} metadata blocks, past its end")));
        }
        if data_blocks
            .checked_mul(block)
            .is_none_or(|b| b > data.size().unwrap_or(0))
        {
            return Err(bad(format!(
                "{data_blocks} data blocks of {block} bytes, past the pool's data"
            )));
        }
        let mut thin = Thin {
            name: name.clone(),
            meta,
            data,
            origin,
            root: 0,
            block,
            data_blocks,
            meta_blocks,
            size,
            needs_check: le32(&sb, 4) & NEEDS_CHECK != 0,
            cache: Mutex::new(Vec::new()),
        };
        let (mapping, details) = (le64(&sb, 320), le64(&sb, 328));
        if thin.lookup(details, device_id, 24)?.is_none() {
            return Err(bad(format!(
                "thin device {device_id} is not in its device details"
            )));
        }
        thin.root = thin
            .lookup(mapping, device_id, 8)?
            .ok_or_else(|| bad(format!("thin device {device_id} has no mapping tree")))?;
        Ok(thin)
    }

    /// Metadata block `at`, a checked B-tree node.
    fn node(&self, at: u64) -> io::Result<Arc<[u8]>> {
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, n)) = cache.iter().find(|(b, _)| *b == at) {
                return Ok(n.clone());
            }
        }
        let bad = |w: String| corrupt(format!("{}, node at block {at}: {w}", self.name));
        if at == 0 || at >= self.meta_blocks {
            return Err(bad(format!("outside the {} metadata blocks", self.meta_blocks)));
        }
        let mut b = vec![0u8; BLOCK];
        if !read_at(&self.meta, at * BLOCK as u64, &mut b)? {
            return Err(bad("past the metadata's end".into()));
        }
        if checksum(&b, NODE_XOR) != le32(&b, 0) {
            return Err(bad("its checksum is wrong".into()));
        }
        if le64(&b, 8) != at {
            return Err(bad(format!("it says it is block {}", le64(&b, 8))));
        }
        let (flags, n, max, size) = (le32(&b, 4), le32(&b, 16), le32(&b, 20), le32(&b, 24));
        let fits = (max as usize)
            .checked_mul(8 + size as usize)
            .is_some_and(|l| l <= BLOCK - HEADER);
        if !matches!(flags, INTERNAL | LEAF) || n > max || !fits || !matches!(size, 8 | 24) {
            return Err(bad(format!(
                "flags {flags:#x}, {n} of {max} entries of {size}-byte values"
            )));
        }
        let keys = (0..n as usize).map(|i| le64(&b, HEADER + 8 * i));
        if keys.clone().zip(keys.skip(1)).any(|(a, b)| a >= b) {
            return Err(bad("its keys are out of order".into()));
        }
        let node: Arc<[u8]> = b.into();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() == CACHED {
            cache.remove(0);
        }
        cache.push((at, node.clone()));
        Ok(node)
    }

    /// The value of `key` in the tree at `root` whose leaves hold `value_size`-byte values (the
    /// first 8 bytes of it), `None` when the tree has no such key.
    fn lookup(&self, root: u64, key: u64, value_size: u32) -> io::Result<Option<u64>> {
        let mut at = root;
        for _ in 0..MAX_DEPTH {
            let b = self.node(at)?;
            let (flags, n, max, size) = (le32(&b, 4), le32(&b, 16), le32(&b, 20), le32(&b, 24));
            let want = if flags == INTERNAL { 8 } else { value_size };
            if size != want || (flags == INTERNAL && n == 0) {
                return Err(corrupt(format!(
                    "{}, node at block {at}: {n} entries of {size}-byte values where {want}-byte \
                     ones are due",
                    self.name
                )));
            }
            // The last key not past `key`.
            let keys = |i: usize| le64(&b, HEADER + 8 * i);
            let (mut lo, mut hi) = (0, n as usize);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if keys(mid) <= key { lo = mid + 1 } else { hi = mid }
            }
            let Some(i) = lo.checked_sub(1) else {
                return Ok(None);
            };
            let value = le64(&b, HEADER + 8 * max as usize + size as usize * i);
            if flags == LEAF {
                return Ok((keys(i) == key).then_some(value));
            }
            at = value;
        }
        Err(corrupt(format!(
            "{}: a tree deeper than {MAX_DEPTH} levels at block {at} (its nodes loop?)",
            self.name
        )))
    }

    /// Reads from `offset` to the end of its block at most.
    fn read_block(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let (virt, within) = (offset / self.block, offset % self.block);
        let len = (buf.len() as u64)
            .min(self.block - within)
            .min(self.size - offset) as usize;
        let buf = &mut buf[..len];
        match self.lookup(self.root, virt, 8)? {
            Some(v) => {
                // The value is the data block << 24 | the time it was mapped at.
                let data = v >> 24;
                if data >= self.data_blocks {
                    return Err(corrupt(format!(
                        "{}: block {virt} mapped to data block {data} of {}",
                        self.name, self.data_blocks
                    )));
                }
                if !read_at(&self.data, data * self.block + within, buf)? {
                    return Err(corrupt(format!(
                        "{}: data block {data} is past the data's end",
                        self.name
                    )));
                }
            }
            None => {
                buf.fill(0);
                if let Some(o) = &self.origin {
                    // The origin may be shorter: zeros past its end.
                    let have = o.size()?.saturating_sub(offset).min(len as u64) as usize;
                    if have > 0 && !read_at(o, offset, &mut buf[..have])? {
                        return Err(corrupt(format!("{}: its external origin ends early", self.name)));
                    }
                }
            }
        }
        Ok(len)
    }

    /// Whether the device has an external origin.
    pub fn has_origin(&self) -> bool {
        self.origin.is_some()
    }
}

impl<M: ReadAt, D: ReadAt> ReadAt for Thin<M, D> {
    /// Fills `buf` block by block (`disk::fill`).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        crate::disk::fill(buf, offset, |b, at| self.read_block(b, at))
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::thin::{self as made, CHUNK, seal, seed};

    const B: u64 = CHUNK as u64 * 512;

    /// What a case changes in the seed's bytes.
    type Change = fn(&mut Vec<u8>);

    fn first_byte<R: ReadAt>(t: &R, at: u64) -> u8 {
        let mut b = [9u8; 1];
        assert!(read_at(t, at, &mut b).unwrap());
        b[0]
    }

    #[test]
    fn mapped_blocks_read_from_the_pool_and_the_rest_as_zeros() {
        let (m, data) = (seed(), made::data(512));
        let one = made::open(&m, &data, 1).unwrap();
        // Device 1 maps virtual block 2k to data block k: through both leaves under its root.
        for v in [0u64, 2, 4, 300, 504, 598] {
            assert_eq!(first_byte(&one, v * B + 5), (v / 2 % 251) as u8, "block {v}");
        }
        for v in [1u64, 3, 599, 600, 16383] {
            assert_eq!(first_byte(&one, v * B), 0, "block {v}");
        }
        // A read goes on across blocks, mapped or not, to the device's end.
        let mut buf = vec![7u8; 2 * B as usize];
        assert_eq!(one.read_at(&mut buf, 4 * B + 10).unwrap(), 2 * B as usize);
        assert_eq!((buf[0], buf[B as usize - 10], buf[2 * B as usize - 1]), (2, 0, 3));
        assert_eq!(one.read_at(&mut buf, (1 << 30) - 5).unwrap(), 5);
        assert_eq!(one.read_at(&mut buf, 1 << 30).unwrap(), 0);
        let two = made::open(&m, &data, 2).unwrap();
        assert_eq!(first_byte(&two, 7 * B), (301 % 251) as u8);
        assert_eq!(first_byte(&two, 0), (300 % 251) as u8);
        assert!(!two.needs_check);
        let e = made::open(&m, &data, 3).unwrap_err();
        assert!(
            e.to_string()
                .contains("thin device 3 is not in its device details"),
            "{e}"
        );
        let flagged = made::metadata(&[(1, vec![(0, 0)])], 4, 1);
        assert!(made::open(&flagged, &data, 1).unwrap().needs_check);
        // An external origin: what the device never wrote reads from it, zeros past its end.
        let origin = vec![0xeeu8; B as usize + 100];
        let t = Thin::open(
            "pool".into(),
            &m[..],
            &data[..],
            Some(&origin[..]),
            2,
            128,
            1 << 30,
        )
        .unwrap();
        assert!(t.has_origin());
        assert_eq!(first_byte(&t, 7 * B), (301 % 251) as u8);
        assert_eq!(first_byte(&t, B + 99), 0xee);
        assert_eq!(first_byte(&t, B + 100), 0);
        assert_eq!(first_byte(&t, 2 * B), 0);
    }

    /// Each node of the seed broken one way: the lookup that reaches it names the node and what is
    /// wrong, in at most eight node reads (a loop included).
    #[test]
    fn broken_nodes_are_named_and_a_looping_tree_ends() {
        let data = made::data(512);
        // Blocks: 0 superblock, 1 details, 2 and 3 device 1's leaves under 4, 5 device 2's leaf.
        let breaks: [(&str, Change, bool, &str); 7] = [
            (
                "checksum",
                |m| m[5 * BLOCK + 100] ^= 1,
                false,
                "node at block 5: its checksum is wrong",
            ),
            (
                "blocknr",
                |m| m[5 * BLOCK + 8] = 3,
                true,
                "node at block 5: it says it is block 3",
            ),
            (
                "nr_entries",
                |m| m[5 * BLOCK + 16..5 * BLOCK + 20].copy_from_slice(&253u32.to_le_bytes()),
                true,
                "node at block 5: flags 0x2, 253 of 252 entries",
            ),
            (
                "value_size",
                |m| m[5 * BLOCK + 24] = 24,
                true,
                "node at block 5: flags 0x2, 2 of 252 entries of 24-byte values",
            ),
            (
                "keys",
                |m| m[5 * BLOCK + 40] = 0,
                true,
                "node at block 5: its keys are out of order",
            ),
            (
                "loop",
                |m| m[4 * BLOCK + 2056..4 * BLOCK + 2064].copy_from_slice(&4u64.to_le_bytes()),
                true,
                "a tree deeper than 8 levels at block 4 (its nodes loop?)",
            ),
            (
                "outside",
                |m| m[4 * BLOCK + 2056..4 * BLOCK + 2064].copy_from_slice(&9u64.to_le_bytes()),
                true,
                "node at block 9: outside the 7 metadata blocks",
            ),
        ];
        for (what, change, reseal, says) in breaks {
            let mut m = seed();
            change(&mut m);
            if reseal {
                seal(&mut m);
            }
            let e = made::open(&m, &data, 2)
                .and_then(|t| made::open(&m, &data, 1).map(|o| (t, o)))
                .and_then(|(t, o)| read_at(&t, 7 * B, &mut [0]).and(read_at(&o, 598 * B, &mut [0])))
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{what}: {e}");
            assert!(e.to_string().contains(says), "{what}: {e}");
        }
    }

    #[test]
    fn a_bad_superblock_or_mapping_is_refused() {
        let data = made::data(512);
        let cases: [(Change, &str); 5] = [
            (
                |m| m[100] ^= 1,
                "the superblock's checksum or block number is wrong",
            ),
            (|m| m[32] ^= 1, "no dm-thin superblock"),
            (
                |m| m[336] = 0,
                "blocks of 0 data and 8 metadata sectors, the volume group a chunk of 128",
            ),
            (
                |m| m[64..72].copy_from_slice(&513u64.to_le_bytes()),
                "513 data blocks of 65536 bytes",
            ),
            (
                |m| m[344..352].copy_from_slice(&8u64.to_le_bytes()),
                "8 metadata blocks, past its end",
            ),
        ];
        for (change, says) in cases {
            let mut m = seed();
            change(&mut m);
            if !says.contains("checksum") {
                seal(&mut m);
            }
            let e = made::open(&m, &data, 1).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        }
        // A data block past the pool's: named when read.
        let m = made::metadata(&[(1, vec![(0, 600)])], 512, 0);
        let e = read_at(&made::open(&m, &data, 1).unwrap(), 0, &mut [0]).unwrap_err();
        assert!(
            e.to_string().contains("block 0 mapped to data block 600 of 512"),
            "{e}"
        );
    }
}
