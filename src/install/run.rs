//! Runs `osconf install` and `osconf uninstall`: builds the plan, has the executor apply it (atomic,
//! rolled back on failure, confined to the root), and does the two things a plan cannot say —
//! creating the empty `aliyun_custom_image` directory (it may sit on another file system than the
//! root) and removing the directories install created once they are empty again. The executor's
//! backup of these runs is removed after success: install keeps its own copies of what it replaced
//! (`SAVED`), and what uninstall replaces is what install wrote.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use rustix::fs::FileType;

use super::{MANIFEST, Manifest, detect, find, plan_install, plan_uninstall};
use crate::boot;
use crate::error::Error;
use crate::exec;
use crate::output::say;
use crate::plan::Plan;
use crate::root::Root;
use crate::system::System;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub root: PathBuf,
    /// `--init`; detected when absent.
    pub init: Option<String>,
    /// `--boot-dir`: the first partition's mount point (a host path).
    pub boot_dir: Option<PathBuf>,
}

/// Installs osconf into `req.root`, saying each step (`output::say`).
pub fn install(req: &Request) -> Result<(), Error> {
    // Until the plan is applied nothing has been changed.
    let (root, sys) = open(&req.root).map_err(Error::unchanged)?;
    let init = match &req.init {
        Some(name) => {
            let init = find(name).ok_or_else(|| Error::usage(format!("unknown init {name:?}")))?;
            say(format!("init {} chosen with --init", init.name));
            init
        }
        None => {
            let (init, why) = detect(&sys).map_err(Error::unchanged)?;
            say(format!("init {} detected: {why}", init.name));
            init
        }
    };
    let binary = std::fs::read("/proc/self/exe")
        .map_err(|e| Error::io(Path::new("/proc/self/exe"), &e).unchanged())?;
    // `_partition` keeps partition 1 mounted (and writable) until install is done.
    let (boot, _partition) = boot_dir(req, &root).map_err(Error::unchanged)?;
    let config_dir = boot.host_path(boot::CONF_DIR);
    let create = !exists(&boot, boot::CONF_DIR).map_err(Error::unchanged)?;
    // Recorded for uninstall only inside an offline root: on `/` it is on partition 1, mounted
    // wherever the boot finder found it, and stays for ECS.
    let inside = target_path(&req.root, &config_dir).filter(|_| req.root != Path::new("/"));
    let plan =
        plan_install(&sys, init, binary, inside.as_deref().filter(|_| create)).map_err(Error::unchanged)?;
    if create {
        boot.dir(boot::CONF_DIR, true).map_err(|e| {
            Error::failed(None, format!("creating {}: {e}", config_dir.display())).unchanged()
        })?;
        say(format!("created {}", config_dir.display()));
    } else {
        say(format!("{} is there already", config_dir.display()));
    }
    let applied = apply(&plan, &root, &sys);
    if applied.is_err() && create {
        let _ = boot.remove_empty_dir(boot::CONF_DIR);
    }
    applied?;
    if create && inside.is_none() {
        say(format!(
            "{} is on the first partition, not in the root: uninstall leaves it in place",
            config_dir.display()
        ));
    }
    say(format!(
        "installed osconf for {} in {}",
        init.name,
        req.root.display()
    ));
    Ok(())
}

/// Takes away what install added to `req.root`, as its manifest says.
pub fn uninstall(req: &Request) -> Result<(), Error> {
    let (root, sys) = open(&req.root).map_err(Error::unchanged)?;
    let Some(text) = sys.read_text(MANIFEST).map_err(|e| Error::from(e).unchanged())? else {
        say(format!(
            "osconf is not installed in {} (no {MANIFEST}); nothing to do",
            req.root.display()
        ));
        return Ok(());
    };
    let manifest = Manifest::parse(&text).map_err(Error::unchanged)?;
    if let Some(name) = &req.init
        && *name != manifest.init
    {
        let why = format!(
            "osconf is installed for {}, not {name} ({MANIFEST})",
            manifest.init
        );
        return Err(Error::failed(None, why).unchanged());
    }
    let (plan, dirs) = plan_uninstall(&sys, &manifest).map_err(Error::unchanged)?;
    apply(&plan, &root, &sys)?;
    for dir in dirs {
        match root.remove_empty_dir(&dir) {
            Ok(true) => say(format!("removed directory {dir}")),
            Ok(false) => say(format!("kept directory {dir}: not empty")),
            Err(e) => say(format!("kept directory {dir}: {e}")),
        }
    }
    say(format!(
        "uninstalled osconf ({}) from {}",
        manifest.init,
        req.root.display()
    ));
    Ok(())
}

/// The root at `path` on this machine, and the system under it.
fn open(path: &Path) -> Result<(Root, System), Error> {
    let root = Root::open(path).map_err(|e| Error::io(path, &e))?;
    Ok((root.clone(), System::on(root)?))
}

/// Applies an install or uninstall plan; on success removes the run's backup and the directories
/// that holding it needed.
fn apply(plan: &Plan, root: &Root, sys: &System) -> Result<(), Error> {
    plan.notes.iter().for_each(|n| say(format!("note: {n}")));
    let backup_parents: Vec<String> = super::ancestors(&format!("/{}/x", exec::BACKUP_DIR))
        .into_iter()
        .filter(|d| sys.exists(d).is_ok_and(|there| !there))
        .collect();
    let opts = exec::Options {
        live: false,
        config_file: None,
        stamp: crate::clock::stamp(),
        pwd_lock: None,
    };
    let report = exec::apply(plan, root, &opts)
        .map_err(|e| Error::failed(None, format!("failed {e}")).with_outcome(e.outcome()))?;
    report.steps.iter().for_each(say);
    if let Some(dir) = report
        .backup_dir
        .as_deref()
        .and_then(|d| target_path(root.path(), d))
    {
        // What it holds is kept elsewhere or was osconf's own: see the module's comment.
        let _ = exec::remove_tree(root, &dir);
        for parent in backup_parents.iter().rev() {
            let _ = root.remove_empty_dir(parent);
        }
    }
    Ok(())
}

/// The directory that holds `aliyun_custom_image`, open as a root of its own: `--boot-dir`; on
/// `/`, the root of partition 1 as the boot finder finds it (mounted by it while the returned guard
/// lives, when nothing had it mounted), or /boot on a machine without partitions (a container);
/// else the root's /boot, resolved inside the root.
fn boot_dir(req: &Request, root: &Root) -> Result<(Root, Option<boot::Located>), Error> {
    let open = |dir: &Path| Root::open(dir).map_err(|e| Error::io(dir, &e));
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
                say(format!("first partition: {}", located.describe()));
                let mount = located
                    .dir
                    .parent()
                    .expect("aliyun_custom_image is in a directory");
                return Ok((open(mount)?, Some(located)));
            }
            Err(boot::FindError::NoPartition(why)) => say(format!("{why}; using /boot")),
            Err(boot::FindError::Failed(why)) => return Err(Error::failed(None, why)),
        }
    }
    let not_dir = |shown: &Path| {
        let why =
            "not a directory (a link or a file); give the first partition's mount point with --boot-dir";
        Error::failed(Some(shown), why)
    };
    let unusable = |shown: &Path, e: io::Error| {
        let why = format!("{e}; mount the first partition there or give its mount point with --boot-dir");
        Error::failed(Some(shown), why)
    };
    if let Some(dir) = &req.boot_dir {
        return match dir.symlink_metadata() {
            Ok(md) if md.is_dir() => Ok((open(dir)?, None)),
            Ok(_) => Err(not_dir(dir)),
            Err(e) => Err(unusable(dir, e)),
        };
    }
    let shown = root.host_path("/boot");
    match root.lstat("/boot") {
        Ok(Some(st)) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            let boot = root.subdir("/boot").map_err(|e| unusable(&shown, e))?;
            Ok((boot, None))
        }
        Ok(Some(_)) => Err(not_dir(&shown)),
        Ok(None) => Err(unusable(&shown, rustix::io::Errno::NOENT.into())),
        Err(e) => Err(unusable(&shown, e)),
    }
}

/// True when `name` in `boot` is a directory, false when nothing is there; anything else (a link,
/// a file, an error other than ENOENT) is refused.
fn exists(boot: &Root, name: &str) -> Result<bool, Error> {
    let shown = || boot.host_path(name).display().to_string();
    match boot.lstat(name) {
        Ok(Some(st)) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => Ok(true),
        Ok(Some(_)) => Err(Error::failed(
            None,
            format!("{} exists and is not a directory; refusing", shown()),
        )),
        Ok(None) => Ok(false),
        Err(e) => Err(Error::io(&boot.host_path(name), &e)),
    }
}

/// `host` as a path inside `root` (`/boot/aliyun_custom_image`), when it is inside.
fn target_path(root: &Path, host: &Path) -> Option<String> {
    let rel = host.strip_prefix(root).ok()?;
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| format!("/{}", rel.display()))
}
