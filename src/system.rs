//! System: a read-only view of the target root (files, links, os-release) for detection and renderers.
//!
//! Nothing here writes. Every path is absolute within the target (`/etc/hosts`) and resolved inside the
//! root as a chroot would, through [`Files`]: the host's [`Root`] (`/`, a mounted image, a test's temp
//! dir) or a filesystem inside a disk image read by `disk` (`image::view`), so the same detection,
//! renderers and install planner serve all of them, and a link in a hostile image never reads the
//! machine osconf runs on.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::render::common::shellvars::unquote;
use crate::root::Root;

/// The fields of `/etc/os-release` that choose a renderer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    pub id_like: Vec<String>,
    pub version_id: String,
    pub pretty_name: String,
}

impl OsRelease {
    /// Parses the os-release format: `KEY=value` with shell quoting.
    pub fn parse(text: &str) -> OsRelease {
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            let Some((key, value)) = line.trim().split_once('=') else {
                continue;
            };
            fields.insert(key.to_owned(), unquote(value));
        }
        let take = |k: &str| fields.get(k).cloned().unwrap_or_default();
        OsRelease {
            id: take("ID").to_ascii_lowercase(),
            id_like: take("ID_LIKE")
                .split_whitespace()
                .map(str::to_ascii_lowercase)
                .collect(),
            version_id: take("VERSION_ID"),
            pretty_name: take("PRETTY_NAME"),
        }
    }

    /// True when ID or any ID_LIKE entry is one of `ids`.
    pub fn is_like(&self, ids: &[&str]) -> bool {
        ids.contains(&self.id.as_str()) || self.id_like.iter().any(|l| ids.contains(&l.as_str()))
    }

    /// The major version as a number (`"9.3"` → 9), when there is one.
    pub fn major_version(&self) -> Option<u32> {
        self.version_id.split('.').next()?.parse().ok()
    }
}

/// What a [`System`] reads a root through. Paths are absolute within the root and resolved inside
/// it (links included); only `NotFound` means absent.
pub trait Files: fmt::Debug {
    /// The root as given (a directory on this machine, or an image's partition), for messages.
    fn path(&self) -> &Path;
    /// Where a target path lies, for messages only.
    fn host_path(&self, path: &str) -> PathBuf;
    /// The bytes of the regular file at `path` (links followed), at most `limit` of them or an
    /// error; `None` when absent. Anything but a regular file is an error.
    fn read_up_to(&self, path: &str, limit: u64) -> io::Result<Option<Vec<u8>>>;
    /// What is at `path`, a link there followed only when `follow`; `None` when absent.
    fn stat(&self, path: &str, follow: bool) -> io::Result<Option<Stat>>;
    /// The target of the link at `path`; `None` when nothing or something else is there.
    fn read_link(&self, path: &str) -> io::Result<Option<PathBuf>>;
    /// The names in directory `dir` (links followed), unsorted; empty when absent.
    fn list(&self, dir: &str) -> io::Result<Vec<OsString>>;
}

impl Files for Root {
    fn path(&self) -> &Path {
        Root::path(self)
    }

    fn host_path(&self, path: &str) -> PathBuf {
        Root::host_path(self, path)
    }

    fn read_up_to(&self, path: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
        Root::read_up_to(self, path, limit).map_err(|e| e.error)
    }

    fn stat(&self, path: &str, follow: bool) -> io::Result<Option<Stat>> {
        use rustix::fs::{FileType, OFlags};
        let st = crate::root::absent_as_none(
            self.open_in(path, OFlags::PATH, follow)
                .and_then(|fd| Ok(rustix::fs::fstat(fd)?)),
        )?;
        Ok(st.map(|st| Stat {
            kind: match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => Kind::File,
                FileType::Directory => Kind::Dir,
                FileType::Symlink => Kind::Link,
                _ => Kind::Other,
            },
            mode: st.st_mode & 0o7777,
        }))
    }

    fn read_link(&self, path: &str) -> io::Result<Option<PathBuf>> {
        Root::read_link(self, path)
    }

    fn list(&self, dir: &str) -> io::Result<Vec<OsString>> {
        Root::list(self, dir)
    }
}

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Link,
    /// A device, FIFO or socket.
    Other,
}

/// What [`Files::stat`] tells of a path: its kind and permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    pub mode: u32,
}

/// The target system as found under a root.
#[derive(Debug)]
pub struct System {
    files: Box<dyn Files>,
    pub os: OsRelease,
}

/// Reading the target failed: the path and why. Only `ENOENT` is "absent"; any other error (a
/// permission, an I/O error, a FIFO, a device, a loop of links) is this, so that nothing is planned
/// on a misread file.
pub type Error = crate::root::Error;

pub type Result<T> = std::result::Result<T, Error>;

impl System {
    /// Opens the root and reads its os-release (`/etc/os-release`, else `/usr/lib/os-release`), both
    /// resolved inside the root: never the os-release of the machine osconf runs on.
    pub fn probe(root: &Path) -> Result<System> {
        let root = Root::open(root).map_err(|error| Error {
            path: root.to_owned(),
            error,
        })?;
        System::on(root)
    }

    /// The system under an open root on this machine.
    pub fn on(root: Root) -> Result<System> {
        System::over(Box::new(root))
    }

    /// The system read through `files` (a filesystem inside an image, say).
    pub fn over(files: Box<dyn Files>) -> Result<System> {
        let mut sys = System {
            files,
            os: OsRelease::default(),
        };
        let text = match sys.read_text("/etc/os-release")? {
            Some(text) => Some(text),
            None => sys.read_text("/usr/lib/os-release")?,
        };
        sys.os = OsRelease::parse(&text.unwrap_or_default());
        Ok(sys)
    }

    /// The root as given (a directory on this machine, or an image's partition), for messages.
    pub fn root(&self) -> &Path {
        self.files.path()
    }

    /// Where a target path lies, for messages only.
    pub fn host_path(&self, path: &str) -> PathBuf {
        self.files.host_path(path)
    }

    /// Wraps an error with the path it is about.
    fn error(&self, path: &str, error: io::Error) -> Error {
        Error {
            path: self.host_path(path),
            error,
        }
    }

    /// The bytes of a regular file, links followed inside the root; `None` when absent.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.read_up_to(path, crate::root::MAX_READ)
    }

    /// [`System::read`] for a file osconf itself replaces (its binary): up to [`crate::root::MAX_KEEP`].
    pub fn read_own(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.read_up_to(path, crate::root::MAX_KEEP)
    }

    fn read_up_to(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        self.files
            .read_up_to(path, limit)
            .map_err(|e| self.error(path, e))
    }

    /// A file's text; invalid UTF-8 is replaced rather than failing, since only ASCII keys are sought.
    pub fn read_text(&self, path: &str) -> Result<Option<String>> {
        Ok(self.read(path)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// True when something (file, directory or link, even dangling) is at `path`.
    pub fn exists(&self, path: &str) -> Result<bool> {
        Ok(self.mode(path)?.is_some())
    }

    /// The permission bits of what is at `path` itself (a link not followed); `None` when absent.
    pub fn mode(&self, path: &str) -> Result<Option<u32>> {
        Ok(self.stat(path, false)?.map(|st| st.mode))
    }

    /// True when `path`, links followed inside the root, is a directory.
    pub fn is_dir(&self, path: &str) -> Result<bool> {
        Ok(self.stat(path, true)?.is_some_and(|st| st.kind == Kind::Dir))
    }

    /// What is at `path`, a link there followed only when `follow`; `None` when absent.
    pub fn stat(&self, path: &str, follow: bool) -> Result<Option<Stat>> {
        self.files.stat(path, follow).map_err(|e| self.error(path, e))
    }

    /// The target of a symbolic link, as written in the link; `None` when `path` is not a link.
    pub fn link_target(&self, path: &str) -> Result<Option<PathBuf>> {
        self.files.read_link(path).map_err(|e| self.error(path, e))
    }

    /// Names in a directory, sorted; empty when it does not exist. Names that are not UTF-8 are left
    /// out: no file osconf looks for has one.
    pub fn list(&self, dir: &str) -> Result<Vec<String>> {
        let names = self.files.list(dir).map_err(|e| self.error(dir, e))?;
        let mut names: Vec<String> = names.into_iter().filter_map(|n| n.into_string().ok()).collect();
        names.sort();
        Ok(names)
    }

    /// The `*.wants` and `*.requires` directories of /etc/systemd/system, where enabling a unit puts
    /// its link: the one scan of them.
    pub fn systemd_wants_dirs(&self) -> Result<Vec<String>> {
        Ok(self
            .list(SYSTEMD_ETC)?
            .into_iter()
            .filter(|d| d.ends_with(".wants") || d.ends_with(".requires"))
            .map(|d| format!("{SYSTEMD_ETC}/{d}"))
            .collect())
    }

    /// The link that enables a systemd unit (`/etc/systemd/system/multi-user.target.wants/x.service`),
    /// unless the unit is masked (linked to /dev/null), which beats any enablement.
    pub fn systemd_unit_link(&self, unit: &str) -> Result<Option<String>> {
        for dir in self.systemd_wants_dirs()? {
            let link = format!("{dir}/{unit}");
            if self.exists(&link)? {
                return Ok((!self.systemd_unit_masked(unit)?).then_some(link));
            }
        }
        Ok(None)
    }

    /// True when a systemd unit is enabled: [`System::systemd_unit_link`] finds its link.
    pub fn systemd_unit_enabled(&self, unit: &str) -> Result<bool> {
        Ok(self.systemd_unit_link(unit)?.is_some())
    }

    /// True when a unit is masked (linked to /dev/null), which beats any enablement.
    pub fn systemd_unit_masked(&self, unit: &str) -> Result<bool> {
        let target = self.link_target(&format!("{SYSTEMD_ETC}/{unit}"))?;
        Ok(target.is_some_and(|t| t == Path::new("/dev/null")))
    }

    /// The runlevel link that starts the init script `script` at boot: a sysvinit start link
    /// `S<digits><script>` in a runlevel directory booting reaches ([`RC_DIRS`]: Debian's
    /// `/etc/rc?.d`, Red Hat's `/etc/rc.d/rc?.d`), or an OpenRC link `/etc/runlevels/<level>/<script>`.
    /// A kill link (`K01…`) starts nothing; `S10foo-script` starts `foo-script`, not `script`.
    pub fn init_script_link(&self, script: &str) -> Result<Option<String>> {
        for dir in RC_DIRS {
            if let Some(name) = self.list(dir)?.into_iter().find(|n| starts(n, script)) {
                return Ok(Some(format!("{dir}/{name}")));
            }
        }
        for level in self.list("/etc/runlevels")? {
            let link = format!("/etc/runlevels/{level}/{script}");
            if self.exists(&link)? {
                return Ok(Some(link));
            }
        }
        Ok(None)
    }
}

/// Where systemd keeps the administrator's units and enablement links.
const SYSTEMD_ETC: &str = "/etc/systemd/system";

/// Where systemd loads system units from, in its order of precedence (systemd.unit(5)'s system
/// search path, with `/lib/systemd/system` where /usr is not merged, as on Debian before 12): the
/// one list for whoever asks where a unit's file is — the agent on the running system (whether a
/// unit is an alias, `platform::activate`), the toolkit in an image (which unit makes host keys,
/// `image::keygen`; the `/run` ones are empty there).
pub const UNIT_DIRS: [&str; 8] = [
    "/run/systemd/generator.early",
    SYSTEMD_ETC,
    "/run/systemd/system",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
    "/run/systemd/generator.late",
];

/// The sysvinit runlevel directories whose start links run at boot: single-user (S) and the multi-user
/// runlevels 2 to 5, in Debian's place and Red Hat's.
const RC_DIRS: [&str; 10] = [
    "/etc/rcS.d",
    "/etc/rc2.d",
    "/etc/rc3.d",
    "/etc/rc4.d",
    "/etc/rc5.d",
    "/etc/rc.d/rcS.d",
    "/etc/rc.d/rc2.d",
    "/etc/rc.d/rc3.d",
    "/etc/rc.d/rc4.d",
    "/etc/rc.d/rc5.d",
];

/// True when the runlevel link `name` starts `script`: `S`, one or more digits, then the name.
fn starts(name: &str, script: &str) -> bool {
    name.strip_prefix('S')
        .and_then(|r| r.strip_suffix(script))
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_parsing() {
        let os = OsRelease::parse(
            "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE='rhel centos fedora'\nVERSION_ID=\"9.3\"\n# c\nBAD\nPRETTY_NAME=\"R \\\"9\\\"\"\n",
        );
        assert_eq!(os.id, "rocky");
        assert_eq!(os.id_like, ["rhel", "centos", "fedora"]);
        assert_eq!(os.major_version(), Some(9));
        assert_eq!(os.pretty_name, "R \"9\"");
        assert!(os.is_like(&["fedora"]));
        assert!(!os.is_like(&["debian"]));
        // Single quotes, a value with spaces and an ellipsis, as os-release(5) allows.
        let os = OsRelease::parse("PRETTY_NAME='Debian GNU/Linux 12 (bookworm) …'\nID=debian\n");
        assert_eq!(os.pretty_name, "Debian GNU/Linux 12 (bookworm) …");
    }

    #[test]
    fn a_runlevel_link_starts_a_script_by_its_whole_name() {
        for (name, script, want) in [
            ("S01networking", "networking", true),
            ("S1networking", "networking", true),
            ("S10network", "network", true),
            ("K01networking", "networking", false),
            ("Snetworking", "networking", false),
            ("S10NetworkManager", "network", false),
            ("S10foonetwork", "network", false),
            ("S10network-extra", "network", false),
            ("S0xnetwork", "network", false),
        ] {
            assert_eq!(starts(name, script), want, "{name} starts {script}");
        }
    }

    #[test]
    fn runlevel_links_in_debian_red_hat_and_openrc_places() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let sys = |d: &Path| System::probe(d).unwrap();
        std::fs::create_dir_all(dir.path().join("etc/rc.d/rc3.d")).unwrap();
        std::fs::create_dir_all(dir.path().join("etc/rc2.d")).unwrap();
        symlink("../init.d/network", dir.path().join("etc/rc.d/rc3.d/K90network")).unwrap();
        symlink("../init.d/network", dir.path().join("etc/rc2.d/S10foonetwork")).unwrap();
        assert_eq!(sys(dir.path()).init_script_link("network").unwrap(), None);
        symlink("../init.d/network", dir.path().join("etc/rc.d/rc3.d/S10network")).unwrap();
        assert_eq!(
            sys(dir.path()).init_script_link("network").unwrap().as_deref(),
            Some("/etc/rc.d/rc3.d/S10network")
        );
        std::fs::create_dir_all(dir.path().join("etc/runlevels/boot")).unwrap();
        symlink(
            "/etc/init.d/net.eth0",
            dir.path().join("etc/runlevels/boot/net.eth0"),
        )
        .unwrap();
        assert_eq!(
            sys(dir.path()).init_script_link("net.eth0").unwrap().as_deref(),
            Some("/etc/runlevels/boot/net.eth0")
        );
    }

    #[test]
    fn a_unit_is_enabled_by_a_wants_or_requires_link_unless_masked() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc/systemd/system");
        std::fs::create_dir_all(etc.join("multi-user.target.requires")).unwrap();
        std::fs::create_dir_all(etc.join("other")).unwrap();
        symlink("/lib/systemd/system/a.service", etc.join("other/a.service")).unwrap();
        let sys = |d: &Path| System::probe(d).unwrap();
        assert_eq!(sys(dir.path()).systemd_unit_link("a.service").unwrap(), None);
        symlink(
            "/lib/systemd/system/a.service",
            etc.join("multi-user.target.requires/a.service"),
        )
        .unwrap();
        assert_eq!(
            sys(dir.path()).systemd_unit_link("a.service").unwrap().as_deref(),
            Some("/etc/systemd/system/multi-user.target.requires/a.service")
        );
        symlink("/dev/null", etc.join("a.service")).unwrap();
        assert!(!sys(dir.path()).systemd_unit_enabled("a.service").unwrap());
    }
}
