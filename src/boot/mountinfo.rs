//! `/proc/self/mountinfo`: one line per mount, `ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS
//! [TAGS...] - FSTYPE SOURCE SUPER-OPTIONS`, with space, tab, newline and backslash escaped as
//! `\ooo` octal in the paths. Parsing only; never reads anything itself.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;
use std::path::PathBuf;

/// A block device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DevNum {
    pub major: u32,
    pub minor: u32,
}

impl std::fmt::Display for DevNum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl DevNum {
    /// `MAJ:MIN`, as mountinfo and sysfs `dev` files write it.
    pub fn parse(s: &str) -> Option<DevNum> {
        let (major, minor) = s.trim().split_once(':')?;
        Some(DevNum {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }

    pub fn from_rdev(rdev: u64) -> DevNum {
        DevNum {
            major: rustix::fs::major(rdev),
            minor: rustix::fs::minor(rdev),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub dev: DevNum,
    /// The directory of the filesystem that is mounted here (`/` unless a bind mount of a part).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,nosuid,relatime`).
    pub options: String,
    pub fstype: String,
    pub source: PathBuf,
    /// The filesystem's own options (`rw,errors=remount-ro`); `ro` here means the whole
    /// filesystem is read-only, not just this mount.
    pub super_options: String,
}

impl Mount {
    /// Read-only, through this mount or for the whole filesystem.
    pub fn read_only(&self) -> bool {
        has_option(&self.options, "ro") || has_option(&self.super_options, "ro")
    }
}

pub fn has_option(options: &str, name: &str) -> bool {
    options.split(',').any(|o| o == name)
}

/// Every well-formed line, in the file's order (a later mount on the same point hides an earlier
/// one). Malformed lines are skipped: the kernel writes this file, a line we cannot read is not one
/// we could use.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let _id = l.next()?;
    let _parent = l.next()?;
    let dev = DevNum::parse(l.next()?)?;
    let root = unescape(l.next()?);
    let mount_point = unescape(l.next()?);
    let options = l.next()?.to_owned();
    let mut r = right.split(' ');
    let fstype = r.next()?.to_owned();
    let source = unescape(r.next().unwrap_or(""));
    let super_options = r.next().unwrap_or("").to_owned();
    Some(Mount {
        dev,
        root,
        mount_point,
        options,
        fstype,
        source,
        super_options,
    })
}

/// `\040` → space and the like; any other byte as it is (paths need not be UTF-8).
fn unescape(field: &str) -> PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_tags_escapes_and_missing_fields() {
        let text = "\
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda2 rw,discard
30 27 254:1 / /boot/my\\040efi\\134x ro,nosuid shared:5 master:2 - vfat /dev/vda1 rw,fmask=0022
31 27 0:40 /sub /srv rw - tmpfs tmpfs rw
garbage line
32 27 8:1 / /mnt rw - ext4
";
        let m = parse(text);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].dev, DevNum { major: 254, minor: 0 });
        assert_eq!(m[0].source, PathBuf::from("/dev/vda2"));
        assert_eq!(m[1].mount_point, PathBuf::from("/boot/my efi\\x"));
        assert_eq!(m[1].fstype, "vfat");
        assert!(m[1].read_only());
        assert!(!m[0].read_only());
        assert_eq!(m[2].root, PathBuf::from("/sub"));
        assert_eq!(m[3].source, PathBuf::from(""));
    }

    #[test]
    fn a_filesystem_read_only_underneath_a_rw_mount_is_read_only() {
        let m = parse("1 0 8:1 / /boot rw - ext4 /dev/sda1 ro,relatime\n");
        assert!(m[0].read_only());
    }

    #[test]
    fn backslashes_without_three_octal_digits_stay() {
        assert_eq!(unescape("a\\b\\12"), PathBuf::from("a\\b\\12"));
        assert_eq!(unescape("\\011x"), PathBuf::from("\tx"));
    }
}
