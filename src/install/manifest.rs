//! The install manifest, `/var/lib/osconf/installed`: one line per path that `osconf install`
//! wrote, saying what was there before, plus the directories it created. `osconf uninstall` reads
//! it and nothing else to know what to take away. The target is hostile, so parsing is strict:
//! absolute paths without `..`, known words only.

use crate::error::Error;

/// Where the manifest lives in the target.
pub const MANIFEST: &str = "/var/lib/osconf/installed";

const HEADER: &str = "# Written by osconf install: what it added and what was there before. \
                      Read by osconf uninstall; do not edit.\n";

/// What a path held before install wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Before {
    /// Nothing: uninstall removes the path.
    Absent,
    /// A regular file with these permission bits, copied under `SAVED`: uninstall puts it back.
    File(u32),
    /// A symbolic link to this target: uninstall puts the link back.
    Link(String),
    /// A shared file that install edited with osconf's marked block: uninstall removes the block.
    Edited,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub init: String,
    pub paths: Vec<(String, Before)>,
    /// Directories install created, outermost first.
    pub dirs: Vec<String>,
    /// `aliyun_custom_image` when install created it inside the root.
    pub config_dir: Option<String>,
}

impl Manifest {
    pub fn before(&self, path: &str) -> Option<&Before> {
        self.paths.iter().find(|(p, _)| p == path).map(|(_, b)| b)
    }

    pub fn render(&self) -> String {
        let mut out = format!("{HEADER}init {}\n", self.init);
        for (path, before) in &self.paths {
            out.push_str(&match before {
                Before::Absent => format!("new {path}\n"),
                Before::File(mode) => format!("replaced {mode:04o} {path}\n"),
                Before::Link(target) => format!("link {path} {target}\n"),
                Before::Edited => format!("edited {path}\n"),
            });
        }
        for dir in &self.dirs {
            out.push_str(&format!("dir {dir}\n"));
        }
        if let Some(dir) = &self.config_dir {
            out.push_str(&format!("config-dir {dir}\n"));
        }
        out
    }

    pub fn parse(text: &str) -> Result<Manifest, Error> {
        let mut m = Manifest::default();
        for (n, line) in text.lines().enumerate() {
            let bad = |what: &str| Error::failed(None, format!("{MANIFEST}: line {}: {what}", n + 1));
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (word, rest) = line.split_once(' ').ok_or_else(|| bad("expected WORD VALUE"))?;
            let path = |p: &str| checked_path(p).map_err(|e| bad(&e.message));
            match word {
                "init" if m.init.is_empty() => m.init = rest.to_owned(),
                "new" => m.paths.push((path(rest)?, Before::Absent)),
                "edited" => m.paths.push((path(rest)?, Before::Edited)),
                "replaced" => {
                    let (mode, p) = rest.split_once(' ').ok_or_else(|| bad("expected MODE PATH"))?;
                    let mode = u32::from_str_radix(mode, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| bad(&format!("{mode:?} is not a file mode")))?;
                    m.paths.push((path(p)?, Before::File(mode)));
                }
                "link" => {
                    let (p, target) = rest.split_once(' ').ok_or_else(|| bad("expected PATH TARGET"))?;
                    m.paths.push((path(p)?, Before::Link(target.to_owned())));
                }
                "dir" => m.dirs.push(path(rest)?),
                "config-dir" if m.config_dir.is_none() => m.config_dir = Some(path(rest)?),
                _ => return Err(bad(&format!("unexpected {word:?}"))),
            }
        }
        if m.init.is_empty() {
            return Err(Error::failed(None, format!("{MANIFEST}: no init line")));
        }
        Ok(m)
    }
}

/// An absolute path inside the root: no `..`, `.` or empty components, no whitespace.
fn checked_path(p: &str) -> Result<String, Error> {
    let ok = p.starts_with('/')
        && p.len() > 1
        && !p.chars().any(char::is_whitespace)
        && p[1..].split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(p.to_owned())
    } else {
        Err(Error::failed(
            None,
            format!("{p:?} is not an absolute path inside the root"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = Manifest {
            init: "busybox".into(),
            paths: vec![
                ("/usr/sbin/osconf".into(), Before::File(0o755)),
                ("/etc/inittab".into(), Before::Edited),
                (
                    "/etc/rcS.d/S05osconf".into(),
                    Before::Link("../init.d/old one".into()),
                ),
                ("/etc/init.d/osconf".into(), Before::Absent),
            ],
            dirs: vec!["/var/lib/osconf".into()],
            config_dir: Some("/boot/aliyun_custom_image".into()),
        };
        assert_eq!(Manifest::parse(&m.render()).unwrap(), m);
    }

    #[test]
    fn hostile_lines_are_refused() {
        for bad in [
            "init x\nnew /etc/../../host\n",
            "init x\nnew etc/relative\n",
            "init x\ndir /\n",
            "init x\nreplaced 99999 /etc/a\n",
            "init x\nrm -rf /\n",
            "new /etc/a\n",
            "init x\ninit y\n",
        ] {
            assert!(Manifest::parse(bad).is_err(), "{bad}");
        }
    }
}
