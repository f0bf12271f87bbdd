//! VMDK hosted sparse extents (VMware's Virtual Disk Format 5.0, version 1–3 headers) holding the
//! whole disk in one file: `monolithicSparse` and `streamOptimized` (grains zlib-compressed behind a
//! marker; the grain directory found through the footer at the end). The embedded descriptor is
//! read for its `createType` and `parentCID`: a delta disk (with a parent) and other create types
//! are refused by name. The grain directory is read whole (bounded), one grain-table entry per grain.

use std::io;
use std::sync::{Arc, Mutex};

use super::{Disk, Format, Reader, Source, inside, read_exact, table};
use crate::disk::{ReadAt, corrupt, le32, le64};

pub const MAGIC: &[u8] = b"KDMV";
/// The grain directory lies in the footer (streamOptimized).
const GD_AT_END: u64 = u64::MAX;
const COMPRESSED: u32 = 1 << 16;
const ZEROED_GRAIN: u32 = 1 << 2;
/// The largest embedded descriptor read.
const MAX_DESCRIPTOR: u64 = 64 << 10;
/// The adapter types qemu's `adapter_type` takes (it writes `ide` unless told).
const ADAPTERS: [&str; 4] = ["ide", "buslogic", "lsilogic", "legacyESX"];

/// A sparse extent's virtual disk.
pub struct Vmdk {
    file: Source,
    file_len: u64,
    size: u64,
    /// Bytes in a grain.
    grain: u64,
    gtes: u64,
    gd: Vec<u32>,
    compressed: bool,
    zeroed: bool,
    /// The last compressed grain inflated (its index and bytes).
    last: Mutex<Option<(u64, Arc<Vec<u8>>)>>,
}

/// The header fields used, from the header at the start or (streamOptimized) in the footer.
struct Header {
    flags: u32,
    capacity: u64,
    grain: u64,
    descriptor: (u64, u64),
    gtes: u32,
    gd: u64,
}

fn header(b: &[u8]) -> io::Result<Header> {
    if !b.starts_with(MAGIC) {
        return Err(corrupt("a VMDK header without its magic"));
    }
    let version = le32(b, 4);
    if !(1..=3).contains(&version) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("a VMDK sparse extent of version {version}, which osconf does not read"),
        ));
    }
    Ok(Header {
        flags: le32(b, 8),
        capacity: le64(b, 12),
        grain: le64(b, 20),
        descriptor: (le64(b, 28), le64(b, 36)),
        gtes: le32(b, 44),
        gd: le64(b, 56),
    })
}

/// Opens a VMDK sparse extent from its bytes.
pub fn open(file: Source) -> io::Result<Disk> {
    let file_len = file.size()?;
    let mut b = [0u8; 512];
    read_exact(&*file, &"the VMDK header", 0, &mut b)?;
    let mut h = header(&b)?;
    if h.gd == GD_AT_END {
        // The footer: a marker sector, the header again, the end-of-stream marker.
        let at = file_len
            .checked_sub(1536)
            .ok_or_else(|| corrupt("a streamOptimized VMDK too short for its footer"))?;
        let mut f = [0u8; 1536];
        read_exact(&*file, &"the VMDK footer", at, &mut f)?;
        if le32(&f, 12) != 3 || le32(&f, 1024 + 12) != 0 || le32(&f, 1024 + 8) != 0 {
            return Err(corrupt("the VMDK footer's markers are not where they belong"));
        }
        h = header(&f[512..1024])?;
        if h.gd == GD_AT_END {
            return Err(corrupt(
                "the VMDK footer does not say where its grain directory is",
            ));
        }
    }
    let grain = h.grain;
    if !grain.is_power_of_two() || grain > (128 << 20) / 512 {
        return Err(corrupt(format!("a VMDK grain of {grain} sectors")));
    }
    let grain = grain * 512;
    if !(1..=512).contains(&h.gtes) {
        return Err(corrupt(format!("{} entries per VMDK grain table", h.gtes)));
    }
    let gtes = u64::from(h.gtes);
    let size = h
        .capacity
        .checked_mul(512)
        .filter(|&s| s <= 1 << 56)
        .ok_or_else(|| corrupt(format!("a VMDK capacity of {} sectors", h.capacity)))?;
    let Described { stream, adapter } = descriptor(&*file, h.descriptor)?;
    let needed = size.div_ceil(grain * gtes);
    let gd_at =
        h.gd.checked_mul(512)
            .ok_or_else(|| corrupt("the grain directory's sector is past 2^64 bytes"))?;
    let raw = table(&*file, "grain directory", gd_at, needed * 4)?;
    let subformat = if stream {
        "streamOptimized"
    } else {
        "monolithicSparse"
    };
    let mut options = vec![format!("subformat={subformat}")];
    if h.flags & ZEROED_GRAIN != 0 {
        // Grain table entries of 1 read as zeros: qemu writes them only with this option.
        options.push("zeroed_grain=on".into());
    }
    if let Some(a) = adapter {
        options.push(format!("adapter_type={a}"));
    }
    let reader = Vmdk {
        file,
        file_len,
        size,
        grain,
        gtes,
        gd: raw.chunks_exact(4).map(|c| le32(c, 0)).collect(),
        compressed: h.flags & COMPRESSED != 0,
        zeroed: h.flags & ZEROED_GRAIN != 0,
        last: Mutex::new(None),
    };
    Ok(Disk {
        reader: Arc::new(reader),
        format: Format::Vmdk { stream },
        size,
        options,
        backing: None,
    })
}

/// What the embedded descriptor says of a sparse extent.
#[derive(Default)]
struct Described {
    stream: bool,
    /// `ddb.adapterType`, when it is one qemu writes (`adapter_type`).
    adapter: Option<&'static str>,
}

/// The embedded descriptor (sector, sectors): whether it says streamOptimized, its adapter type; a
/// parent or a create type osconf does not read is refused. No descriptor: monolithicSparse.
fn descriptor(file: &dyn ReadAt, (sector, sectors): (u64, u64)) -> io::Result<Described> {
    if sector == 0 || sectors == 0 {
        return Ok(Described::default());
    }
    let len = sectors.saturating_mul(512).min(MAX_DESCRIPTOR);
    let at = sector
        .checked_mul(512)
        .ok_or_else(|| corrupt("the VMDK descriptor's sector is past 2^64 bytes"))?;
    let bytes = table(file, "descriptor", at, len)?;
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..end]);
    let value = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
        })
    };
    if let Some(parent) = value("parentCID")
        && !parent.eq_ignore_ascii_case("ffffffff")
    {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a VMDK delta disk (it has a parent), which osconf does not read; merge it first",
        ));
    }
    let stream = match value("createType").as_deref() {
        None | Some("monolithicSparse") => false,
        Some("streamOptimized") => true,
        Some(other) => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("a VMDK of createType {other:?}, which osconf does not read"),
            ));
        }
    };
    let adapter = value("ddb.adapterType").and_then(|a| ADAPTERS.into_iter().find(|&known| known == a));
    Ok(Described { stream, adapter })
}

impl Vmdk {
    /// The grain table entry of grain `g`: 0 unallocated, 1 a zeroed grain, else its sector.
    fn entry(&self, g: u64) -> io::Result<u32> {
        let gt = self.gd[(g / self.gtes) as usize];
        if gt == 0 {
            return Ok(0);
        }
        let at = u64::from(gt) * 512;
        inside(&"a grain table", at, self.gtes * 4, self.file_len)?;
        let mut e = [0u8; 4];
        read_exact(
            &*self.file,
            &"a grain table entry",
            at + (g % self.gtes) * 4,
            &mut e,
        )?;
        Ok(le32(&e, 0))
    }

    /// Grain `g`, compressed behind its marker at `sector`, inflated (the last one kept).
    fn inflated(&self, g: u64, sector: u64) -> io::Result<Arc<Vec<u8>>> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, bytes)) = &*last
            && *at == g
        {
            return Ok(bytes.clone());
        }
        let what = format!("grain {g}");
        let mut m = [0u8; 12];
        read_exact(&*self.file, &what, sector * 512, &mut m)?;
        if le64(&m, 0) != g * (self.grain / 512) {
            return Err(corrupt(format!("{what}'s marker names sector {}", le64(&m, 0))));
        }
        let len = u64::from(le32(&m, 8));
        // zlib never makes a grain more than a little larger than the grain itself.
        if len > self.grain + 4096 {
            return Err(corrupt(format!("{what} holds {len} compressed bytes")));
        }
        let mut input = vec![0u8; len as usize];
        read_exact(&*self.file, &what, sector * 512 + 12, &mut input)?;
        let mut out = vec![0u8; self.grain as usize];
        super::inflate(&input, &mut out, true, &what)?;
        let out = Arc::new(out);
        *last = Some((g, out.clone()));
        Ok(out)
    }
}

impl ReadAt for Vmdk {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        super::by_block(buf, offset, self.size, self.grain, |pos, within, out| {
            let g = pos / self.grain;
            let e = self.entry(g)?;
            if e == 0 || (e == 1 && self.zeroed) {
                out.fill(0);
            } else if self.compressed {
                let grain = self.inflated(g, u64::from(e))?;
                out.copy_from_slice(&grain[within as usize..within as usize + out.len()]);
            } else {
                let at = u64::from(e) * 512;
                read_exact(&*self.file, &format!("grain {g}"), at + within, out)?;
            }
            Ok(())
        })
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }
}

impl Reader for Vmdk {
    fn compressed(&self) -> io::Result<bool> {
        Ok(self.compressed)
    }
}
