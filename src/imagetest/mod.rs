//! `osconf image test DISK`: boots a disk image locally under qemu the way ECS starts an instance of
//! it, with os.conf written into partition 1 (a generated one unless `--os-conf` gives it), then
//! reads the image and reports setting by setting what took effect; `--boots N` goes on through the
//! instance's life (`life`). The machine — emulator for the image's architecture, BIOS or UEFI — is
//! chosen in `machine`. By default it boots a scratch copy (the user's image is never changed);
//! `--in-place` boots the image itself.
//!
//! It never touches the machine it runs on beyond its work directory: the guest's NICs reach no
//! network (see `qemu`), the image is read and written as a file, nothing is mounted.

pub mod conf;
pub mod copy;
mod life;
pub mod machine;
pub mod qemu;
pub mod report;

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::cli::image::{Accel, Test};
use crate::disk::Image;
use crate::disk::format::Format;
use crate::error::Error;
use crate::image::arch::{self, Arch};
use crate::output::{Said, say};
use machine::{Firmware, Machine};

/// The guest's memory.
const MEMORY_MIB: u32 = 1024;

/// The work directory: `--work`, else `DISK.osconf-test` beside the image.
fn work_dir(req: &Test) -> PathBuf {
    req.work.clone().unwrap_or_else(|| {
        let mut name = req.disk.file_name().unwrap_or_default().to_owned();
        name.push(".osconf-test");
        req.disk.with_file_name(name)
    })
}

/// The emulator is missing: exit 3 naming its package.
fn not_installed(arch: Arch) -> Error {
    Error::no_tool(format!(
        "{} is not installed ({})",
        machine::program(arch),
        machine::program_package(arch)
    ))
}

/// The guest's architecture, from the ELF binaries of the image's root (`image::arch`), and how it
/// was found; x86_64 when they cannot be read (the emulator every image boots on here).
fn guest_arch(disk: &Path, image: &Image) -> (Arch, String) {
    match report::root_system(disk, image).and_then(|(_, sys)| arch::of_root(&sys)) {
        Ok((a, from)) => (a, format!("{from} is an {} binary", a.name())),
        Err(why) => (Arch::X86_64, format!("x86_64 assumed: {why}")),
    }
}

/// `osconf image test`: exit 0 when every setting took effect at every boot, 1 when one did not.
pub fn run(req: &Test) -> Result<Said, Error> {
    // A file no reader reads (a format osconf does not read, damage) is refused as check refuses it.
    crate::image::check(&req.disk)?;
    let image = Image::open(&req.disk).map_err(|e| Error::invalid(&req.disk, e.to_string()))?;
    let (arch, arch_why) = guest_arch(&req.disk, &image);
    // Before copying a large image for nothing.
    if crate::programs::in_path(machine::program(arch)).is_none() {
        return Err(not_installed(arch));
    }
    let boot_code = image
        .boot_code()
        .map_err(|e| Error::invalid(&req.disk, e.to_string()))?;
    let (firmware, firmware_why) =
        machine::choose_firmware(arch, req.firmware, image.table.as_ref(), &boot_code)
            .map_err(|e| Error::invalid(&req.disk, e.message))?;
    let format = image.disk().format;
    drop(image);
    // KVM runs guests of the host's own architecture only.
    let native = Arch::host() == Some(arch);
    let kvm = match req.accel {
        Some(Accel::Kvm) if !native => {
            return Err(Error::invalid(
                &req.disk,
                format!(
                    "--accel kvm: the image is {}, which KVM does not run on this {} machine;",
                    arch.name(),
                    std::env::consts::ARCH
                ),
            ));
        }
        Some(a) => a == Accel::Kvm,
        None => native && qemu::kvm_works(),
    };
    say(format!(
        "guest: {} ({arch_why}); firmware: {} ({firmware_why})",
        arch.name(),
        firmware.name()
    ));
    let work = work_dir(req);
    let fail = |what: String| Error::failed(Some(&work), what);
    std::fs::create_dir_all(&work).map_err(|e| fail(format!("creating the work directory: {e}")))?;
    let conf_path = match &req.os_conf {
        Some(p) => p.clone(),
        None => {
            let path = work.join("os.conf");
            write_private(&path, conf::generate(&random()?).as_bytes())
                .map_err(|e| fail(format!("writing os.conf: {e}")))?;
            say(format!(
                "generated os.conf: {} (it holds the root password)",
                path.display()
            ));
            path
        }
    };
    let config = crate::conf::load(&conf_path)?;
    let uefi = match firmware {
        Firmware::Uefi => Some(machine::uefi_firmware(arch, &work)?),
        Firmware::Bios => None,
    };
    let (disk, disk_format) = if req.in_place {
        say(format!(
            "booting {} itself (--in-place): it is changed",
            req.disk.display()
        ));
        (req.disk.clone(), format.name())
    } else if format != Format::Raw {
        let overlay = work.join("disk.qcow2");
        copy::overlay(&req.disk, format, &overlay)?;
        say(format!(
            "booting a qcow2 overlay on {} ({}): {}",
            req.disk.display(),
            format.describe(),
            overlay.display()
        ));
        (overlay, "qcow2")
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
        (copy, "raw")
    };
    let mut machine = Machine {
        arch,
        uefi,
        disk: disk.clone(),
        format: disk_format,
        macs: config.nics.iter().map(|n| n.mac).collect(),
        kvm,
        memory_mib: MEMORY_MIB,
    };
    let guest = life::Guest {
        arch,
        arch_why,
        firmware,
        firmware_why,
    };
    let outcome = life::run(req, &work, &mut machine, &guest, config, conf_path);
    if !req.in_place && !req.keep {
        let _ = std::fs::remove_file(&disk);
    }
    outcome
}

/// Random bytes for an os.conf (see `conf`).
fn random() -> Result<[u8; conf::RANDOM_BYTES], Error> {
    let mut r = [0u8; conf::RANDOM_BYTES];
    crate::random::fill(&mut r)?;
    Ok(r)
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
