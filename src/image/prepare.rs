//! `osconf image prepare DISK`: installs osconf into the image's root partition — exactly the files
//! `osconf install --root` would write there (`install::detect` and `install::plan_install` decide
//! them, on a mirror of the image's /etc and the few other paths they read) — and creates
//! `aliyun_custom_image/` on partition 1. The files go in as `inject`'s do: debugfs (the root must
//! be ext) or mtools on staged copies, read back, then the changed bytes written with an undo file.

use std::fs;
use std::path::Path;

use super::inject::{CONF_DIR, apply, in_disk};
use super::stage::{self, Staged};
use crate::disk::{FileType, Image, Kind, Volume};
use crate::error::Error;
use crate::install;

/// Paths install's detection and plan read besides /etc and its own state, mirrored one by one.
const READ_PATHS: [&str; 5] = [
    "sbin/init",
    "lib/systemd/systemd",
    "usr/lib/systemd/systemd",
    "usr/lib/os-release",
    install::BINARY,
];
/// Trees mirrored whole (bounded): /etc, and osconf's own state (manifest, saved originals).
const READ_TREES: [&str; 2] = ["etc", "var/lib/osconf"];
/// Entries mirrored at most, files read at most this large (a larger one is mirrored empty: install
/// only asks whether it exists).
const MAX_ENTRIES: usize = 50_000;
const MAX_MIRRORED: u64 = 4 << 20;
/// Links followed at most while mirroring one path.
const MAX_HOPS: usize = 8;

/// `osconf image prepare DISK`.
pub fn run(disk: &Path) -> Result<String, Error> {
    let mut out = String::new();
    if let Some(note) = stage::recover(disk).map_err(|e| Error::failed(Some(disk), e))? {
        out += &format!("{note}\n");
    }
    let bad = |e: String| Error::invalid(disk, format!("{e}; nothing was changed"));
    let failed = |e: String| Error::failed(Some(disk), format!("{e}; nothing was changed"));
    let image = Image::open(disk).map_err(|e| bad(e.to_string()))?;
    let (n, root) = super::root::find(&image).map_err(|i| bad(i.reason))?;
    if !matches!(root.fs.kind, Kind::Ext(..)) {
        return Err(bad(format!(
            "the root partition {n} is {}: prepare writes ext only",
            root.fs.kind.name()
        )));
    }
    let root_kind = root.fs.kind;
    let first = image.partition(1).map_err(|e| bad(e.to_string()))?;
    let first_kind = first.fs.kind;
    let has_dir = first
        .metadata(CONF_DIR)
        .map_err(|e| bad(e.to_string()))?
        .is_some_and(|m| m.file_type == FileType::Dir);
    drop(first);

    let staged_root = Staged::new(disk, &image, n).map_err(failed)?;
    let mirror = staged_root.scratch("root");
    mirror_root(&root, &mirror).map_err(|e| failed(format!("mirroring the root partition: {e}")))?;
    drop(root);
    let sys = crate::system::System::probe(&mirror).map_err(|e| failed(e.to_string()))?;
    let (init, why) = install::detect(&sys).map_err(failed)?;
    let binary = fs::read("/proc/self/exe").map_err(|e| failed(format!("reading /proc/self/exe: {e}")))?;
    // One partition: aliyun_custom_image/ is in the root, recorded for uninstall as install does.
    let inside = format!("/{CONF_DIR}");
    let config_dir = (n == 1 && !has_dir).then_some(inside.as_str());
    let plan = install::plan_install(&sys, init, binary, config_dir).map_err(failed)?;
    let root_dirs: &[&str] = if config_dir.is_some() { &[CONF_DIR] } else { &[] };
    if plan.ops.is_empty() && has_dir {
        return Ok(format!(
            "{out}osconf is installed for {} in partition {n} already and {CONF_DIR}/ is on partition 1: \
             nothing to do\n",
            init.name
        ));
    }
    apply(&staged_root, root_kind, root_dirs, &plan.ops).map_err(|e| in_disk(e, disk))?;
    let staged_first = if n != 1 && !has_dir {
        let s = Staged::new(disk, &image, 1).map_err(failed)?;
        apply(&s, first_kind, &[CONF_DIR], &[]).map_err(|e| in_disk(e, disk))?;
        Some(s)
    } else {
        None
    };
    let all: Vec<&Staged> = std::iter::once(&staged_root)
        .chain(staged_first.as_ref())
        .collect();
    let changed = stage::commit(disk, &all).map_err(|e| Error::failed(Some(disk), e))?;
    out += &format!("init {} detected in partition {n}: {why}\n", init.name);
    for note in &plan.notes {
        out += &format!("note: {note}\n");
    }
    for op in &plan.ops {
        out += &format!("wrote {} in partition {n}\n", op.path());
    }
    out += &match (has_dir, n) {
        (true, _) => format!("{CONF_DIR}/ is on partition 1 already\n"),
        (false, 1) => format!("created {CONF_DIR}/ in partition 1 (the root)\n"),
        (false, _) => format!("created {CONF_DIR}/ on partition 1\n"),
    };
    out += &format!(
        "installed osconf for {} into {}; {changed} bytes of the image changed\n",
        init.name,
        disk.display()
    );
    Ok(out)
}

/// Copies into `to` what install reads of the image's root: /etc and osconf's state whole (links
/// as links, files with their modes, bounded), and the single paths of [`READ_PATHS`] with their
/// ancestors (a link such as `sbin -> usr/sbin` stays a link).
fn mirror_root(v: &Volume<std::fs::File>, to: &Path) -> std::io::Result<()> {
    fs::create_dir(to)?;
    let mut budget = MAX_ENTRIES;
    for path in READ_PATHS {
        mirror_path(v, to, path.trim_start_matches('/'), &mut budget, MAX_HOPS)?;
    }
    for tree in READ_TREES {
        let parts: Vec<&str> = tree.split('/').collect();
        for i in 1..parts.len() {
            mirror_one(v, to, &parts[..i].join("/"), &mut budget)?;
        }
        let mut todo = vec![tree.to_owned()];
        while let Some(dir) = todo.pop() {
            if !mirror_one(v, to, &dir, &mut budget)? {
                continue;
            }
            for e in v.list_dir(&dir)?.unwrap_or_default() {
                let p = format!("{dir}/{}", e.name);
                match e.file_type {
                    FileType::Dir => todo.push(p),
                    _ => {
                        mirror_one(v, to, &p, &mut budget)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Mirrors `rel` and its ancestors; where an ancestor is a link, the rest is mirrored under its
/// target too (so that `sbin -> usr/sbin` holds `usr/sbin/init`), at most `hops` links deep.
fn mirror_path(
    v: &Volume<std::fs::File>,
    to: &Path,
    rel: &str,
    budget: &mut usize,
    hops: usize,
) -> std::io::Result<()> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    for i in 1..=parts.len() {
        let here = parts[..i].join("/");
        if mirror_one(v, to, &here, budget)? || i == parts.len() || hops == 0 {
            continue;
        }
        let Ok(Some(target)) = v.read_link(&here) else {
            return Ok(());
        };
        let target = String::from_utf8_lossy(&target);
        let mut at: Vec<&str> = if target.starts_with('/') {
            Vec::new()
        } else {
            parts[..i - 1].to_vec()
        };
        for c in target.split('/').filter(|c| !c.is_empty() && *c != ".") {
            if c == ".." {
                at.pop();
            } else {
                at.push(c);
            }
        }
        at.extend(&parts[i..]);
        return mirror_path(v, to, &at.join("/"), budget, hops - 1);
    }
    Ok(())
}

/// Mirrors the one entry `rel` (not what is under it); true when it is a real directory. Nothing is
/// made through a link already in the mirror: a link's target is a path of the image, never one
/// to follow on this machine.
fn mirror_one(v: &Volume<std::fs::File>, to: &Path, rel: &str, budget: &mut usize) -> std::io::Result<bool> {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::fs::PermissionsExt as _;
    let parts: Vec<&str> = rel.split('/').collect();
    for i in 1..parts.len() {
        if to
            .join(parts[..i].join("/"))
            .symlink_metadata()
            .is_ok_and(|m| !m.is_dir())
        {
            return Ok(false);
        }
    }
    let host = to.join(rel);
    if host.symlink_metadata().is_ok() {
        return Ok(host.symlink_metadata()?.is_dir());
    }
    let Some(meta) = v.symlink_metadata(rel)? else {
        return Ok(false);
    };
    if *budget == 0 {
        return Err(std::io::Error::other(format!("more than {MAX_ENTRIES} entries")));
    }
    *budget -= 1;
    match meta.file_type {
        FileType::Dir => {
            fs::create_dir(&host)?;
            return Ok(true);
        }
        FileType::Symlink => {
            let target = v.read_link(rel)?.unwrap_or_default();
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &host)?;
        }
        FileType::File => {
            // The single paths whole: install compares the binary with itself.
            let whole = READ_PATHS.iter().any(|p| p.trim_start_matches('/') == rel);
            let bytes = if whole || meta.size <= MAX_MIRRORED {
                v.read_file(rel)?.unwrap_or_default()
            } else {
                Vec::new()
            };
            fs::write(&host, bytes)?;
            fs::set_permissions(&host, fs::Permissions::from_mode(meta.mode & 0o7777))?;
        }
        FileType::Other => {}
    }
    Ok(false)
}
