//! A volume group as its metadata text describes it, and a logical volume read as a device of its
//! own ([`Lv`]): each segment's bytes mapped onto the physical volumes' extents — one area for a
//! linear segment, chunks dealt round the areas for a striped one, as the device mapper's `linear`
//! and `striped` targets do — or, for a thin volume, its pool's data LV as the pool's metadata LV
//! maps it (`thin`). Every number of the text is checked before it becomes an offset: segments
//! follow each other from extent 0, each area lies inside its PV's extents.

use std::io;

use super::text::{self, Section, Value};
use super::thin::Thin;
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
    /// Logical volumes, in the text's order: (name, its section, whether it is visible) — the
    /// hidden ones are a thin pool's metadata and data.
    lvs: Vec<(String, Section, bool)>,
}

/// A logical volume read as a device: its bytes, from the PVs its segments map, or from its thin
/// pool.
#[derive(Debug)]
pub struct Lv<R> {
    size: u64,
    map: Map<R>,
}

#[derive(Debug)]
enum Map<R> {
    Segments { segments: Vec<Segment>, pvs: Vec<R> },
    Thin(Box<Thin<Lv<R>, Lv<R>>>),
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
            .map(|(n, s)| (n.to_owned(), s.clone(), visible(s)))
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

    /// The names of its visible logical volumes that may hold a filesystem (not thin pools), in
    /// the text's order.
    pub fn lv_names(&self) -> impl Iterator<Item = &str> {
        self.lvs
            .iter()
            .filter(|(_, s, visible)| *visible && first_type(s) != Some("thin-pool"))
            .map(|(n, ..)| n.as_str())
    }

    /// The section of logical volume `lv`, visible or not.
    fn lv(&self, lv: &str) -> io::Result<&Section> {
        self.lvs
            .iter()
            .find(|(n, ..)| n == lv)
            .map(|(_, s, _)| s)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no LV {}/{lv}", self.name)))
    }

    /// Logical volume `lv` read through `pvs` ((UUID as the label stores it, the PV's bytes), in
    /// any order). A PV the volume needs and `pvs` lacks is `NotFound`; a segment type other than
    /// linear, striped or thin is `Unsupported`, named.
    pub fn open<R: ReadAt + Clone>(&self, lv: &str, pvs: &[(String, R)]) -> io::Result<Lv<R>> {
        let s = self.lv(lv)?;
        if first_type(s) == Some("thin") {
            return self.open_thin(lv, s, pvs);
        }
        self.open_mapped(lv, pvs)
    }

    /// `lv` when its segments map PV extents (linear, striped).
    fn open_mapped<R: ReadAt + Clone>(&self, lv: &str, pvs: &[(String, R)]) -> io::Result<Lv<R>> {
        let vg = format!("{}/{lv}", self.name);
        let s = self.lv(lv)?;
        let count = usize::try_from(uint(s, "segment_count", &vg)?).unwrap_or(usize::MAX);
        if count == 0 || count > MAX_SEGMENTS {
            return Err(bad(&vg, format!("{count} segments")));
        }
        let (mut size, mut segments, mut devices) = (0, Vec::new(), Vec::new());
        for i in 1..=count {
            let seg = s
                .section(&format!("segment{i}"))
                .ok_or_else(|| bad(&vg, format!("segment{i} is missing")))?;
            let made = self.segment(&vg, i, seg, pvs, size, &mut devices)?;
            size = made.start + made.len;
            segments.push(made);
        }
        Ok(Lv {
            size,
            map: Map::Segments {
                segments,
                pvs: devices,
            },
        })
    }

    /// Thin volume `lv` (section `s`): its pool's metadata and data LVs (linear or striped) and
    /// the device mapped in that metadata.
    fn open_thin<R: ReadAt + Clone>(&self, lv: &str, s: &Section, pvs: &[(String, R)]) -> io::Result<Lv<R>> {
        let vg = format!("{}/{lv}", self.name);
        let seg = s
            .section("segment1")
            .filter(|_| s.int("segment_count") == Some(1))
            .ok_or_else(|| bad(&vg, "a thin volume of other than one segment".into()))?;
        let extents = uint(seg, "extent_count", &vg)?;
        let size = extents
            .checked_mul(self.extent)
            .filter(|_| seg.int("start_extent") == Some(0))
            .ok_or_else(|| bad(&vg, format!("a thin segment of {extents} extents")))?;
        let device_id = uint(seg, "device_id", &vg)?;
        let (pool_name, pool_seg) = self.pool_of(&vg, seg)?;
        let part = |key: &str| {
            pool_seg
                .str(key)
                .ok_or_else(|| bad(&vg, format!("its pool {pool_name} has no {key} LV")))
        };
        let (meta_name, data_name) = (part("metadata")?, part("pool")?);
        let chunk = uint(pool_seg, "chunk_size", &vg)?;
        // The pool's parts and an external origin are read through their PV extents only: a
        // thin volume is never read through another thin one.
        let origin = match seg.str("external_origin") {
            Some(o) => Some(self.open_mapped(o, pvs)?),
            None => None,
        };
        let thin = Thin::open(
            format!("LV {}/{pool_name}'s metadata ({meta_name})", self.name),
            self.open_mapped(meta_name, pvs)?,
            self.open_mapped(data_name, pvs)?,
            origin,
            device_id,
            chunk,
            size,
        )?;
        Ok(Lv {
            size,
            map: Map::Thin(Box::new(thin)),
        })
    }

    /// The pool of the thin segment `seg` of `vg`: its name and its segment.
    fn pool_of<'a>(&'a self, vg: &str, seg: &Section) -> io::Result<(&'a str, &'a Section)> {
        let name = seg
            .str("thin_pool")
            .ok_or_else(|| bad(vg, "its thin_pool is missing".into()))?;
        let (name, pool, _) = self
            .lvs
            .iter()
            .find(|(n, ..)| n == name)
            .ok_or_else(|| bad(vg, format!("its pool {name} is not in the volume group")))?;
        let seg = pool
            .section("segment1")
            .filter(|p| p.str("type") == Some("thin-pool"))
            .ok_or_else(|| bad(vg, format!("its pool {name} is no thin pool")))?;
        Ok((name, seg))
    }

    /// For thin volume `lv`: its pool's name and metadata LV (read through `pvs`); `None` for any
    /// other volume. What `thin_check` is run on after a write.
    pub fn thin_pool<R: ReadAt + Clone>(
        &self,
        lv: &str,
        pvs: &[(String, R)],
    ) -> io::Result<Option<(String, Lv<R>)>> {
        let vg = format!("{}/{lv}", self.name);
        let Some(seg) = self
            .lv(lv)?
            .section("segment1")
            .filter(|s| s.str("type") == Some("thin"))
        else {
            return Ok(None);
        };
        let (name, pool) = self.pool_of(&vg, seg)?;
        let meta = pool
            .str("metadata")
            .ok_or_else(|| bad(&vg, format!("its pool {name} has no metadata LV")))?;
        Ok(Some((name.to_owned(), self.open_mapped(meta, pvs)?)))
    }

    /// One linear or striped segment, the areas it needs appended to `devices`; it must start at
    /// byte `at`.
    fn segment<R: ReadAt + Clone>(
        &self,
        vg: &str,
        i: usize,
        seg: &Section,
        pvs: &[(String, R)],
        at_byte: u64,
        devices: &mut Vec<R>,
    ) -> io::Result<Segment> {
        let kind = seg.str("type").unwrap_or("");
        if kind != "striped" {
            let what = match kind {
                "thin" => "a thin segment among others, or a thin pool's part".to_owned(),
                "thin-pool" => "a thin pool (its thin volumes are read, not it)".to_owned(),
                k => format!("a {k:?} segment (only linear, striped and thin ones are read)"),
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
        if at != at_byte || extents == 0 || stripes == 0 || stripes > 128 || !extents.is_multiple_of(stripes)
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
            devices.push(r.clone());
            areas.push((devices.len() - 1, offset));
        }
        Ok(Segment {
            start: at,
            len,
            chunk,
            areas,
        })
    }

    /// Warnings about logical volume `lv` once opened: what a reader of it must know of its
    /// pool — metadata the kernel marked as needing a check, an external origin.
    pub fn warnings<R: ReadAt>(&self, lv: &str, opened: &Lv<R>) -> Vec<String> {
        let Map::Thin(t) = &opened.map else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if t.needs_check {
            out.push(format!(
                "LV {}/{lv}: its thin pool's metadata is marked as needing a check (needs_check):                  what was read may be damaged; run thin_check, then lvconvert --repair on the pool",
                self.name
            ));
        }
        if t.has_origin() {
            out.push(format!(
                "LV {}/{lv}: a thin volume of an external origin: the blocks it never wrote were                  read from that origin",
                self.name
            ));
        }
        out
    }
}

impl<R> Lv<R> {
    /// Whether it is a thin volume whose pool's metadata the kernel marked as needing a check.
    pub fn needs_check(&self) -> bool {
        matches!(&self.map, Map::Thin(t) if t.needs_check)
    }
}

/// The type of a logical volume's first segment.
fn first_type(s: &Section) -> Option<&str> {
    s.section("segment1")?.str("type")
}

impl<R: ReadAt> ReadAt for Lv<R> {
    /// Fills `buf` chunk by chunk (`disk::fill`).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        crate::disk::fill(buf, offset, |b, at| self.read_chunk(b, at))
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }
}

impl<R: ReadAt> Lv<R> {
    /// Reads from `offset` to the end of its stripe chunk (or segment) at most.
    fn read_chunk(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let (segments, pvs) = match &self.map {
            Map::Segments { segments, pvs } => (segments, pvs),
            Map::Thin(t) => return t.read_at(buf, offset),
        };
        let Some(seg) = segments.iter().find(|s| offset < s.start + s.len) else {
            return Ok(0);
        };
        let rel = offset - seg.start;
        let (chunk_no, within) = (rel / seg.chunk, rel % seg.chunk);
        let n = seg.areas.len() as u64;
        let (pv, base) = seg.areas[(chunk_no % n) as usize];
        // Checked when the segment was made: the area lies inside its PV.
        let at = base + (chunk_no / n) * seg.chunk + within;
        let len = (buf.len() as u64).min(seg.chunk - within) as usize;
        pvs[pv].read_at(&mut buf[..len], at)
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
        // One call fills the buffer across chunks, so a window paying each call's length pays
        // each byte once (it paid 6 + 5 + … + 1 sectors, one call per chunk).
        let w = crate::disk::Window::rest(&v, 0, crate::disk::Work::new()).unwrap();
        assert_eq!(w.read_at(&mut buf, 0).unwrap(), 6 * 512);
        assert_eq!(w.work().spent(), (1, 6 * 512));
    }

    #[test]
    fn thin_volumes_and_bad_maps_are_named() {
        let pvs = pvs();
        let refs = refs(&pvs);
        let seg = |body: &str| lv("x", &format!("segment_count = 1\nsegment1 {{\n{body}}}\n"));
        let bad = io::ErrorKind::InvalidData;
        for (body, kind, says) in [
            (
                "start_extent = 0\nextent_count = 4\ntype = \"thin\"\nthin_pool = \"pool\"\ndevice_id = 1\n"
                    .to_owned(),
                bad,
                "vg/x: its pool pool is not in the volume group",
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

    /// A thin volume is read through its pool's hidden metadata and data LVs; the pool itself and
    /// its parts are no filesystem to look in.
    #[test]
    fn a_thin_volume_opens_its_pools_metadata() {
        let hidden = |name: &str, first: u64| {
            format!(
                "{name} {{\nstatus = [\"READ\"]\nsegment_count = 1\nsegment1 {{\n{}}}\n}}\n",
                striped(0, 8, &format!("\"pv0\", {first}"))
            )
        };
        let g = group(&format!(
            "{}{}{}{}",
            lv(
                "pool",
                "segment_count = 1\nsegment1 {\nstart_extent = 0\nextent_count = 8\ntype = \"thin-pool\"\n\
                 metadata = \"pool_tmeta\"\npool = \"pool_tdata\"\nchunk_size = 128\n}\n"
            ),
            lv(
                "thin",
                "segment_count = 1\nsegment1 {\nstart_extent = 0\nextent_count = 40\ntype = \"thin\"\n\
                 thin_pool = \"pool\"\ndevice_id = 1\n}\n"
            ),
            hidden("pool_tmeta", 0),
            hidden("pool_tdata", 8),
        ));
        assert_eq!(g.lv_names().collect::<Vec<_>>(), ["thin"]);
        let pvs = pvs();
        let e = g.open("thin", &refs(&pvs)).unwrap_err();
        assert!(
            e.to_string()
                .contains("LV vg/pool's metadata (pool_tmeta): no dm-thin superblock"),
            "{e}"
        );
        let (pool, meta) = g.thin_pool("thin", &refs(&pvs)).unwrap().unwrap();
        assert_eq!((pool.as_str(), meta.size().unwrap()), ("pool", 8 * 512));
        assert!(g.thin_pool("pool_tdata", &refs(&pvs)).unwrap().is_none());
    }
}
