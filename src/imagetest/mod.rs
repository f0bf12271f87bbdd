//! `osconf image test DISK`: boots a disk image locally under qemu the way ECS starts an instance of
//! it, with os.conf written into partition 1 (a generated one unless `--os-conf` gives it), then
//! reads the image and reports setting by setting what took effect. By default it boots a scratch
//! copy (the user's image is never changed); `--in-place` boots the image itself.
//!
//! It never touches the machine it runs on beyond its work directory: the guest's NICs reach no
//! network (see `qemu`), the image is read and written as a file, nothing is mounted.

pub mod conf;
pub mod copy;
pub mod qemu;
pub mod report;

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::output::{print, say};

/// The guest's memory.
const MEMORY_MIB: u32 = 1024;

use crate::cli::image::{Accel, Test};

/// The work directory: `--work`, else `DISK.osconf-test` beside the image.
fn work_dir(req: &Test) -> PathBuf {
    req.work.clone().unwrap_or_else(|| {
        let mut name = req.disk.file_name().unwrap_or_default().to_owned();
        name.push(".osconf-test");
        req.disk.with_file_name(name)
    })
}

fn not_installed() -> Error {
    Error::no_tool(format!(
        "{} is not installed (Debian, Ubuntu: apt-get install qemu-system-x86; Fedora, RHEL: dnf install \
         qemu-system-x86-core); nothing was booted",
        qemu::PROGRAM
    ))
}

/// `osconf image test`: exit 0 when every setting took effect, 1 when one did not.
pub fn run(req: &Test) -> Result<(), Error> {
    // Before copying a large image for nothing.
    if crate::programs::in_path(qemu::PROGRAM).is_none() {
        return Err(not_installed());
    }
    // A file that is no raw image (qcow2, unreadable) is refused as image check refuses it.
    crate::image::check(&req.disk)?;
    let work = work_dir(req);
    let fail = |what: String| Error::failed(Some(&work), what);
    std::fs::create_dir_all(&work).map_err(|e| fail(format!("creating the work directory: {e}")))?;
    let conf_path = match &req.os_conf {
        Some(p) => p.clone(),
        None => {
            let path = work.join("os.conf");
            write_private(&path, generated()?.as_bytes())
                .map_err(|e| fail(format!("writing os.conf: {e}")))?;
            say(format!(
                "generated os.conf: {} (it holds the root password)",
                path.display()
            ));
            path
        }
    };
    let config = crate::conf::load(&conf_path)?;
    let disk = if req.in_place {
        say(format!(
            "booting {} itself (--in-place): it is changed",
            req.disk.display()
        ));
        req.disk.clone()
    } else {
        let copy = work.join("disk.raw");
        let how = copy::scratch_copy(&req.disk, &copy).map_err(|e| {
            fail(format!(
                "copying {} to {}: {e}",
                req.disk.display(),
                copy.display()
            ))
        })?;
        say(format!(
            "booting {how} of {}: {}",
            req.disk.display(),
            copy.display()
        ));
        copy
    };
    let outcome = boot_and_report(req, &work, &disk, &config, &conf_path);
    if !req.in_place && !req.keep {
        let _ = std::fs::remove_file(&disk);
    }
    outcome
}

fn boot_and_report(
    req: &Test,
    work: &Path,
    disk: &Path,
    config: &crate::model::Config,
    conf: &Path,
) -> Result<(), Error> {
    let fail = |what: String| Error::failed(Some(disk), what);
    // As ECS does before a start.
    let injected = crate::image::inject::run(disk, conf)?;
    injected.lines().for_each(say);
    let kvm = match req.accel {
        Some(a) => a == Accel::Kvm,
        None => qemu::kvm_works(),
    };
    let mut machine = qemu::Machine {
        disk: disk.to_owned(),
        macs: config.nics.iter().map(|n| n.mac).collect(),
        kvm,
        memory_mib: MEMORY_MIB,
    };
    let log = work.join("console.log");
    let verbose = req.verbose;
    // The kernel log repeats osconf's lines with a time stamp: each is shown once.
    let mut last = String::new();
    let mut show = |line: &str| {
        let msg = line.find("osconf: ").map_or(line, |at| &line[at..]);
        if (verbose || line.contains("osconf")) && msg != last {
            say(format!("guest| {line}"));
        }
        msg.clone_into(&mut last);
    };
    let ended = loop {
        say(format!(
            "booting under qemu ({}), {} NIC(s) each alone on its hub, console in {}",
            if machine.kvm { "KVM" } else { "TCG" },
            machine.macs.len(),
            log.display()
        ));
        match qemu::boot(&machine, &log, &work.join("qemu.log"), req.timeout, &mut show) {
            Ok(e) => break e,
            Err(qemu::BootError::NotInstalled) => return Err(not_installed()),
            Err(qemu::BootError::Kvm(why)) if req.accel.is_none() => {
                say(format!(
                    "KVM failed before the guest printed anything ({why}); again under TCG"
                ));
                machine.kvm = false;
            }
            Err(qemu::BootError::Kvm(why) | qemu::BootError::Failed(why)) => return Err(fail(why)),
        }
    };
    let image = crate::disk::Image::open(disk).map_err(|e| fail(format!("reading the image: {e}")))?;
    let items = report::check(config, &ended, disk, &image);
    print(&report::text(&items))?;
    let failed = items
        .iter()
        .filter(|i| i.verdict == crate::image::Verdict::Fail)
        .count();
    match failed {
        0 => Ok(()),
        n => Err(fail(format!(
            "{n} of {} checks failed; the console is in {}",
            items.len(),
            log.display()
        ))),
    }
}

/// A fresh os.conf (see `conf`).
fn generated() -> Result<String, Error> {
    let mut r = [0u8; conf::RANDOM_BYTES];
    crate::random::fill(&mut r).map_err(|e| Error::failed(None, e))?;
    Ok(conf::generate(&r))
}

/// Writes a file only its owner reads (it holds a password).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(bytes)
}
