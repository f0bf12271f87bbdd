//! The checksums a Btrfs may carry, one for the whole filesystem (the superblock's `csum_type`):
//! CRC-32C (the default), xxhash64 and SHA-256 are computed here (xxhash64 in a few lines of its
//! own; SHA-256 by `sha2`, which the journal already links); BLAKE2b-256 is refused, named, by the
//! superblock's reader. Each is stored in the first bytes of a 32-byte field (a superblock's, a
//! node's) or packed one after another (the checksum tree's items), little-endian where a number.

use std::io;

use sha2::{Digest as _, Sha256};

use super::crc32c;

/// A filesystem's checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sum {
    Crc32c,
    Xxhash64,
    Sha256,
}

impl Sum {
    /// The checksum of `csum_type`; `Unsupported` naming a type this reader does not compute.
    pub fn of_type(csum_type: u16) -> io::Result<Sum> {
        let what = match csum_type {
            0 => return Ok(Sum::Crc32c),
            1 => return Ok(Sum::Xxhash64),
            2 => return Ok(Sum::Sha256),
            3 => "3 (BLAKE2b), which this reader does not compute".to_owned(),
            t => format!("{t}, which Btrfs does not define"),
        };
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("btrfs: checksum type {what}"),
        ))
    }

    /// Bytes one checksum takes.
    pub fn size(self) -> usize {
        match self {
            Sum::Crc32c => 4,
            Sum::Xxhash64 => 8,
            Sum::Sha256 => 32,
        }
    }

    /// The checksum of `data`, its `size()` bytes as Btrfs stores them.
    pub fn of(self, data: &[u8]) -> Vec<u8> {
        match self {
            Sum::Crc32c => crc32c(data).to_le_bytes().to_vec(),
            Sum::Xxhash64 => xxh64(data).to_le_bytes().to_vec(),
            Sum::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// Whether `stored` (at least `size()` bytes) is the checksum of `data`.
    pub fn matches(self, data: &[u8], stored: &[u8]) -> bool {
        stored[..self.size()] == self.of(data)[..]
    }
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge(acc: u64, v: u64) -> u64 {
    (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4)
}

fn le(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// XXH64 of `data` with seed 0, as Btrfs computes it (the kernel's `xxh64`).
fn xxh64(data: &[u8]) -> u64 {
    let mut rest = data;
    let mut h = if data.len() >= 32 {
        let mut v = [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)];
        while rest.len() >= 32 {
            for (i, lane) in v.iter_mut().enumerate() {
                *lane = round(*lane, le(&rest[8 * i..]));
            }
            rest = &rest[32..];
        }
        let h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        v.iter().fold(h, |h, &lane| merge(h, lane))
    } else {
        P5
    };
    h = h.wrapping_add(data.len() as u64);
    while rest.len() >= 8 {
        h = (h ^ round(0, le(rest)))
            .rotate_left(27)
            .wrapping_mul(P1)
            .wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        let k = u64::from(u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")));
        h = (h ^ k.wrapping_mul(P1))
            .rotate_left(23)
            .wrapping_mul(P2)
            .wrapping_add(P3);
        rest = &rest[4..];
    }
    for &b in rest {
        h = (h ^ u64::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh64_known_values() {
        // The reference implementation's values, seed 0.
        assert_eq!(xxh64(b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"abc"), 0x44BC_2CF5_AD77_0999);
    }
}
