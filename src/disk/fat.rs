//! FAT12/16/32 boot sector: volume ID (`XXXX-XXXX`, as blkid and `/dev/disk/by-uuid` show it), label
//! and FAT version. The label is the root directory's volume-label entry (attribute 0x08), falling
//! back to the boot sector's copy — libblkid's order: `mlabel`, Windows and `fatlabel` may leave the
//! two different, and blkid (hence `LABEL=` everywhere else) shows the root directory's.

use std::io::{self, Read, Seek};

use super::{Filesystem, Kind, le16, le32, read_at};

const FAT12_MAX: u32 = 0xFF4;
const FAT16_MAX: u32 = 0xFFF4;
const FAT32_MAX: u32 = 0x0FFF_FFF6;
const ATTR_VOLUME_ID: u8 = 0x08;
const ATTR_DIR: u8 = 0x10;
const ATTR_LONG_NAME: u8 = 0x0F;
const NO_NAME: &[u8; 11] = b"NO NAME    ";
/// Clusters of a FAT32 root directory followed at most, as libblkid does.
const MAX_ROOT_CLUSTERS: u32 = 99;
/// The largest root directory cluster read: 128 sectors of 4096 bytes.
const MAX_CLUSTER_BYTES: u64 = 512 * 1024;

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

/// The geometry of a boot sector that passed the checks.
struct Geometry {
    sector_size: u64,
    cluster_sectors: u64,
    reserved: u64,
    /// Sectors of all FATs together.
    fats_sectors: u64,
    clusters: u32,
}

/// The FAT filesystem at `offset`, if its boot sector is one (the same checks libblkid makes).
pub fn probe<R: Read + Seek>(r: &mut R, offset: u64) -> io::Result<Option<Filesystem>> {
    let mut bs = [0u8; 512];
    if !read_at(r, offset, &mut bs)? {
        return Ok(None);
    }
    let Some(geo) = geometry(&bs) else {
        return Ok(None);
    };
    let (version, serial_at, boot_label_at) = if le16(&bs, 0x16) != 0 {
        let version = if geo.clusters < FAT12_MAX {
            Version::Fat12
        } else {
            Version::Fat16
        };
        (version, 0x27, 0x2B)
    } else {
        if !fsinfo_ok(r, offset, &bs, geo.sector_size)? {
            return Ok(None);
        }
        (Version::Fat32, 0x43, 0x47)
    };
    let mut dir_label = None;
    each_root_entry(r, offset, &bs, &geo, &mut |e| {
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
        kind: Kind::Fat(version),
        uuid: Some(format!("{:02X}{:02X}-{:02X}{:02X}", s[3], s[2], s[1], s[0])),
        label,
        block_size: Some(geo.sector_size as u32),
    }))
}

/// libblkid's checks: a FAT signature (or a jump instruction or 0x55AA with a boot sector that
/// is not JFS's or HPFS's look-alike), sane counts, and a cluster count the FAT type can address.
fn geometry(bs: &[u8; 512]) -> Option<Geometry> {
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
    let data = sectors.checked_sub(u32::from(reserved) + fats_sectors.checked_add(dir_sectors)?)?;
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
    Some(Geometry {
        sector_size: u64::from(sector_size),
        cluster_sectors: u64::from(cluster_sectors),
        reserved: u64::from(reserved),
        fats_sectors: u64::from(fats_sectors),
        clusters,
    })
}

/// FAT32's FSInfo sector must carry its signatures, or be all zero where they go.
fn fsinfo_ok<R: Read + Seek>(r: &mut R, offset: u64, bs: &[u8; 512], sector_size: u64) -> io::Result<bool> {
    let sector = u64::from(le16(bs, 0x30));
    if sector == 0 {
        return Ok(true);
    }
    let mut info = [0u8; 488];
    if !read_at(r, offset + sector * sector_size, &mut info)? {
        return Ok(false);
    }
    let first: &[u8] = &info[0..4];
    let second: &[u8] = &info[484..488];
    Ok([b"RRaA", b"RRdA", &[0u8; 4]].iter().any(|s| *first == s[..])
        && [b"rrAa", &[0u8; 4]].iter().any(|s| *second == s[..]))
}

/// The names of the directories at the root of the FAT filesystem at `offset` (long names where
/// there are, else `NAME.EXT`), or `None` when there is no FAT filesystem there. Long-name checksums
/// are not verified: a name is only compared, never used to reach anything.
pub fn root_dirs<R: Read + Seek>(r: &mut R, offset: u64) -> io::Result<Option<Vec<String>>> {
    let mut bs = [0u8; 512];
    if !read_at(r, offset, &mut bs)? {
        return Ok(None);
    }
    let Some(geo) = geometry(&bs) else {
        return Ok(None);
    };
    let (mut dirs, mut long) = (Vec::new(), Vec::<u16>::new());
    each_root_entry(r, offset, &bs, &geo, &mut |e| {
        let attr = e[11];
        if e[0] == 0xE5 {
            long.clear();
        } else if attr & 0x3F == ATTR_LONG_NAME {
            if e[0] & 0x40 != 0 {
                long.clear();
            }
            // 13 UCS-2 characters in three runs; the entries come last part first.
            let part: Vec<u16> = [1..11, 14..26, 28..32]
                .into_iter()
                .flat_map(|run| e[run].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])))
                .take_while(|&c| c != 0 && c != 0xFFFF)
                .collect();
            long.splice(0..0, part);
        } else {
            if attr & (ATTR_DIR | ATTR_VOLUME_ID) == ATTR_DIR {
                let name = if long.is_empty() {
                    let (base, ext) = (
                        String::from_utf8_lossy(&e[..8]),
                        String::from_utf8_lossy(&e[8..11]),
                    );
                    let (base, ext) = (base.trim_end(), ext.trim_end());
                    if ext.is_empty() {
                        base.to_owned()
                    } else {
                        format!("{base}.{ext}")
                    }
                } else {
                    String::from_utf16_lossy(&long)
                };
                dirs.push(name);
            }
            long.clear();
        }
        false
    })?;
    Ok(Some(dirs))
}

/// Calls `visit` on each 32-byte entry of the root directory (FAT12/16: the fixed region; FAT32: the
/// cluster chain from the boot sector's root cluster) until it returns true or the directory ends.
fn each_root_entry<R: Read + Seek>(
    r: &mut R,
    offset: u64,
    bs: &[u8; 512],
    geo: &Geometry,
    visit: &mut dyn FnMut(&[u8]) -> bool,
) -> io::Result<()> {
    if le16(bs, 0x16) != 0 {
        let root_start = (geo.reserved + geo.fats_sectors) * geo.sector_size;
        scan(r, offset + root_start, u64::from(le16(bs, 0x11)), visit)?;
        return Ok(());
    }
    let fat_entries = u64::from(le32(bs, 0x24)) * geo.sector_size / 4;
    let cluster_bytes = geo.cluster_sectors * geo.sector_size;
    if cluster_bytes > MAX_CLUSTER_BYTES {
        return Ok(());
    }
    let data_start = (geo.reserved + geo.fats_sectors) * geo.sector_size;
    let mut next = le32(bs, 0x2C);
    for _ in 0..MAX_ROOT_CLUSTERS {
        if next < 2 || u64::from(next) >= fat_entries {
            break;
        }
        let at = data_start + u64::from(next - 2) * cluster_bytes;
        if scan(r, offset + at, cluster_bytes / 32, visit)? {
            break;
        }
        let mut entry = [0u8; 4];
        if !read_at(
            r,
            offset + geo.reserved * geo.sector_size + u64::from(next) * 4,
            &mut entry,
        )? {
            break;
        }
        next = u32::from_le_bytes(entry) & 0x0FFF_FFFF;
    }
    Ok(())
}

/// Visits `entries` directory entries at `at`; true when the visit or the directory ended there.
fn scan<R: Read + Seek>(
    r: &mut R,
    at: u64,
    entries: u64,
    visit: &mut dyn FnMut(&[u8]) -> bool,
) -> io::Result<bool> {
    let mut dir = vec![0u8; (entries * 32) as usize];
    if !read_at(r, at, &mut dir)? {
        return Ok(true);
    }
    for e in dir.chunks_exact(32) {
        if e[0] == 0 || visit(e) {
            return Ok(true);
        }
    }
    Ok(false)
}
