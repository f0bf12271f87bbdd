//! A volume group as its metadata text describes it, and a logical volume read as a device of its
//! own ([`Lv`]): each segment's bytes mapped onto the physical volumes' extents — one area for a
//! linear segment, chunks dealt round the areas for a striped one, as the device mapper's `linear`
//! and `striped` targets do. Every number of the text is checked before it becomes an offset:
//! segments follow each other from extent 0, each area lies inside its PV's extents.

use std::io;

use super::text::{self, Section, Value};
use crate::disk::{ReadAt, corrupt};

const SECTOR: u64 = 512;
/// Segments of one logical volume, at most.
const MAX_SEGMENTS: usize = 4096;

/// A volume group: its extent size and its PVs and LVs, as its newest text says.
#[derive(Debug, Clone)]
pub struct VolumeGroup {
    pub name: String,
    id: String,
    seqno: i64,
    /// Bytes per extent.
    extent: u64,
    /// (name in the text, UUID without dashes, first extent's byte offset, extent count).
    pvs: Vec<(String, String, u64, u64)>,
    /// Visible logical volumes, in the text's order: (name, its section).
    lvs: Vec<(String, Section)>,
}

/// A logical volume read as a device: its bytes, from the PVs its segments map.
#[derive(Debug)]
pub struct Lv<R> {
    size: u64,
    segments: Vec<Segment>,
    pvs: Vec<R>,
}

#[derive(Debug)]
struct Segment {
    start: u64,
    len: u64,
    /// The stripe chunk in bytes (a linear segment: its whole length).
    chunk: u64,
    /// (index into the PVs, byte offset of the area in that PV).
    areas: Vec<(usize, u64)>,
}

fn bad(vg: &str, what: String) -> io::Error {
    corrupt(format!("LVM volume group {vg}: {what}"))
}

/// The volume groups the PVs' texts describe, each from its newest text (highest sequence number).
pub fn groups(texts: &[&[u8]]) -> io::Result<Vec<VolumeGroup>> {
    let mut out: Vec<VolumeGroup> = Vec::new();
    for t in texts {
        let top = text::parse(t)?;
        let Some((name, vg)) = top.sections().next() else {
            continue;
        };
        let g = VolumeGroup::parse(name, vg)?;
        match out.iter_mut().find(|o| o.id == g.id) {
            Some(o) if o.seqno < g.seqno => *o = g,
            Some(_) => {}
            None => out.push(g),
        }
    }
    Ok(out)
}

fn uint(s: &Section, key: &str, vg: &str) -> io::Result<u64> {
    s.int(key)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| bad(vg, format!("{key} is missing or negative")))
}

impl VolumeGroup {
    fn parse(name: &str, vg: &Section) -> io::Result<VolumeGroup> {
        let extent_sectors = uint(vg, "extent_size", name)?;
        if extent_sectors == 0 || extent_sectors > 1 << 32 {
            return Err(bad(name, format!("extent size of {extent_sectors} sectors")));
        }
        let mut pvs = Vec::new();
        for (pv, s) in vg
            .section("physical_volumes")
            .into_iter()
            .flat_map(Section::sections)
        {
            let id = s.str("id").ok_or_else(|| bad(name, format!("{pv} has no id")))?;
            let pe_start = uint(s, "pe_start", name)?
                .checked_mul(SECTOR)
                .ok_or_else(|| bad(name, format!("{pv}'s pe_start")))?;
            pvs.push((
                pv.to_owned(),
                id.replace('-', ""),
                pe_start,
                uint(s, "pe_count", name)?,
            ));
        }
        let visible = |s: &Section| match s.get("status") {
            Some(Value::List(l)) => l.contains(&Value::Str("VISIBLE".into())),
            _ => false,
        };
        let lvs = vg
            .section("logical_volumes")
            .into_iter()
            .flat_map(Section::sections)
            .filter(|(_, s)| visible(s))
            .map(|(n, s)| (n.to_owned(), s.clone()))
            .collect();
        Ok(VolumeGroup {
            name: name.to_owned(),
            id: vg.str("id").unwrap_or_default().to_owned(),
            seqno: vg.int("seqno").unwrap_or(0),
            extent: extent_sectors * SECTOR,
            pvs,
            lvs,
        })
    }

    /// Whether the PV of UUID `uuid` (as its label stores it) is one of its own.
    pub fn has_pv(&self, uuid: &str) -> bool {
        self.pvs.iter().any(|p| p.1 == uuid)
    }

    /// The names of its visible logical volumes, in the text's order.
    pub fn lv_names(&self) -> impl Iterator<Item = &str> {
        self.lvs.iter().map(|(n, _)| n.as_str())
    }

    /// Logical volume `lv` read through `pvs` ((UUID as the label stores it, the PV's bytes), in
    /// any order). A PV the volume needs and `pvs` lacks is `NotFound`; a segment type other than
    /// linear or striped is `Unsupported`, named.
    pub fn open<R: ReadAt + Clone>(&self, lv: &str, pvs: &[(String, R)]) -> io::Result<Lv<R>> {
        let vg = format!("{}/{lv}", self.name);
        let s = &self
            .lvs
            .iter()
            .find(|(n, _)| n == lv)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no LV {vg}")))?
            .1;
        let count = usize::try_from(uint(s, "segment_count", &vg)?).unwrap_or(usize::MAX);
        if count == 0 || count > MAX_SEGMENTS {
            return Err(bad(&vg, format!("{count} segments")));
        }
        let mut out = Lv {
            size: 0,
            segments: Vec::new(),
            pvs: Vec::new(),
        };
        for i in 1..=count {
            let seg = s
                .section(&format!("segment{i}"))
                .ok_or_else(|| bad(&vg, format!("segment{i} is missing")))?;
            self.segment(&vg, i, seg, pvs, &mut out)?;
        }
        Ok(out)
    }

    fn segment<R: ReadAt + Clone>(
        &self,
        vg: &str,
        i: usize,
        seg: &Section,
        pvs: &[(String, R)],
        lv: &mut Lv<R>,
    ) -> io::Result<()> {
        let kind = seg.str("type").unwrap_or("");
        if kind != "striped" {
            let what = match kind {
                "thin" | "thin-pool" => "a thin volume (dm-thin metadata is not read)".to_owned(),
                k => format!("a {k:?} segment (only linear and striped ones are read)"),
            };
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("LV {vg}: {what}"),
            ));
        }
        let (start, extents) = (uint(seg, "start_extent", vg)?, uint(seg, "extent_count", vg)?);
        let stripes = uint(seg, "stripe_count", vg)?;
        let len = extents.checked_mul(self.extent);
        let at = start.checked_mul(self.extent);
        let (Some(len), Some(at)) = (len, at) else {
            return Err(bad(vg, format!("segment{i}: extents {start}+{extents}")));
        };
        if at != lv.size || extents == 0 || stripes == 0 || stripes > 128 || !extents.is_multiple_of(stripes)
        {
            return Err(bad(
                vg,
                format!("segment{i}: {extents} extents from {start} in {stripes} stripes"),
            ));
        }
        let per_area = extents / stripes;
        let chunk = if stripes == 1 {
            len
        } else {
            let c = uint(seg, "stripe_size", vg)?.saturating_mul(SECTOR);
            if !c.is_power_of_two() || !(per_area * self.extent).is_multiple_of(c) {
                return Err(bad(vg, format!("segment{i}: stripes of {c} bytes")));
            }
            c
        };
        let list = match seg.get("stripes") {
            Some(Value::List(l)) if l.len() as u64 == stripes * 2 => l,
            _ => {
                return Err(bad(
                    vg,
                    format!("segment{i}: stripes do not list {stripes} areas"),
                ));
            }
        };
        let mut areas = Vec::new();
        for pair in list.chunks_exact(2) {
            let (Value::Str(pv), Value::Int(first)) = (&pair[0], &pair[1]) else {
                return Err(bad(
                    vg,
                    format!("segment{i}: an area is not a PV name and an extent"),
                ));
            };
            let (_, uuid, pe_start, pe_count) = self
                .pvs
                .iter()
                .find(|p| &p.0 == pv)
                .ok_or_else(|| bad(vg, format!("segment{i}: no PV {pv}")))?;
            let first = u64::try_from(*first).unwrap_or(u64::MAX);
            if first.checked_add(per_area).is_none_or(|end| end > *pe_count) {
                return Err(bad(
                    vg,
                    format!("segment{i}: extents {first}+{per_area} of {pv}'s {pe_count}"),
                ));
            }
            let offset = first
                .checked_mul(self.extent)
                .and_then(|o| o.checked_add(*pe_start))
                .ok_or_else(|| bad(vg, format!("segment{i}: extent {first} of {pv}")))?;
            let (_, r) = pvs.iter().find(|(u, _)| u == uuid).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("LV {vg}: its PV {pv} (UUID {uuid}) is not in the image"),
                )
            })?;
            let end = offset.checked_add(per_area * self.extent);
            if end.is_none_or(|end| end > r.size().unwrap_or(0)) {
                return Err(bad(vg, format!("segment{i}: {pv} ends before its extents do")));
            }
            lv.pvs.push(r.clone());
            let index = lv.pvs.len() - 1;
            areas.push((index, offset));
        }
        lv.segments.push(Segment {
            start: at,
            len,
            chunk,
            areas,
        });
        lv.size = at + len;
        Ok(())
    }
}

impl<R: ReadAt> ReadAt for Lv<R> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Some(seg) = self.segments.iter().find(|s| offset < s.start + s.len) else {
            return Ok(0);
        };
        let rel = offset - seg.start;
        let (chunk_no, within) = (rel / seg.chunk, rel % seg.chunk);
        let n = seg.areas.len() as u64;
        let (pv, base) = seg.areas[(chunk_no % n) as usize];
        // Checked when the segment was made: the area lies inside its PV.
        let at = base + (chunk_no / n) * seg.chunk + within;
        let len = (buf.len() as u64).min(seg.chunk - within) as usize;
        self.pvs[pv].read_at(&mut buf[..len], at)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::read_at;

    /// A VG of 1-sector extents on two PVs of 64 sectors (data from sector 8), with `lvs`.
    fn group(lvs: &str) -> VolumeGroup {
        let text = format!(
            "vg {{\nid = \"g\"\nseqno = 1\nextent_size = 1\nphysical_volumes {{\n\
             pv0 {{\nid = \"aaaa-bbbb\"\npe_start = 8\npe_count = 56\n}}\n\
             pv1 {{\nid = \"cccc\"\npe_start = 8\npe_count = 56\n}}\n}}\n\
             logical_volumes {{\n{lvs}}}\n}}\n"
        );
        groups(&[text.as_bytes()]).unwrap().remove(0)
    }

    fn lv(name: &str, segments: &str) -> String {
        format!("{name} {{\nstatus = [\"READ\", \"VISIBLE\"]\n{segments}}}\n")
    }

    /// Two PVs whose every byte says which PV and sector it is.
    fn pvs() -> Vec<(String, Vec<u8>)> {
        ["aaaabbbb", "cccc"]
            .iter()
            .enumerate()
            .map(|(p, id)| {
                (
                    id.to_string(),
                    (0..64 * 512).map(|i| (p * 100 + i / 512) as u8).collect(),
                )
            })
            .collect()
    }

    /// The PVs as `open` takes them.
    fn refs(pvs: &[(String, Vec<u8>)]) -> Vec<(String, &Vec<u8>)> {
        pvs.iter().map(|(u, b)| (u.clone(), b)).collect()
    }

    /// A one-stripe segment's body: `count` extents from `start`, on `stripes` (`"pv0", 0`).
    fn striped(start: u64, count: u64, stripes: &str) -> String {
        format!(
            "start_extent = {start}\nextent_count = {count}\ntype = \"striped\"\nstripe_count = 1\n\
             stripes = [{stripes}]\n"
        )
    }

    #[test]
    fn linear_and_striped_segments_map_as_the_device_mapper_does() {
        let g = group(&lv(
            "root",
            "segment_count = 2\n\
             segment1 {\nstart_extent = 0\nextent_count = 2\ntype = \"striped\"\nstripe_count = 1\nstripes = [\"pv1\", 5]\n}\n\
             segment2 {\nstart_extent = 2\nextent_count = 4\ntype = \"striped\"\nstripe_count = 2\nstripe_size = 1\nstripes = [\"pv0\", 0, \"pv1\", 10]\n}\n",
        ));
        assert_eq!(g.lv_names().collect::<Vec<_>>(), ["root"]);
        assert!(g.has_pv("aaaabbbb") && !g.has_pv("aaaa-bbbb"));
        let pvs = pvs();
        let v = g.open("root", &refs(&pvs)).unwrap();
        assert_eq!(v.size().unwrap(), 6 * 512);
        let mut buf = vec![0u8; 6 * 512];
        assert!(read_at(&v, 0, &mut buf).unwrap());
        let sectors: Vec<u8> = buf.chunks(512).map(|s| s[0]).collect();
        // pv1 sectors 13, 14; then chunks dealt: pv0 8, pv1 18, pv0 9, pv1 19.
        assert_eq!(sectors, [113, 114, 8, 118, 9, 119]);
        assert!(!read_at(&v, 6 * 512 - 1, &mut [0u8; 2]).unwrap());
    }

    #[test]
    fn thin_volumes_and_bad_maps_are_named() {
        let pvs = pvs();
        let refs = refs(&pvs);
        let seg = |body: &str| lv("x", &format!("segment_count = 1\nsegment1 {{\n{body}}}\n"));
        let bad = io::ErrorKind::InvalidData;
        for (body, kind, says) in [
            (
                "start_extent = 0\nextent_count = 4\ntype = \"thin\"\nthin_pool = \"pool\"\n".to_owned(),
                io::ErrorKind::Unsupported,
                "LV vg/x: a thin volume (dm-thin metadata is not read)",
            ),
            (
                "start_extent = 0\nextent_count = 4\ntype = \"raid1\"\n".to_owned(),
                io::ErrorKind::Unsupported,
                "a \"raid1\" segment",
            ),
            (striped(0, 4, "\"pv0\", 54"), bad, "extents 54+4 of pv0's 56"),
            (striped(1, 4, "\"pv0\", 0"), bad, "4 extents from 1"),
            (striped(0, 4, "\"pv9\", 0"), bad, "no PV pv9"),
            (
                striped(0, i64::MAX as u64, "\"pv0\", 0"),
                bad,
                "extents 0+9223372036854775807",
            ),
        ] {
            let e = group(&seg(&body)).open("x", &refs).unwrap_err();
            assert_eq!(e.kind(), kind, "{e}");
            assert!(e.to_string().contains(says), "{e}");
        }
        // A PV the image lacks.
        let e = group(&seg(&striped(0, 1, "\"pv1\", 0")))
            .open("x", &refs[..1])
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }
}
