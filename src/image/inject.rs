//! `osconf image inject DISK OS_CONF`: writes os.conf into `aliyun_custom_image/` on partition 1 of
//! a raw image, as ECS does before a start (the directory is created when missing). The os.conf is
//! validated by osconf's own reader and model first: an invalid one changes nothing (exit 2).
//!
//! The filesystem is edited by the tools made for it, without mounting (the image is hostile until
//! checked, and no root is needed): mtools for FAT, e2fsprogs' `debugfs -w` for ext — on a staged
//! copy of the partition (`stage`), read back through `disk` before anything goes into the image.

use std::path::Path;
use std::process::Command;

use super::stage::Staged;
use crate::disk::{FileType, Image, Kind};
use crate::error::Error;

/// The directory ECS writes os.conf into, and os.conf's path inside partition 1.
pub const CONF_DIR: &str = "aliyun_custom_image";
const CONF_PATH: &str = "aliyun_custom_image/os.conf";
/// The largest os.conf accepted.
const MAX_CONF: u64 = 1 << 20;

/// Runs `program` (a filesystem tool: see the module's comment) with `args`; its stdout, or an
/// error naming it and its stderr. A tool that is not installed is `Error::no_tool` (exit 3).
pub(super) fn tool(program: &str, args: &[&std::ffi::OsStr]) -> Result<String, Error> {
    let out = Command::new(program)
        .args(args)
        // mtools: no complaint about a geometry a partition file does not have; C messages.
        .env("MTOOLS_SKIP_CHECK", "1")
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::no_tool(format!(
                "{program} is not installed (mtools writes FAT, e2fsprogs' debugfs writes ext)"
            )),
            _ => Error::failed(None, format!("running {program}: {e}; nothing was changed")),
        })?;
    if !out.status.success() {
        return Err(Error::failed(
            None,
            format!(
                "{program} {}: {}; nothing was changed",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Adds `files` (path inside the filesystem → contents, mode) to the staged filesystem, creating
/// the directories on the way; what is there already is replaced.
pub(super) fn put(staged: &Staged, kind: Kind, files: &[(&str, &[u8], u32)]) -> Result<(), Error> {
    let mut volume = staged.volume().map_err(|e| Error::failed(None, e.to_string()))?;
    let img = staged.path().as_os_str();
    let mut dirs: Vec<String> = Vec::new();
    for (path, _, _) in files {
        let mut at = String::new();
        for part in path
            .split('/')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, d)| d)
        {
            at = format!("{at}/{part}");
            if !dirs.contains(&at) {
                match volume.symlink_metadata(&at) {
                    Ok(Some(m)) if m.file_type == FileType::Dir => {}
                    Ok(None) => dirs.push(at.clone()),
                    Ok(Some(m)) => {
                        return Err(Error::failed(
                            None,
                            format!(
                                "{at} is a {:?}, not a directory; nothing was changed",
                                m.file_type
                            ),
                        ));
                    }
                    Err(e) => return Err(Error::failed(None, format!("{at}: {e}; nothing was changed"))),
                }
            }
        }
        if let Ok(Some(m)) = volume.symlink_metadata(path)
            && m.file_type != FileType::File
        {
            return Err(Error::failed(
                None,
                format!("{path} is a {:?}, not a file; nothing was changed", m.file_type),
            ));
        }
    }
    let sources: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, (_, bytes, _))| {
            let p = staged.scratch(&format!("file{i}"));
            std::fs::write(&p, bytes).map(|()| p)
        })
        .collect::<Result<_, _>>()
        .map_err(|e| Error::failed(None, format!("staging the files: {e}; nothing was changed")))?;
    match kind {
        Kind::Fat(_) => {
            for d in &dirs {
                tool("mmd", &["-i".as_ref(), img, format!("::{d}").as_ref()])?;
            }
            for ((path, _, _), src) in files.iter().zip(&sources) {
                let to = format!("::/{}", path.trim_start_matches('/'));
                tool(
                    "mcopy",
                    &["-o".as_ref(), "-i".as_ref(), img, src.as_os_str(), to.as_ref()],
                )?;
            }
        }
        Kind::Ext(..) => {
            let mut script = String::new();
            for d in &dirs {
                script += &format!(
                    "mkdir \"{d}\"\nsif \"{d}\" mode 040755\nsif \"{d}\" uid 0\nsif \"{d}\" gid 0\n"
                );
            }
            for ((path, _, mode), src) in files.iter().zip(&sources) {
                let path = format!("/{}", path.trim_start_matches('/'));
                let (dir, name) = path.rsplit_once('/').expect("absolute");
                let dir = if dir.is_empty() { "/" } else { dir };
                script += &format!(
                    "cd \"{dir}\"\nrm \"{name}\"\nwrite \"{}\" \"{name}\"\nsif \"{name}\" mode 0{:o}\nsif \"{name}\" uid 0\nsif \"{name}\" gid 0\n",
                    src.display(),
                    0o100000 | mode
                );
            }
            let cmds = staged.scratch("debugfs.cmds");
            std::fs::write(&cmds, script).map_err(|e| Error::failed(None, e.to_string()))?;
            tool("debugfs", &["-w".as_ref(), "-f".as_ref(), cmds.as_os_str(), img])?;
        }
        Kind::Ufs(_) => {
            return Err(Error::failed(
                None,
                "UFS is not written by osconf; nothing was changed",
            ));
        }
    }
    // The tools say little when they fail (debugfs exits 0): read it all back.
    let mut volume = staged
        .volume()
        .map_err(|e| Error::failed(None, format!("{e}; nothing was changed")))?;
    for (path, bytes, _) in files {
        let got = volume
            .read_file(path)
            .map_err(|e| Error::failed(None, format!("reading back {path}: {e}; nothing was changed")))?;
        if got.as_deref() != Some(*bytes) {
            return Err(Error::failed(
                None,
                format!("{path} did not come out as written; nothing was changed"),
            ));
        }
    }
    Ok(())
}

/// `osconf image inject DISK OS_CONF`.
pub fn run(disk: &Path, conf: &Path) -> Result<String, Error> {
    let bytes = read_bounded(conf)?;
    crate::app::load(conf)?;
    let mut notes = String::new();
    if let Some(note) = super::stage::recover(disk).map_err(|e| Error::failed(Some(disk), e))? {
        notes += &format!("{note}\n");
    }
    let image = Image::open(disk).map_err(|e| Error::invalid(disk, format!("{e}; nothing was changed")))?;
    let volume = image
        .partition(1)
        .map_err(|e| Error::invalid(disk, format!("{e}; nothing was changed")))?;
    let kind = volume.fs.kind;
    let what = volume.fs.describe();
    drop(volume);
    let staged = Staged::new(disk, &image, 1)
        .map_err(|e| Error::failed(Some(disk), format!("{e}; nothing was changed")))?;
    put(&staged, kind, &[(CONF_PATH, &bytes, 0o600)]).map_err(|e| in_disk(e, disk))?;
    let changed = staged.commit().map_err(|e| Error::failed(Some(disk), e))?;
    Ok(format!(
        "{notes}wrote {CONF_PATH} ({} bytes) into partition 1 ({what}); {changed} bytes of the image changed\n",
        bytes.len()
    ))
}

fn in_disk(mut e: Error, disk: &Path) -> Error {
    e.path.get_or_insert_with(|| disk.to_owned());
    e
}

fn read_bounded(conf: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read as _;
    let f =
        std::fs::File::open(conf).map_err(|e| Error::invalid(conf, format!("{e}; nothing was changed")))?;
    let mut bytes = Vec::new();
    f.take(MAX_CONF + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::invalid(conf, format!("{e}; nothing was changed")))?;
    if bytes.len() as u64 > MAX_CONF {
        return Err(Error::invalid(conf, "larger than 1 MiB; nothing was changed"));
    }
    Ok(bytes)
}
