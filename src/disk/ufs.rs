//! UFS1/UFS2 (FreeBSD's filesystem) superblock: recognised by its magic at any of the four places
//! it can sit (0, 8, 64 or 256 KiB), either byte order; label (UFS2), the 64-bit file system ID and
//! the fragment size (what blkid shows as BLOCK_SIZE).

use std::io;

use super::{Filesystem, Kind, ReadAt, at, read_at};

const PLACES_KIB: [u64; 4] = [0, 8, 64, 256];
const MAGIC_AT: usize = 1372;
const UFS2_MAGIC: u32 = 0x1954_0119;
/// UFS1's magic and the variants of older systems, all UFS1 for our purpose.
const UFS1_MAGICS: [u32; 5] = [0x0001_1954, 0x0019_5612, 0x0009_5014, 0x0061_2195, 0x0523_1994];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Ufs1,
    Ufs2,
}

impl Version {
    pub fn name(self) -> &'static str {
        match self {
            Version::Ufs1 => "1",
            Version::Ufs2 => "2",
        }
    }
}

pub fn probe<R: ReadAt + ?Sized>(r: &R, offset: u64) -> io::Result<Option<Filesystem>> {
    let mut sb = [0u8; MAGIC_AT + 4];
    for kib in PLACES_KIB {
        if !read_at(r, at(offset, kib, 1024)?, &mut sb)? {
            return Ok(None);
        }
        let raw: [u8; 4] = sb[MAGIC_AT..].try_into().expect("4");
        for big_endian in [false, true] {
            let magic = if big_endian {
                u32::from_be_bytes(raw)
            } else {
                u32::from_le_bytes(raw)
            };
            let version = match magic {
                UFS2_MAGIC => Version::Ufs2,
                m if UFS1_MAGICS.contains(&m) => Version::Ufs1,
                _ => continue,
            };
            return Ok(Some(parse(&sb, version, big_endian)));
        }
    }
    Ok(None)
}

fn parse(sb: &[u8], version: Version, big_endian: bool) -> Filesystem {
    let word = |at: usize| {
        let b: [u8; 4] = sb[at..at + 4].try_into().expect("4");
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let (id0, id1) = (word(144), word(148));
    Filesystem {
        kind: Kind::Ufs(version),
        uuid: (id0 != 0 || id1 != 0).then(|| format!("{id0:08x}{id1:08x}")),
        label: match version {
            Version::Ufs2 => super::label(&sb[680..712]),
            Version::Ufs1 => None,
        },
        block_size: Some(word(52)),
    }
}
