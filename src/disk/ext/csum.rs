//! ext4's `metadata_csum`: the CRC-32C (the kernel's: no final inversion) each metadata structure
//! carries, verified as the reader meets it — the superblock, a group descriptor (16 bits of it)
//! and the group's block and inode bitmaps (once per group, with its descriptor), an inode (its
//! extra part included), an extent tree block, a directory leaf block (its tail entry) and an htree
//! index block (its `dx_tail`). The seed is `s_checksum_seed` under `metadata_csum_seed`, else the
//! CRC of the UUID; an inode's structures are seeded further with its number and generation.
//! Without `metadata_csum`, the older `gdt_csum` (`uninit_bg`): a CRC-16 of the UUID, the group's
//! number and its descriptor. A failure is damage naming the structure, where it is and which
//! checksum: what the kernel would refuse to read (EFSBADCRC) is not read here either.

use std::io;

use super::rec_len;
use crate::disk::crc::{crc16, crc32c_raw};
use crate::disk::tree::corrupt;
use crate::disk::{le16, le32};

const RO_COMPAT_GDT_CSUM: u32 = 0x0010;
const RO_COMPAT_METADATA_CSUM: u32 = 0x0400;
/// `bg_flags`: the group's inode or block bitmap was never written (the kernel makes it in memory).
const BG_INODE_UNINIT: u16 = 0x1;
const BG_BLOCK_UNINIT: u16 = 0x2;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;
/// The directory-entry type byte of a leaf block's checksum tail.
const TAIL_TYPE: u8 = 0xDE;
/// `i_flags`: the directory is an htree.
pub(super) const FLAG_INDEX: u32 = 0x1000;

/// The seed of every checksum of the filesystem whose superblock is `sb`; `None` without
/// `metadata_csum`.
pub(super) fn seed(sb: &[u8]) -> Option<u32> {
    if le32(sb, 0x64) & RO_COMPAT_METADATA_CSUM == 0 {
        return None;
    }
    Some(if le32(sb, 0x60) & INCOMPAT_CSUM_SEED != 0 {
        le32(sb, 0x270)
    } else {
        crc32c_raw(!0, &sb[0x68..0x78])
    })
}

/// CRC-32C from `seed` over `parts`, each `Err(n)` standing for that many zero bytes (the checksum's
/// own field).
fn crc(seed: u32, parts: &[Result<&[u8], usize>]) -> u32 {
    parts.iter().fold(seed, |c, p| match p {
        Ok(bytes) => crc32c_raw(c, bytes),
        Err(zeros) => crc32c_raw(c, &[0u8; 4][..*zeros]),
    })
}

fn fails(what: &str, stored: u32, counted: u32) -> io::Error {
    fails_as("metadata_csum", what, stored, counted)
}

fn fails_as(sum: &str, what: &str, stored: u32, counted: u32) -> io::Error {
    corrupt(format!(
        "ext: {what}: checksum fails ({sum}: {stored:#x} stored, {counted:#x} counted)"
    ))
}

/// The UUID that seeds `gdt_csum`'s descriptor checksums, when that is the filesystem's
/// descriptor checksum (`gdt_csum` without `metadata_csum`, which supersedes it).
pub(super) fn gdt_uuid(sb: &[u8]) -> Option<[u8; 16]> {
    let ro = le32(sb, 0x64);
    (ro & RO_COMPAT_GDT_CSUM != 0 && ro & RO_COMPAT_METADATA_CSUM == 0)
        .then(|| sb[0x68..0x78].try_into().expect("16 bytes"))
}

/// Group `g`'s descriptor `desc` under `gdt_csum`: the kernel's `crc16` from !0 over the UUID,
/// the group's number, the descriptor without its checksum at 0x1E.
pub(super) fn gdt_descriptor(uuid: &[u8; 16], g: u64, desc: &[u8]) -> io::Result<()> {
    let c = crc16(!0, uuid);
    let c = crc16(c, &(g as u32).to_le_bytes());
    let c = crc16(c, &desc[..0x1E]);
    let counted = u32::from(crc16(c, &desc[0x20..]));
    let stored = u32::from(le16(desc, 0x1E));
    if stored != counted {
        return Err(fails_as(
            "gdt_csum",
            &format!("group {g}'s descriptor"),
            stored,
            counted,
        ));
    }
    Ok(())
}

/// Whether group `g`'s descriptor `desc` says its inode (`inodes`) or block bitmap was ever
/// written: an uninitialised one has no checksum to verify.
pub(super) fn bitmap_written(desc: &[u8], inodes: bool) -> bool {
    let uninit = if inodes { BG_INODE_UNINIT } else { BG_BLOCK_UNINIT };
    le16(desc, 0x12) & uninit == 0
}

/// Group `g`'s inode (`inodes`) or block bitmap, at block `block`, its bits (one per inode or
/// block of the group) `bits`, against its checksum in the descriptor `desc`: 16 bits at 0x1A
/// (inodes) or 0x18 (blocks), 16 more at 0x3A or 0x38 in a 64-byte descriptor.
pub(super) fn bitmap(
    seed: u32,
    g: u64,
    desc: &[u8],
    inodes: bool,
    block: u64,
    bits: &[u8],
) -> io::Result<()> {
    let (lo, hi, kind) = match inodes {
        true => (0x1A, 0x3A, "inode"),
        false => (0x18, 0x38, "block"),
    };
    let counted = crc32c_raw(seed, bits);
    let (stored, counted) = if desc.len() >= 0x3C {
        (
            u32::from(le16(desc, lo)) | u32::from(le16(desc, hi)) << 16,
            counted,
        )
    } else {
        (u32::from(le16(desc, lo)), counted & 0xFFFF)
    };
    if stored != counted {
        let what = format!("group {g}'s {kind} bitmap (block {block})");
        return Err(fails(&what, stored, counted));
    }
    Ok(())
}

/// The superblock `sb` (1024 bytes), its checksum at 0x3FC.
pub(super) fn superblock(sb: &[u8]) -> io::Result<()> {
    let (stored, counted) = (le32(sb, 0x3FC), crc32c_raw(!0, &sb[..0x3FC]));
    if stored != counted {
        return Err(fails("superblock", stored, counted));
    }
    Ok(())
}

/// Group `g`'s descriptor `desc` (all its bytes), 16 bits of its checksum at 0x1E.
pub(super) fn descriptor(seed: u32, g: u64, desc: &[u8]) -> io::Result<()> {
    let g32 = (g as u32).to_le_bytes();
    let counted = crc(seed, &[Ok(&g32), Ok(&desc[..0x1E]), Err(2), Ok(&desc[0x20..])]) & 0xFFFF;
    let stored = u32::from(le16(desc, 0x1E));
    if stored != counted {
        return Err(fails(&format!("group {g}'s descriptor"), stored, counted));
    }
    Ok(())
}

/// The seed of inode `number`'s structures: its number and generation (`raw` at 0x64).
pub(super) fn inode_seed(seed: u32, number: u32, raw: &[u8]) -> u32 {
    crc(seed, &[Ok(&number.to_le_bytes()), Ok(&raw[0x64..0x68])])
}

/// Inode `number`, `raw` its `s_inode_size` bytes: 16 bits of checksum at 0x7C, 16 more at 0x82
/// when the extra part reaches them.
pub(super) fn inode(seed: u32, number: u32, raw: &[u8]) -> io::Result<()> {
    let s = inode_seed(seed, number, raw);
    let high = raw.len() > 128 && le16(raw, 0x80) >= 4;
    let counted = if high {
        crc(
            s,
            &[
                Ok(&raw[..0x7C]),
                Err(2),
                Ok(&raw[0x7E..0x82]),
                Err(2),
                Ok(&raw[0x84..]),
            ],
        )
    } else {
        crc(s, &[Ok(&raw[..0x7C]), Err(2), Ok(&raw[0x7E..])])
    };
    let (stored, counted) = if high {
        (
            u32::from(le16(raw, 0x7C)) | u32::from(le16(raw, 0x82)) << 16,
            counted,
        )
    } else {
        (u32::from(le16(raw, 0x7C)), counted & 0xFFFF)
    };
    if stored != counted {
        return Err(fails(&format!("inode {number}"), stored, counted));
    }
    Ok(())
}

/// An extent tree block `node` (block `block`) of inode `number`: the checksum after its `max`
/// entries.
pub(super) fn extent_block(seed: u32, number: u32, block: u64, node: &[u8], max: usize) -> io::Result<()> {
    let at = 12 + 12 * max;
    let what = || format!("inode {number}: extent tree block {block}");
    if at + 4 > node.len() {
        return Err(corrupt(format!("ext: {}: no room for its checksum", what())));
    }
    let (stored, counted) = (le32(node, at), crc32c_raw(seed, &node[..at]));
    if stored != counted {
        return Err(fails(&what(), stored, counted));
    }
    Ok(())
}

/// Directory block `index` (`b`, one whole block) of directory inode `number` (`flags` its
/// `i_flags`, `seed` its inode seed): an htree index block (block 0 of an htree, or a node — one
/// entry of inode 0 spanning the block) by its `dx_tail`, any other by its leaf tail, as the
/// kernel tells them apart.
pub(super) fn dir_block(seed: u32, number: u32, flags: u32, index: usize, b: &[u8]) -> io::Result<()> {
    let bs = b.len();
    let what = |kind: &str| format!("directory inode {number}, its block {index} ({kind})");
    let node = le32(b, 0) == 0 && rec_len(b, 0, bs as u64) == bs;
    if flags & FLAG_INDEX != 0 && (index == 0 || node) {
        // Where the count and limit are: after the fake entry of a node, after `.`, `..` and the
        // root's info in block 0.
        let count_at = if node {
            8
        } else if rec_len(b, 0, bs as u64) == 12
            && rec_len(b, 12, bs as u64) == bs - 12
            && b.get(24 + 5) == Some(&8)
        {
            0x20
        } else {
            return Err(corrupt(format!(
                "ext: {}: not an htree root",
                what("htree index")
            )));
        };
        let (limit, count) = (usize::from(le16(b, count_at)), usize::from(le16(b, count_at + 2)));
        let tail = count_at + 8 * limit;
        if count > limit || tail + 8 > bs {
            return Err(corrupt(format!(
                "ext: {}: {count} of {limit} entries leave no room for its checksum",
                what("htree index")
            )));
        }
        let counted = crc(
            seed,
            &[Ok(&b[..count_at + 8 * count]), Ok(&b[tail..tail + 4]), Err(4)],
        );
        let stored = le32(b, tail + 4);
        if stored != counted {
            return Err(fails(&what("htree index"), stored, counted));
        }
        return Ok(());
    }
    let t = bs - 12;
    if le32(b, t) != 0 || le16(b, t + 4) != 12 || b[t + 6] != 0 || b[t + 7] != TAIL_TYPE {
        return Err(corrupt(format!("ext: {}: no checksum tail", what("leaf"))));
    }
    let (stored, counted) = (le32(b, bs - 4), crc32c_raw(seed, &b[..t]));
    if stored != counted {
        return Err(fails(&what("leaf"), stored, counted));
    }
    Ok(())
}
