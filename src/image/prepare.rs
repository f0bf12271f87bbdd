//! `osconf image prepare DISK`: installs osconf into the image's root partition — exactly the files
//! `osconf install --root` would write there: `install::detect` and `install::plan_install` run on
//! the image's root itself, read through `disk` as a [`crate::system::System`] (`view`) — and
//! creates `aliyun_custom_image/` on partition 1. The files go in as `inject`'s do: debugfs (an
//! ext root) or mtools on staged copies, read back, then the changed bytes written with an undo
//! file; any other root through libguestfs (`guestfs`) on one copy of the image, the paths given
//! their SELinux labels (`selinux`). The agent put in is built for the image's architecture
//! (`arch`): `--agent`, else the one beside the toolkit. What the fix flags ask (`fix`: host keys removed, root's password
//! locked) are ops of the same plan, written the same way; an ext4 partition 1 with the `64bit`
//! feature is reported (`image check`'s item), never rewritten.

use std::fs;
use std::path::{Path, PathBuf};

use super::arch::{self, Arch};
use super::convert::Outcome;
use super::guestfs;
use super::inject::{self, CONF_DIR, apply, in_disk, needs_recovery};
use super::selinux;
use super::stage::{self, Staged};
use super::{Verdict, fix, view};
use crate::cli::image::Fixes;
use crate::disk::{FileType, Image, Kind};
use crate::error::Error;
use crate::install;
use crate::plan::FileOp;
use crate::system::Kind as Made;

/// `osconf image prepare DISK [--agent FILE] [--remove-host-keys] [--lock-root-password]`.
pub fn run(disk: &Path, asked: Option<&Path>, fixes: Fixes) -> Result<String, Error> {
    // A root libguestfs writes takes the image as it is when qemu can write its format.
    let as_is = |image: &Image| {
        guestfs::writes(image.disk().format) && view::root_partition(image).is_ok_and(|r| by_guestfs(&r))
    };
    let text = super::convert::edit(disk, as_is, |raw, scratch| install(raw, scratch, asked, fixes))?;
    Ok(text + &first_64bit(disk))
}

/// A warning line when partition 1 is ext with the `64bit` feature, with the commands that clear
/// it (`image check`'s item, about the image as the user named it); else nothing.
fn first_64bit(disk: &Path) -> String {
    let Ok(image) = Image::open(disk) else {
        return String::new();
    };
    let (Ok((offset, _)), Ok(first)) = (image.extent(1), image.partition(1)) else {
        return String::new();
    };
    match super::ext_64bit(disk, &image, &first.fs, offset) {
        i if i.verdict == Verdict::Fail => format!(
            "warning: partition 1: {} (prepare rewrites no filesystem)\n",
            i.reason
        ),
        _ => String::new(),
    }
}

/// Whether the root is written through libguestfs: anything but ext on a partition (debugfs).
fn by_guestfs(root: &view::Root) -> bool {
    !matches!(root.fs.kind, Kind::Ext(..)) || root.is_lv()
}

/// Installs osconf into the image `disk` (raw, or a format libguestfs writes; `scratch`: a raw
/// copy of the image, `convert`'s), with the fixes asked.
fn install(disk: &Path, scratch: bool, asked: Option<&Path>, fixes: Fixes) -> Result<Outcome, Error> {
    let mut out = String::new();
    // Until the commit, only staged copies change.
    let bad = |e: String| Error::invalid(disk, e).unchanged();
    let unreadable = |e: std::io::Error| super::unreadable(disk, &e).unchanged();
    let image = Image::open(disk).map_err(unreadable)?;
    let root = view::root_partition(&image).map_err(|i| match image.damage() {
        Some(d) => super::damaged(disk, &d).unchanged(),
        None => bad(i.reason),
    })?;
    let n = root.n;
    // ext on a partition is written by debugfs on a staged copy; anything else by libguestfs.
    let target = by_guestfs(&root).then(|| guestfs::Target {
        device: root
            .lv()
            .map_or_else(|| guestfs::partition_device(n), |lv| format!("/dev/{lv}")),
        subvolume_id: root.subvolume().map(|s| s.id),
        first_dir: None,
        root_dir: None,
        thin_vg: None,
        labels: Vec::new(),
    });
    let target = match (target, &root.pool) {
        (Some(t), Some(pool)) => Some(guestfs::Target {
            thin_vg: Some(thin_vg(pool, &root.place).map_err(|e| e.at(Some(disk)))?),
            ..t
        }),
        (t, _) => t,
    };
    // debugfs would write beneath the journal; the appliance's kernel replays it when it mounts.
    if target.is_none() && root.recovery().is_some() {
        return Err(needs_recovery(n).at(Some(disk)));
    }
    if target.is_some() && matches!(root.recovery(), Some(crate::disk::Recovery::Replayed { .. })) {
        out += &format!(
            "partition {n}: its log needed recovery: libguestfs's kernel replays it when it mounts the \
             root, as osconf's reader did to read it\n"
        );
    }
    let root_kind = root.fs.kind;
    let first = super::first_volume(disk, &image).map_err(Error::unchanged)?;
    let first_kind = first.fs.kind;
    let has_dir = first
        .metadata(CONF_DIR)
        .map_err(unreadable)?
        .is_some_and(|m| m.file_type == FileType::Dir);
    drop(first);

    // Damage the readers met while install read the root is the image's, whatever install said.
    let failed = |e: Error| match image.damage() {
        Some(d) => super::damaged(disk, &d).unchanged(),
        None => e.at(Some(disk)).unchanged(),
    };
    let sys = view::system(disk, root).map_err(|e| failed(e.into()))?;
    let (init, why) = install::detect(&sys).map_err(failed)?;
    let (agent, chosen) = agent_for(arch::of_root(&sys), asked)?;
    let binary = fs::read(&agent)
        .map_err(|e| failed(Error::failed(None, format!("reading {}: {e}", agent.display()))))?;
    // One partition: aliyun_custom_image/ is in the root, recorded for uninstall as install does.
    let inside = format!("/{CONF_DIR}");
    let config_dir = (n == 1 && !has_dir).then_some(inside.as_str());
    let plan = install::plan_install(&sys, init, binary.clone(), config_dir).map_err(failed)?;
    let place = format!("partition {n}");
    let fixed = fix::plan(&sys, fixes, &place).map_err(|e| match e.kind {
        crate::error::Kind::Invalid => e.unchanged(),
        _ => failed(e),
    })?;
    let notes: String = fixed.notes.iter().map(|n| format!("{n}\n")).collect();
    let root_dirs: &[&str] = if config_dir.is_some() { &[CONF_DIR] } else { &[] };
    let installed = plan.ops.is_empty() && has_dir;
    if installed && fixed.ops.is_empty() {
        out += &format!(
            "osconf is installed for {} in {place} already and {CONF_DIR}/ is on partition 1: \
             nothing to do\n{notes}",
            init.name
        );
        return Ok(Outcome {
            text: out,
            changed: 0,
        });
    }
    let ops: Vec<_> = plan.ops.iter().chain(&fixed.ops).cloned().collect();
    let mut selinux_note = None;
    let (changed, how) = match target {
        Some(mut target) => {
            target.root_dir = config_dir.map(|_| CONF_DIR.to_owned());
            target.first_dir = (n != 1 && !has_dir).then(|| CONF_DIR.to_owned());
            let root = view::root_partition(&image).map_err(|i| bad(i.reason))?;
            let missing = |dir: &str| {
                root.metadata(dir)
                    .ok()
                    .flatten()
                    .is_none_or(|m| m.file_type != FileType::Dir)
            };
            let (labels, said) = selinux::labels(&sys, &written_paths(&ops, config_dir, missing))
                .map_err(|e| failed(e.into()))?;
            target.labels = labels;
            selinux_note = said;
            let (modes, owners) = inject::modes(&ops, |p, follow| match follow {
                true => root.metadata(p),
                false => root.symlink_metadata(p),
            })
            .map_err(|e| in_disk(e, disk).unchanged())?;
            let steps: Vec<guestfs::Step> = ops
                .iter()
                .zip(modes)
                .zip(owners)
                .map(|((op, mode), owner)| guestfs::Step {
                    op,
                    mode,
                    file_there: owner.is_some(),
                    make_parent: op
                        .path()
                        .trim_start_matches('/')
                        .rsplit_once('/')
                        .is_some_and(|(dir, _)| missing(dir)),
                })
                .collect();
            drop(root);
            let into = match scratch {
                true => guestfs::Drive::Scratch,
                false => guestfs::Drive::Copy(image.disk()),
            };
            let (copy, how) = guestfs::write(disk, into, &target, &steps)?;
            let redo = |sys: &crate::system::System| -> Result<Vec<FileOp>, Error> {
                let mut left = install::plan_install(sys, init, binary.clone(), config_dir)?.ops;
                left.extend(fix::plan(sys, fixes, &place)?.ops);
                Ok(left)
            };
            written(&copy.path, &copy.work_file("thin-metadata"), redo).map_err(|e| {
                Error::failed(Some(disk), format!("after libguestfs wrote it: {e}")).unchanged()
            })?;
            copy.replace(disk)?;
            let how = match &target.thin_vg {
                Some(_) => format!("{how}; its thin pool passed thin_check after the write"),
                None => how,
            };
            let bytes = ops.iter().map(|op| match op {
                FileOp::Write { contents, .. } => contents.len() as u64,
                _ => 0,
            });
            (bytes.sum::<u64>().max(1), how)
        }
        None => {
            let staged_root = Staged::new(disk, &image, n).map_err(failed)?;
            apply(&staged_root, root_kind, root_dirs, &ops).map_err(|e| in_disk(e, disk).unchanged())?;
            let staged_first = if n != 1 && !has_dir {
                let s = Staged::new(disk, &image, 1).map_err(failed)?;
                apply(&s, first_kind, &[CONF_DIR], &[]).map_err(|e| in_disk(e, disk).unchanged())?;
                Some(s)
            } else {
                None
            };
            let all: Vec<&Staged> = std::iter::once(&staged_root)
                .chain(staged_first.as_ref())
                .collect();
            let changed = stage::commit(disk, &all).map_err(|e| e.at(Some(disk)))?;
            (changed, format!("{changed} bytes of the image changed"))
        }
    };
    let mut done: String = fixed.done.iter().map(|d| format!("{d}\n")).collect();
    done.extend(selinux_note.map(|n| n + "\n"));
    if installed {
        out += &format!(
            "osconf is installed for {} in {place} already\n{done}{notes}{how}\n",
            init.name
        );
        return Ok(Outcome { text: out, changed });
    }
    out += &format!("{chosen}\n");
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
    out += &done;
    out += &notes;
    out += &format!(
        "installed osconf for {} into {}; {how}\n",
        init.name,
        disk.display()
    );
    Ok(Outcome { text: out, changed })
}

/// The volume group libguestfs must activate for a root on a thin volume of `pool`: refused when
/// the kernel marked the pool's metadata as needing a check (LVM would not activate it), when its
/// name is not one LVM allows (it reaches the appliance's shell), or when the host has no
/// `thin_check` to check the pool after the write.
fn thin_vg(pool: &view::Pool, place: &str) -> Result<String, Error> {
    if pool.needs_check {
        return Err(Error::bad(format!(
            "{place}: its thin pool {}'s metadata is marked as needing a check (needs_check): run \
             thin_check on it, then lvconvert --repair {}, before image prepare writes to it",
            pool.name, pool.name
        ))
        .unchanged());
    }
    let vg = pool.name.split_once('/').map_or("", |(vg, _)| vg);
    if !guestfs::vg_name(vg) {
        return Err(
            Error::bad(format!("{place}: volume group name {vg:?} is not one LVM allows")).unchanged(),
        );
    }
    if crate::programs::in_path("thin_check").is_none() {
        return Err(Error::no_tool(guestfs::THIN_CHECK).unchanged());
    }
    Ok(vg.to_owned())
}

/// The paths `ops` leave in the root and what each is — the files written, the links made, the
/// directories made on the way to them (those `missing` says are not there) and `config_dir` —
/// for their SELinux labels.
fn written_paths(
    ops: &[FileOp],
    config_dir: Option<&str>,
    missing: impl Fn(&str) -> bool,
) -> Vec<(String, Made)> {
    let mut dirs = std::collections::BTreeSet::new();
    let mut paths = Vec::new();
    for op in ops {
        let kind = match op {
            FileOp::Write { .. } => Made::File,
            FileOp::Symlink { .. } => Made::Link,
            FileOp::Remove { .. } => continue,
        };
        let path = format!("/{}", op.path().trim_start_matches('/'));
        let mut dir = path.as_str();
        while let Some((parent, _)) = dir.rsplit_once('/').filter(|(p, _)| !p.is_empty()) {
            if !missing(parent.trim_start_matches('/')) {
                break;
            }
            dirs.insert(parent.to_owned());
            dir = parent;
        }
        paths.push((path, kind));
    }
    dirs.extend(config_dir.map(str::to_owned));
    paths.extend(dirs.into_iter().map(|d| (d, Made::Dir)));
    paths
}

/// Checks what a tool wrote into the image `disk` (raw, or libguestfs's copy in its format), read
/// back by osconf's own readers: `redo` (install's plan and the fixes asked, made again on the
/// image's root) finds nothing left to do, `aliyun_custom_image/` is on partition 1, and a thin
/// root's pool passes `thin_check` (its metadata copied to `scratch` for it).
fn written(
    disk: &Path,
    scratch: &Path,
    redo: impl Fn(&crate::system::System) -> Result<Vec<FileOp>, Error>,
) -> Result<(), Error> {
    let image = Image::open(disk).map_err(|e| Error::io(disk, &e))?;
    let mut root = view::root_partition(&image).map_err(|i| Error::bad(i.reason))?;
    if let Some(pool) = root.pool.take() {
        guestfs::thin_check(&pool, scratch)?;
    }
    let sys = view::system(disk, root)?;
    let left = redo(&sys)?;
    if !left.is_empty() {
        let paths: Vec<&str> = left.iter().map(FileOp::path).collect();
        return Err(Error::bad(format!("not as written: {}", paths.join(", "))));
    }
    let first = image.partition(1).map_err(|e| Error::io(disk, &e))?;
    match first.metadata(CONF_DIR) {
        Ok(Some(m)) if m.file_type == FileType::Dir => Ok(()),
        _ => Err(Error::bad(format!("{CONF_DIR}/ is not on partition 1"))),
    }
}

/// The agent for a root of architecture `root` (what [`arch::of_root`] read): `asked` (`--agent`)
/// when it is built for it, else the agent beside the toolkit (never the toolkit itself) when it
/// is; and the line saying which was taken and why. A root whose architecture could not be read
/// takes the agent unchecked, said so in that line.
fn agent_for(
    root: Result<(Arch, &'static str), Error>,
    asked: Option<&Path>,
) -> Result<(PathBuf, String), Error> {
    let (agent, built) = match asked {
        Some(p) => {
            let built =
                arch::of_file(p).map_err(|e| Error::invalid(p, format!("--agent: {e}")).unchanged())?;
            (p.to_owned(), built)
        }
        None => {
            let p = crate::programs::agent()?;
            let built = arch::of_file(&p).map_err(|e| e.at(Some(&p)).unchanged())?;
            (p, built)
        }
    };
    let shown = agent.display();
    match root {
        Ok((arch, from)) if arch == built => Ok((
            agent.clone(),
            format!(
                "the image is {} ({from} is); agent {shown} is built for it",
                arch.name()
            ),
        )),
        Ok((arch, from)) if asked.is_some() => Err(Error::invalid(
            &agent,
            format!(
                "--agent is built for {}, but the image is {} ({from} is)",
                built.name(),
                arch.name()
            ),
        )
        .unchanged()),
        Ok((arch, from)) => Err(Error::no_tool(format!(
            "the image is {} ({from} is), but the agent beside osconf-image, {shown}, is built for {}: \
             pass one built for {} with --agent FILE (osconf's {} package or tarball has it; \
             scripts/cargo-aarch64 build --release builds the aarch64 one)",
            arch.name(),
            built.name(),
            arch.name(),
            if arch == Arch::Aarch64 { "arm64" } else { "amd64" },
        ))),
        Err(why) => Ok((
            agent.clone(),
            format!(
                "note: the image's architecture was not read ({why}); agent {shown} ({}) put in unchecked",
                built.name()
            ),
        )),
    }
}
