//! FAT12/16/32 boot sector: volume ID (`XXXX-XXXX`, as blkid and `/dev/disk/by-uuid` show it), label
//! and FAT version. The label is the root directory's volume-label entry (attribute 0x08), falling
//! back to the boot sector's copy — libblkid's order: `mlabel`, Windows and `fatlabel` may leave the
//! two different, and blkid (hence `LABEL=` everywhere else) shows the root directory's.

mod dir;

pub use dir::Fat;

use std::io;

use super::{Filesystem, Kind, ReadAt, at, le16, le32, read_at};

const FAT12_MAX: u32 = 0xFF4;
const FAT16_MAX: u32 = 0xFFF4;
const FAT32_MAX: u32 = 0x0FFF_FFF6;
pub(crate) const ATTR_VOLUME_ID: u8 = 0x08;
pub(crate) const ATTR_DIR: u8 = 0x10;
pub(crate) const ATTR_LONG_NAME: u8 = 0x0F;
const NO_NAME: &[u8; 11] = b"NO NAME    ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Fat12,
    Fat16,
    Fat32,
}

impl Version {
    pub fn name(self) -> &'static str {
        match self {
            Version::Fat12 => "FAT12",
            Version::Fat16 => "FAT16",
            Version::Fat32 => "FAT32",
        }
    }
}

/// The geometry of a boot sector that passed the checks, in bytes from the filesystem's start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub version: Version,
    pub sector_size: u64,
    pub cluster_bytes: u64,
    /// The first FAT.
    pub fat_start: u64,
    pub fat_bytes: u64,
    /// FAT12/16's fixed root directory and its entries (FAT32: 0).
    pub root_start: u64,
    pub root_entries: u64,
    pub data_start: u64,
    /// Data clusters: cluster numbers 2..clusters + 2 are valid.
    pub clusters: u32,
    /// FAT32's root directory cluster.
    pub root_cluster: u32,
}

/// The FAT filesystem at `offset`, if its boot sector is one (the same checks libblkid makes).
pub fn probe<R: ReadAt + ?Sized>(r: &R, offset: u64) -> io::Result<Option<Filesystem>> {
    let mut bs = [0u8; 512];
    if !read_at(r, offset, &mut bs)? {
        return Ok(None);
    }
    let Some(geo) = geometry(&bs) else {
        return Ok(None);
    };
    let (serial_at, boot_label_at) = if geo.version != Version::Fat32 {
        (0x27, 0x2B)
    } else {
        if !fsinfo_ok(r, offset, &bs, geo.sector_size)? {
            return Ok(None);
        }
        (0x43, 0x47)
    };
    let mut dir_label = None;
    Fat::new(r, offset, geo).each_root_entry(&mut |e| {
        let in_use = e[0] != 0xE5 && le16(e, 20) == 0 && le16(e, 26) == 0;
        let attr = e[11];
        let is_label =
            in_use && attr & 0x3F != ATTR_LONG_NAME && attr & (ATTR_VOLUME_ID | ATTR_DIR) == ATTR_VOLUME_ID;
        if is_label {
            dir_label = Some(<[u8; 11]>::try_from(&e[..11]).expect("11"));
        }
        is_label
    })?;
    let boot_label: [u8; 11] = bs[boot_label_at..boot_label_at + 11].try_into().expect("11");
    let chosen = match dir_label {
        Some(l) if &l != NO_NAME => l,
        _ => boot_label,
    };
    let label = if &chosen == NO_NAME {
        None
    } else {
        super::label(&chosen)
    };
    let s = &bs[serial_at..serial_at + 4];
    Ok(Some(Filesystem {
        kind: Kind::Fat(geo.version),
        uuid: Some(format!("{:02X}{:02X}-{:02X}{:02X}", s[3], s[2], s[1], s[0])),
        label,
        block_size: Some(geo.sector_size as u32),
    }))
}

/// libblkid's checks: a FAT signature (or a jump instruction or 0x55AA with a boot sector that
/// is not JFS's or HPFS's look-alike), sane counts, and a cluster count the FAT type can address.
pub(crate) fn geometry(bs: &[u8; 512]) -> Option<Geometry> {
    let strong = [b"MSWIN".as_slice(), b"FAT32   "]
        .iter()
        .any(|m| bs[0x52..].starts_with(m))
        || [b"MSDOS".as_slice(), b"FAT16   ", b"FAT12   ", b"FAT     "]
            .iter()
            .any(|m| bs[0x36..].starts_with(m));
    // Without a signature (a jump instruction or 0x55AA alone), the boot sector must end in 0x55AA
    // and not be the FAT look-alike that JFS and HPFS put there.
    if !strong
        && (bs[0x1FE..] != [0x55, 0xAA] || [b"JFS     ", b"HPFS    "].iter().any(|m| bs[0x36..0x3E] == m[..]))
    {
        return None;
    }
    let (cluster_sectors, fats, media) = (bs[0x0D], bs[0x10], bs[0x15]);
    let reserved = le16(bs, 0x0E);
    let sector_size = le16(bs, 0x0B);
    if fats == 0
        || reserved == 0
        || !(media >= 0xF8 || media == 0xF0)
        || !cluster_sectors.is_power_of_two()
        || !sector_size.is_power_of_two()
        || !(512..=4096).contains(&sector_size)
    {
        return None;
    }
    let dir_entries = u32::from(le16(bs, 0x11));
    let sectors = match le16(bs, 0x13) {
        0 => le32(bs, 0x20),
        n => u32::from(n),
    };
    let fat16_length = le16(bs, 0x16);
    let fat_length = match fat16_length {
        0 => le32(bs, 0x24),
        n => u32::from(n),
    };
    let fats_sectors = fat_length.checked_mul(u32::from(fats))?;
    let dir_sectors = (dir_entries * 32).div_ceil(u32::from(sector_size));
    let data =
        sectors.checked_sub(u32::from(reserved).checked_add(fats_sectors.checked_add(dir_sectors)?)?)?;
    let clusters = data / u32::from(cluster_sectors);
    let max = if fat16_length == 0 && le32(bs, 0x24) != 0 {
        FAT32_MAX
    } else if clusters > FAT12_MAX {
        FAT16_MAX
    } else {
        FAT12_MAX
    };
    if clusters > max || (fat16_length == 0 && le32(bs, 0x24) == 0) {
        return None;
    }
    let version = if max == FAT32_MAX {
        Version::Fat32
    } else if clusters < FAT12_MAX {
        Version::Fat12
    } else {
        Version::Fat16
    };
    let (sector_size, reserved) = (u64::from(sector_size), u64::from(reserved));
    let fat_start = reserved * sector_size;
    let root_start = fat_start + u64::from(fats_sectors) * sector_size;
    let fat32 = version == Version::Fat32;
    Some(Geometry {
        version,
        sector_size,
        cluster_bytes: u64::from(cluster_sectors) * sector_size,
        fat_start,
        fat_bytes: u64::from(fat_length) * sector_size,
        root_start,
        root_entries: if fat32 { 0 } else { u64::from(dir_entries) },
        data_start: root_start + u64::from(dir_sectors) * sector_size,
        clusters,
        root_cluster: if fat32 { le32(bs, 0x2C) } else { 0 },
    })
}

/// FAT32's FSInfo sector must carry its signatures, or be all zero where they go.
fn fsinfo_ok<R: ReadAt + ?Sized>(r: &R, offset: u64, bs: &[u8; 512], sector_size: u64) -> io::Result<bool> {
    let sector = u64::from(le16(bs, 0x30));
    if sector == 0 {
        return Ok(true);
    }
    let mut info = [0u8; 488];
    if !read_at(r, at(offset, sector, sector_size)?, &mut info)? {
        return Ok(false);
    }
    let first: &[u8] = &info[0..4];
    let second: &[u8] = &info[484..488];
    Ok([b"RRaA", b"RRdA", &[0u8; 4]].iter().any(|s| *first == s[..])
        && [b"rrAa", &[0u8; 4]].iter().any(|s| *second == s[..]))
}
