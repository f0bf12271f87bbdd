//! System: a read-only view of the target root (files, links, os-release) for detection and renderers.
//!
//! Nothing here writes. Every path is absolute within the target (`/etc/hosts`) and resolved under the
//! root, so the same renderer serves `/`, a mounted image or a test's temp dir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The fields of `/etc/os-release` that choose a renderer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    pub id_like: Vec<String>,
    pub version_id: String,
    pub pretty_name: String,
}

impl OsRelease {
    /// Parses the os-release format: `KEY=value` with optional single or double quotes.
    pub fn parse(text: &str) -> OsRelease {
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            let Some((key, value)) = line.trim().split_once('=') else {
                continue;
            };
            let value = value.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
                .unwrap_or(value);
            fields.insert(
                key.to_owned(),
                unquoted.replace("\\\"", "\"").replace("\\\\", "\\"),
            );
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

/// The target system as found under a root directory.
#[derive(Debug, Clone)]
pub struct System {
    root: PathBuf,
    pub os: OsRelease,
}

impl System {
    pub fn probe(root: &Path) -> System {
        let mut sys = System {
            root: root.to_owned(),
            os: OsRelease::default(),
        };
        let text = sys
            .read_text("/etc/os-release")
            .or_else(|| sys.read_text("/usr/lib/os-release"));
        sys.os = OsRelease::parse(&text.unwrap_or_default());
        sys
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a target path lives on this machine.
    pub fn host_path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// The bytes of a regular file (following links inside the root is not attempted).
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        std::fs::read(self.host_path(path)).ok()
    }

    /// A file's text; invalid UTF-8 is replaced rather than failing, since only ASCII keys are sought.
    pub fn read_text(&self, path: &str) -> Option<String> {
        self.read(path).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// True when something (file, directory or link, even dangling) is at `path`.
    pub fn exists(&self, path: &str) -> bool {
        self.host_path(path).symlink_metadata().is_ok()
    }

    pub fn is_dir(&self, path: &str) -> bool {
        self.host_path(path).is_dir()
    }

    /// The target of a symbolic link, as written in the link.
    pub fn link_target(&self, path: &str) -> Option<PathBuf> {
        std::fs::read_link(self.host_path(path)).ok()
    }

    /// Names in a directory, sorted; empty when it does not exist.
    pub fn list(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.host_path(dir))
            .map(|it| {
                it.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// True when a systemd unit is enabled: a link to it in any `*.wants` directory of /etc.
    pub fn systemd_unit_enabled(&self, unit: &str) -> bool {
        let base = "/etc/systemd/system";
        self.list(base)
            .iter()
            .filter(|d| d.ends_with(".wants") || d.ends_with(".requires"))
            .any(|d| self.exists(&format!("{base}/{d}/{unit}")))
            && !self.systemd_unit_masked(unit)
    }

    /// True when a unit is masked (linked to /dev/null), which beats any enablement.
    pub fn systemd_unit_masked(&self, unit: &str) -> bool {
        self.link_target(&format!("/etc/systemd/system/{unit}"))
            .is_some_and(|t| t == Path::new("/dev/null"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_parsing() {
        let os = OsRelease::parse(
            "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE='rhel centos fedora'\nVERSION_ID=\"9.3\"\n# c\nBAD\n",
        );
        assert_eq!(os.id, "rocky");
        assert_eq!(os.id_like, ["rhel", "centos", "fedora"]);
        assert_eq!(os.major_version(), Some(9));
        assert!(os.is_like(&["fedora"]));
        assert!(!os.is_like(&["debian"]));
    }
}
