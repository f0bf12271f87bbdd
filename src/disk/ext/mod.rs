//! ext2/3/4 superblock (1024 bytes at byte 1024 of the filesystem): UUID, label, block size, the
//! feature flags, and which of ext2, ext3 and ext4 it is — decided by the features as libblkid does,
//! so that the name is also the one the kernel's driver of that name accepts. `Ext` reads files
//! inside one (`fs`: geometry and inodes, `map`: where the data is, `dir`: directories,
//! `journal` and `recover`: a journal that needs recovery replayed into what is read).

mod csum;
mod dir;
mod fs;
pub(crate) mod journal;
mod map;
mod recover;

pub use fs::{Ext, Inode};

use dir::Listing;

use std::io;

use super::{Filesystem, Kind, ReadAt, at, le16, le32, read_at};

pub(super) const SUPERBLOCK_AT: u64 = 1024;
pub(super) const MAGIC: u16 = 0xEF53;

const COMPAT_HAS_JOURNAL: u32 = 0x0004;
pub(super) const INCOMPAT_FILETYPE: u32 = 0x0002;
const INCOMPAT_RECOVER: u32 = 0x0004;
pub(super) const INCOMPAT_JOURNAL_DEV: u32 = 0x0008;
pub(super) const INCOMPAT_META_BG: u32 = 0x0010;
pub(super) const INCOMPAT_64BIT: u32 = 0x0080;
pub(super) const RO_COMPAT_SPARSE_SUPER: u32 = 0x0001;
const RO_COMPAT_LARGE_FILE: u32 = 0x0002;
const RO_COMPAT_BTREE_DIR: u32 = 0x0004;
const RO_COMPAT_READONLY: u32 = 0x1000;
/// sparse_super … metadata_csum (0x0001–0x0400 without replica's 0x0800), as Linux 3.10's ext4 has them.
const RO_COMPAT_KNOWN_TO_3_10: u32 = 0x07FF;

/// What ext2 (and ext3 on top of its journal) understand; anything else makes it ext4.
const EXT2_INCOMPAT: u32 = INCOMPAT_FILETYPE | INCOMPAT_META_BG;
const EXT3_INCOMPAT: u32 = EXT2_INCOMPAT | INCOMPAT_RECOVER;
const EXT23_RO_COMPAT: u32 = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_BTREE_DIR;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Ext2,
    Ext3,
    Ext4,
}

impl Flavour {
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Ext2 => "ext2",
            Flavour::Ext3 => "ext3",
            Flavour::Ext4 => "ext4",
        }
    }
}

/// The record length of the directory entry at `at` of `b`, in a filesystem of `block_size`
/// blocks: 64 KiB blocks store a whole-block record as 0 or 65535 (ext4_rec_len_from_disk).
fn rec_len(b: &[u8], at: usize, block_size: u64) -> usize {
    let raw = usize::from(le16(b, at + 4));
    if block_size == 65536 && (raw == 0 || raw == 65535) {
        65536
    } else {
        raw
    }
}

/// The three feature words of the superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    pub compat: u32,
    pub incompat: u32,
    pub ro_compat: u32,
}

/// (word, bit, name as e2fsprogs spells it) for the features worth naming.
const NAMES: [(u8, u32, &str); 18] = [
    (0, 0x0004, "has_journal"),
    (0, 0x0008, "ext_attr"),
    (0, 0x0010, "resize_inode"),
    (0, 0x0020, "dir_index"),
    (1, INCOMPAT_FILETYPE, "filetype"),
    (1, INCOMPAT_RECOVER, "needs_recovery"),
    (1, INCOMPAT_META_BG, "meta_bg"),
    (1, 0x0040, "extent"),
    (1, INCOMPAT_64BIT, "64bit"),
    (1, 0x0200, "flex_bg"),
    (1, 0x8000, "inline_data"),
    (1, 0x10000, "encrypt"),
    (2, RO_COMPAT_SPARSE_SUPER, "sparse_super"),
    (2, RO_COMPAT_LARGE_FILE, "large_file"),
    (2, 0x0008, "huge_file"),
    (2, 0x0020, "dir_nlink"),
    (2, 0x0040, "extra_isize"),
    (2, 0x0400, "metadata_csum"),
];

impl Features {
    /// ext4's `64bit`, which Alibaba Cloud's image import refuses.
    pub fn has_64bit(&self) -> bool {
        self.incompat & INCOMPAT_64BIT != 0
    }

    /// Why a kernel would mount it read-only, if one would: the `read-only` feature, or read-only
    /// compatible features newer than what Linux 3.10 (CentOS 7) writes — such a kernel mounts the
    /// filesystem read-only, so os.conf could not be removed.
    pub fn read_only_reason(&self) -> Option<String> {
        if self.ro_compat & RO_COMPAT_READONLY != 0 {
            return Some("the read-only feature is set".to_owned());
        }
        let newer = self.ro_compat & !RO_COMPAT_KNOWN_TO_3_10;
        (newer != 0).then(|| format!("read-only compatible features {newer:#x} are newer than Linux 3.10"))
    }

    pub fn has_journal(&self) -> bool {
        self.compat & COMPAT_HAS_JOURNAL != 0
    }

    /// The set features among the well-known ones, by their e2fsprogs names.
    pub fn names(&self) -> Vec<&'static str> {
        let words = [self.compat, self.incompat, self.ro_compat];
        NAMES
            .iter()
            .filter(|(w, bit, _)| words[*w as usize] & bit != 0)
            .map(|(_, _, n)| *n)
            .collect()
    }

    /// ext2 without a journal and without features ext2 lacks; ext3 with a journal and nothing
    /// newer; ext4 otherwise (libblkid's rule).
    pub fn flavour(&self) -> Flavour {
        let beyond_ext23_ro = self.ro_compat & !EXT23_RO_COMPAT != 0;
        if !self.has_journal() && !beyond_ext23_ro && self.incompat & !EXT2_INCOMPAT == 0 {
            Flavour::Ext2
        } else if self.has_journal() && !beyond_ext23_ro && self.incompat & !EXT3_INCOMPAT == 0 {
            Flavour::Ext3
        } else {
            Flavour::Ext4
        }
    }
}

/// The ext filesystem at `offset`, if its superblock carries the magic. An external journal device
/// (`jbd`) is not a filesystem and gives `None`.
pub fn probe<R: ReadAt + ?Sized>(r: &R, offset: u64) -> io::Result<Option<Filesystem>> {
    let mut sb = [0u8; 1024];
    if !read_at(r, at(offset, SUPERBLOCK_AT, 1)?, &mut sb)? || le16(&sb, 0x38) != MAGIC {
        return Ok(None);
    }
    Ok(parse(&sb))
}

fn parse(sb: &[u8; 1024]) -> Option<Filesystem> {
    let features = Features {
        compat: le32(sb, 0x5C),
        incompat: le32(sb, 0x60),
        ro_compat: le32(sb, 0x64),
    };
    let log_block = le32(sb, 0x18);
    if features.incompat & INCOMPAT_JOURNAL_DEV != 0 || log_block > 6 {
        return None;
    }
    Some(Filesystem {
        kind: Kind::Ext(features.flavour(), features),
        uuid: super::uuid(&sb[0x68..0x78]),
        label: super::label(&sb[0x78..0x88]),
        block_size: Some(1024 << log_block),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(compat: u32, incompat: u32, ro_compat: u32) -> Features {
        Features {
            compat,
            incompat,
            ro_compat,
        }
    }

    #[test]
    fn flavour_follows_the_features() {
        // mke2fs defaults: ext2 (no journal), ext3 (journal), ext4 (extent, flex_bg, 64bit...).
        assert_eq!(features(0x38, 0x2, 0x3).flavour(), Flavour::Ext2);
        assert_eq!(features(0x3c, 0x2, 0x3).flavour(), Flavour::Ext3);
        assert_eq!(features(0x3c, 0x2c2, 0x46b).flavour(), Flavour::Ext4);
        // ext4 without a journal is still ext4; ext3 being recovered is still ext3.
        assert_eq!(features(0x38, 0x242, 0x3).flavour(), Flavour::Ext4);
        assert_eq!(features(0x3c, 0x6, 0x3).flavour(), Flavour::Ext3);
        assert!(features(0, INCOMPAT_64BIT, 0).has_64bit());
        assert_eq!(
            features(0x4, 0x80, 0x400).names(),
            ["has_journal", "64bit", "metadata_csum"]
        );
    }

    #[test]
    fn journal_devices_and_absurd_block_sizes_are_not_filesystems() {
        let mut sb = [0u8; 1024];
        sb[0x38..0x3A].copy_from_slice(&MAGIC.to_le_bytes());
        assert!(parse(&sb).is_some());
        sb[0x60] = INCOMPAT_JOURNAL_DEV as u8;
        assert!(parse(&sb).is_none());
        sb[0x60] = 0;
        sb[0x18] = 30;
        assert!(parse(&sb).is_none());
    }
}
