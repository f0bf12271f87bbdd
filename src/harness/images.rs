//! Fuzzing entry points for the readers of disk images beyond the whole-image walk of
//! [`super::disk`] (which reads ext and FAT through the partition table): the partition tables
//! alone, UFS superblocks, the path walk with any path, and the undo file `image inject|prepare`
//! leave. Each holds the rules of every reader of foreign bytes: no panic, no number past the
//! device, no name a caller could join onto a path, nothing accepted that osconf could not write.
//! [`hostile`] makes the seeds of the hostile images (issue 17) from a real filesystem, in code:
//! no large binary in the corpus.

use crate::disk::table::crc32;
use crate::disk::{self, Volume};
use crate::image::stage::{self, Parsed};

/// The partitions the undo target vets records against: (offset, length) in bytes.
const UNDO_TABLE: [(u64, u64); 2] = [(1 << 20, 16 << 20), (17 << 20, 32 << 20)];

/// Disk bytes → partition table. A GPT's CRCs are made right first, so that the fuzzer's changes
/// reach the entries; every partition accepted lies inside the disk.
pub fn table(data: &[u8]) {
    let data = with_gpt_crcs(data);
    if let Ok(Some(t)) = disk::table::read(data.as_slice()) {
        for p in &t.partitions {
            let (at, len) = t.extent(p);
            assert!(
                at.checked_add(len).is_some_and(|end| end <= data.len() as u64),
                "partition {} at {at}+{len} past {} bytes",
                p.number,
                data.len()
            );
        }
    }
}

/// The bytes with the GPT header at LBA 1 (512-byte sectors) given right CRCs over its entries
/// and itself, when there is one and its numbers fit the bytes.
pub fn with_gpt_crcs(data: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    if d.len() < 1024 || &d[512..520] != b"EFI PART" {
        return d;
    }
    let word = |d: &[u8], at: usize| u32::from_le_bytes(d[at..at + 4].try_into().expect("4")) as usize;
    let entries = u64::from_le_bytes(d[584..592].try_into().expect("8"));
    let bytes = word(&d, 592).saturating_mul(word(&d, 596));
    let start = usize::try_from(entries.saturating_mul(512)).unwrap_or(usize::MAX);
    if let Some(array) = start.checked_add(bytes).and_then(|end| d.get(start..end)) {
        let crc = crc32(array);
        d[600..604].copy_from_slice(&crc.to_le_bytes());
    }
    let size = word(&d, 524);
    if (92..=512).contains(&size) {
        d[528..532].fill(0);
        let crc = crc32(&d[512..512 + size]);
        d[528..532].copy_from_slice(&crc.to_le_bytes());
    }
    d
}

/// UFS superblock bytes (at any of their four places).
pub fn ufs(data: &[u8]) {
    if let Ok(Some(fs)) = disk::ufs::probe(data, 0) {
        assert!(matches!(fs.kind, disk::Kind::Ufs(_)));
    }
}

/// `[n][n bytes of path][filesystem]`: the path walked every way a reader walks one, over the
/// filesystem (ext or FAT). What a directory lists is never `.`, `..`, empty, nor holds `/` or
/// NUL; a file read is as long as its size says.
pub fn walk(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n).min(rest.len());
    let (path, fs) = rest.split_at(n);
    let path = String::from_utf8_lossy(path);
    let Ok(v) = Volume::open(fs, 0) else {
        return;
    };
    let _ = v.read_link(&path);
    let _ = v.symlink_metadata(&path);
    if let (Ok(Some(bytes)), Ok(Some(meta))) = (v.read_file(&path), v.metadata(&path)) {
        assert_eq!(bytes.len() as u64, meta.size, "{path}");
    }
    for dir in [path.as_ref(), "/"] {
        if let Ok(Some(entries)) = v.list_dir(dir) {
            entries.iter().for_each(|e| assert_name(&e.name));
        }
    }
}

/// A name a reader returned: one a caller may join onto a path.
pub(crate) fn assert_name(name: &str) {
    assert!(
        !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']),
        "{name:?}"
    );
}

/// Undo file bytes: a complete one whose records [`stage::vet`] accepts writes only inside the
/// partitions of the image (here [`UNDO_TABLE`]).
pub fn undo(data: &[u8]) {
    if let Parsed::Complete { parts, records } = stage::parse_undo(data) {
        let total: usize = records.iter().map(|(_, b)| b.len()).sum();
        assert!(total <= data.len());
        if stage::vet(&UNDO_TABLE, &parts, &records).is_ok() {
            for (at, bytes) in &records {
                let end = at + bytes.len() as u64;
                assert!(
                    UNDO_TABLE.iter().any(|(p, len)| at >= p && end <= p + len),
                    "{at}"
                );
            }
        }
    }
}

/// Seeds for target `target` (`disk`, `walk`, `table`, `undo`) that are the hostile images of
/// issue 17, made from `ext` (a real ext filesystem holding `etc/os-release`, as the `disk`
/// corpus's): names holding `/` and `..`, an entry naming the root, a GPT start past 2^64 bytes, a
/// record outside the partitions.
pub fn hostile(target: &str, ext: &[u8]) -> Vec<Vec<u8>> {
    let mut images = Vec::new();
    if let Some(at) = ext.windows(10).position(|w| w == b"os-release") {
        for (name, inode) in [
            (&b"../../../x"[..], None),
            (b"os/release", None),
            (b"os-releas\0", None),
            (b"os-release", Some(2u32)),
        ] {
            let mut img = ext.to_vec();
            // metadata_csum off (ro_compat bit 0x400 at byte 1024 + 0x64): the names must meet the
            // reader's check of names, not the directory block's checksum, which they break.
            img[1024 + 0x65] &= !0x04;
            img[at..at + 10].copy_from_slice(name);
            if let Some(inode) = inode {
                img[at - 8..at - 4].copy_from_slice(&inode.to_le_bytes());
            }
            images.push(img);
        }
    }
    match target {
        "disk" => images,
        "walk" => {
            let mut out = Vec::new();
            for img in std::iter::once(ext.to_vec()).chain(images) {
                for path in ["etc/os-release", "/../etc/../../etc", "etc"] {
                    out.push([&[path.len() as u8], path.as_bytes(), &img].concat());
                }
            }
            out
        }
        "btrfs" => super::btrfs::hostile_seeds(),
        "table" => vec![
            gpt(&[(34, 63), ((1 << 55) + 64, (1 << 55) + 127)]),
            gpt(&[(34, 63), (64, 127)]),
        ],
        "undo" => {
            let undo = |at: u64| {
                let mut u = b"osconf-undo 2\n".to_vec();
                for w in [1, UNDO_TABLE[0].0, UNDO_TABLE[0].1, at, 4] {
                    u.extend(u64::to_le_bytes(w));
                }
                u.extend(b"old!end\n");
                u
            };
            vec![undo(1 << 20), undo(1 << 40), undo(0)]
        }
        _ => Vec::new(),
    }
}

/// A 64 KiB disk (the fuzzer's longest input) with a protective MBR and a GPT (CRCs right)
/// holding `parts` (first, last LBA).
fn gpt(parts: &[(u64, u64)]) -> Vec<u8> {
    let mut d = vec![0u8; 64 << 10];
    d[446 + 4] = 0xEE;
    d[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    d[446 + 12..446 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    d[510..512].copy_from_slice(&[0x55, 0xAA]);
    let h = &mut d[512..1024];
    h[..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&1u64.to_le_bytes());
    h[72..80].copy_from_slice(&2u64.to_le_bytes());
    h[80..84].copy_from_slice(&128u32.to_le_bytes());
    h[84..88].copy_from_slice(&128u32.to_le_bytes());
    for (i, (first, last)) in parts.iter().enumerate() {
        let e = &mut d[1024 + 128 * i..1024 + 128 * (i + 1)];
        e[..16].copy_from_slice(&[0x83; 16]);
        e[16] = i as u8 + 1;
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
    }
    with_gpt_crcs(&d)
}

/// An ext journal of 1 KiB blocks (jbd2: the input, its superblock's length and checksum made
/// right by `journal::seal` so that mutations reach the log) replayed for a filesystem of 2^20
/// blocks, then every copy restored from its journal block. Never a panic; no copy of a block
/// outside the filesystem, no more copies than the journal has blocks.
pub fn ext_journal(data: &[u8]) {
    use crate::disk::ext::journal;
    const BS: usize = 1024;
    const FS_BLOCKS: u64 = 1 << 20;
    let blocks = data.len() / BS;
    if blocks < 2 {
        return;
    }
    let mut j = data[..blocks * BS].to_vec();
    journal::seal(&mut j[..BS], blocks as u32);
    let block = |n: u32| j.get(n as usize * BS..(n as usize + 1) * BS);
    let mut read = |n: u32, buf: &mut [u8]| {
        let b = block(n).ok_or_else(|| disk::corrupt("past the journal"))?;
        buf.copy_from_slice(b);
        Ok(())
    };
    let Ok(replay) = journal::replay(blocks as u32, BS, FS_BLOCKS, &mut read) else {
        return;
    };
    assert!(replay.copies.len() < blocks, "{} copies", replay.copies.len());
    for (&fs_block, copy) in &replay.copies {
        assert!(fs_block < FS_BLOCKS);
        let mut b = block(copy.block).expect("a copy inside the journal").to_vec();
        let _ = replay.restore(fs_block, copy, &mut b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gpt_seeds_are_read_and_the_overflowing_one_is_damage() {
        let good = gpt(&[(34, 63), (64, 127)]);
        let t = disk::table::read(good.as_slice()).unwrap().unwrap();
        assert_eq!(t.kind, disk::TableKind::Gpt);
        assert_eq!(t.extent(&t.partitions[1]), (64 * 512, 64 * 512));
        let bad = gpt(&[(34, 63), ((1 << 55) + 64, (1 << 55) + 127)]);
        assert!(disk::table::read(bad.as_slice()).is_err());
        hostile("table", &[]).iter().for_each(|s| table(s));
        hostile("undo", &[]).iter().for_each(|s| undo(s));
        assert!(matches!(
            stage::parse_undo(&hostile("undo", &[])[0]),
            Parsed::Complete { .. }
        ));
    }
}
