//! The XFS and LVM readers' fuzz entry points. An XFS input is a filesystem from its superblock on,
//! the rest of the device its superblock claims read as zeros (a small XFS made with 1 KiB blocks
//! fits the fuzzer's 64 KiB inputs: `fuzz/corpus/xfs/`), its v5 CRCs made right before it is read
//! (superblock, inodes, extent-tree, directory and link blocks), so that the fuzzer's changes reach
//! the geometry, the forks and the directories. An LVM input is a PV's first bytes (label, metadata
//! area), its CRCs made right, each logical volume then read as a filesystem. An XFS log input is
//! a log's blocks, its records' CRCs made right, scanned as a v5 filesystem's log.

use std::io;

use super::read_all;
use crate::disk::crc::{crc32c_without, lvm as lvm_crc};
use crate::disk::lvm::{self, vg};
use crate::disk::{ReadAt, Volume, Window, Work, le32, le64};

/// The most a fuzz device claims to be (reads past the input are zeros).
const MAX_DEVICE: u64 = 1 << 32;

/// Bytes read as a device of `size` bytes: zeros past them.
pub struct Sparse {
    data: Vec<u8>,
    size: u64,
}

impl ReadAt for Sparse {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.size.saturating_sub(offset)) as usize;
        buf[..n].fill(0);
        if let Some(have) = usize::try_from(offset).ok().and_then(|o| self.data.get(o..)) {
            let k = have.len().min(n);
            buf[..k].copy_from_slice(&have[..k]);
        }
        Ok(n)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }
}

/// XFS bytes → every file `image check` reads, every directory walked: never a panic.
pub fn xfs(data: &[u8]) {
    if let Ok(v) = Volume::open(xfs_device(data), 0) {
        read_all(&v);
    }
}

/// XFS log blocks → the transactions between its tail and head: never a panic, every read inside
/// the log, the reads bounded by the log's length.
pub fn xfs_log(data: &[u8]) {
    use crate::disk::xfs::log;
    let blocks = data.len() / log::BB;
    if blocks < 2 {
        return;
    }
    let mut bytes = data[..blocks * log::BB].to_vec();
    seal_log(&mut bytes);
    let geo = log::Geometry {
        blocks: blocks as u64,
        v2: true,
        crc: true,
    };
    let mut reads = 0;
    let mut read = |n: u64, buf: &mut [u8]| {
        reads += 1;
        let at = n as usize * log::BB;
        buf.copy_from_slice(bytes.get(at..at + buf.len()).expect("a read inside the log"));
        Ok(())
    };
    if let Ok(scan) = log::scan(&geo, &mut read) {
        assert!(
            scan.transactions
                .iter()
                .all(|t| !t.items.iter().any(Vec::is_empty))
        );
    }
    assert!(reads <= 2 * blocks + 1024, "{reads} reads of {blocks} blocks");
}

/// Makes the CRC of every whole record in `log` (a v2 log's blocks) right, as the kernel writes
/// them: for the fuzzer and for tests that craft a real log.
pub fn seal_log(log: &mut [u8]) {
    crate::disk::xfs::log::seal(log);
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Writes the CRC-32C of `b` (its 4 bytes at `at` counted as zeros) at `at`, as XFS stores it.
fn seal(b: &mut [u8], at: usize) {
    let crc = crc32c_without(b, at);
    b[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The device an XFS fuzz input stands for, its v5 CRCs made right.
pub fn xfs_device(data: &[u8]) -> Sparse {
    let mut d = data.to_vec();
    let mut size = d.len() as u64;
    if d.len() >= 512 && &d[..4] == b"XFSB" {
        let blocks = u64::from_be_bytes(d[8..16].try_into().expect("8 bytes"));
        size = blocks
            .saturating_mul(u64::from(be32(&d, 4)))
            .clamp(size, MAX_DEVICE);
    }
    if d.len() >= 512 && &d[..4] == b"XFSB" && be16(&d, 100) & 0xF == 5 {
        let sector = be16(&d, 102).clamp(512, d.len());
        let block = (be32(&d, 4) as usize).clamp(512, 65536);
        let inode = be16(&d, 104).clamp(256, 2048);
        let dir_block = block << d[192].min(4);
        for at in (0..d.len()).step_by(inode) {
            if d.len() >= at + inode && &d[at..at + 2] == b"IN" && d[at + 4] == 3 {
                seal(&mut d[at..at + inode], 100);
            }
        }
        for at in (block..d.len()).step_by(block) {
            let (crc_at, len) = match d.get(at..at + 4) {
                Some(b"BMA3") => (64, block),
                Some(b"XDB3" | b"XDD3") => (4, dir_block),
                Some(b"XSLM") => (12, block),
                _ => continue,
            };
            if d.len() >= at + len {
                seal(&mut d[at..at + len], crc_at);
            }
        }
        seal(&mut d[..sector], 224);
    }
    Sparse { data: d, size }
}

/// The first bytes of a PV → its label, metadata, volume groups, and each logical volume read as a
/// filesystem: never a panic, nothing read past the PV.
pub fn lvm(data: &[u8]) {
    let dev = lvm_device(data);
    let Ok(Some(pv)) = lvm::label(&dev) else {
        return;
    };
    let Some(text) = pv.text else {
        return;
    };
    let Ok(groups) = vg::groups(&[&text]) else {
        return;
    };
    let devices = [(pv.uuid.clone(), &dev)];
    for g in &groups {
        for name in g.lv_names() {
            let Ok(lv) = g.open(name, &devices) else {
                continue;
            };
            let size = lv.size().expect("an LV knows its size");
            let mut buf = vec![0u8; 4096];
            for at in [0, size / 2, size.saturating_sub(1)] {
                assert!(lv.read_at(&mut buf, at).expect("an LV reads inside its PV") <= buf.len());
            }
            if let Ok(v) = Window::rest(&lv, 0, Work::new()).and_then(Volume::on) {
                read_all(&v);
            }
        }
    }
}

/// The PV a fuzz input stands for (64 MiB, the input first), its label's, metadata headers' and
/// texts' CRCs made right.
pub fn lvm_device(data: &[u8]) -> Sparse {
    let mut d = data.to_vec();
    for sector in 0..4 {
        let at = sector * 512;
        if d.len() < at + 512 || &d[at..at + 8] != b"LABELONE" {
            continue;
        }
        let crc = lvm_crc(&d[at + 20..at + 512]);
        d[at + 16..at + 20].copy_from_slice(&crc.to_le_bytes());
        // The header's areas: data areas, then metadata areas, each list ending in zeros.
        let mut p = at + le32(&d, at + 20).min(512) as usize + 40;
        let mut lists = 0;
        while lists < 2 && p + 16 <= at + 512 {
            let (offset, size) = (le64(&d, p), le64(&d, p + 8));
            p += 16;
            if offset == 0 {
                lists += 1;
            } else if lists == 1 {
                seal_mda(&mut d, offset, size);
            }
        }
        break;
    }
    Sparse {
        size: (d.len() as u64).max(64 << 20),
        data: d,
    }
}

/// Makes the metadata area at `start` hold right CRCs: its header's and its (unwrapped) text's.
fn seal_mda(d: &mut [u8], start: u64, size: u64) {
    let fits = |h: usize| h.checked_add(512).is_some_and(|end| end <= d.len());
    let Some(h) = usize::try_from(start).ok().filter(|&h| fits(h)) else {
        return;
    };
    let (offset, len) = (le64(d, h + 40), le64(d, h + 48));
    let text = usize::try_from(start.saturating_add(offset)).ok();
    let end = text.and_then(|t| t.checked_add(usize::try_from(len).ok()?));
    if let (Some(t), Some(e)) = (text, end)
        && offset.saturating_add(len) <= size
        && e <= d.len()
    {
        let crc = lvm_crc(&d[t..e]);
        d[h + 56..h + 60].copy_from_slice(&crc.to_le_bytes());
    }
    let crc = lvm_crc(&d[h + 4..h + 512]);
    d[h..h + 4].copy_from_slice(&crc.to_le_bytes());
}
