//! LVM2 physical volumes, read without the device mapper: the label (`LABELONE` in one of the first
//! four sectors, its CRC checked), the PV header (UUID, metadata areas), the newest metadata text
//! in the area's circular buffer (its header's and the text's CRCs checked), parsed (`text`) into
//! volume groups whose logical volumes are read through a [`vg::Lv`]: linear and striped segments
//! mapped onto the PVs' extents, thin volumes through their pool's dm-thin metadata (`thin`).
//! RAID, mirrors, caches and old-style snapshots are named and refused.

pub mod text;
pub mod thin;
pub mod vg;

use std::io;

use super::crc;
use super::{ReadAt, corrupt, le32, le64, read_at};

pub use vg::{Lv, VolumeGroup};

const SECTOR: u64 = 512;
const LABEL: &[u8; 8] = b"LABELONE";
const LABEL_TYPE: &[u8; 8] = b"LVM2 001";
const MDA_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
/// The metadata area's header; the circular buffer of text follows it.
const MDA_HEADER: u64 = 512;
/// Data and metadata area locations listed in a PV header, at most.
const MAX_AREAS: usize = 64;

/// A physical volume as its label says.
#[derive(Debug, Clone)]
pub struct Pv {
    /// The 32-character UUID as stored (the metadata text writes it with dashes).
    pub uuid: String,
    /// The newest volume group text in its metadata areas, if it has one.
    pub text: Option<Vec<u8>>,
}

/// The PV whose label is in the first four sectors of `r`, if any.
pub fn label<R: ReadAt + ?Sized>(r: &R) -> io::Result<Option<Pv>> {
    let mut s = [0u8; SECTOR as usize];
    for sector in 0..4 {
        if !read_at(r, sector * SECTOR, &mut s)? {
            return Ok(None);
        }
        if &s[..8] != LABEL {
            continue;
        }
        let what = |w: &str| corrupt(format!("LVM label in sector {sector}: {w}"));
        if le64(&s, 8) != sector || crc::lvm(&s[20..]) != le32(&s, 16) {
            return Err(what("its sector number or CRC is wrong"));
        }
        if &s[24..32] != LABEL_TYPE {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "LVM label of type {:?}: only LVM2 is read",
                    String::from_utf8_lossy(&s[24..32])
                ),
            ));
        }
        let at = le32(&s, 20) as usize;
        // The header: UUID (32), device size (8), then two lists of (offset, size) ending in zeros.
        let h = s
            .get(at..)
            .filter(|h| h.len() >= 40)
            .ok_or_else(|| what("its header is outside"))?;
        let uuid = String::from_utf8_lossy(&h[..32]).into_owned();
        let mut lists = [Vec::new(), Vec::new()];
        let mut p = 40;
        for list in &mut lists {
            loop {
                let pair = h
                    .get(p..p + 16)
                    .ok_or_else(|| what("its area list runs past the sector"))?;
                p += 16;
                let (offset, size) = (le64(pair, 0), le64(pair, 8));
                if offset == 0 {
                    break;
                }
                if list.len() == MAX_AREAS {
                    return Err(what("too many areas"));
                }
                list.push((offset, size));
            }
        }
        let mut text: Option<(u64, Vec<u8>)> = None;
        for &(offset, size) in &lists[1] {
            if let Some((seqno, t)) = metadata(r, offset, size)?
                && text.as_ref().is_none_or(|(s, _)| seqno > *s)
            {
                text = Some((seqno, t));
            }
        }
        return Ok(Some(Pv {
            uuid,
            text: text.map(|(_, t)| t),
        }));
    }
    Ok(None)
}

/// The newest text of the metadata area at `start` (`size` bytes, header included), with its
/// sequence number; `None` when the area holds none yet.
fn metadata<R: ReadAt + ?Sized>(r: &R, start: u64, size: u64) -> io::Result<Option<(u64, Vec<u8>)>> {
    let what = |w: String| corrupt(format!("LVM metadata area at byte {start}: {w}"));
    let mut h = [0u8; MDA_HEADER as usize];
    if size <= MDA_HEADER || !read_at(r, start, &mut h)? {
        return Err(what(format!("{size} bytes, or past the device")));
    }
    if &h[4..20] != MDA_MAGIC || crc::lvm(&h[4..]) != le32(&h, 0) {
        return Err(what("its header's magic or CRC is wrong".into()));
    }
    if le64(&h, 24) != start || le64(&h, 32) != size {
        return Err(what(format!(
            "its header says it lies at {}+{}",
            le64(&h, 24),
            le64(&h, 32)
        )));
    }
    // The first raw location is the committed metadata.
    let (offset, len, sum) = (le64(&h, 40), le64(&h, 48), le32(&h, 56));
    if offset == 0 {
        return Ok(None);
    }
    let room = size - MDA_HEADER;
    if offset < MDA_HEADER || offset >= size || len > room || len as usize > text::MAX_TEXT {
        return Err(what(format!("text of {len} bytes at {offset}")));
    }
    let mut t = vec![0u8; len as usize];
    // A text reaching the area's end goes on just after the header (a circular buffer).
    let first = (size - offset).min(len) as usize;
    let ok = read_at(r, start + offset, &mut t[..first])? && read_at(r, start + MDA_HEADER, &mut t[first..])?;
    if !ok {
        return Err(what("its text is past the device".into()));
    }
    if crc::lvm(&t) != sum {
        return Err(what("its text's CRC is wrong".into()));
    }
    let top = text::parse(&t)?;
    let seqno = top
        .sections()
        .next()
        .and_then(|(_, vg)| vg.int("seqno"))
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| what("its text holds no volume group with a sequence number".into()))?;
    Ok(Some((seqno, t)))
}
