//! Writing a plan's file operations into a root that osconf reads but does not write itself — XFS,
//! Btrfs (the subvolume the reader chose), a filesystem on an LVM logical volume — through
//! libguestfs's `guestfish`, on one copy of the image in its own format: a reflink or a sparse
//! copy (`scratch`) beside the image (`DISK.osconf-work.PID.new`, where a qcow2's backing file
//! resolves as the image's does), opened by guestfish as `raw`, `qcow2`, `vpc` or `vmdk` so that
//! qemu's own drivers write it; the caller reads it back with osconf's own readers, and only then
//! is it checked (`qemu-img check`, or a VHD's tables read back natively), flushed and renamed
//! over the image ([`Copy::replace`]). A stream-optimized VMDK, whose grains qemu will not
//! rewrite, comes here as `convert`'s raw copy, written as it is ([`Drive::Scratch`]). A kill or a
//! failure anywhere before leaves the image as it was; the copy and the work directory
//! (`DISK.osconf-work.PID.guestfs`: the files uploaded, the script, guestfish's messages) are
//! removed on the way out, or by the next run's sweep. The paths written get the SELinux labels
//! the root's policy gives them (`selinux`), set in the same session.
//!
//! guestfish is run rather than a mount or a writer of our own: it mounts the hostile filesystem
//! in its own appliance VM (never in the host's kernel, and as any user), its daemon resolves every
//! path inside the guest's root as a chroot would (a link in the image cannot reach the host), it
//! activates LVM (thin volumes too) and knows every filesystem's own tools — what image builders
//! already trust (`virt-customize` works the same way). A thin volume's volume group is activated
//! by the script itself, LVM's `thin_check` off (the appliance has none: it is in no appliance
//! package list), and deactivated after the write; osconf runs the host's `thin_check` on the pool's
//! metadata read from the copy before the copy replaces the image ([`thin_check`]). The commands go in a script file, each
//! argument quoted guestfish's way; file contents are `upload`ed from the work directory (0700),
//! never given on a command line; no shell runs.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::DirBuilderExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::inject::stage_file;
use super::selinux::Label;
use crate::disk::format::{Disk, Format};
use crate::error::Error;
use crate::plan::FileOp;

/// How long one guestfish run may take (appliance start under TCG on a loaded machine, the agent
/// uploaded, the filesystems flushed) before it is killed and the write fails.
const LIMIT: Duration = Duration::from_secs(900);
/// The last lines of guestfish's messages an error quotes.
const LAST_LINES: usize = 8;
/// What to install, said whenever guestfish is missing or cannot start its appliance.
const PACKAGES: &str = "Debian, Ubuntu: guestfish and libguestfs-xfs (and a kernel in /boot, \
     readable by the user: linux-image-amd64); Fedora, RHEL: guestfs-tools and libguestfs";

/// Where the root lies for guestfish: its device and the Btrfs subvolume, by id.
pub struct Target {
    /// `/dev/sda2`, `/dev/rl/root`.
    pub device: String,
    pub subvolume_id: Option<u64>,
    /// A directory to make on partition 1 (`aliyun_custom_image`), when it is not the root's.
    pub first_dir: Option<String>,
    /// A directory to make in the root itself (partition 1 is the root).
    pub root_dir: Option<String>,
    /// The volume group of a root on a thin volume, activated by the script (its name checked:
    /// [`vg_name`]).
    pub thin_vg: Option<String>,
    /// The SELinux labels of what is written in the root, set after the writes.
    pub labels: Vec<Label>,
}

/// Whether `name` is a volume group name as LVM allows it (letters, digits, `+_.-`, not starting
/// with `-`): the only text of the image that reaches a shell, the appliance's.
pub fn vg_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name.len() <= 127
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+_.-".contains(&b))
}

/// Runs the host's `thin_check` on a thin pool's metadata, copied from `pool` (read from the copy
/// libguestfs wrote) into `file` in the work directory: the pool the write left must be one LVM
/// activates. `thin_check` is run because it is the one checker LVM itself trusts (it runs it
/// before every activation), and walks every tree and space map, where osconf reads one path.
pub fn thin_check(pool: &super::view::Pool, file: &Path) -> Result<(), Error> {
    let failed = |e: String| Error::failed(None, format!("thin pool {}: {e}", pool.name)).unchanged();
    let size = crate::disk::ReadAt::size(&pool.metadata).map_err(|e| failed(e.to_string()))?;
    let mut out = fs::File::create(file).map_err(|e| failed(format!("{}: {e}", file.display())))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < size {
        let n = (size - at).min(buf.len() as u64) as usize;
        let ok =
            crate::disk::read_at(&pool.metadata, at, &mut buf[..n]).map_err(|e| failed(e.to_string()))?;
        if !ok {
            return Err(failed("its metadata LV ends early".into()));
        }
        std::io::Write::write_all(&mut out, &buf[..n])
            .map_err(|e| failed(format!("{}: {e}", file.display())))?;
        at += n as u64;
    }
    drop(out);
    let ran = Command::new("thin_check").arg(file).stdin(Stdio::null()).output();
    let _ = fs::remove_file(file);
    let ran = ran.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::no_tool(THIN_CHECK).unchanged(),
        _ => failed(format!("running thin_check: {e}")),
    })?;
    if !ran.status.success() {
        let said = String::from_utf8_lossy(&ran.stderr);
        let last: Vec<&str> = said.lines().rev().take(LAST_LINES).collect();
        let last: Vec<&str> = last.into_iter().rev().collect();
        return Err(failed(format!(
            "thin_check found its metadata damaged after libguestfs wrote it ({}): {}",
            ran.status,
            last.join("\n")
        )));
    }
    Ok(())
}

/// What a root on a thin volume needs besides libguestfs, said when `thin_check` is missing.
pub const THIN_CHECK: &str = "thin_check is not installed (Debian, Ubuntu: thin-provisioning-tools;      Fedora, RHEL: device-mapper-persistent-data); image prepare checks a thin pool's metadata with      it after libguestfs wrote a root on a thin volume";

/// The guest device guestfish gives partition `n` of the one disk it is handed.
pub fn partition_device(n: u32) -> String {
    format!("/dev/sda{n}")
}

/// Whether guestfish writes a copy of an image in `format` itself: qemu's drivers rewrite raw,
/// qcow2, VHD and monolithic sparse VMDK images in place, but refuse to rewrite a grain of a
/// stream-optimized VMDK (which `convert` hands over as a raw copy instead).
pub fn writes(format: Format) -> bool {
    !matches!(format, Format::Vmdk { stream: true })
}

/// The drive guestfish writes.
pub enum Drive<'a> {
    /// A copy, made first, of the image (the virtual disk `source` reads).
    Copy(&'a Disk),
    /// A raw file osconf made itself (`convert`'s copy), written as it is.
    Scratch,
}

/// The file guestfish wrote and its work directory; both removed unless the file is renamed into
/// place (a scratch file is its maker's to remove).
pub struct Copy {
    dir: PathBuf,
    pub path: PathBuf,
    /// The image's virtual disk, when the file is a copy of it.
    source: Option<Disk>,
}

impl Drop for Copy {
    fn drop(&mut self) {
        if self.source.is_some() {
            let _ = fs::remove_file(&self.path);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Copy {
    /// A file of that name in the work directory (0700, removed with it).
    pub fn work_file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Checks a copy as `convert` checks a new image (`qemu-img check`, the format and virtual
    /// size the image's), flushes it and renames it over `disk`, flushing the directory; a scratch
    /// file is left where it is.
    pub fn replace(mut self, disk: &Path) -> Result<(), Error> {
        let Some(source) = self.source.take() else {
            return Ok(());
        };
        let failed = |e: String| Error::failed(Some(disk), e).unchanged();
        let renamed = super::convert::checked(&source, &self.path, disk)
            .and_then(|_| super::convert::settle(&self.path, disk))
            .and_then(|()| {
                crate::exec::crash_point("image-guestfs-written");
                fs::rename(&self.path, disk)
                    .and_then(|()| super::stage::sync_dir(disk))
                    .map_err(|e| failed(format!("renaming {} over it: {e}", self.path.display())))
            });
        if renamed.is_err() {
            // Not renamed: removed with the work directory.
            self.source = Some(source);
        }
        renamed
    }
}

/// One file operation as guestfish runs it: the mode it leaves (from `inject::modes`) and whether
/// a regular file is there now (written in place, keeping its owner and attributes, as the
/// executor keeps them; anything else there is removed first, so a link is replaced, not followed).
pub struct Step<'a> {
    pub op: &'a FileOp,
    pub mode: u32,
    pub file_there: bool,
    /// Its directory is missing and is made (`mkdir -p`: guestfish's refuses a path through a
    /// link, so a directory there, even through a link, is left alone).
    pub make_parent: bool,
}

/// Has guestfish run `steps` on the root `target` of the image `disk`, into a copy of it or into
/// the scratch file `disk` itself (`into`); the file written, and how it was made and the
/// appliance ran.
pub fn write(disk: &Path, into: Drive, target: &Target, steps: &[Step]) -> Result<(Copy, String), Error> {
    let failed = |e: String| Error::failed(Some(disk), e).unchanged();
    let abs = std::path::absolute(disk).map_err(|e| failed(e.to_string()))?;
    let beside = |part: &str| {
        let mut p = abs.clone().into_os_string();
        p.push(format!(".osconf-work.{}.{part}", std::process::id()));
        PathBuf::from(p)
    };
    let dir = beside("guestfs");
    // 0700: the files uploaded may be secret (a password file).
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| failed(format!("creating {}: {e}", dir.display())))?;
    let (copy, how, format) = match into {
        Drive::Copy(source) => {
            let copy = Copy {
                dir,
                path: beside("new"),
                source: Some(source.clone()),
            };
            let how = super::scratch::scratch_copy(disk, &copy.path)
                .map_err(|e| failed(format!("copying it to {}: {e}", copy.path.display())))?;
            // Raw, and a fixed VHD (its footer past the disk's last byte), as raw.
            let format = match source.format.in_place() {
                true => "raw",
                false => source.format.name(),
            };
            let how = format!("{how} of the {} image", source.format.describe());
            (copy, how, format)
        }
        Drive::Scratch => {
            let copy = Copy {
                dir,
                path: disk.to_owned(),
                source: None,
            };
            (copy, "a raw copy".to_owned(), "raw")
        }
    };
    let mut sources = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let op = step.op;
        let FileOp::Write { contents, .. } = op else {
            sources.push(PathBuf::new());
            continue;
        };
        let p = copy.dir.join(format!("file{i}"));
        stage_file(&p, contents).map_err(|e| failed(format!("staging {}: {e}", op.path())))?;
        sources.push(p);
    }
    let script = copy.dir.join("script");
    fs::write(&script, script_for((&copy.path, format), target, steps, &sources))
        .map_err(|e| failed(format!("writing {}: {e}", script.display())))?;
    let ran = match run(&copy.dir, &script, None) {
        Ok(()) => Ok(String::new()),
        // A launch that failed under KVM (nested KVM refuses some CPU registers) is tried once
        // under TCG, unless the user chose the backend's settings.
        Err(Failure::Launch(why)) if std::env::var_os("LIBGUESTFS_BACKEND_SETTINGS").is_none() => {
            run(&copy.dir, &script, Some("force_tcg")).map(|()| {
                format!(
                    "; the appliance did not start under KVM ({}), so under TCG",
                    why.lines().next().unwrap_or("")
                )
            })
        }
        Err(other) => Err(other),
    };
    let ran = match ran {
        Ok(note) => note,
        Err(Failure::Error(e)) => return Err(e.at(Some(disk))),
        Err(Failure::Launch(why)) => {
            return Err(Error::no_tool(format!(
                "libguestfs's appliance did not start: {why}\n(run libguestfs-test-tool to see why; {PACKAGES})"
            ))
            .unchanged());
        }
    };
    Ok((copy, format!("written through libguestfs on {how}{ran}")))
}

/// How one guestfish run failed.
enum Failure {
    /// The appliance did not start: libguestfs's last lines.
    Launch(String),
    Error(Error),
}

/// Runs `guestfish --file script` in `dir` (its messages in files there), bounded by [`LIMIT`].
fn run(dir: &Path, script: &Path, settings: Option<&str>) -> Result<(), Failure> {
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let file = |p: &Path| fs::File::create(p).map_err(|e| Failure::Error(Error::failed(None, e.to_string())));
    let mut cmd = Command::new("guestfish");
    cmd.arg("--file")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(file(&out_path)?)
        .stderr(file(&err_path)?)
        // Its own group: a kill on time-out reaches qemu too.
        .process_group(0);
    // The direct backend runs qemu itself; libvirt's (RHEL's default) would need libvirtd.
    if std::env::var_os("LIBGUESTFS_BACKEND").is_none() {
        cmd.env("LIBGUESTFS_BACKEND", "direct");
    }
    if let Some(s) = settings {
        cmd.env("LIBGUESTFS_BACKEND_SETTINGS", s);
    }
    let mut child = cmd.spawn().map_err(|e| {
        Failure::Error(match e.kind() {
            std::io::ErrorKind::NotFound => Error::no_tool(format!(
                "guestfish is not installed ({PACKAGES}); it writes XFS, LVM and Btrfs roots"
            )),
            _ => Error::failed(None, format!("running guestfish: {e}")).unchanged(),
        })
    })?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() < LIMIT => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.wait();
                return Err(Failure::Error(
                    Error::failed(None, format!("guestfish did not finish in {} s", LIMIT.as_secs()))
                        .unchanged(),
                ));
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let stderr = fs::read(&err_path).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr);
    // libguestfs's error lines, without the advice on debugging it repeats after each.
    // Each line starts with the script's name and line: said once, by the caller.
    let prefix = format!("{}:", script.display());
    let trimmed = |l: &'_ str| -> String {
        let l = l.strip_prefix(&prefix).unwrap_or(l);
        l.split_once(": ")
            .filter(|(n, _)| n.parse::<u32>().is_ok())
            .map_or(l, |(_, r)| r)
            .to_owned()
    };
    let mut lines: Vec<String> = stderr
        .lines()
        .filter(|l| l.contains("error:"))
        .map(trimmed)
        .collect();
    if lines.is_empty() {
        lines = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(trimmed)
            .collect();
    }
    let last = lines[lines.len().saturating_sub(LAST_LINES)..].join("\n");
    if stderr.contains("guestfs_launch failed") {
        return Err(Failure::Launch(last));
    }
    Err(Failure::Error(
        Error::failed(None, format!("guestfish {status}: {last}")).unchanged(),
    ))
}

/// The guestfish commands that run `steps` on `target` in the image `disk` (of `format`); the contents of
/// each write are the file of the same index in `sources`. Parents are made as `mkdir -p` makes
/// them (0755, root's); new files are root's.
fn script_for((disk, format): (&Path, &str), target: &Target, steps: &[Step], sources: &[PathBuf]) -> String {
    let q = |s: &str| quote(s.as_bytes());
    let qp = |p: &Path| quote(p.as_os_str().as_encoded_bytes());
    let mut s = String::new();
    let _ = writeln!(s, "add-drive {} format:{format}", qp(disk));
    s += "run\n";
    if let Some(vg) = &target.thin_vg {
        s += &lvm_line("vgchange", &format!("-ay {vg}"));
    }
    match target.subvolume_id {
        Some(id) => {
            let _ = writeln!(
                s,
                "mount-options {} {} /",
                q(&format!("subvolid={id}")),
                q(&target.device)
            );
        }
        None => {
            let _ = writeln!(s, "mount {} /", q(&target.device));
        }
    }
    for (step, src) in steps.iter().zip(sources) {
        let path = format!("/{}", step.op.path().trim_start_matches('/'));
        let p = q(&path);
        if let Some((parent, _)) = path
            .rsplit_once('/')
            .filter(|(p, _)| step.make_parent && !p.is_empty())
        {
            let _ = writeln!(s, "mkdir-p {}", q(parent));
        }
        match step.op {
            FileOp::Write { .. } => {
                if !step.file_there {
                    let _ = writeln!(s, "rm-f {p}");
                }
                let _ = writeln!(s, "upload {} {p}", qp(src));
                if !step.file_there {
                    let _ = writeln!(s, "chown 0 0 {p}");
                }
                let _ = writeln!(s, "chmod 0{:o} {p}", step.mode);
            }
            FileOp::Symlink { target, .. } => {
                let _ = writeln!(s, "rm-f {p}\nln-s {} {p}", q(target));
            }
            FileOp::Remove { .. } => {
                let _ = writeln!(s, "rm-f {p}");
            }
        }
    }
    if let Some(d) = &target.root_dir {
        let _ = writeln!(s, "mkdir-p {}", q(&format!("/{d}")));
    }
    for l in &target.labels {
        // The value as setfiles stores it: the context and its NUL.
        let _ = writeln!(
            s,
            "{} \"security.selinux\" {} {} {}",
            if l.link { "lsetxattr" } else { "setxattr" },
            q(&l.context),
            l.context.len() + 1,
            q(&l.path)
        );
    }
    if let Some(d) = &target.first_dir {
        let _ = writeln!(
            s,
            "umount-all\nmount {} /\nmkdir-p {}",
            q(&partition_device(1)),
            q(&format!("/{d}"))
        );
    }
    s += "umount-all\n";
    if let Some(vg) = &target.thin_vg {
        s += &lvm_line("vgchange", &format!("-an {vg}"));
    }
    s += "sync\nshutdown\n";
    s
}

/// The guestfish line running `lvm COMMAND ARGS` in the appliance (`debug sh`: libguestfs has
/// no call that passes LVM a configuration), LVM's `thin_check` off: the appliance has none, and
/// LVM refuses to activate a thin pool it cannot check. guestfish splits the argument into words
/// (quotes removed, backslashes kept) and the daemon joins them for `sh -c`, so the empty value
/// reaches LVM as `\"\"`; `ARGS` must be words needing no quotes (a VG name: [`vg_name`]).
pub fn lvm_line(command: &str, args: &str) -> String {
    let sh = format!("lvm {command} --config global/thin_check_executable=\\\"\\\" {args}");
    format!("debug sh {}\n", quote(sh.as_bytes()))
}

/// `bytes` as one guestfish argument: in double quotes, `"` and `\` escaped, every byte outside
/// printable ASCII as `\xHH` (guestfish's escapes), so no word splits, no `!` or `<!` shell escape,
/// no tilde expansion.
fn quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Mode;

    #[test]
    fn every_argument_is_quoted_and_every_op_kind_scripted() {
        assert_eq!(quote(b"/a b\"c\\d\n\xff"), "\"/a b\\\"c\\\\d\\x0a\\xff\"");
        let target = Target {
            device: "/dev/rl/root".into(),
            subvolume_id: Some(257),
            first_dir: Some("aliyun_custom_image".into()),
            root_dir: None,
            thin_vg: None,
            labels: vec![
                Label {
                    path: "/usr/sbin/osconf".into(),
                    context: "system_u:object_r:bin_t:s0".into(),
                    link: false,
                },
                Label {
                    path: "/etc/systemd/system/multi-user.target.wants/osconf.service".into(),
                    context: "system_u:object_r:systemd_unit_file_t:s0".into(),
                    link: true,
                },
            ],
        };
        let ops = [
            FileOp::Write {
                path: "/usr/sbin/osconf".into(),
                contents: b"ELF".to_vec(),
                mode: Mode::Exact(0o755),
                secret: false,
            },
            FileOp::Symlink {
                path: "/etc/systemd/system/multi-user.target.wants/osconf.service".into(),
                target: "/etc/systemd/system/osconf.service".into(),
            },
            FileOp::Remove {
                path: "/etc/x".into(),
            },
        ];
        let sources = [PathBuf::from("/w/file0"), PathBuf::new(), PathBuf::new()];
        let steps: Vec<Step> = ops
            .iter()
            .zip([0o755, 0, 0])
            .map(|(op, mode)| Step {
                op,
                mode,
                file_there: false,
                make_parent: op.path() != "/etc/x",
            })
            .collect();
        let s = script_for((Path::new("/w/disk.qcow2"), "qcow2"), &target, &steps, &sources);
        assert_eq!(
            s,
            "add-drive \"/w/disk.qcow2\" format:qcow2\nrun\n\
             mount-options \"subvolid=257\" \"/dev/rl/root\" /\n\
             mkdir-p \"/usr/sbin\"\nrm-f \"/usr/sbin/osconf\"\nupload \"/w/file0\" \"/usr/sbin/osconf\"\n\
             chown 0 0 \"/usr/sbin/osconf\"\nchmod 0755 \"/usr/sbin/osconf\"\n\
             mkdir-p \"/etc/systemd/system/multi-user.target.wants\"\n\
             rm-f \"/etc/systemd/system/multi-user.target.wants/osconf.service\"\n\
             ln-s \"/etc/systemd/system/osconf.service\" \"/etc/systemd/system/multi-user.target.wants/osconf.service\"\n\
             rm-f \"/etc/x\"\n\
             setxattr \"security.selinux\" \"system_u:object_r:bin_t:s0\" 27 \"/usr/sbin/osconf\"\n\
             lsetxattr \"security.selinux\" \"system_u:object_r:systemd_unit_file_t:s0\" 41 \
             \"/etc/systemd/system/multi-user.target.wants/osconf.service\"\n\
             umount-all\nmount \"/dev/sda1\" /\nmkdir-p \"/aliyun_custom_image\"\n\
             umount-all\nsync\nshutdown\n"
        );
    }

    /// A thin root's volume group is activated right after the launch and deactivated after the
    /// last unmount, LVM's thin_check off both times; a name LVM would not make never gets there.
    #[test]
    fn a_thin_roots_volume_group_is_activated_and_deactivated_around_the_write() {
        let target = Target {
            device: "/dev/vg/root".into(),
            subvolume_id: None,
            first_dir: None,
            root_dir: None,
            thin_vg: Some("vg".into()),
            labels: Vec::new(),
        };
        let s = script_for((Path::new("/w/disk.raw"), "raw"), &target, &[], &[]);
        let sh = |a: &str| {
            format!(
                "debug sh \"lvm vgchange --config global/thin_check_executable=\\\\\\\"\\\\\\\" {a} vg\"\n"
            )
        };
        assert_eq!(
            s,
            format!(
                "add-drive \"/w/disk.raw\" format:raw\nrun\n{}mount \"/dev/vg/root\" /\numount-all\n{}sync\nshutdown\n",
                sh("-ay"),
                sh("-an")
            )
        );
        for (name, ok) in [
            ("vg", true),
            ("rl_0.x+y-z", true),
            ("-vg", false),
            ("v'g", false),
            ("a b", false),
            ("", false),
        ] {
            assert_eq!(vg_name(name), ok, "{name}");
        }
    }
}
