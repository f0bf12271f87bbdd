//! The image's files as `image test` needs them: os.conf written into partition 1 before the boot,
//! files read from any partition after it. The one interface the rest of `imagetest` uses.
//!
//! TEMPORARY: until `disk`'s file reader and `osconf image inject` land (helper `image`), this
//! reads and writes through e2fsprogs' debugfs and mtools, which edit a filesystem inside an image
//! file without mounting it; replacing this file's bodies is the whole switch.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::disk::{self, Kind};

/// The partitions of a disk image and their filesystems.
pub struct Image {
    disk: PathBuf,
    /// (number, byte offset, filesystem) of every partition holding one.
    parts: Vec<(u32, u64, Kind)>,
}

impl Image {
    pub fn open(disk: &Path) -> Result<Image, String> {
        let mut f = std::fs::File::open(disk).map_err(|e| format!("{}: {e}", disk.display()))?;
        let io = |e: std::io::Error| format!("reading {}: {e}", disk.display());
        let table = disk::table::read(&mut f)
            .map_err(io)?
            .ok_or_else(|| format!("{}: no MBR or GPT partition table", disk.display()))?;
        let mut parts = Vec::new();
        for p in &table.partitions {
            let offset = table.offset(p);
            if let Some(fs) = disk::probe(&mut f, offset).map_err(io)? {
                parts.push((p.number, offset, fs.kind));
            }
        }
        Ok(Image {
            disk: disk.to_owned(),
            parts,
        })
    }

    /// The numbers of the partitions holding a filesystem, in table order.
    pub fn partitions(&self) -> Vec<u32> {
        self.parts.iter().map(|p| p.0).collect()
    }

    fn part(&self, n: u32) -> Result<(u64, Kind), String> {
        self.parts
            .iter()
            .find(|p| p.0 == n)
            .map(|p| (p.1, p.2))
            .ok_or_else(|| format!("partition {n} holds no filesystem osconf reads"))
    }

    /// The regular file at `path` in partition `n`; `None` when absent.
    pub fn read(&self, n: u32, path: &str) -> Result<Option<Vec<u8>>, String> {
        let (offset, kind) = self.part(n)?;
        let scratch = Scratch::new()?;
        let out = scratch.0.join("file");
        let path = format!("/{}", path.trim_start_matches('/'));
        match kind {
            Kind::Fat(_) => {
                let img = format!("{}@@{offset}", self.disk.display());
                let listed = tool("mdir", &["-b", "-i", &img, &format!("::{path}")]);
                if listed.is_err() {
                    return Ok(None);
                }
                tool(
                    "mcopy",
                    &["-n", "-i", &img, &format!("::{path}"), &out.to_string_lossy()],
                )?;
            }
            Kind::Ext(..) => {
                let img = format!("{}?offset={offset}", self.disk.display());
                let cmd = format!("dump -p \"{path}\" \"{}\"", out.display());
                tool("debugfs", &["-R", &cmd, &img])?;
            }
            Kind::Ufs(_) => return Err(format!("partition {n}: UFS is not read yet")),
        }
        match std::fs::read(&out) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The names in directory `dir` of partition `n`; `None` when absent.
    pub fn list(&self, n: u32, dir: &str) -> Result<Option<Vec<String>>, String> {
        let (offset, kind) = self.part(n)?;
        let dir = format!("/{}", dir.trim_start_matches('/'));
        let names: Vec<String> = match kind {
            Kind::Fat(_) => {
                let img = format!("{}@@{offset}", self.disk.display());
                let Ok(out) = tool("mdir", &["-b", "-i", &img, &format!("::{dir}")]) else {
                    return Ok(None);
                };
                out.lines()
                    .filter_map(|l| l.trim_end_matches('/').rsplit('/').next())
                    .map(str::to_owned)
                    .collect()
            }
            Kind::Ext(..) => {
                let img = format!("{}?offset={offset}", self.disk.display());
                let out = tool("debugfs", &["-R", &format!("ls -p \"{dir}\""), &img])?;
                if !out.contains('/') {
                    return Ok(None);
                }
                out.lines()
                    .filter(|l| l.matches('/').count() >= 6)
                    .filter_map(|l| l.split('/').nth(5))
                    .map(str::to_owned)
                    .collect()
            }
            Kind::Ufs(_) => return Err(format!("partition {n}: UFS is not read yet")),
        };
        Ok(Some(
            names
                .into_iter()
                .filter(|n| !n.is_empty() && n != "." && n != "..")
                .collect(),
        ))
    }
}

/// Writes `aliyun_custom_image/os.conf` into partition 1, as ECS does before a start.
pub fn inject(disk: &Path, conf: &[u8]) -> Result<(), String> {
    let image = Image::open(disk)?;
    let (offset, kind) = image.part(1)?;
    let scratch = Scratch::new()?;
    let src = scratch.0.join("os.conf");
    std::fs::write(&src, conf).map_err(|e| e.to_string())?;
    let src = src.to_string_lossy();
    match kind {
        Kind::Fat(_) => {
            let img = format!("{}@@{offset}", disk.display());
            tool(
                "mcopy",
                &["-o", "-i", &img, &src, "::/aliyun_custom_image/os.conf"],
            )?;
        }
        Kind::Ext(..) => {
            let img = format!("{}?offset={offset}", disk.display());
            let cmds = scratch.0.join("cmds");
            std::fs::write(
                &cmds,
                format!("cd /aliyun_custom_image\nrm os.conf\nwrite {src} os.conf\n"),
            )
            .map_err(|e| e.to_string())?;
            tool("debugfs", &["-w", "-f", &cmds.to_string_lossy(), &img])?;
        }
        Kind::Ufs(_) => return Err("partition 1: UFS is not written yet".into()),
    }
    match image.read(1, "aliyun_custom_image/os.conf")? {
        Some(b) if b == conf => Ok(()),
        _ => Err("os.conf could not be written into aliyun_custom_image/ on partition 1".into()),
    }
}

/// Runs a filesystem tool (see the module's note); its stdout, or an error with its stderr.
fn tool(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A private temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, String> {
        let mut r = [0u8; 8];
        crate::random::fill(&mut r)?;
        let name: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let dir = std::env::temp_dir().join(format!("osconf-image-test.{name}"));
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
