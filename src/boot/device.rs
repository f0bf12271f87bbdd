//! `--device PATH|UUID=…|LABEL=…`: the block device to take os.conf from, resolved through
//! `/dev/disk/by-uuid` and `by-label` when udev made them, else by reading every block device's
//! superblock (`disk::probe`), waiting a bounded time for a device that is not there yet.

use std::fs::File;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Roots;
use super::mountinfo::DevNum;
use super::sysfs;
use crate::disk::{self, Filesystem};
use crate::error::Error;

/// How often a missing device is looked for again while waiting.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    Path(PathBuf),
    Uuid(String),
    Label(String),
}

impl DeviceSpec {
    pub fn parse(s: &str) -> Result<DeviceSpec, Error> {
        let spec = if let Some(u) = s.strip_prefix("UUID=") {
            DeviceSpec::Uuid(u.to_owned())
        } else if let Some(l) = s.strip_prefix("LABEL=") {
            DeviceSpec::Label(l.to_owned())
        } else if s.starts_with('/') {
            DeviceSpec::Path(s.into())
        } else {
            return Err(Error::failed(
                None,
                format!("{s:?}: expected a device path, UUID=… or LABEL=…"),
            ));
        };
        let bad = match &spec {
            DeviceSpec::Uuid(u) => u.is_empty() || !u.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
            DeviceSpec::Label(l) => l.is_empty(),
            DeviceSpec::Path(_) => false,
        };
        if bad {
            return Err(Error::failed(None, format!("{s:?}: an empty or malformed value")));
        }
        Ok(spec)
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Path(p) => write!(f, "{}", p.display()),
            DeviceSpec::Uuid(u) => write!(f, "UUID={u}"),
            DeviceSpec::Label(l) => write!(f, "LABEL={l}"),
        }
    }
}

/// A block device found: its node, number and (when read) filesystem.
#[derive(Debug, Clone)]
pub struct Device {
    pub node: PathBuf,
    pub dev: DevNum,
    pub fs: Option<Filesystem>,
}

/// The device `spec` names, waiting up to `wait` for it to appear.
pub fn resolve(roots: &Roots, spec: &DeviceSpec, wait: Duration) -> Result<Device, Error> {
    poll(wait, &format!("device {spec}"), || find(roots, spec))
}

/// Calls `look` until it finds something, for at most `wait` (then an error naming `what`).
pub fn poll<T>(
    wait: Duration,
    what: &str,
    mut look: impl FnMut() -> Result<Option<T>, Error>,
) -> Result<T, Error> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(found) = look()? {
            return Ok(found);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::failed(
                None,
                format!(
                    "{what} not found after waiting {} ms (see --wait)",
                    wait.as_millis()
                ),
            ));
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

/// One look for the device, without waiting.
fn find(roots: &Roots, spec: &DeviceSpec) -> Result<Option<Device>, Error> {
    let link = match spec {
        DeviceSpec::Path(p) => return node(p),
        DeviceSpec::Uuid(u) => roots.dev.join("disk/by-uuid").join(u),
        DeviceSpec::Label(l) => roots.dev.join("disk/by-label").join(udev_encode(l)),
    };
    if let Some(d) = node(&link)? {
        return Ok(Some(d));
    }
    scan(roots, spec)
}

/// The block device at `path`, if it exists.
pub fn node(path: &Path) -> Result<Option<Device>, Error> {
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_block_device() => Ok(Some(Device {
            node: path.to_owned(),
            dev: DevNum::from_rdev(m.rdev()),
            fs: None,
        })),
        Ok(_) => Err(Error::failed(
            None,
            format!("{} is not a block device", path.display()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::failed(None, format!("{}: {e}", path.display()))),
    }
}

/// Reads the superblock of every block device that holds no partition table of its own and is not
/// empty; more than one match is an error (a cloned disk attached twice).
fn scan(roots: &Roots, spec: &DeviceSpec) -> Result<Option<Device>, Error> {
    let blocks =
        sysfs::all(&roots.sys).map_err(|e| Error::failed(None, format!("{}: {e}", roots.sys.display())))?;
    let mut found: Vec<Device> = Vec::new();
    for b in blocks {
        if b.sectors() == 0 || b.partitions().is_ok_and(|p| !p.is_empty()) {
            continue;
        }
        let node = b.node(&roots.dev);
        let Ok(file) = File::open(&node) else {
            continue;
        };
        let Ok(Some(fs)) = disk::probe(&file, 0) else {
            continue;
        };
        let hit = match spec {
            DeviceSpec::Uuid(u) => fs.uuid.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(u)),
            DeviceSpec::Label(l) => fs.label.as_deref() == Some(l.as_str()),
            DeviceSpec::Path(_) => false,
        };
        if hit {
            found.push(Device {
                node,
                dev: b.dev,
                fs: Some(fs),
            });
        }
    }
    match found.len() {
        0 | 1 => Ok(found.pop()),
        _ => Err(Error::failed(
            None,
            format!(
                "{spec} names more than one device: {}",
                found
                    .iter()
                    .map(|d| d.node.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The name udev gives a label under `/dev/disk/by-label`: bytes other than ASCII letters, digits
/// and `#+-.:=@_` as `\xNN` (udev keeps valid UTF-8 sequences; so do we).
fn udev_encode(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() || "#+-.:=@_".contains(c) || !c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            DeviceSpec::parse("/dev/vda1").unwrap(),
            DeviceSpec::Path("/dev/vda1".into())
        );
        assert_eq!(
            DeviceSpec::parse("UUID=DEAD-BEEF").unwrap(),
            DeviceSpec::Uuid("DEAD-BEEF".into())
        );
        assert_eq!(
            DeviceSpec::parse("LABEL=my boot").unwrap(),
            DeviceSpec::Label("my boot".into())
        );
        for bad in ["vda1", "UUID=", "LABEL=", "UUID=../x", "PARTUUID=1"] {
            assert!(DeviceSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_are_encoded_as_udev_names_them() {
        assert_eq!(udev_encode("BOOT"), "BOOT");
        assert_eq!(udev_encode("my boot/x"), "my\\x20boot\\x2fx");
    }
}
