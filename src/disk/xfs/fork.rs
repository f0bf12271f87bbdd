//! Where an XFS file's data lies: the data fork's extent records, listed in the inode (extents
//! form) or in a B+tree of blocks rooted there (btree form, `bmbt`), and the bytes they map. The
//! tree is walked level by level down (a block claiming another level is damage, so no walk loops),
//! and the extents must come in order without overlapping, so no byte is read twice.

use std::io;

use super::inode::{Format, Inode};
use super::{Xfs, be16, be32, be64};
use crate::disk::ReadAt;
use crate::disk::tree::corrupt;

/// A bmbt deeper than this is damage (XFS's own bound with 64-bit extent counters is 9).
const MAX_LEVELS: u16 = 9;
const BMAP_MAGIC: u32 = 0x424D_4150;
const BMA3_MAGIC: u32 = 0x424D_4133;
/// v5 long-form btree block: CRC at 64, owner at 56, own disk address (512-byte units) at 24.
const BMA3_HEADER: usize = 72;
const BMAP_HEADER: usize = 24;

/// One extent record: `count` blocks from logical block `offset` of the file lie at `block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub block: u64,
    pub count: u64,
    /// Allocated but never written: reads as zeros.
    pub unwritten: bool,
}

/// The 128-bit packed record at the start of `b`.
fn unpack(b: &[u8]) -> Extent {
    let (l0, l1) = (be64(b, 0), be64(b, 8));
    Extent {
        unwritten: l0 >> 63 != 0,
        offset: (l0 & ((1 << 63) - 1)) >> 9,
        block: ((l0 & 0x1FF) << 43) | (l1 >> 21),
        count: l1 & ((1 << 21) - 1),
    }
}

impl<R: ReadAt> Xfs<R> {
    /// The data fork's extents of `ino`, in order of their offsets; an empty list for a local or
    /// device fork.
    pub(super) fn extents(&self, ino: &Inode) -> io::Result<Vec<Extent>> {
        let mut out = Vec::new();
        match ino.format {
            Format::Dev | Format::Local => return Ok(out),
            Format::Extents => {
                let n = usize::try_from(ino.extents).unwrap_or(usize::MAX);
                if n > ino.fork.len() / 16 {
                    return Err(corrupt(format!(
                        "xfs: inode {}: {n} extents in a {}-byte fork",
                        ino.number,
                        ino.fork.len()
                    )));
                }
                out.extend(ino.fork.chunks_exact(16).take(n).map(unpack));
            }
            Format::Btree => {
                let f = &ino.fork;
                let (level, recs) = (be16(f, 0), usize::from(be16(f, 2)));
                let max = (f.len() - 4) / 16;
                if level == 0 || level > MAX_LEVELS || recs > max {
                    return Err(corrupt(format!(
                        "xfs: inode {}: btree root of level {level} with {recs} records",
                        ino.number
                    )));
                }
                for i in 0..recs {
                    self.bmbt(ino.number, be64(f, 4 + max * 8 + i * 8), level - 1, &mut out)?;
                }
            }
        }
        let mut end = 0u64;
        for e in &out {
            if e.count == 0 || e.offset < end {
                return Err(corrupt(format!(
                    "xfs: inode {}: extent at block {} overlaps or is out of order",
                    ino.number, e.offset
                )));
            }
            end = e.offset + e.count;
        }
        Ok(out)
    }

    /// Appends the extents under bmbt block `fsb`, which must be at `level` and owned by `owner`.
    fn bmbt(&self, owner: u64, fsb: u64, level: u16, out: &mut Vec<Extent>) -> io::Result<()> {
        let b = self.read_blocks(fsb, 1)?;
        let what = || format!("inode {owner}'s extent tree block {fsb}");
        let header = if self.v5 { BMA3_HEADER } else { BMAP_HEADER };
        let magic = if self.v5 { BMA3_MAGIC } else { BMAP_MAGIC };
        if be32(&b, 0) != magic {
            return Err(corrupt(format!("xfs: no btree magic in {}", what())));
        }
        self.verify(&b, 64, what)?;
        if self.v5 && (be64(&b, 56) != owner || be64(&b, 24) != self.block_at(fsb)?.0 >> 9) {
            return Err(corrupt(format!("xfs: {} belongs elsewhere", what())));
        }
        let recs = usize::from(be16(&b, 6));
        let max = (b.len() - header) / 16;
        if be16(&b, 4) != level || recs > max {
            return Err(corrupt(format!(
                "xfs: {} says level {} with {recs} records where level {level} was due",
                what(),
                be16(&b, 4)
            )));
        }
        if level == 0 {
            out.extend(b[header..].chunks_exact(16).take(recs).map(unpack));
            return Ok(());
        }
        for i in 0..recs {
            self.bmbt(owner, be64(&b, header + max * 8 + i * 8), level - 1, out)?;
        }
        Ok(())
    }

    /// The first `len` bytes the data fork of `ino` maps (holes and unwritten extents as zeros).
    pub(super) fn data(&self, ino: &Inode, len: u64) -> io::Result<Vec<u8>> {
        if ino.format == Format::Local {
            return ino
                .fork
                .get(..len as usize)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| corrupt(format!("xfs: inode {}: {len} bytes in its fork", ino.number)));
        }
        let mut buf = vec![0u8; len as usize];
        for e in self.extents(ino)? {
            let Some(start) = e.offset.checked_mul(self.block_size()).filter(|&s| s < len) else {
                break;
            };
            let count = e.count.min((len - start).div_ceil(self.block_size()));
            if e.unwritten {
                continue;
            }
            let got = self.read_blocks(e.block, count)?;
            let n = got.len().min((len - start) as usize);
            buf[start as usize..start as usize + n].copy_from_slice(&got[..n]);
        }
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_unpack_as_xfs_packs_them() {
        // offset 5, block 0x1_2345_6789, 300 blocks, unwritten.
        let (off, block, count) = (5u64, 0x1_2345_6789u64, 300u64);
        let l0 = (1u64 << 63) | (off << 9) | (block >> 43);
        let l1 = ((block & ((1 << 43) - 1)) << 21) | count;
        let mut b = l0.to_be_bytes().to_vec();
        b.extend(l1.to_be_bytes());
        assert_eq!(
            unpack(&b),
            Extent {
                offset: off,
                block,
                count,
                unwritten: true
            }
        );
    }
}
