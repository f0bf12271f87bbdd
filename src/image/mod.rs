//! `osconf image check`: tests a raw disk image against the Customized Linux import requirements
//! before it is uploaded — the partition table, partition 1's filesystem and its
//! `aliyun_custom_image/`, the virtual size, and in the root partition (`root`) the os.conf agent,
//! baked-in SSH keys and root password — and reports each as pass, fail or warning, with the reason.
//! It reads the image through `disk` only: a hostile image is never handed to the kernel; check
//! never mounts, writes or runs a tool. `inject` (and `stage`) write into an image.

pub mod arch;
pub mod convert;
mod fix;
pub mod guestfs;
pub mod inject;
mod keygen;
pub mod prepare;
mod root;
pub mod scratch;
pub mod selinux;
pub(crate) mod stage;
pub mod view;

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use crate::disk::format::Disk;
use crate::disk::{self, FileType, Image, Kind, Volume, fat};
use crate::error::Error;
use crate::json;
use crate::output::Said;

/// The import notes: "The size of the virtual file … must be larger than 5 GiB."
const MIN_SIZE: u64 = 5 << 30;

use inject::CONF_DIR as CUSTOM_DIR;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// Could not be decided from the image without mounting it; not a failure.
    Warn,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Warn => "warn",
        }
    }
}

/// One requirement: a short key (stable, for scripts), the verdict and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub key: &'static str,
    pub verdict: Verdict,
    pub reason: String,
}

fn item(key: &'static str, verdict: Verdict, reason: impl Into<String>) -> Item {
    Item {
        key,
        verdict,
        reason: reason.into(),
    }
}

/// What `image check` found: each requirement, and what detection says of the root partition
/// (`None` when none was found or read).
pub struct Report {
    pub items: Vec<Item>,
    pub system: Option<crate::detect::Survey>,
}

/// Checks the image at `path`. An image that cannot be read, or is qcow2, is an `Invalid` error
/// (exit 2); the requirements found failing are in the items.
pub fn check(path: &Path) -> Result<Report, Error> {
    let mut system = None;
    let items = requirements(path, &mut system)?;
    Ok(Report { items, system })
}

/// The requirements' items; `system` gets the root partition's survey when there is one.
fn requirements(path: &Path, system: &mut Option<crate::detect::Survey>) -> Result<Vec<Item>, Error> {
    let image = Image::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => {
            Error::invalid(path, format!("cannot open: {e}"))
        }
        _ => unreadable(path, &e),
    })?;
    let items = check_image(path, &image, system)?;
    // A check that turned damage into a warning still owes "image damaged" (and exit 2).
    match image.damage() {
        Some(d) => Err(damaged(path, &d)),
        None => Ok(items),
    }
}

/// An error of the image's readers as the command's: damage found (`InvalidData`: a number, a
/// name or a walk that cannot be) is "image damaged: …", anything else the image cannot give is
/// said as it is; both are bad input (exit 2).
pub(crate) fn unreadable(disk: &Path, e: &io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::InvalidData => damaged(disk, e),
        _ => Error::invalid(disk, e.to_string()),
    }
}

/// "image damaged: WHAT" about `disk` (exit 2).
pub(crate) fn damaged(disk: &Path, what: &dyn std::fmt::Display) -> Error {
    Error::invalid(disk, format!("image damaged: {what}"))
}

fn check_image(
    path: &Path,
    image: &Image,
    system: &mut Option<crate::detect::Survey>,
) -> Result<Vec<Item>, Error> {
    let size = image.size;
    let mut items = vec![if size > MIN_SIZE {
        item(
            "size",
            Verdict::Pass,
            format!("virtual size {} is larger than 5 GiB", gib(size)),
        )
    } else {
        item(
            "size",
            Verdict::Fail,
            format!("virtual size {} must be larger than 5 GiB", gib(size)),
        )
    }];
    let Some(t) = &image.table else {
        items.push(item("partition1", Verdict::Fail, "no MBR or GPT partition table"));
        return Ok(items);
    };
    let Some(p1) = t.partition(1) else {
        let kind = t.kind.name();
        items.push(item(
            "partition1",
            Verdict::Fail,
            format!("the {kind} table has no partition 1"),
        ));
        return Ok(items);
    };
    let (offset, len) = image.extent(1).map_err(|e| unreadable(path, &e))?;
    let first = match image.partition(1) {
        Ok(v) => Some(v),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => None,
        Err(e) => return Err(unreadable(path, &e)),
    };
    let fs = match &first {
        Some(v) => Some(v.fs.clone()),
        None => disk::probe(image.disk(), offset).ok().flatten(),
    };
    match fs {
        Some(fs) => items.extend(first_filesystem(
            (path, image, offset),
            t.kind.name(),
            &fs,
            first.as_ref(),
        )),
        // Still a root to check: the image may only need its partitions reordered.
        None => items.push(no_filesystem(p1, offset, len)),
    }
    let (root_items, survey) = root::check(path, image);
    items.extend(root_items);
    *system = survey;
    Ok(items)
}

/// Partition 1's filesystem `fs` (`first`, when its files can be read; at `offset` of `image`, the
/// file `path`): a kind os.conf can be written to, not ext4's `64bit`, writable by the guest's
/// kernel, with `aliyun_custom_image/` at its root.
fn first_filesystem(
    (path, image, offset): (&Path, &Image, u64),
    table: &str,
    fs: &disk::Filesystem,
    first: Option<&Volume<Disk>>,
) -> Vec<Item> {
    let what = format!("partition 1 ({table} table): {}", fs.describe());
    let mut items = vec![match fs.kind {
        Kind::Fat(fat::Version::Fat32) | Kind::Ext(..) | Kind::Ufs(_) => {
            item("filesystem", Verdict::Pass, what)
        }
        Kind::Fat(_) => item("filesystem", Verdict::Fail, format!("{what}: FAT must be FAT32")),
        Kind::Btrfs | Kind::Xfs(_) => item(
            "filesystem",
            Verdict::Fail,
            format!("{what}: osconf finds os.conf on ext2/3/4, FAT or UFS only"),
        ),
    }];
    if let Kind::Ext(..) = fs.kind {
        items.push(ext_64bit(path, image, fs, offset));
    }
    items.push(writable(&fs.kind));
    if let Some(r) = first.as_ref().and_then(|v| v.recovery()) {
        items.push(item("journal", Verdict::Warn, r.describe("partition 1")));
    }
    items.push(match first {
        Some(v) => custom_dir(v),
        None => item(
            "custom-dir",
            Verdict::Warn,
            format!("{CUSTOM_DIR}/: cannot tell without mounting (UFS directories are not read)"),
        ),
    });
    items
}

/// Partition 1 opened to be written (prepare, inject). One that holds no filesystem is refused
/// with `check`'s account of it (a BIOS boot partition named as such, and what to do), not only
/// "no filesystem".
pub(crate) fn first_volume(disk: &Path, image: &Image) -> Result<Volume<Disk>, Error> {
    let e = match image.partition(1) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let p1 = image.table.as_ref().and_then(|t| t.partition(1));
    match (e.kind(), p1, image.extent(1)) {
        (io::ErrorKind::Unsupported, Some(p1), Ok((offset, len)))
            if matches!(disk::probe(image.disk(), offset), Ok(None)) =>
        {
            Err(Error::invalid(disk, no_filesystem(p1, offset, len).reason))
        }
        _ => Err(unreadable(disk, &e)),
    }
}

/// Partition 1 holds no filesystem: ECS cannot write os.conf there, said with what to do. A GPT
/// BIOS boot partition (GRUB's core image; openSUSE and RHEL put one first on BIOS layouts) is
/// named as such: moving it needs GRUB installed again, as its core image names its partitions.
fn no_filesystem(p: &disk::Partition, offset: u64, len: u64) -> Item {
    let size = match len >> 20 {
        0 => format!("{} KiB", len >> 10),
        mib => format!("{mib} MiB"),
    };
    let what = match p.type_id.as_str() {
        BIOS_BOOT => format!(
            "partition 1 is a BIOS boot partition (GPT type {BIOS_BOOT}, {size}: GRUB's core image), \
             which holds no ext2/3/4, FAT or UFS filesystem"
        ),
        _ => format!("partition 1 (at byte {offset}, {size}) holds no ext2/3/4, FAT or UFS filesystem"),
    };
    item(
        "filesystem",
        Verdict::Fail,
        format!(
            "{what}: ECS writes os.conf on partition 1 and cannot write it there, so no os.conf \
             reaches the instance; make partition 1 an ext4 (without 64bit) or FAT32 filesystem, \
             e.g. renumber the table so /boot or the EFI System Partition comes first \
             (sgdisk --transpose=1:N) and install the boot loader again"
        ),
    )
}

/// Partition 1's ext `64bit` feature (an ext partition 1 at `offset` of the image at `disk`): ECS's
/// writer of os.conf into partition 1 does not handle it. Failing, it gives the commands that
/// clear it, tried with e2fsprogs 1.47: `resize2fs -s` converts the filesystem in place, its files,
/// label and UUID kept (it must be unmounted and checked first: `e2fsck -p`, since `-f` alone
/// wants a terminal); e2fsprogs' `NAME?offset=N` lets
/// both work on the image file itself (on a raw copy of a qcow2, VHD or VMDK). `mkfs.ext4 -O
/// ^64bit` with its label and UUID makes it anew, empty.
pub(crate) fn ext_64bit(disk: &Path, image: &Image, fs: &disk::Filesystem, offset: u64) -> Item {
    let Kind::Ext(_, features) = fs.kind else {
        return item("ext4-64bit", Verdict::Pass, "partition 1 is not ext");
    };
    if !features.has_64bit() {
        return item("ext4-64bit", Verdict::Pass, "the 64bit feature is not set");
    }
    let format = image.disk().format;
    let (raw, before, after) = if format.in_place() {
        (disk.to_owned(), String::new(), String::new())
    } else {
        let raw = disk.with_extension("raw");
        let before = format!(
            "on a raw copy, qemu-img convert -O raw {} {}, ",
            sh_quote(&disk.to_string_lossy()),
            sh_quote(&raw.to_string_lossy())
        );
        let after = format!(", then back with qemu-img convert -O {}", format.name());
        (raw, before, after)
    };
    let at = sh_quote(&format!("{}?offset={offset}", raw.display()));
    let label = fs
        .label
        .as_deref()
        .filter(|l| !l.is_empty())
        .map_or_else(String::new, |l| format!(" -L {}", sh_quote(l)));
    let uuid = fs
        .uuid
        .as_deref()
        .map_or_else(String::new, |u| format!(" -U {u}"));
    item(
        "ext4-64bit",
        Verdict::Fail,
        format!(
            "the 64bit feature is set, which ECS's writer of partition 1 does not handle: convert \
             it, its files kept ({before}unmounted, e2fsprogs 1.43 or later): e2fsck -fp {at} && \
             resize2fs -s {at}{after}; or make it anew and copy its files back: mkfs.ext4 -O \
             ^64bit{label}{uuid} on partition 1"
        ),
    )
}

/// GPT's type GUID of a BIOS boot partition (where GRUB puts its core image on GPT disks).
const BIOS_BOOT: &str = "21686148-6449-6e6f-744e-656564454649";
/// `text` as one shell word: single-quoted unless it is plain; control characters (a label read
/// from an image) as `?`, so the line printed is the command run.
fn sh_quote(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        return text;
    }
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Whether the guest's kernel would mount partition 1 writable, as removing os.conf needs.
fn writable(kind: &Kind) -> Item {
    match kind {
        Kind::Ext(_, features) => match features.read_only_reason() {
            Some(why) => item("writable", Verdict::Fail, format!("{why}: mounted read-only")),
            None => item(
                "writable",
                Verdict::Pass,
                "no read-only feature, no read-only compatible feature newer than Linux 3.10",
            ),
        },
        Kind::Fat(_) => item("writable", Verdict::Pass, "FAT has no read-only flag"),
        Kind::Btrfs | Kind::Xfs(_) => item(
            "writable",
            Verdict::Warn,
            "not judged: os.conf is not looked for on btrfs or xfs",
        ),
        Kind::Ufs(_) => item(
            "writable",
            Verdict::Warn,
            "cannot tell from a UFS superblock; Linux writes UFS only with CONFIG_UFS_FS_WRITE",
        ),
    }
}

/// `aliyun_custom_image/` at the root of partition 1 (FAT names match case-insensitively).
fn custom_dir(v: &Volume<Disk>) -> Item {
    match v.metadata(CUSTOM_DIR) {
        Ok(Some(m)) if m.file_type == FileType::Dir => item(
            "custom-dir",
            Verdict::Pass,
            format!("{CUSTOM_DIR}/ is at the root of partition 1"),
        ),
        Ok(Some(m)) => item(
            "custom-dir",
            Verdict::Fail,
            format!(
                "{CUSTOM_DIR} at the root of partition 1 is a {:?}, not a directory",
                m.file_type
            ),
        ),
        Ok(None) => item(
            "custom-dir",
            Verdict::Fail,
            format!(
                "no {CUSTOM_DIR}/ at the root of partition 1 (osconf image prepare or osconf install creates it)"
            ),
        ),
        Err(e) => item(
            "custom-dir",
            Verdict::Warn,
            format!("{CUSTOM_DIR}/: partition 1 cannot be read: {e}"),
        ),
    }
}

fn gib(bytes: u64) -> String {
    let hundredths = (u128::from(bytes) * 100 + (1 << 29)) >> 30;
    format!("{}.{:02} GiB", hundredths / 100, hundredths % 100)
}

/// The report as text: one line per requirement.
pub fn text<'a>(items: impl IntoIterator<Item = &'a Item>) -> String {
    let mut out = String::new();
    for i in items {
        let _ = writeln!(out, "{:<5} {}: {}", i.verdict.name(), i.key, i.reason);
    }
    out
}

/// The report as one JSON object: `{"pass":bool,"checks":[{"key","result","reason"}],"not_checked":[],
/// "system":{…}|null}`, `system` being what `detect::Survey::json` says of the root partition.
pub fn json(report: &Report) -> String {
    let items = &report.items;
    let checks = json::array(items.iter().map(|i| {
        format!(
            "{{\"key\":{},\"result\":{},\"reason\":{}}}",
            json::string(i.key),
            json::string(i.verdict.name()),
            json::string(&i.reason)
        )
    }));
    // `not_checked` stays (empty) for scripts written when some checks were not made yet.
    let system = report
        .system
        .as_ref()
        .map_or_else(|| "null".to_owned(), crate::detect::Survey::json);
    format!(
        "{{\"pass\":{},\"checks\":{checks},\"not_checked\":[],\"system\":{system}}}\n",
        passed(items)
    )
}

/// True when nothing fails (warnings do not).
pub fn passed(items: &[Item]) -> bool {
    items.iter().all(|i| i.verdict != Verdict::Fail)
}

/// Runs `program` (a filesystem tool: see `inject`; qemu-img: see `convert`) with `args`; its
/// stdout, or an error naming it and its stderr. A tool that is not installed is `Error::no_tool`
/// (exit 3).
pub(crate) fn tool(program: &str, args: &[&std::ffi::OsStr]) -> Result<String, Error> {
    tool_in(program, args, None)
}

/// [`tool`], run in the directory `dir` when one is given (for paths relative to it).
pub(crate) fn tool_in(program: &str, args: &[&std::ffi::OsStr], dir: Option<&Path>) -> Result<String, Error> {
    // No environment of its own: setting one costs the binary a map of variables.
    let mut command = std::process::Command::new(program);
    if let Some(d) = dir {
        command.current_dir(d);
    }
    let out = command
        .args(args)
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::no_tool(format!(
                "{program} is not installed ({})",
                match program {
                    "qemu-img" =>
                        "Debian, Ubuntu: qemu-utils; Fedora, RHEL: qemu-img; it writes qcow2, VHD and VMDK",
                    "qemu-io" =>
                        "Debian, Ubuntu: qemu-utils; Fedora, RHEL: qemu-img; it writes into image test's qcow2 overlay",
                    _ => "mtools writes FAT, e2fsprogs' debugfs writes ext",
                }
            )),
            _ => Error::failed(None, format!("running {program}: {e}")).unchanged(),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = format!("{program} {}: {}", out.status, stderr.trim());
        return Err(Error::failed(None, why).unchanged());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `osconf image check`: the report; exit 1 when a requirement fails.
pub fn run_check(path: &Path, as_json: bool) -> Result<Said, Error> {
    let report = check(path)?;
    let items = &report.items;
    let text = if as_json { json(&report) } else { text(items) };
    if passed(items) {
        return Ok(Said::text(text));
    }
    let n = items.iter().filter(|i| i.verdict == Verdict::Fail).count();
    Ok(Said::failing(
        text,
        Error::failed(Some(path), format!("{n} requirement(s) fail")),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn gib_has_two_decimals_rounded_half_up() {
        let g = 1u64 << 30;
        assert_eq!(super::gib(5 * g), "5.00 GiB");
        assert_eq!(super::gib(5 * g + 1), "5.00 GiB");
        assert_eq!(super::gib(g / 200), "0.00 GiB"); // 0.005 less a fraction of a byte
        assert_eq!(super::gib(g / 200 + 1), "0.01 GiB");
        assert_eq!(super::gib(g + g / 2), "1.50 GiB");
        assert_eq!(super::gib(u64::MAX), "17179869184.00 GiB");
    }
}
