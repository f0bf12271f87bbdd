//! A Btrfs file's bytes from its `EXTENT_DATA` items: inline data in the leaf, regular extents (a
//! hole when at address 0, zeros when preallocated), compressed ones inflated with zlib
//! (`miniz_oxide`) or zstd (`ruzstd`, pure Rust: Fedora compresses with zstd by default); lzo is
//! refused, named. Every extent's place and length is checked against the file and its bound, and
//! no compressed extent inflates past what Btrfs itself writes.

use std::io;

use super::btree::{Key, damaged};
use super::csum;
use super::files::{Btrfs, Inode};
use crate::disk::{ReadAt, le64};

const EXTENT_DATA: u8 = 108;
/// An inode flag: its data has no checksums (`chattr +C`, the `nodatasum` mount option).
const NODATASUM: u64 = 1;
/// Btrfs compresses at most 128 KiB of a file into one extent; a compressed extent is read whole.
const MAX_COMPRESSED: u64 = 128 << 10;
/// What an extent item's fixed part holds before inline data; a regular one's full size.
const INLINE_AT: usize = 21;
const REGULAR_LEN: usize = 53;

impl<R: ReadAt> Btrfs<R> {
    /// The bytes of file `n` (a regular file or a link's target), at most `max` of them.
    pub(super) fn data(&self, n: &Inode, max: u64) -> io::Result<Vec<u8>> {
        if n.size > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("inode {}: {} bytes, more than the {max} read", n.number, n.size),
            ));
        }
        let size = n.size as usize;
        let mut out = vec![0u8; size];
        let (lo, hi) = (
            Key::new(n.number, EXTENT_DATA, 0),
            Key::new(n.number, EXTENT_DATA, u64::MAX),
        );
        self.space.items(n.tree, lo, hi, &mut |key, item| {
            if key.off >= n.size {
                return Ok(false);
            }
            let at = key.off as usize;
            self.extent(n, item, &mut out[at..]).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("inode {}, extent at {}: {e}", n.number, key.off),
                )
            })?;
            Ok(true)
        })?;
        Ok(out)
    }

    /// Fills `out` (the file from the extent's offset on) from the extent item `item` of inode
    /// `n`, the bytes read from disk checked against their checksums unless `n` keeps none.
    fn extent(&self, n: &Inode, item: &[u8], out: &mut [u8]) -> io::Result<()> {
        let number = n.number;
        if item.len() < INLINE_AT {
            return Err(damaged("an extent item is cut short"));
        }
        let (ram_bytes, compression, kind) = (le64(item, 8), item[16], item[20]);
        if item[17] != 0 || item[18] != 0 || item[19] != 0 {
            return Err(unsupported(number, "an encrypted or encoded extent"));
        }
        if kind == 0 {
            let bytes = &item[INLINE_AT..];
            let plain = inflate(number, compression, bytes, ram_bytes)?;
            let n = plain.len().min(out.len());
            out[..n].copy_from_slice(&plain[..n]);
            return Ok(());
        }
        if kind > 2 || item.len() < REGULAR_LEN {
            return Err(damaged(format!(
                "an extent of type {kind} in {} bytes",
                item.len()
            )));
        }
        let (disk_at, disk_len, offset, len) =
            (le64(item, 21), le64(item, 29), le64(item, 37), le64(item, 45));
        // A hole or preallocated space: the zeros already there.
        if disk_at == 0 || kind == 2 {
            return Ok(());
        }
        let want = len.min(out.len() as u64) as usize;
        let sums = n.flags & NODATASUM == 0;
        if compression == 0 {
            if offset.checked_add(len).is_none_or(|e| e > disk_len) {
                return Err(damaged(format!(
                    "{len} bytes from {offset} of an extent of {disk_len}"
                )));
            }
            // Whole sectors are read where checksums are checked: they cover sectors.
            let sector = u64::from(self.space.sb.sector_size);
            let (skip, whole) = match sums {
                true => {
                    let from = offset - offset % sector;
                    let to = (offset + want as u64).div_ceil(sector) * sector;
                    (offset - from, to.min(disk_len) - from)
                }
                false => (0, want as u64),
            };
            let from = disk_at
                .checked_add(offset - skip)
                .ok_or_else(|| damaged("an extent's address is past 2^64"))?;
            if !sums {
                return self.space.read(from, &mut out[..want]);
            }
            let mut bytes = vec![0u8; whole as usize];
            self.space.read(from, &mut bytes)?;
            csum::verify(&self.space, self.csum_tree, from, &bytes)?;
            let skip = skip as usize;
            out[..want].copy_from_slice(&bytes[skip..skip + want]);
            return Ok(());
        }
        if disk_len > MAX_COMPRESSED || ram_bytes > MAX_COMPRESSED {
            return Err(damaged(format!(
                "a compressed extent of {disk_len} bytes for {ram_bytes}"
            )));
        }
        let mut packed = vec![0u8; disk_len as usize];
        self.space.read(disk_at, &mut packed)?;
        // A compressed extent's checksums cover its compressed bytes.
        if sums {
            csum::verify(&self.space, self.csum_tree, disk_at, &packed)?;
        }
        let plain = inflate(number, compression, &packed, ram_bytes)?;
        let part = usize::try_from(offset)
            .ok()
            .and_then(|o| plain.get(o..o.checked_add(want)?))
            .ok_or_else(|| damaged("an extent's range lies outside its inflated bytes"))?;
        out[..want].copy_from_slice(part);
        Ok(())
    }
}

/// `bytes` compressed by `how` (0 none, 1 zlib, 2 lzo, 3 zstd), inflated to at most `ram_bytes`.
fn inflate(number: u64, how: u8, bytes: &[u8], ram_bytes: u64) -> io::Result<Vec<u8>> {
    let max = usize::try_from(ram_bytes.min(MAX_COMPRESSED)).expect("128 KiB");
    match how {
        0 => Ok(bytes.to_vec()),
        1 => miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(bytes, max)
            .map_err(|e| damaged(format!("zlib data does not inflate: {:?}", e.status))),
        2 => Err(unsupported(
            number,
            "an lzo-compressed extent (only zlib and zstd are read)",
        )),
        3 => unzstd(bytes, max),
        other => Err(damaged(format!("compression type {other}"))),
    }
}

/// One zstd frame (what Btrfs writes per extent), inflated block by block to at most `max` bytes.
fn unzstd(bytes: &[u8], max: usize) -> io::Result<Vec<u8>> {
    use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
    let bad = |e: &dyn std::fmt::Display| damaged(format!("zstd data does not inflate: {e}"));
    let mut src = bytes;
    let mut dec = FrameDecoder::new();
    // Btrfs's zstd window is at most 128 KiB: a larger one asks for memory no extent needs.
    dec.set_max_window_size(1 << 20);
    dec.init(&mut src).map_err(|e| bad(&e))?;
    let mut out = Vec::new();
    loop {
        let done = dec
            .decode_blocks(&mut src, BlockDecodingStrategy::UptoBytes(1 << 16))
            .map_err(|e| bad(&e))?;
        if let Some(b) = dec.collect() {
            out.extend_from_slice(&b);
        }
        if out.len() > max {
            return Err(damaged(format!("zstd data inflates past {max} bytes")));
        }
        if done {
            return Ok(out);
        }
    }
}

fn unsupported(number: u64, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("btrfs: inode {number}: {what}"),
    )
}
