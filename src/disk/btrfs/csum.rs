//! Btrfs data checksums: each sector of a data extent has its checksum in the checksum tree (tree
//! 7, `EXTENT_CSUM` items keyed by the logical byte of their first sector, one checksum per sector
//! after it, of the filesystem's kind: `sum`), computed over the bytes on disk — a compressed extent's compressed bytes. The reader
//! checks every sector it reads of a file that keeps checksums (not `NODATASUM`, which `chattr +C`
//! and the `nodatasum` mount option set): a sector whose checksum differs, or that has none (the
//! kernel's "csum hole", an I/O error when it reads it), is damage naming the logical byte.

use std::io;

use super::btree::{Key, Root, Space, damaged};
use crate::disk::ReadAt;

/// The checksum tree's id, and the object id and type of its items.
pub(super) const CSUM_TREE: u64 = 7;
const EXTENT_CSUM_ID: u64 = -10i64 as u64;
const EXTENT_CSUM: u8 = 128;

/// Checks `bytes`, read from logical byte `logical` of `space` (whole sectors from a sector's
/// start), against the checksum tree `tree`.
pub(super) fn verify<R: ReadAt>(
    space: &Space<R>,
    tree: Option<Root>,
    logical: u64,
    bytes: &[u8],
) -> io::Result<()> {
    let sector = u64::from(space.sb.sector_size);
    let len = bytes.len() as u64;
    let end = logical
        .checked_add(len)
        .filter(|_| logical.is_multiple_of(sector) && len.is_multiple_of(sector))
        .ok_or_else(|| damaged(format!("the data at logical byte {logical} is not whole sectors")))?;
    if len == 0 {
        return Ok(());
    }
    let tree = tree.ok_or_else(|| damaged("a data extent, and no checksum tree"))?;
    let (sum, size) = (space.sb.sum, space.sb.sum.size());
    // Each sector's checksum, in order, and whether the tree has it.
    let sectors = (len / sector) as usize;
    let (mut want, mut found) = (vec![0u8; sectors * size], vec![false; sectors]);
    // An item holds at most a leaf's worth of checksums: one that covers `logical` starts
    // no further back than that.
    let span = u64::from(space.sb.node_size) / size as u64 * sector;
    let (lo, hi) = (
        Key::new(EXTENT_CSUM_ID, EXTENT_CSUM, logical.saturating_sub(span)),
        Key::new(EXTENT_CSUM_ID, EXTENT_CSUM, end - 1),
    );
    space.items(tree, lo, hi, &mut |key, sums| {
        if !key.off.is_multiple_of(sector) || !sums.len().is_multiple_of(size) {
            return Err(damaged(format!(
                "the checksums at logical byte {}: {} bytes, not whole sectors' worth",
                key.off,
                sums.len()
            )));
        }
        for (i, one) in sums.chunks_exact(size).enumerate() {
            let at = key.off.saturating_add(i as u64 * sector);
            if at >= end {
                break;
            }
            if at >= logical {
                let n = ((at - logical) / sector) as usize;
                want[n * size..(n + 1) * size].copy_from_slice(one);
                found[n] = true;
            }
        }
        Ok(true)
    })?;
    let each = bytes.chunks(sector as usize).zip(want.chunks(size)).zip(found);
    for (i, ((data, stored), found)) in each.enumerate() {
        let at = logical + i as u64 * sector;
        if !found {
            return Err(damaged(format!("the data at logical byte {at} has no checksum")));
        }
        if !sum.matches(data, stored) {
            return Err(damaged(format!(
                "the data at logical byte {at} does not match its checksum"
            )));
        }
    }
    Ok(())
}
