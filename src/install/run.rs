//! Runs `osconf install` and `osconf uninstall`: builds the plan, has the executor apply it (atomic,
//! rolled back on failure, confined to the root), and does the two things a plan cannot say —
//! creating the empty `aliyun_custom_image` directory (it may sit on another file system than the
//! root) and removing the directories install created once they are empty again. The executor's
//! backup of these runs is removed after success: install keeps its own copies of what it replaced
//! (`SAVED`), and what uninstall replaces is what install wrote.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::{MANIFEST, Manifest, detect, find, plan_install, plan_uninstall};
use crate::boot;
use crate::exec;
use crate::plan::Plan;
use crate::system::System;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub root: PathBuf,
    /// `--init`; detected when absent.
    pub init: Option<String>,
    /// `--boot-dir`: the first partition's mount point (a host path).
    pub boot_dir: Option<PathBuf>,
}

/// Installs osconf into `req.root`; `say` gets one line per step.
pub fn install(req: &Request, say: &dyn Fn(&str)) -> Result<(), String> {
    let sys = System::probe(&req.root)?;
    let init = match &req.init {
        Some(name) => {
            let init = find(name).ok_or_else(|| format!("unknown init {name:?}"))?;
            say(&format!("init {} chosen with --init", init.name));
            init
        }
        None => {
            let (init, why) = detect(&sys)?;
            say(&format!("init {} detected: {why}", init.name));
            init
        }
    };
    let binary = std::fs::read("/proc/self/exe").map_err(|e| format!("reading /proc/self/exe: {e}"))?;
    // `_partition` keeps partition 1 mounted (and writable) until install is done.
    let (config_dir, _partition) = config_dir(req, say)?;
    let create = !exists(&config_dir)?;
    // Recorded for uninstall only inside an offline root: on `/` it is on partition 1, mounted
    // wherever the boot finder found it, and stays for ECS.
    let inside = target_path(&req.root, &config_dir).filter(|_| req.root != Path::new("/"));
    let plan = plan_install(&sys, init, binary, inside.as_deref().filter(|_| create))?;
    if create {
        std::fs::create_dir(&config_dir)
            .map_err(|e| format!("creating {}: {e}; nothing was changed", config_dir.display()))?;
        say(&format!("created {}", config_dir.display()));
    } else {
        say(&format!("{} is there already", config_dir.display()));
    }
    let applied = apply(&plan, &sys, say);
    if applied.is_err() && create {
        let _ = std::fs::remove_dir(&config_dir);
    }
    applied?;
    if create && inside.is_none() {
        say(&format!(
            "{} is on the first partition, not in the root: uninstall leaves it in place",
            config_dir.display()
        ));
    }
    say(&format!(
        "installed osconf for {} in {}",
        init.name,
        req.root.display()
    ));
    Ok(())
}

/// Takes away what install added to `req.root`, as its manifest says.
pub fn uninstall(req: &Request, say: &dyn Fn(&str)) -> Result<(), String> {
    let sys = System::probe(&req.root)?;
    let Some(text) = sys.read_text(MANIFEST)? else {
        say(&format!(
            "osconf is not installed in {} (no {MANIFEST}); nothing to do",
            req.root.display()
        ));
        return Ok(());
    };
    let manifest = Manifest::parse(&text)?;
    if let Some(name) = &req.init
        && *name != manifest.init
    {
        return Err(format!(
            "osconf is installed for {}, not {name} ({MANIFEST}); nothing was changed",
            manifest.init
        ));
    }
    let (plan, dirs) = plan_uninstall(&sys, &manifest)?;
    apply(&plan, &sys, say)?;
    for dir in dirs {
        match remove_empty_dir(&req.root, &dir) {
            Ok(true) => say(&format!("removed directory {dir}")),
            Ok(false) => say(&format!("kept directory {dir}: not empty")),
            Err(e) => say(&format!("kept directory {dir}: {e}")),
        }
    }
    say(&format!(
        "uninstalled osconf ({}) from {}",
        manifest.init,
        req.root.display()
    ));
    Ok(())
}

/// Applies an install or uninstall plan; on success removes the run's backup and the directories
/// that holding it needed.
fn apply(plan: &Plan, sys: &System, say: &dyn Fn(&str)) -> Result<(), String> {
    let root = sys.root();
    plan.notes.iter().for_each(|n| say(&format!("note: {n}")));
    let backup_parents: Vec<String> = super::ancestors(&format!("/{}/x", exec::BACKUP_DIR))
        .into_iter()
        .filter(|d| !root.join(d.trim_start_matches('/')).exists())
        .collect();
    let opts = exec::Options {
        live: false,
        config_file: None,
        stamp: crate::clock::stamp(),
    };
    let report = exec::apply(plan, sys.handle(), &opts)
        .map_err(|e| format!("failed {e}; every change was rolled back"))?;
    report.steps.iter().for_each(|s| say(s));
    if let Some(dir) = &report.backup_dir {
        // What it holds is kept elsewhere or was osconf's own: see the module's comment.
        let _ = std::fs::remove_dir_all(dir);
        for parent in backup_parents.iter().rev() {
            let _ = remove_empty_dir(root, parent);
        }
    }
    Ok(())
}

/// The `aliyun_custom_image` directory: under `--boot-dir`; on `/`, at the root of partition 1 as
/// the boot finder finds it (mounted by it while the returned guard lives, when nothing had it
/// mounted), or /boot on a machine without partitions (a container); else the root's /boot.
fn config_dir(req: &Request, say: &dyn Fn(&str)) -> Result<(PathBuf, Option<boot::Located>), String> {
    if req.boot_dir.is_none() && req.root == Path::new("/") {
        let roots = boot::Roots::host();
        let opts = boot::Options {
            device: None,
            wait: Duration::from_secs(5),
            writable: true,
        };
        match boot::find(&roots, &opts) {
            Ok(mut located) => {
                if let Some(note) = located.make_writable(&roots)? {
                    say(&note);
                }
                say(&format!("first partition: {}", located.describe()));
                return Ok((located.dir.clone(), Some(located)));
            }
            Err(boot::FindError::NoPartition(why)) => say(&format!("{why}; using /boot")),
            Err(boot::FindError::Failed(why)) => return Err(format!("{why}; nothing was changed")),
        }
    }
    let boot = match &req.boot_dir {
        Some(dir) => dir.clone(),
        None => req.root.join("boot"),
    };
    match boot.symlink_metadata() {
        Ok(md) if md.is_dir() => Ok((boot.join(boot::CONF_DIR), None)),
        Ok(_) => Err(format!(
            "{} is not a directory (a link or a file); give the first partition's mount point with --boot-dir",
            boot.display()
        )),
        Err(e) => Err(format!(
            "{}: {e}; mount the first partition there or give its mount point with --boot-dir",
            boot.display()
        )),
    }
}

/// True when `path` is a directory, false when nothing is there; anything else (a link, a file,
/// an error other than ENOENT) is refused.
fn exists(path: &Path) -> Result<bool, String> {
    match path.symlink_metadata() {
        Ok(md) if md.is_dir() => Ok(true),
        Ok(_) => Err(format!(
            "{} exists and is not a directory; refusing",
            path.display()
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// `host` as a path inside `root` (`/boot/aliyun_custom_image`), when it is inside.
fn target_path(root: &Path, host: &Path) -> Option<String> {
    let rel = host.strip_prefix(root).ok()?;
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| format!("/{}", rel.display()))
}

/// Removes the directory `dir` (inside `root`) when it is empty: `Ok(false)` when it is not, or is
/// gone already. No link on the way is followed, so nothing outside the root is touched.
fn remove_empty_dir(root: &Path, dir: &str) -> io::Result<bool> {
    let mut host = root.to_owned();
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        host.push(part);
        match host.symlink_metadata() {
            Ok(md) if md.is_dir() => {}
            Ok(_) => return Err(io::Error::other("not a directory (or a link) on the way")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    match std::fs::remove_dir(&host) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(false),
        Err(e) => Err(e),
    }
}
