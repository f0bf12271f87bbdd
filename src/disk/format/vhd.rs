//! VHD (Microsoft's Virtual Hard Disk Image Format Specification, qemu's `vpc`): the 512-byte footer
//! (at the end; a dynamic disk also keeps a copy at the start), its checksum, and for a dynamic disk
//! the dynamic header and the block allocation table (read whole, bounded). A fixed disk's bytes are
//! the file's first bytes. The virtual size is qemu's: the CHS geometry's, unless the creator is one
//! that uses the footer's current size (Hyper-V, disk2vhd, XenServer, qemu's `force_size`) or the
//! geometry is the largest there is. A differencing disk (one with a parent) is refused by name.

use std::io;
use std::sync::Arc;

use super::{Disk, Format, Reader, Source, be16, be32, be64, inside, read_exact, table};
use crate::disk::{ReadAt, corrupt};

pub const COOKIE: &[u8] = b"conectix";
const UNALLOCATED: u32 = u32::MAX;
/// The CHS geometry of the largest disk it can describe: the size is the footer's then.
const MAX_GEOMETRY: u64 = 65535 * 16 * 255;
/// Creators whose disks are sized by the footer's current size (qemu's table).
const SIZED_BY_FOOTER: [&[u8; 4]; 5] = [b"win ", b"qem2", b"d2v ", b"CTXS", b"tap\0"];

/// A VHD's virtual disk.
pub struct Vhd {
    file: Source,
    file_len: u64,
    size: u64,
    /// A dynamic disk's table: the sector of each block's bitmap, the block size, the bitmap's.
    dynamic: Option<Bat>,
}

struct Bat {
    entries: Vec<u32>,
    block: u64,
    bitmap: u64,
}

/// Opens a VHD from its bytes (the footer at its start or its end).
pub fn open(file: Source) -> io::Result<Disk> {
    let file_len = file.size()?;
    let mut footer = [0u8; 512];
    read_exact(&*file, &"the VHD footer", 0, &mut footer)?;
    let at_start = footer.starts_with(COOKIE);
    if !at_start {
        read_exact(&*file, &"the VHD footer", file_len - 512, &mut footer)?;
    }
    check_sum(&footer, 64, "footer")?;
    let disk_type = be32(&footer, 60);
    let chs = u64::from(be16(&footer, 56)) * u64::from(footer[58]) * u64::from(footer[59]);
    let creator: &[u8; 4] = footer[28..32].try_into().expect("4 bytes");
    let size = if SIZED_BY_FOOTER.contains(&creator) || chs == MAX_GEOMETRY {
        be64(&footer, 48) / 512 * 512
    } else {
        chs * 512
    };
    let dynamic = match disk_type {
        2 => {
            inside(&"the fixed VHD's data", 0, size + 512, file_len)?;
            None
        }
        3 => Some(bat(&*file, &footer, size)?),
        4 => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a differencing VHD (it has a parent disk), which osconf does not read; merge it first \
                 (qemu-img convert -O vpc)",
            ));
        }
        other => return Err(corrupt(format!("VHD disk type {other}"))),
    };
    // force_size: the size written is the raw copy's, exactly; without it qemu rounds it to a CHS
    // geometry, which changes a disk sized by its footer (Hyper-V's) and any whose geometry
    // another tool chose. qemu then marks it its own (creator `qem2`), read by the footer's size.
    let subformat = if dynamic.is_some() { "dynamic" } else { "fixed" };
    let options = vec![format!("subformat={subformat}"), "force_size=on".to_owned()];
    let is_dynamic = dynamic.is_some();
    Ok(Disk {
        reader: Arc::new(Vhd {
            file,
            file_len,
            size,
            dynamic,
        }),
        format: Format::Vhd { dynamic: is_dynamic },
        size,
        options,
        backing: None,
    })
}

/// Checks the one's-complement checksum stored at `at` of a footer or header.
fn check_sum(b: &[u8], at: usize, what: &str) -> io::Result<()> {
    let sum = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !(at..at + 4).contains(i))
        .fold(0u32, |s, (_, &x)| s.wrapping_add(u32::from(x)));
    if !sum != be32(b, at) {
        return Err(corrupt(format!("the VHD {what}'s checksum does not match")));
    }
    Ok(())
}

/// The dynamic header the footer points at, and its block allocation table.
fn bat(file: &dyn ReadAt, footer: &[u8], size: u64) -> io::Result<Bat> {
    let mut h = [0u8; 1024];
    read_exact(file, &"the VHD dynamic header", be64(footer, 16), &mut h)?;
    if !h.starts_with(b"cxsparse") {
        return Err(corrupt("the VHD dynamic header has no cxsparse cookie"));
    }
    check_sum(&h, 36, "dynamic header")?;
    let block = u64::from(be32(&h, 32));
    if !block.is_power_of_two() || !(512..=(256 << 20)).contains(&block) {
        return Err(corrupt(format!("a VHD block size of {block} bytes")));
    }
    let entries = u64::from(be32(&h, 28));
    let needed = size.div_ceil(block);
    if entries < needed {
        return Err(corrupt(format!(
            "its block table has {entries} entries, {needed} are needed for {size} bytes"
        )));
    }
    let raw = table(file, "block allocation table", be64(&h, 16), needed * 4)?;
    Ok(Bat {
        entries: raw.chunks_exact(4).map(|c| be32(c, 0)).collect(),
        block,
        // One bit per sector, padded to a sector.
        bitmap: (block / 512).div_ceil(8).div_ceil(512) * 512,
    })
}

impl ReadAt for Vhd {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Some(bat) = &self.dynamic else {
            let n = (buf.len() as u64).min(self.size.saturating_sub(offset)) as usize;
            read_exact(&*self.file, &"the fixed VHD's data", offset, &mut buf[..n])?;
            return Ok(n);
        };
        super::by_block(buf, offset, self.size, bat.block, |pos, within, out| {
            let b = pos / bat.block;
            let entry = bat.entries[b as usize];
            if entry == UNALLOCATED {
                // A dynamic disk's unwritten block reads as zeros (its sector bitmap is not
                // consulted: qemu does not either).
                out.fill(0);
                return Ok(());
            }
            let start = u64::from(entry) * 512 + bat.bitmap;
            inside(&format!("block {b}"), start, bat.block, self.file_len)?;
            read_exact(&*self.file, &format!("block {b}"), start + within, out)
        })
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }
}

impl Reader for Vhd {
    /// Every allocated block (bitmap and data) inside the file, and a dynamic disk's two footers
    /// alike, each with its checksum right.
    fn verify(&self) -> io::Result<()> {
        let Some(bat) = &self.dynamic else {
            return Ok(());
        };
        for (b, &entry) in bat.entries.iter().enumerate() {
            if entry != UNALLOCATED {
                let what = format!("block {b}");
                inside(
                    &what,
                    u64::from(entry) * 512,
                    bat.bitmap + bat.block,
                    self.file_len,
                )?;
            }
        }
        let (mut first, mut last) = ([0u8; 512], [0u8; 512]);
        read_exact(&*self.file, &"the VHD footer's copy", 0, &mut first)?;
        read_exact(&*self.file, &"the VHD footer", self.file_len - 512, &mut last)?;
        check_sum(&first, 64, "footer's copy")?;
        check_sum(&last, 64, "footer")?;
        if first != last {
            return Err(corrupt("the VHD footer and its copy at the start differ"));
        }
        Ok(())
    }
}
