//! Files inside a FAT12/16/32 filesystem: cluster chains (bounded by the cluster count, so a chain
//! that loops ends), directories with their long names (VFAT LFN entries, checksum verified against
//! the 8.3 entry they precede, as Linux's vfat does; else the 8.3 name with its lower-case flags),
//! and file contents up to their size. Names are compared case-insensitively, as the kernel mounts
//! FAT (ASCII letters only, as Linux's vfat with iocharset=utf8). FAT has no links, owners or modes. It never writes.

use std::io;

use super::{ATTR_DIR, ATTR_LONG_NAME, ATTR_VOLUME_ID, Geometry, Version};
use crate::disk::tree::{Entry, FileType, MAX_DIR, Meta, Tree, check_name, corrupt};
use crate::disk::{ReadAt, at, le16, le32, read_at};

/// The largest directory FAT allows: 65536 entries of 32 bytes.
const MAX_FAT_DIR: u64 = 65536 * 32;

/// An open FAT filesystem on `r` at byte `offset`.
pub struct Fat<R> {
    r: R,
    offset: u64,
    geo: Geometry,
}

/// A file or directory: its first cluster (0: FAT12/16's fixed root, or an empty file), its size,
/// whether it is a directory, and its modification time (`mtime`; none for the root directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    cluster: u32,
    size: u64,
    dir: bool,
    root: bool,
    mtime: Option<i64>,
}

impl<R: ReadAt> Fat<R> {
    /// The FAT filesystem at `offset`, `None` when its boot sector is not FAT's.
    pub fn open(r: R, offset: u64) -> io::Result<Option<Fat<R>>> {
        let mut bs = [0u8; 512];
        if !read_at(&r, offset, &mut bs)? {
            return Ok(None);
        }
        Ok(super::geometry(&bs).map(|geo| Fat::new(r, offset, geo)))
    }

    pub(crate) fn new(r: R, offset: u64, geo: Geometry) -> Fat<R> {
        Fat { r, offset, geo }
    }

    /// The FAT entry of `cluster` (the next cluster, or an end/bad/free mark).
    fn next(&self, cluster: u32) -> io::Result<u32> {
        let n = u64::from(cluster);
        let (at, width) = match self.geo.version {
            Version::Fat12 => (n + n / 2, 2),
            Version::Fat16 => (2 * n, 2),
            Version::Fat32 => (4 * n, 4),
        };
        if at + width > self.geo.fat_bytes {
            return Err(corrupt(format!("FAT: cluster {cluster} is beyond the FAT")));
        }
        let mut b = [0u8; 4];
        if !read_at(
            &self.r,
            crate::disk::at(self.offset, 1, self.geo.fat_start + at)?,
            &mut b[..width as usize],
        )? {
            return Err(corrupt("FAT: the FAT is beyond the end of the image"));
        }
        Ok(match self.geo.version {
            Version::Fat12 if cluster % 2 == 1 => u32::from(le16(&b, 0) >> 4),
            Version::Fat12 => u32::from(le16(&b, 0) & 0x0FFF),
            Version::Fat16 => u32::from(le16(&b, 0)),
            Version::Fat32 => le32(&b, 0) & 0x0FFF_FFFF,
        })
    }

    fn is_end(&self, value: u32) -> bool {
        value
            >= match self.geo.version {
                Version::Fat12 => 0xFF8,
                Version::Fat16 => 0xFFF8,
                Version::Fat32 => 0x0FFF_FFF8,
            }
    }

    fn valid(&self, cluster: u32) -> bool {
        (2..self.geo.clusters.saturating_add(2)).contains(&cluster)
    }

    /// The chain from `first`: `want` clusters exactly (a file), or up to its end mark within `max`
    /// bytes (a directory: `want` None). Longer is an error: the chain loops or is corrupt.
    fn chain(&self, first: u32, want: Option<u64>, max: u64) -> io::Result<Vec<u32>> {
        let limit = want.unwrap_or(max.div_ceil(self.geo.cluster_bytes));
        let mut out = Vec::new();
        let mut at = first;
        loop {
            if !self.valid(at) {
                return Err(corrupt(format!(
                    "FAT: cluster {at} in the chain from {first} is not a data cluster"
                )));
            }
            out.push(at);
            if out.len() as u64 > limit {
                return Err(corrupt(format!(
                    "FAT: the chain from cluster {first} is longer than {limit} clusters (a loop?)"
                )));
            }
            if want == Some(out.len() as u64) {
                return Ok(out);
            }
            let next = self.next(at)?;
            if self.is_end(next) {
                return match want {
                    Some(n) => Err(corrupt(format!(
                        "FAT: the chain from cluster {first} ends after {} of {n} clusters",
                        out.len()
                    ))),
                    None => Ok(out),
                };
            }
            at = next;
        }
    }

    fn cluster_at(&self, cluster: u32) -> io::Result<u64> {
        at(
            self.offset,
            1,
            self.geo.data_start + u64::from(cluster - 2) * self.geo.cluster_bytes,
        )
    }

    /// The bytes of `node` (a directory: all its clusters).
    fn contents(&self, node: &Node, max: u64) -> io::Result<Vec<u8>> {
        if node.root && self.geo.version != Version::Fat32 {
            let mut buf = vec![0u8; (self.geo.root_entries * 32) as usize];
            if !read_at(&self.r, at(self.offset, 1, self.geo.root_start)?, &mut buf)? {
                return Err(corrupt("FAT: the root directory is beyond the end of the image"));
            }
            return Ok(buf);
        }
        if node.size > max {
            return Err(corrupt(format!(
                "FAT: {} bytes, more than the {max} read",
                node.size
            )));
        }
        if !node.dir && node.size == 0 {
            return Ok(Vec::new());
        }
        let want = (!node.dir).then(|| node.size.div_ceil(self.geo.cluster_bytes));
        let chain = self.chain(node.cluster, want, MAX_FAT_DIR)?;
        let cb = self.geo.cluster_bytes as usize;
        let mut buf = vec![0u8; chain.len() * cb];
        for (i, c) in chain.iter().enumerate() {
            let at = self.cluster_at(*c)?;
            if !read_at(&self.r, at, &mut buf[i * cb..(i + 1) * cb])? {
                return Err(corrupt(format!(
                    "FAT: cluster {c} is beyond the end of the image"
                )));
            }
        }
        if !node.dir {
            buf.truncate(node.size as usize);
        }
        Ok(buf)
    }

    fn root_node(&self) -> Node {
        Node {
            cluster: self.geo.root_cluster,
            size: 0,
            dir: true,
            root: true,
            mtime: None,
        }
    }

    /// Visits the root directory's raw 32-byte entries until `visit` says stop or the directory
    /// ends; a damaged chain ends it quietly (what libblkid does when it looks for the label).
    pub(crate) fn each_root_entry(&self, visit: &mut dyn FnMut(&[u8]) -> bool) -> io::Result<()> {
        let root = self.root_node();
        let data = match self.contents(&root, MAX_FAT_DIR) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(()),
            Err(e) => return Err(e),
        };
        for e in data.chunks_exact(32) {
            if e[0] == 0 || visit(e) {
                break;
            }
        }
        Ok(())
    }

    /// The named entries of directory `dir`: name and node, `.`/`..` and the volume label left out.
    fn entries(&self, dir: &Node) -> io::Result<Vec<(String, Node)>> {
        let data = self.contents(dir, MAX_DIR)?;
        let mut out = Vec::new();
        let mut long: Vec<u16> = Vec::new();
        let mut long_sum: Option<u8> = None;
        let mut named = 0;
        for (slot, e) in data.chunks_exact(32).enumerate() {
            let attr = e[11];
            if e[0] == 0 {
                break;
            }
            if e[0] == 0xE5 {
                long.clear();
                long_sum = None;
                continue;
            }
            if attr & 0x3F == ATTR_LONG_NAME {
                if e[0] & 0x40 != 0 {
                    long.clear();
                    long_sum = Some(e[13]);
                } else if long_sum != Some(e[13]) {
                    long_sum = None;
                }
                // 13 UCS-2 characters in three runs; the entries come last part first.
                let part: Vec<u16> = [1..11, 14..26, 28..32]
                    .into_iter()
                    .flat_map(|run| e[run].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])))
                    .take_while(|&c| c != 0)
                    .collect();
                long.splice(0..0, part);
                continue;
            }
            let short: &[u8; 11] = e[..11].try_into().expect("11");
            let (name, is_long) = match long_sum {
                Some(sum) if sum == checksum(short) && !long.is_empty() => {
                    (String::from_utf16_lossy(&long), true)
                }
                _ => (short_name(short, e[12]), false),
            };
            long.clear();
            long_sum = None;
            if attr & ATTR_VOLUME_ID != 0 {
                continue;
            }
            // `.` and `..` are a subdirectory's first two entries, in 8.3 form; anywhere else, as
            // any name holding `/` or NUL, they are damage.
            let dots = !dir.root && !is_long && name.len() == named + 1;
            named += 1;
            check_name(name.as_bytes(), dots)
                .map_err(|why| corrupt(format!("FAT: directory entry {slot}: the name {name:?} {why}")))?;
            if name == "." || name == ".." {
                continue;
            }
            let hi = if self.geo.version == Version::Fat32 {
                u32::from(le16(e, 20)) << 16
            } else {
                0
            };
            let dir = attr & ATTR_DIR != 0;
            out.push((
                name,
                Node {
                    cluster: hi | u32::from(le16(e, 26)),
                    size: if dir { 0 } else { u64::from(le32(e, 28)) },
                    dir,
                    root: false,
                    mtime: mtime(le16(e, 24), le16(e, 22)),
                },
            ));
        }
        Ok(out)
    }
}

/// A directory entry's write date and time as seconds since 1970: FAT keeps the local time of
/// whoever wrote it, in 2-second steps and with no zone, read here as UTC (what Linux's vfat does
/// with `tz=UTC`, and with its default when the kernel's zone is UTC, as on ECS instances). A date
/// or time no calendar has (month 0, 25 o'clock) is no time; a date of 0 is "never set".
fn mtime(date: u16, time: u16) -> Option<i64> {
    let (year, month, day) = (
        1980 + i64::from(date >> 9),
        u32::from(date >> 5 & 15),
        u32::from(date & 31),
    );
    let (hour, min, sec) = (
        i64::from(time >> 11),
        i64::from(time >> 5 & 63),
        i64::from(time & 31) * 2,
    );
    if !(1..=12).contains(&month) || day == 0 || hour > 23 || min > 59 || sec > 58 {
        return None;
    }
    let days = crate::clock::days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + min * 60 + sec)
}

/// The checksum of an 8.3 name that its long-name entries carry.
fn checksum(short: &[u8; 11]) -> u8 {
    short
        .iter()
        .fold(0u8, |sum, &c| sum.rotate_right(1).wrapping_add(c))
}

/// `NAME.EXT` from an 8.3 entry: 0x05 stands for 0xE5; bits 3 and 4 of byte 12 (set by Windows NT
/// and Linux) ask for a lower-case base and extension.
fn short_name(short: &[u8; 11], case: u8) -> String {
    let part = |b: &[u8], lower: bool| -> String {
        let mut b = b.to_vec();
        if b.first() == Some(&0x05) {
            b[0] = 0xE5;
        }
        let text: String = b.iter().map(|&c| char::from(c)).collect();
        let text = text.trim_end_matches(' ');
        if lower {
            text.to_ascii_lowercase()
        } else {
            text.to_owned()
        }
    };
    let (base, ext) = (
        part(&short[..8], case & 0x08 != 0),
        part(&short[8..], case & 0x10 != 0),
    );
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

impl<R: ReadAt> Tree for Fat<R> {
    type Node = Node;

    fn root(&self) -> io::Result<Node> {
        Ok(self.root_node())
    }

    fn meta(&self, n: &Node) -> Meta {
        Meta {
            file_type: if n.dir { FileType::Dir } else { FileType::File },
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: n.size,
            mtime: n.mtime,
        }
    }

    fn lookup(&self, dir: &Node, name: &[u8]) -> io::Result<Option<Node>> {
        // ASCII only, as Linux's vfat compares names with iocharset=utf8.
        Ok(self
            .entries(dir)?
            .into_iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|(_, node)| node))
    }

    fn list(&self, dir: &Node) -> io::Result<Vec<Entry>> {
        Ok(self
            .entries(dir)?
            .into_iter()
            .map(|(name, n)| Entry {
                name,
                file_type: self.meta(&n).file_type,
            })
            .collect())
    }

    fn read(&self, n: &Node, max: u64) -> io::Result<Vec<u8>> {
        self.contents(n, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_and_checksums() {
        assert_eq!(short_name(b"README  TXT", 0), "README.TXT");
        assert_eq!(short_name(b"README  TXT", 0x18), "readme.txt");
        assert_eq!(short_name(b"\x05BC        ", 0), "\u{e5}BC");
        // The FAT specification's checksum of "OS      CON" (os.conf's 8.3 alias).
        assert_eq!(checksum(b"OS      CON"), 0x1b);
    }

    #[test]
    fn write_times_in_two_second_steps_without_a_zone() {
        // 2024-02-29 23:59:58, as FAT packs it: date (44 << 9 | 2 << 5 | 29), time (23:59:29×2).
        assert_eq!(
            mtime(44 << 9 | 2 << 5 | 29, 23 << 11 | 59 << 5 | 29),
            Some(1_709_251_198)
        );
        assert_eq!(mtime(1 << 5 | 1, 0), Some(315_532_800));
        for (date, time) in [
            (0, 0),
            (13 << 5 | 1, 0),
            (1 << 5, 0),
            (1 << 5 | 1, 24 << 11),
            (1 << 5 | 1, 30),
        ] {
            assert_eq!(mtime(date, time), None, "{date:#x} {time:#x}");
        }
    }
}
