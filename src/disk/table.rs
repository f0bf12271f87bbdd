//! Partition tables: MBR (primary partitions 1–4, logical partitions 5… inside an extended one) and
//! GPT (primary header, or the backup at the disk's last sector; CRCs checked), numbered the way the
//! Linux kernel numbers them, so that partition 1 here is `vda1`/`nvme0n1p1` there. Every sector
//! number is checked before it becomes a byte offset: a partition whose bytes overflow or lie past
//! the end of the device is damage, never read (or written) somewhere else.

use std::io;

pub(crate) use super::crc::crc32;
use super::{ReadAt, le16, le32, le64, read_at};

/// Logical partitions followed at most in an extended partition's chain (a loop ends it too).
const MAX_LOGICAL: usize = 256;
/// The largest GPT entry array read.
const MAX_GPT_ENTRIES_BYTES: u64 = 1 << 20;
const ESP_GUID: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// What blkid calls `dos`.
    Mbr,
    Gpt,
}

impl TableKind {
    /// blkid's PTTYPE.
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Mbr => "dos",
            TableKind::Gpt => "gpt",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    pub kind: TableKind,
    /// blkid's PTUUID: the MBR disk signature (`%08x`) or the GPT disk GUID.
    pub id: Option<String>,
    pub sector_size: u64,
    pub partitions: Vec<Partition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// The kernel's number: 1–4 primary (by slot), 5… logical; GPT: the entry's slot + 1.
    pub number: u32,
    /// In sectors of the table's sector size.
    pub start: u64,
    pub sectors: u64,
    /// MBR: the type byte as two hex digits (`83`, `ef`); GPT: the type GUID, lower case.
    pub type_id: String,
    /// MBR's active flag, GPT's legacy-BIOS-bootable attribute.
    pub bootable: bool,
}

impl PartitionTable {
    pub fn partition(&self, number: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.number == number)
    }

    /// Where partition `p` starts, in bytes.
    pub fn offset(&self, p: &Partition) -> u64 {
        self.extent(p).0
    }

    /// Where partition `p` starts and how many bytes it holds. `read` checked that these lie inside
    /// the device; for a table made otherwise, a number past 2^64 saturates.
    pub fn extent(&self, p: &Partition) -> (u64, u64) {
        (
            p.start.saturating_mul(self.sector_size),
            p.sectors.saturating_mul(self.sector_size),
        )
    }
}

impl Partition {
    /// An EFI System Partition (GPT type GUID, or MBR type `ef`).
    pub fn is_esp(&self) -> bool {
        self.type_id == ESP_GUID || self.type_id == "ef"
    }

    /// An MBR extended partition (a container of logical ones, holding no filesystem itself).
    pub fn is_extended(&self) -> bool {
        matches!(self.type_id.as_str(), "05" | "0f" | "85")
    }
}

/// The partition table at the start of `r`, if it has one. A protective MBR without any valid GPT
/// header is an error (the disk is damaged), not "no table"; so is a partition that does not lie
/// inside the device (`InvalidData`).
pub fn read<R: ReadAt + ?Sized>(r: &R) -> io::Result<Option<PartitionTable>> {
    let Some(t) = any(r)? else {
        return Ok(None);
    };
    let size = r.size()?;
    for p in &t.partitions {
        let end = p
            .start
            .checked_add(p.sectors)
            .and_then(|e| e.checked_mul(t.sector_size));
        if end.is_none_or(|e| e > size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "partition {}: sectors {}+{} (of {} bytes) lie beyond the end of the disk ({size} bytes)",
                    p.number, p.start, p.sectors, t.sector_size
                ),
            ));
        }
    }
    Ok(Some(t))
}

fn any<R: ReadAt + ?Sized>(r: &R) -> io::Result<Option<PartitionTable>> {
    let mut mbr = [0u8; 512];
    if !read_at(r, 0, &mut mbr)? || mbr[510..] != [0x55, 0xAA] {
        return Ok(None);
    }
    let entries: Vec<Entry> = (0..4).map(|i| Entry::parse(&mbr[446 + 16 * i..])).collect();
    if entries.iter().any(|e| e.kind == 0xEE) {
        for sector_size in [512, 4096] {
            if let Some(t) = gpt(r, sector_size)? {
                return Ok(Some(t));
            }
        }
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "protective MBR but neither GPT header is valid",
        ));
    }
    // A FAT boot sector also ends in 0x55AA: a table has only 0x00 or 0x80 as boot flags, and a
    // disk that is one filesystem ("superfloppy") has no table.
    if entries.iter().any(|e| e.flag & 0x7F != 0) || super::fat::probe(r, 0)?.is_some() {
        return Ok(None);
    }
    let mut partitions = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.kind != 0 && e.sectors != 0 {
            partitions.push(e.partition(i as u32 + 1, 0));
        }
    }
    if let Some(ext) = partitions.iter().find(|p| p.is_extended()).cloned() {
        logical(r, &ext, &mut partitions)?;
    }
    Ok(Some(PartitionTable {
        kind: TableKind::Mbr,
        id: Some(format!("{:08x}", le32(&mbr, 440))),
        sector_size: 512,
        partitions,
    }))
}

/// One 16-byte MBR partition entry.
struct Entry {
    flag: u8,
    kind: u8,
    start: u64,
    sectors: u64,
}

impl Entry {
    fn parse(b: &[u8]) -> Entry {
        Entry {
            flag: b[0],
            kind: b[4],
            start: u64::from(le32(b, 8)),
            sectors: u64::from(le32(b, 12)),
        }
    }

    fn partition(&self, number: u32, base: u64) -> Partition {
        Partition {
            number,
            start: base + self.start,
            sectors: self.sectors,
            type_id: format!("{:02x}", self.kind),
            bootable: self.flag == 0x80,
        }
    }
}

/// The logical partitions: a chain of extended boot records, each holding one partition (relative
/// to itself) and the link to the next (relative to the extended partition).
fn logical<R: ReadAt + ?Sized>(r: &R, ext: &Partition, out: &mut Vec<Partition>) -> io::Result<()> {
    let mut at = ext.start;
    let mut seen = Vec::new();
    let mut number = 5;
    while seen.len() < MAX_LOGICAL && !seen.contains(&at) {
        seen.push(at);
        let mut ebr = [0u8; 512];
        if !read_at(r, at * 512, &mut ebr)? || ebr[510..] != [0x55, 0xAA] {
            break;
        }
        let this = Entry::parse(&ebr[446..]);
        let next = Entry::parse(&ebr[462..]);
        if this.kind != 0 && this.sectors != 0 {
            out.push(this.partition(number, at));
            number += 1;
        }
        if !matches!(next.kind, 0x05 | 0x0F | 0x85) || next.start == 0 {
            break;
        }
        at = ext.start + next.start;
    }
    Ok(())
}

/// The GPT, from the primary header at LBA 1 or else the backup at the last LBA.
fn gpt<R: ReadAt + ?Sized>(r: &R, sector_size: u64) -> io::Result<Option<PartitionTable>> {
    if let Some(t) = gpt_at(r, sector_size, 1)? {
        return Ok(Some(t));
    }
    let sectors = r.size()? / sector_size;
    match sectors.checked_sub(1) {
        Some(last) if last > 1 => gpt_at(r, sector_size, last),
        _ => Ok(None),
    }
}

fn gpt_at<R: ReadAt + ?Sized>(r: &R, sector_size: u64, lba: u64) -> io::Result<Option<PartitionTable>> {
    let mut h = vec![0u8; sector_size as usize];
    let Some(at) = lba.checked_mul(sector_size) else {
        return Ok(None);
    };
    if !read_at(r, at, &mut h)? || &h[..8] != b"EFI PART" {
        return Ok(None);
    }
    let header_size = le32(&h, 12) as usize;
    if !(92..=h.len()).contains(&header_size) || le64(&h, 24) != lba {
        return Ok(None);
    }
    let stored = le32(&h, 16);
    h[16..20].fill(0);
    if crc32(&h[..header_size]) != stored {
        return Ok(None);
    }
    let (entries_lba, count, size) = (le64(&h, 72), u64::from(le32(&h, 80)), u64::from(le32(&h, 84)));
    if size < 128 || size % 8 != 0 || count * size > MAX_GPT_ENTRIES_BYTES {
        return Ok(None);
    }
    let mut array = vec![0u8; (count * size) as usize];
    let Some(at) = entries_lba.checked_mul(sector_size) else {
        return Ok(None);
    };
    if !read_at(r, at, &mut array)? || crc32(&array) != le32(&h, 88) {
        return Ok(None);
    }
    let mut partitions = Vec::new();
    for (i, e) in array.chunks_exact(size as usize).enumerate() {
        if e[..16].iter().all(|&b| b == 0) {
            continue;
        }
        let (first, last) = (le64(e, 32), le64(e, 40));
        let number = i as u32 + 1;
        // The header's CRC holds, so this is what the table says: a damaged table, not a damaged
        // header whose backup may be better.
        let Some(sectors) = last.checked_add(1).and_then(|end| end.checked_sub(first)) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("GPT partition {number}: last sector {last} before its first {first}"),
            ));
        };
        partitions.push(Partition {
            number,
            start: first,
            sectors,
            type_id: guid(&e[..16]),
            bootable: le64(e, 48) & (1 << 2) != 0,
        });
    }
    Ok(Some(PartitionTable {
        kind: TableKind::Gpt,
        id: Some(guid(&h[56..72])),
        sector_size,
        partitions,
    }))
}

/// A GUID as stored on disk (first three fields little-endian), lower case.
fn guid(b: &[u8]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
        le32(b, 0),
        le16(b, 4),
        le16(b, 6),
        b[8],
        b[9],
        b[10..16].iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_of_the_check_string() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    fn mbr_entry(b: &mut [u8], at: usize, kind: u8, start: u32, sectors: u32) {
        b[at + 4] = kind;
        b[at + 8..at + 12].copy_from_slice(&start.to_le_bytes());
        b[at + 12..at + 16].copy_from_slice(&sectors.to_le_bytes());
    }

    #[test]
    fn an_extended_chain_that_loops_ends() {
        let mut disk = vec![0u8; 512 * 64];
        let sign = |d: &mut Vec<u8>, sector: usize| {
            d[sector * 512 + 510..sector * 512 + 512].copy_from_slice(&[0x55, 0xAA])
        };
        sign(&mut disk, 0);
        mbr_entry(&mut disk, 446, 0x83, 1, 9);
        mbr_entry(&mut disk, 462, 0x05, 10, 50);
        // EBR at sector 10: logical 5, next EBR at 10 + 20; that one: logical 6, next EBR itself.
        for (ebr, next) in [(10usize, 20u32), (30, 20)] {
            sign(&mut disk, ebr);
            mbr_entry(&mut disk, ebr * 512 + 446, 0x83, 1, 5);
            mbr_entry(&mut disk, ebr * 512 + 462, 0x05, next, 10);
        }
        let t = read(&disk).unwrap().unwrap();
        let found: Vec<_> = t.partitions.iter().map(|p| (p.number, p.start)).collect();
        assert_eq!(found, [(1, 1), (2, 10), (5, 11), (6, 31)]);
    }

    #[test]
    fn boot_flags_other_than_0_and_80_mean_no_table() {
        let mut disk = vec![0u8; 4096];
        disk[510] = 0x55;
        disk[511] = 0xAA;
        mbr_entry(&mut disk, 446, 0x83, 1, 7);
        disk[446] = 0x12;
        assert_eq!(read(&disk).unwrap(), None);
        disk[446] = 0x80;
        assert!(read(&disk).unwrap().unwrap().partitions[0].bootable);
    }

    #[test]
    fn partitions_past_the_end_of_the_disk_are_damage() {
        let mut disk = vec![0u8; 64 * 512];
        disk[510] = 0x55;
        disk[511] = 0xAA;
        mbr_entry(&mut disk, 446, 0x83, 1, 63);
        assert_eq!(read(&disk).unwrap().unwrap().partitions.len(), 1);
        mbr_entry(&mut disk, 446, 0x83, 1, 64);
        let e = read(&disk).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("partition 1: sectors 1+64"), "{e}");
        mbr_entry(&mut disk, 446, 0x83, u32::MAX, u32::MAX);
        assert!(read(&disk).is_err());
    }

    #[test]
    fn a_protective_mbr_without_gpt_is_an_error() {
        let mut disk = vec![0u8; 64 * 1024];
        disk[510] = 0x55;
        disk[511] = 0xAA;
        mbr_entry(&mut disk, 446, 0xEE, 1, 127);
        assert!(read(&disk).is_err());
    }
}
