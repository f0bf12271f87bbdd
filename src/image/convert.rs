//! Writing into an image that is not raw (qcow2, a dynamic VHD, VMDK) so that it keeps its format
//! and a crash half-way leaves it as it was: the image is first read by osconf's own readers (a
//! hostile one is refused before any tool sees it), then `qemu-img convert` makes a sparse raw
//! copy in the work directory `DISK.osconf-work.PID.convert`, the raw write path (`stage`: staged
//! partitions, read back, undo file) edits that copy, and `qemu-img convert -O FORMAT` makes a new
//! image beside the original (`DISK.osconf-work.PID.new`) with the original's options — qcow2's
//! compat level, cluster size and refcount width, compressed when it had compressed clusters, its
//! backing file kept (`-B NAME -F FORMAT`: only what differs from the backing is written); VHD's
//! and VMDK's subformat. `qemu-img check` passes on it (a VHD, which qemu-img does not check, is
//! read back natively instead: every block table entry, both footers, every byte against the raw
//! copy), its virtual size is the original's, it is flushed, given the original's mode and owner, and only then renamed over the original. Killed
//! before the rename, the original is untouched and the next run removes the leftovers (`stage`'s
//! sweep). Raw files and fixed VHDs (whose bytes are the disk's) are written in place by `stage`.
//! A root libguestfs writes (`guestfs`) skips the raw copy: guestfish writes one copy of the
//! image in its own format, checked here ([`checked`], [`settle`]) as a converted image is —
//! except a stream-optimized VMDK, whose grains qemu will not rewrite.
//!
//! qemu-img is run, not reimplemented: writing these formats (allocation, refcounts, compression,
//! footers) is where a mistake corrupts a user's image, and qemu's own writer is what every image
//! builder already trusts; reading them natively keeps `check` free of it.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::tool;
use crate::disk::Image;
use crate::disk::format::{Disk, Format};
use crate::error::Error;

/// What a write into an image did: its report, and how many bytes of the virtual disk changed.
pub struct Outcome {
    pub text: String,
    pub changed: u64,
}

/// Removes the work directory and a new image not renamed into place, however the run ends.
struct Leftovers {
    dir: PathBuf,
    new: PathBuf,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.new);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Runs `write` on the image at `disk`: on the image itself when its format is written in place
/// or when `as_is` says the writer takes it as it is (libguestfs writes a copy in the image's own
/// format), else on a raw copy converted back as the module says (`write`'s second argument:
/// the file is that copy). Notes of an earlier run recovered come first in the report.
pub fn edit(
    disk: &Path,
    as_is: impl FnOnce(&Image) -> bool,
    write: impl FnOnce(&Path, bool) -> Result<Outcome, Error>,
) -> Result<String, Error> {
    let mut notes = String::new();
    if let Some(note) = super::stage::recover(disk)? {
        notes += &format!("{note}\n");
    }
    // Until the rename, the image is not touched.
    let unreadable = |e: std::io::Error| super::unreadable(disk, &e).unchanged();
    let image = Image::open(disk).map_err(unreadable)?;
    let source = image.disk().clone();
    if source.format.in_place() || as_is(&image) {
        drop(image);
        return write(disk, false).map(|o| notes + &o.text);
    }
    let failed = |e: String| Error::failed(Some(disk), e).unchanged();
    let compressed = source.compressed().map_err(unreadable)?;
    if let Some(d) = image.damage() {
        return Err(super::damaged(disk, &d).unchanged());
    }
    drop(image);
    let name = disk
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let pid = std::process::id();
    let left = Leftovers {
        dir: disk.with_file_name(format!("{name}.osconf-work.{pid}.convert")),
        new: disk.with_file_name(format!("{name}.osconf-work.{pid}.new")),
    };
    fs::create_dir(&left.dir).map_err(|e| failed(format!("creating {}: {e}", left.dir.display())))?;
    let raw = left.dir.join("disk.raw");
    let fmt = source.format.name();
    // The format named, never probed: the bytes said what it is.
    qemu_img(&["convert", "-f", fmt, "-O", "raw"], &[disk, &raw])?;
    // What the raw path says of the copy it says of the image.
    let (copy, shown) = (raw.display().to_string(), disk.display().to_string());
    let outcome = write(&raw, true).map_err(|mut e| {
        if e.path.as_deref() == Some(raw.as_path()) {
            e.path = Some(disk.to_owned());
        }
        e.message = e.message.replace(&copy, &shown);
        e
    })?;
    let text = outcome.text.replace(&copy, &shown);
    if outcome.changed == 0 {
        return Ok(notes + &text);
    }
    let how = write_back(&source, compressed, &raw, &left.new, disk)?;
    crate::exec::crash_point("image-converted");
    fs::rename(&left.new, disk)
        .and_then(|()| super::stage::sync_dir(disk))
        .map_err(|e| failed(format!("renaming {} over it: {e}", left.new.display())))?;
    Ok(format!("{notes}{text}{how}\n"))
}

/// Makes `new` from `raw` in the format of `source`, checks and flushes it, with `disk`'s mode and
/// owner; says how.
fn write_back(source: &Disk, compressed: bool, raw: &Path, new: &Path, disk: &Path) -> Result<String, Error> {
    let failed = |e: String| Error::failed(Some(disk), e).unchanged();
    let fmt = source.format.name();
    let mut args: Vec<OsString> = ["convert", "-f", "raw", "-O", fmt].map(OsString::from).into();
    let options = source.options.join(",");
    if !options.is_empty() {
        args.extend(["-o".into(), options.into()]);
    }
    if compressed {
        args.push("-c".into());
    }
    if let Some(b) = &source.backing {
        // Resolved as the original resolves it: the new image lies in the same directory.
        let name = OsStr::from_bytes(&b.name).to_owned();
        args.extend(["-B".into(), name, "-F".into(), b.format.name().into()]);
    }
    args.extend([raw.as_os_str().to_owned(), new.as_os_str().to_owned()]);
    qemu_img(&args, &[])?;
    let again = checked(source, new, disk)?;
    if !matches!(source.format, Format::Qcow2 { .. } | Format::Vmdk { .. }) {
        // vpc has no check in qemu-img: every byte is read back natively too.
        same_data(raw, again.disk()).map_err(|e| failed(format!("the new image {}: {e}", new.display())))?;
    }
    settle(new, disk)?;
    let mut how = format!("written back as {} by qemu-img convert", source.format.describe());
    if compressed {
        how += ", compressed";
    }
    if let Some(b) = &source.backing {
        how += &format!(", over its backing file {:?}", String::from_utf8_lossy(&b.name));
    }
    Ok(how)
}

/// Holds `new`, a file made to replace `disk` whose virtual disk is `source`, to what it must be
/// before the rename: `qemu-img check` clean (qcow2, VMDK; a VHD, which qemu-img does not check,
/// has every table entry and both footers read back natively instead), and read natively as
/// `source`'s format at its virtual size; returns it opened.
pub(super) fn checked(source: &Disk, new: &Path, disk: &Path) -> Result<Image, Error> {
    let failed = |e: String| Error::failed(Some(disk), e).unchanged();
    let fmt = source.format.name();
    let by_qemu = matches!(source.format, Format::Qcow2 { .. } | Format::Vmdk { .. });
    if by_qemu {
        qemu_img(&["check", "-q", "-f", fmt], &[new])
            .map_err(|e| failed(format!("the new image: {}", e.message)))?;
    }
    let again =
        Image::open(new).map_err(|e| failed(format!("reading the new image {}: {e}", new.display())))?;
    if again.size != source.size || again.disk().format.name() != fmt {
        return Err(failed(format!(
            "the new image is {} of {} bytes, not {} of {}",
            again.disk().format.describe(),
            again.size,
            source.format.describe(),
            source.size
        )));
    }
    if !by_qemu {
        again
            .disk()
            .verify()
            .map_err(|e| failed(format!("the new image {}: {e}", new.display())))?;
    }
    Ok(again)
}

/// Gives `new` the mode and owner of `disk` and flushes it, before it is renamed over `disk`.
pub(super) fn settle(new: &Path, disk: &Path) -> Result<(), Error> {
    let failed = |e: String| Error::failed(Some(disk), e).unchanged();
    let meta = fs::metadata(disk).map_err(|e| failed(e.to_string()))?;
    let f = File::options()
        .write(true)
        .open(new)
        .map_err(|e| failed(format!("{}: {e}", new.display())))?;
    f.set_permissions(meta.permissions())
        .map_err(|e| failed(format!("giving {} the image's mode: {e}", new.display())))?;
    // The image's owner (root may run this on a user's image); a user can give only its own.
    let _ = std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()));
    f.sync_all()
        .map_err(|e| failed(format!("flushing {}: {e}", new.display())))
}

/// Whether the virtual disk `new` holds the bytes of the raw file `raw`, read end to end; damage
/// naming the first byte where they differ when not.
fn same_data(raw: &Path, new: &Disk) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    const CHUNK: usize = 1 << 20;
    let file = File::open(raw)?;
    let (mut a, mut b) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut at = 0u64;
    while at < new.size {
        let n = (new.size - at).min(CHUNK as u64) as usize;
        file.read_exact_at(&mut a[..n], at)?;
        if !crate::disk::read_at(new, at, &mut b[..n])? {
            return Err(crate::disk::corrupt(format!(
                "its virtual disk ends before byte {}",
                at + n as u64
            )));
        }
        if let Some(i) = (0..n).find(|&i| a[i] != b[i]) {
            return Err(crate::disk::corrupt(format!(
                "byte {} of its virtual disk is not the raw copy's",
                at + i as u64
            )));
        }
        at += n as u64;
    }
    Ok(())
}

/// Runs qemu-img with `args` then `paths`; a missing qemu-img is exit 3 naming its package.
fn qemu_img<S: AsRef<OsStr>>(args: &[S], paths: &[&Path]) -> Result<String, Error> {
    let all: Vec<&OsStr> = args
        .iter()
        .map(AsRef::as_ref)
        .chain(paths.iter().map(|p| p.as_os_str()))
        .collect();
    tool("qemu-img", &all)
}
