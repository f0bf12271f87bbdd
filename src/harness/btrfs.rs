//! The Btrfs reader's fuzz entry point and its seeds, made in code: a fuzz input is a filesystem
//! from its superblock on (the 64 KiB before it are zeros, so a whole filesystem fits the fuzzer's
//! 64 KiB inputs), whose superblock and tree-block checksums are made right before it is read —
//! with the checksum its superblock names (CRC-32C, xxhash64 or SHA-256), so that the fuzzer's
//! changes reach the chunk map, the nodes and the items whatever the filesystem's checksum. [`seeds`]
//! builds a small real Btrfs with each checksum (one mixed chunk of 4 KiB nodes: chunk tree, root
//! tree with the `default` entry, an FS tree holding a directory, inline and regular files and a
//! link, the checksum tree of the regular file's data); [`hostile_seeds`] the damage of issue 17's
//! rules: a chunk mapped past the device, a node whose child is itself, an item whose data lies
//! outside its leaf, a data sector that fails its checksum.

use crate::disk::btrfs::{MAGIC, SUPERBLOCK_AT, Sum, name_hash};

/// What the seed's fault is: none, or one of issue 17's kinds of damage.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// The FS tree's first item's data lies outside its leaf.
    Item,
    /// A byte of the regular file's data differs from what its checksum says.
    Data,
}

const NODE: usize = 4096;
const FSID: [u8; 16] = [0x5e; 16];
/// The one chunk: logical `LOGICAL`, `CHUNK` bytes, at physical `PHYSICAL` (right after the
/// superblock).
const LOGICAL: u64 = 1 << 20;
const CHUNK: u64 = 8 * NODE as u64;
const PHYSICAL: u64 = SUPERBLOCK_AT + 4096;
/// Node numbers in the chunk: the trees, the regular file's data (2 nodes), the looping node, the
/// checksum tree.
const CHUNK_TREE: u64 = 0;
const ROOT_TREE: u64 = 1;
const FS_TREE: u64 = 2;
const DATA: u64 = 3;
const LOOP: u64 = 5;
const CSUM_TREE: u64 = 6;
/// The regular file's bytes.
pub const BIG: usize = 2 * NODE;

/// Input bytes (a filesystem from its superblock on) → the files `image check` reads, every
/// directory walked: never a panic, nothing past the bounds (`super::disk`'s checks).
pub fn btrfs(data: &[u8]) {
    super::disk(&device(data));
}

/// The device a fuzz input stands for, its checksums made right.
pub fn device(data: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; SUPERBLOCK_AT as usize];
    d.extend_from_slice(data);
    let sb = SUPERBLOCK_AT as usize;
    if d.len() < sb + 4096 || &d[sb + 0x40..sb + 0x48] != MAGIC {
        return d;
    }
    // A type the reader refuses (BLAKE2b, undefined) is left for it to refuse.
    let Ok(sum) = Sum::of_type(u16::from_le_bytes([d[sb + 0xc4], d[sb + 0xc5]])) else {
        return d;
    };
    let fsid: [u8; 16] = d[sb + 0x20..sb + 0x30].try_into().expect("16 bytes");
    let node = u32::from_le_bytes(d[sb + 0x94..sb + 0x98].try_into().expect("4 bytes")) as usize;
    checksum(&mut d[sb..sb + 4096], sum);
    if (NODE..=65536).contains(&node) {
        let mut at = sb + 4096;
        while at + node <= d.len() {
            if d[at + 0x20..at + 0x30] == fsid {
                checksum(&mut d[at..at + node], sum);
            }
            at += NODE;
        }
    }
    d
}

/// Writes the checksum `sum` of a superblock or tree block's bytes after its checksum field into
/// it.
pub fn checksum(block: &mut [u8], sum: Sum) {
    let c = sum.of(&block[0x20..]);
    block[..c.len()].copy_from_slice(&c);
}

/// A key's 17 bytes.
fn key(id: u64, ty: u8, off: u64) -> Vec<u8> {
    [&id.to_le_bytes()[..], &[ty], &off.to_le_bytes()].concat()
}

/// The logical address of node `n` of the chunk.
fn addr(n: u64) -> u64 {
    LOGICAL + n * NODE as u64
}

/// A tree block at node `n` owned by tree `owner`: a leaf of `items` (key, data), sorted here, or
/// at `level` > 0 the key pointers `items` (key, child address).
fn node(sum: Sum, n: u64, owner: u64, level: u8, mut items: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<u8> {
    let mut b = vec![0u8; NODE];
    b[0x20..0x30].copy_from_slice(&FSID);
    b[0x30..0x38].copy_from_slice(&addr(n).to_le_bytes());
    b[0x38..0x40].copy_from_slice(&(1u64 | 1 << 56).to_le_bytes());
    b[0x50..0x58].copy_from_slice(&1u64.to_le_bytes());
    b[0x58..0x60].copy_from_slice(&owner.to_le_bytes());
    b[0x60..0x64].copy_from_slice(&(items.len() as u32).to_le_bytes());
    b[0x64] = level;
    let order = |k: &[u8]| {
        (
            u64::from_le_bytes(k[..8].try_into().unwrap()),
            k[8],
            u64::from_le_bytes(k[9..17].try_into().unwrap()),
        )
    };
    items.sort_by_key(|(k, _)| order(k));
    let mut end = NODE;
    for (i, (k, data)) in items.iter().enumerate() {
        if level > 0 {
            let p = 0x65 + i * 33;
            b[p..p + 17].copy_from_slice(k);
            b[p + 17..p + 25].copy_from_slice(&data[..8]);
            b[p + 25..p + 33].copy_from_slice(&1u64.to_le_bytes());
            continue;
        }
        end -= data.len();
        b[end..end + data.len()].copy_from_slice(data);
        let p = 0x65 + i * 25;
        b[p..p + 17].copy_from_slice(k);
        b[p + 17..p + 21].copy_from_slice(&((end - 0x65) as u32).to_le_bytes());
        b[p + 21..p + 25].copy_from_slice(&(data.len() as u32).to_le_bytes());
    }
    checksum(&mut b, sum);
    b
}

/// An inode item: `mode`, `size`.
fn inode(mode: u32, size: u64) -> Vec<u8> {
    let mut b = vec![0u8; 160];
    b[16..24].copy_from_slice(&size.to_le_bytes());
    b[40..44].copy_from_slice(&1u32.to_le_bytes());
    b[52..56].copy_from_slice(&mode.to_le_bytes());
    b
}

/// A dir item naming `name`, at `loc` (a key), of type `ty`.
fn dir_item(loc: Vec<u8>, ty: u8, name: &[u8]) -> Vec<u8> {
    let mut b = loc;
    b.extend(1u64.to_le_bytes());
    b.extend(0u16.to_le_bytes());
    b.extend((name.len() as u16).to_le_bytes());
    b.push(ty);
    b.extend_from_slice(name);
    b
}

/// The entries of directory `dir`: (name, inode, type), as DIR_ITEM and DIR_INDEX items.
fn entries(dir: u64, names: &[(&[u8], u64, u8)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, (name, ino, ty)) in names.iter().enumerate() {
        let item = dir_item(key(*ino, 1, 0), *ty, name);
        out.push((key(dir, 84, u64::from(name_hash(name))), item.clone()));
        out.push((key(dir, 96, 2 + i as u64), item));
    }
    out
}

/// An inline extent holding `data`.
fn inline(data: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 21];
    b[8..16].copy_from_slice(&(data.len() as u64).to_le_bytes());
    b.extend_from_slice(data);
    b
}

/// A regular extent of `len` bytes at logical `at`.
fn regular(at: u64, len: u64) -> Vec<u8> {
    let mut b = vec![0u8; 53];
    b[8..16].copy_from_slice(&len.to_le_bytes());
    b[20] = 1;
    for (i, v) in [at, len, 0, len].iter().enumerate() {
        b[21 + 8 * i..29 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    b
}

/// A chunk item for the one chunk, at physical `physical`.
fn chunk_item(physical: u64) -> Vec<u8> {
    let mut b = vec![0u8; 80];
    b[..8].copy_from_slice(&CHUNK.to_le_bytes());
    b[8..16].copy_from_slice(&2u64.to_le_bytes());
    b[16..24].copy_from_slice(&CHUNK.to_le_bytes());
    b[24..32].copy_from_slice(&7u64.to_le_bytes());
    for at in [32, 36, 40] {
        b[at..at + 4].copy_from_slice(&(NODE as u32).to_le_bytes());
    }
    b[44..46].copy_from_slice(&1u16.to_le_bytes());
    b[46..48].copy_from_slice(&1u16.to_le_bytes());
    b[48..56].copy_from_slice(&1u64.to_le_bytes());
    b[56..64].copy_from_slice(&physical.to_le_bytes());
    b
}

/// A root item for a tree at node `n` of `level`, root directory 256.
fn root_item(n: u64, level: u8) -> Vec<u8> {
    let mut b = inode(0o40755, 0);
    b.resize(439, 0);
    b[168..176].copy_from_slice(&256u64.to_le_bytes());
    b[176..184].copy_from_slice(&addr(n).to_le_bytes());
    b[238] = level;
    b
}

/// The pattern the regular file holds.
pub fn big() -> Vec<u8> {
    (0..BIG).map(|i| (i % 251) as u8).collect()
}

/// Btrfs's `csum_type` of each checksum the reader computes.
fn csum_type(sum: Sum) -> u16 {
    match sum {
        Sum::Crc32c => 0,
        Sum::Xxhash64 => 1,
        Sum::Sha256 => 2,
    }
}

/// A small Btrfs from its superblock on (the fuzz input form) whose checksum is `sum`:
/// `etc/os-release` inline (`ID=debian`), `etc/rel` a link to it, `big` a regular extent, the FS
/// tree's root at `fs_level` (1: a node whose one child is itself), its leaf's items as given, the
/// chunk at `physical`.
fn build(sum: Sum, physical: u64, fs_root: (u64, u8), fault: Fault) -> Vec<u8> {
    let tree = |n, owner, level, items| node(sum, n, owner, level, items);
    let mut sb = vec![0u8; 4096];
    sb[0x20..0x30].copy_from_slice(&FSID);
    sb[0x30..0x38].copy_from_slice(&SUPERBLOCK_AT.to_le_bytes());
    sb[0x40..0x48].copy_from_slice(MAGIC);
    sb[0x48..0x50].copy_from_slice(&1u64.to_le_bytes());
    sb[0x50..0x58].copy_from_slice(&addr(ROOT_TREE).to_le_bytes());
    sb[0x58..0x60].copy_from_slice(&addr(CHUNK_TREE).to_le_bytes());
    sb[0x70..0x78].copy_from_slice(&(PHYSICAL + CHUNK).to_le_bytes());
    sb[0x80..0x88].copy_from_slice(&6u64.to_le_bytes());
    sb[0x88..0x90].copy_from_slice(&1u64.to_le_bytes());
    for at in [0x90, 0x94, 0x98, 0x9c] {
        sb[at..at + 4].copy_from_slice(&(NODE as u32).to_le_bytes());
    }
    let sys = [key(256, 228, LOGICAL), chunk_item(physical)].concat();
    sb[0xa0..0xa4].copy_from_slice(&(sys.len() as u32).to_le_bytes());
    sb[0xc9..0xd1].copy_from_slice(&1u64.to_le_bytes());
    sb[0x12b..0x12f].copy_from_slice(b"seed");
    sb[0x32b..0x32b + sys.len()].copy_from_slice(&sys);
    sb[0xc4..0xc6].copy_from_slice(&csum_type(sum).to_le_bytes());
    checksum(&mut sb, sum);

    let mut chunk = vec![0u8; CHUNK as usize];
    let mut put = |n: u64, b: &[u8]| chunk[n as usize * NODE..n as usize * NODE + b.len()].copy_from_slice(b);
    put(
        CHUNK_TREE,
        &tree(
            CHUNK_TREE,
            3,
            0,
            vec![(key(256, 228, LOGICAL), chunk_item(physical))],
        ),
    );
    put(
        ROOT_TREE,
        &tree(
            ROOT_TREE,
            1,
            0,
            vec![
                (key(5, 132, 0), root_item(fs_root.0, fs_root.1)),
                (key(7, 132, 0), root_item(CSUM_TREE, 0)),
                (
                    key(6, 84, u64::from(name_hash(b"default"))),
                    dir_item(key(5, 132, u64::MAX), 2, b"default"),
                ),
            ],
        ),
    );
    let os_release = b"ID=debian\n";
    let mut items = vec![
        (key(256, 1, 0), inode(0o40755, 0)),
        (key(257, 1, 0), inode(0o40755, 0)),
        (key(258, 1, 0), inode(0o100644, os_release.len() as u64)),
        (key(258, 108, 0), inline(os_release)),
        (key(259, 1, 0), inode(0o120777, 10)),
        (key(259, 108, 0), inline(b"os-release")),
        (key(260, 1, 0), inode(0o100644, BIG as u64)),
        (key(260, 108, 0), regular(addr(DATA), BIG as u64)),
    ];
    items.extend(entries(256, &[(b"etc", 257, 2), (b"big", 260, 1)]));
    items.extend(entries(257, &[(b"os-release", 258, 1), (b"rel", 259, 7)]));
    let mut leaf = tree(FS_TREE, 5, 0, items);
    if fault == Fault::Item {
        leaf[0x65 + 17..0x65 + 21].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
        checksum(&mut leaf, sum);
    }
    put(FS_TREE, &leaf);
    // The checksum tree: one item of the checksum of each sector of the regular file's data.
    let sums: Vec<u8> = big().chunks(NODE).flat_map(|s| sum.of(s)).collect();
    put(
        CSUM_TREE,
        &tree(CSUM_TREE, 7, 0, vec![(key(-10i64 as u64, 128, addr(DATA)), sums)]),
    );
    let mut data = big();
    if fault == Fault::Data {
        data[NODE + 7] ^= 1;
    }
    put(DATA, &data);
    put(
        LOOP,
        &tree(
            LOOP,
            5,
            1,
            vec![(key(256, 1, 0), addr(LOOP).to_le_bytes().to_vec())],
        ),
    );
    [sb, chunk].concat()
}

/// The seeds: a small Btrfs that reads right, by its file name in `fuzz/corpus/btrfs/`, one per
/// checksum the reader computes.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    [
        ("seed", Sum::Crc32c),
        ("xxhash64", Sum::Xxhash64),
        ("sha256", Sum::Sha256),
    ]
    .into_iter()
    .map(|(name, sum)| (name, build(sum, PHYSICAL, (FS_TREE, 0), Fault::None)))
    .collect()
}

/// Damaged seeds: the chunk mapped past the end of the device, the FS tree's root a node whose one
/// child is itself (a level loop), an item whose data lies outside its leaf, a data sector that
/// does not match its checksum.
pub fn hostile_seeds() -> Vec<Vec<u8>> {
    let sum = Sum::Crc32c;
    vec![
        build(sum, 1 << 40, (FS_TREE, 0), Fault::None),
        build(sum, PHYSICAL, (LOOP, 1), Fault::None),
        build(sum, PHYSICAL, (FS_TREE, 0), Fault::Item),
        build(sum, PHYSICAL, (FS_TREE, 0), Fault::Data),
    ]
}
