//! Fuzzing entry points for the image formats' readers (`disk::format`): qcow2, VHD and VMDK bytes
//! opened by their own reader (no backing file: none can be named in memory), then read as a
//! virtual disk at its start, its end and offsets the input chooses. Each holds the rules of every
//! reader of foreign bytes: no panic, no read past what was asked, bounded work and memory for any
//! header (tables no larger than the input, one cluster or grain inflated at a time).
//! [`hostile`] derives the hostile images of the tools tests (tables past the end) from a seed.

use std::sync::Arc;

use crate::disk::format::{self, Disk, qcow2, vhd, vmdk};
use crate::disk::{ReadAt, table};

/// The most bytes read from one virtual disk.
const READ: usize = 256 << 10;

fn no_backing(name: &[u8], _: Option<format::Format>) -> std::io::Result<Disk> {
    Err(std::io::Error::other(format!("backing file {name:?}")))
}

/// qcow2 bytes through the qcow2 reader.
pub fn qcow2(data: &[u8]) {
    let disk = qcow2::open(Arc::new(data.to_vec()), &mut no_backing);
    read_all(disk, data);
}

/// VHD bytes through the VHD reader.
pub fn vhd(data: &[u8]) {
    read_all(vhd::open(Arc::new(data.to_vec())), data);
}

/// VMDK bytes through the VMDK reader.
pub fn vmdk(data: &[u8]) {
    read_all(vmdk::open(Arc::new(data.to_vec())), data);
}

/// Reads an opened disk where a partition-table reader and a filesystem would: the table, its
/// first and last bytes, and at offsets taken from the input; each read gives at most what was
/// asked, all of it inside the disk's size, and a failed one is an error, never a panic.
fn read_all(disk: std::io::Result<Disk>, data: &[u8]) {
    let Ok(disk) = disk else { return };
    let _ = disk.compressed();
    let _ = table::read(&disk);
    let size = disk.size;
    let mut offsets = vec![0, size.saturating_sub(READ as u64), size.saturating_sub(1), size];
    offsets.extend(
        data.chunks_exact(8)
            .take(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) % size.max(1)),
    );
    let mut buf = vec![0u8; READ];
    for at in offsets {
        if let Ok(n) = disk.read_at(&mut buf, at) {
            let due = (READ as u64).min(size.saturating_sub(at));
            assert_eq!(n as u64, due, "read {n} bytes at {at} of {size}");
        }
    }
}

/// Hostile variants of a seed of `target` (`qcow2`, `vhd`, `vmdk`): the first table entry made to
/// point past the end of the file (an L1 entry, a block table entry, a grain directory entry).
pub fn hostile(target: &str, seed: &[u8]) -> Vec<Vec<u8>> {
    let be64 = |at: usize| {
        seed.get(at..at + 8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap()))
    };
    let (at, value): (Option<u64>, Vec<u8>) = match target {
        "qcow2" => (be64(40), (1u64 << 40).to_be_bytes().to_vec()),
        // A dynamic VHD (its footer's copy at the start): the footer's data offset, the header's
        // table offset. A fixed one has no table.
        "vhd" if seed.starts_with(vhd::COOKIE) => (
            be64(16)
                .and_then(|h| usize::try_from(h).ok()?.checked_add(16))
                .and_then(be64),
            0x7fff_ff00u32.to_be_bytes().to_vec(),
        ),
        "vmdk" => (
            seed.get(56..64)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap()).saturating_mul(512)),
            0x7fff_ff00u32.to_le_bytes().to_vec(),
        ),
        _ => (None, Vec::new()),
    };
    let Some(at) = at.and_then(|a| usize::try_from(a).ok()) else {
        return Vec::new();
    };
    let mut img = seed.to_vec();
    match img.get_mut(at..at + value.len()) {
        Some(slot) => slot.copy_from_slice(&value),
        None => return Vec::new(),
    }
    vec![img]
}
