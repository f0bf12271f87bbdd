//! Btrfs's B-trees and address space: the chunk map (logical → physical on the one device, from the
//! superblock's `sys_chunk_array` and then the chunk tree; single and DUP profiles only) and the
//! bounded walk of a tree's nodes. Each node is checked before a byte of it is used: its checksum,
//! its fsid, the address it names as its own, its level (one less than its parent's: a descent
//! cannot loop), item counts and offsets inside the node, keys in increasing order, a child's first
//! key the one its parent names. Every node visited is paid to the command's `Work`, so a tree whose
//! nodes are shared many times over still ends in bounded time.

use std::io;
use std::sync::{Arc, Mutex};

use super::Super;
use crate::disk::{ReadAt, Work, corrupt, le16, le32, le64, read_at};

/// Levels a tree may have (`BTRFS_MAX_LEVEL`): 0 (leaves) to 7.
pub(super) const MAX_LEVEL: u8 = 8;
const HEADER: usize = 0x65;
const ITEM: usize = 25;
const KEY_PTR: usize = 33;
const CHUNK_ITEM_KEY: u8 = 228;
/// Chunks read at most (a 16 TiB filesystem has some 16 000 of 1 GiB).
const MAX_CHUNKS: usize = 1 << 16;
/// Nodes kept read (16 KiB each by default).
const CACHE: usize = 256;

/// Profile bits of a chunk's type: RAID0, RAID1, RAID10, RAID5, RAID6, RAID1C3, RAID1C4.
const RAID: [(u64, &str); 7] = [
    (0x8, "RAID0"),
    (0x10, "RAID1"),
    (0x40, "RAID10"),
    (0x80, "RAID5"),
    (0x100, "RAID6"),
    (0x200, "RAID1C3"),
    (0x400, "RAID1C4"),
];

/// A key: (object id, type, offset), ordered in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key {
    pub id: u64,
    pub ty: u8,
    pub off: u64,
}

impl Key {
    pub fn new(id: u64, ty: u8, off: u64) -> Key {
        Key { id, ty, off }
    }

    pub fn parse(b: &[u8]) -> Key {
        Key::new(le64(b, 0), b[8], le64(b, 9))
    }
}

/// A tree's root node: its logical address and level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Root {
    pub at: u64,
    pub level: u8,
}

/// One chunk: `len` logical bytes from `logical` lie at `physical` on the device.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    logical: u64,
    len: u64,
    physical: u64,
}

/// Reads the logical address space of a one-device Btrfs, node by node.
pub(super) struct Space<R> {
    r: R,
    work: Work,
    pub sb: Super,
    /// Sorted by logical address, not overlapping.
    chunks: Vec<Chunk>,
    cache: Mutex<Vec<(u64, Arc<Vec<u8>>)>>,
}

impl<R: ReadAt> Space<R> {
    /// The address space of the filesystem whose superblock is `sb`: the system chunks, then every
    /// chunk of the chunk tree.
    pub fn open(r: R, work: Work, sb: Super) -> io::Result<Space<R>> {
        let mut space = Space {
            r,
            work,
            chunks: Vec::new(),
            cache: Mutex::new(Vec::new()),
            sb,
        };
        let sys = space.sb.sys_chunks.clone();
        let mut at = 0;
        let mut chunks = Vec::new();
        while at < sys.len() {
            let key = sys
                .get(at..at + 17)
                .ok_or_else(|| damaged("sys_chunk_array ends inside a key"))?;
            let key = Key::parse(key);
            if key.ty != CHUNK_ITEM_KEY {
                return Err(damaged("sys_chunk_array holds an item that is not a chunk"));
            }
            let (chunk, len) = space.chunk(key, &sys[at + 17..])?;
            chunks.push(chunk);
            at += 17 + len;
        }
        space.set_chunks(chunks)?;
        let root = Root {
            at: space.sb.chunk_root,
            level: space.sb.chunk_root_level,
        };
        let mut chunks = Vec::new();
        space.items(
            root,
            Key::new(0, 0, 0),
            Key::new(u64::MAX, u8::MAX, u64::MAX),
            &mut |key, data| {
                if key.ty == CHUNK_ITEM_KEY {
                    if chunks.len() >= MAX_CHUNKS {
                        return Err(damaged(format!("more than {MAX_CHUNKS} chunks")));
                    }
                    chunks.push(space.chunk(key, data)?.0);
                }
                Ok(true)
            },
        )?;
        space.set_chunks(chunks)?;
        Ok(space)
    }

    /// The chunk item `b` for `key` (its logical start), and its length in bytes; a profile over
    /// several devices is refused, named.
    fn chunk(&self, key: Key, b: &[u8]) -> io::Result<(Chunk, usize)> {
        if b.len() < 48 {
            return Err(damaged("a chunk item is cut short"));
        }
        let (len, kind, stripes) = (le64(b, 0), le64(b, 24), usize::from(le16(b, 44)));
        let size = 48 + 32 * stripes;
        if stripes == 0 || b.len() < size {
            return Err(damaged(format!("chunk {}: {stripes} stripes", key.off)));
        }
        if let Some((_, name)) = RAID.iter().find(|(bit, _)| kind & bit != 0) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "btrfs: chunk {} has the {name} profile; osconf reads single and DUP only",
                    key.off
                ),
            ));
        }
        // Single: one stripe; DUP: two copies on this device, the first read.
        let (devid, physical) = (le64(b, 48), le64(b, 56));
        if devid != self.sb.devid {
            return Err(damaged(format!(
                "chunk {} lies on device {devid}, not this one",
                key.off
            )));
        }
        if len == 0 || key.off.checked_add(len).is_none() || physical.checked_add(len).is_none() {
            return Err(damaged(format!(
                "chunk {} of {len} bytes at byte {physical}",
                key.off
            )));
        }
        let chunk = Chunk {
            logical: key.off,
            len,
            physical,
        };
        Ok((chunk, size))
    }

    fn set_chunks(&mut self, mut chunks: Vec<Chunk>) -> io::Result<()> {
        chunks.sort_by_key(|c| c.logical);
        if chunks.windows(2).any(|w| w[0].logical + w[0].len > w[1].logical) {
            return Err(damaged("two chunks overlap"));
        }
        self.chunks = chunks;
        Ok(())
    }

    /// Reads `buf.len()` bytes at logical address `logical`; they must lie in one chunk, and that
    /// chunk's bytes on the device.
    pub fn read(&self, logical: u64, buf: &mut [u8]) -> io::Result<()> {
        let i = self.chunks.partition_point(|c| c.logical <= logical);
        let c = i
            .checked_sub(1)
            .map(|i| self.chunks[i])
            .filter(|c| logical - c.logical < c.len)
            .ok_or_else(|| damaged(format!("logical byte {logical} lies in no chunk")))?;
        let inside = logical - c.logical;
        if (buf.len() as u64) > c.len - inside {
            return Err(damaged(format!(
                "{} bytes at logical {logical} run past their chunk",
                buf.len()
            )));
        }
        if !read_at(&self.r, c.physical + inside, buf)? {
            return Err(damaged(format!(
                "logical byte {logical} maps to byte {} past the end of the device",
                c.physical + inside
            )));
        }
        Ok(())
    }

    /// The node at `at`, checked, expected at `level`.
    fn node(&self, at: u64, level: u8) -> io::Result<Arc<Vec<u8>>> {
        self.work.pay(1, 0)?;
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, n)) = cache.iter().find(|(a, _)| *a == at) {
            let n = n.clone();
            drop(cache);
            return check_level(n, at, level);
        }
        drop(cache);
        let mut b = vec![0u8; self.sb.node_size as usize];
        self.read(at, &mut b)?;
        if !self.sb.sum.matches(&b[0x20..], &b) {
            return Err(damaged(format!("the node at {at}: checksum does not match")));
        }
        if b[0x20..0x30] != self.sb.meta_fsid || le64(&b, 0x30) != at {
            return Err(damaged(format!(
                "the node at {at}: not this filesystem's node for that place"
            )));
        }
        let (n, node_level) = (le32(&b, 0x60) as usize, b[0x64]);
        let each = if node_level == 0 { ITEM } else { KEY_PTR };
        if n.checked_mul(each).is_none_or(|s| HEADER + s > b.len()) || (node_level > 0 && n == 0) {
            return Err(damaged(format!("the node at {at}: {n} items do not fit")));
        }
        let keys: Vec<Key> = (0..n).map(|i| Key::parse(&b[HEADER + i * each..])).collect();
        if keys.windows(2).any(|w| w[0] >= w[1]) {
            return Err(damaged(format!("the node at {at}: keys out of order")));
        }
        if node_level == 0 {
            for i in 0..n {
                let (off, size) = item_place(&b, i);
                if off < HEADER + n * ITEM || off.checked_add(size).is_none_or(|e| e > b.len()) {
                    return Err(damaged(format!(
                        "the node at {at}: item {i} lies outside the leaf"
                    )));
                }
            }
        }
        let node = Arc::new(b);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE {
            cache.remove(0);
        }
        cache.push((at, node.clone()));
        drop(cache);
        check_level(node, at, level)
    }

    /// Calls `f` with each item whose key lies in `[lo, hi]`, in order, under `root`, until it
    /// returns false; returns false when `f` stopped the walk.
    pub fn items(
        &self,
        root: Root,
        lo: Key,
        hi: Key,
        f: &mut dyn FnMut(Key, &[u8]) -> io::Result<bool>,
    ) -> io::Result<bool> {
        self.walk(root.at, root.level, None, lo, hi, f)
    }

    fn walk(
        &self,
        at: u64,
        level: u8,
        first: Option<Key>,
        lo: Key,
        hi: Key,
        f: &mut dyn FnMut(Key, &[u8]) -> io::Result<bool>,
    ) -> io::Result<bool> {
        let b = self.node(at, level)?;
        let n = le32(&b, 0x60) as usize;
        if first.is_some_and(|want| n == 0 || Key::parse(&b[HEADER..]) != want) {
            return Err(damaged(format!(
                "the node at {at} does not start with its parent's key"
            )));
        }
        if level == 0 {
            for i in 0..n {
                let key = Key::parse(&b[HEADER + i * ITEM..]);
                if key > hi {
                    return Ok(true);
                }
                if key >= lo {
                    let (off, size) = item_place(&b, i);
                    if !f(key, &b[off..off + size])? {
                        return Ok(false);
                    }
                }
            }
            return Ok(true);
        }
        for i in 0..n {
            let p = &b[HEADER + i * KEY_PTR..];
            let key = Key::parse(p);
            if key > hi {
                break;
            }
            let next = (i + 1 < n).then(|| Key::parse(&b[HEADER + (i + 1) * KEY_PTR..]));
            if next.is_some_and(|k| k <= lo) {
                continue;
            }
            if !self.walk(le64(p, 17), level - 1, Some(key), lo, hi, f)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The data of the item with exactly `key`, if there is one.
    pub fn get(&self, root: Root, key: Key) -> io::Result<Option<Vec<u8>>> {
        let mut found = None;
        self.items(root, key, key, &mut |_, data| {
            found = Some(data.to_vec());
            Ok(false)
        })?;
        Ok(found)
    }
}

/// A leaf's item `i`: where its data lies in the node and how long it is.
fn item_place(b: &[u8], i: usize) -> (usize, usize) {
    let p = HEADER + i * ITEM;
    (HEADER + le32(b, p + 17) as usize, le32(b, p + 21) as usize)
}

fn check_level(node: Arc<Vec<u8>>, at: u64, level: u8) -> io::Result<Arc<Vec<u8>>> {
    if node[0x64] != level {
        return Err(damaged(format!(
            "the node at {at} has level {}, where {level} is due (a loop?)",
            node[0x64]
        )));
    }
    Ok(node)
}

/// Damage in a Btrfs image.
pub(super) fn damaged(what: impl std::fmt::Display) -> io::Error {
    corrupt(format!("btrfs: {what}"))
}
