//! `osconf image prepare` on roots written through libguestfs: an XFS root made by `mkfs.xfs -p`
//! (raw, and a qcow2 whose `/usr/sbin` is a link out of the root), an openSUSE Btrfs layout (the
//! default subvolume `@/.snapshots/1/snapshot`, made as root; with the fix flags). After each: `image check` passes the
//! agent and `aliyun_custom_image/`, the agent's bytes and mode read back natively, `xfs_repair -n`
//! / `btrfs check` / `qemu-img check` clean, a second run has nothing to do. A guestfish killed
//! half-way, or none installed, leaves the image byte for byte (exit 1, exit 3 naming packages) —
//! for each format (qcow2, dynamic VHD, both VMDKs), whose data is copied once while guestfish
//! writes (the copy in the image's own format; a streamOptimized VMDK's raw copy).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::guestfs::{self, prepared};
use crate::common::real::{as_root, have_tools, run};
use crate::common::xfs;
use crate::image_btrfs::{self, disk, layout, opensuse, tree};
use osconf::disk::Image;

/// Partition 2 of `img` (GPT, from 41 MiB on: `image_btrfs::disk`'s layout) copied out, for the
/// filesystem's own checker.
fn partition2(img: &Path, out: &Path) -> PathBuf {
    let image = Image::open(img).unwrap();
    let (offset, len) = image.extent(2).unwrap();
    run(Command::new("dd")
        .arg(format!("if={}", img.display()))
        .arg(format!("of={}", out.display()))
        .arg(format!("skip={}", offset >> 20))
        .arg(format!("count={}", len >> 20))
        .args(["bs=1M", "conv=sparse", "status=none"]));
    out.to_owned()
}

/// (bytes, mode) of `path` in partition 2 of `img`, read by osconf's reader.
fn read_back(img: &Path, path: &str) -> (Vec<u8>, u32) {
    let image = Image::open(img).unwrap();
    let v = image.partition(2).unwrap();
    let meta = v
        .metadata(path)
        .unwrap()
        .unwrap_or_else(|| panic!("{path} absent"));
    (v.read_file(path).unwrap().unwrap(), meta.mode)
}

/// An image whose root is XFS, made from `root` by `mkfs.xfs -p` (no mount, no root needed).
fn xfs_image(dir: &Path, name: &str, root: &Path) -> PathBuf {
    let fs_file = xfs::mkfs(dir, name, root, "300M", &[]);
    disk(dir, name, &fs_file)
}

#[test]
fn prepare_writes_an_xfs_root_through_libguestfs_and_a_link_cannot_lead_it_out() {
    let test = "prepare_writes_an_xfs_root_through_libguestfs_and_a_link_cannot_lead_it_out";
    if !guestfs::ready(test)
        || !have_tools(test, &image_btrfs::TOOLS)
        || !have_tools(test, &["mkfs.xfs", "xfs_repair"])
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = tree(d, "root", "openSUSE Tumbleweed");
    let img = xfs_image(d, "plain", &root);
    let t = Instant::now();
    let said = prepared(&img, &[], "partition 2 (xfs", "usr/sbin/osconf", |p| {
        read_back(&img, p)
    });
    eprintln!(
        "prepare, XFS root, raw: {:.1} s: {said}",
        t.elapsed().as_secs_f64()
    );
    let p2 = partition2(&img, &d.join("p2.xfs"));
    let repair = Command::new("xfs_repair").arg("-n").arg(&p2).output().unwrap();
    assert!(
        repair.status.success(),
        "{}",
        String::from_utf8_lossy(&repair.stdout)
    );
    assert!(
        fs::read_dir(d)
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().contains("osconf-work"))
    );

    // /usr/sbin a link out of the root, in a qcow2: the agent lands in the image's / (the guest
    // resolves the link as a chroot would), nothing on the host; the qcow2 stays a clean qcow2.
    let hostile = tree(d, "hostile", "openSUSE Tumbleweed");
    fs::create_dir_all(hostile.join("usr")).unwrap();
    symlink("../../..", hostile.join("usr/sbin")).unwrap();
    let raw = xfs_image(d, "hostile", &hostile);
    let qcow2 = d.join("hostile.qcow2");
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&qcow2));
    let host_before = fs::symlink_metadata("/osconf").is_ok();
    let t = Instant::now();
    let said = prepared(&qcow2, &[], "partition 2 (xfs", "osconf", |p| {
        let back = d.join("hostile-back.raw");
        run(Command::new("qemu-img")
            .args(["convert", "-f", "qcow2", "-O", "raw"])
            .arg(&qcow2)
            .arg(&back));
        read_back(&back, p)
    });
    eprintln!("prepare, XFS root, qcow2: {:.1} s", t.elapsed().as_secs_f64());
    // One copy, the qcow2's own, written by guestfish: no raw copy converted back.
    assert!(said.contains("copy of the qcow2 (v3) image"), "{said}");
    assert!(!said.contains("qemu-img convert"), "{said}");
    assert_eq!(
        fs::symlink_metadata("/osconf").is_ok(),
        host_before,
        "/osconf on the host"
    );
    let info = run(Command::new("qemu-img").arg("info").arg(&qcow2));
    assert!(String::from_utf8_lossy(&info.stdout).contains("file format: qcow2"));
    run(Command::new("qemu-img").args(["check", "-q"]).arg(&qcow2));
}

#[test]
fn prepare_writes_the_default_subvolume_of_an_opensuse_btrfs_layout() {
    let test = "prepare_writes_the_default_subvolume_of_an_opensuse_btrfs_layout";
    if !guestfs::ready(test)
        || !have_tools(test, &image_btrfs::TOOLS)
        || !have_tools(test, &["btrfs", "unshare", "losetup"])
    {
        return;
    }
    if !as_root(test, "a loop mount in a private mount namespace") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = tree(d, "opensuse", "openSUSE Tumbleweed");
    let img = layout(d, "opensuse", &root, &opensuse()).unwrap();
    let t = Instant::now();
    // The fix flags' ops (a removal, a rewrite of /etc/shadow) go through the same path.
    prepared(
        &img,
        &["--remove-host-keys", "--lock-root-password"],
        "subvolume @/.snapshots/1/snapshot",
        "usr/sbin/osconf",
        |p| read_back(&img, p),
    );
    eprintln!("prepare, openSUSE Btrfs: {:.1} s", t.elapsed().as_secs_f64());
    let p2 = partition2(&img, &d.join("p2.btrfs"));
    let check = Command::new("btrfs")
        .args(["check", "--readonly"])
        .arg(&p2)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Written into the subvolume that is `/`, not the top level nor `@`.
    let image = Image::open(&img).unwrap();
    let v = image.partition(2).unwrap();
    assert_eq!(
        v.subvolume().map(|s| s.describe()).as_deref(),
        Some("subvolume @/.snapshots/1/snapshot")
    );
    assert!(v.metadata("usr/sbin/osconf").unwrap().is_some());
}

/// (pid, parent pid, command name) of every process now.
fn processes() -> Vec<(u32, u32, String)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            let (head, rest) = stat.rsplit_once(") ")?;
            let comm = head.split_once(" (")?.1.to_owned();
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid, comm))
        })
        .collect()
}

/// The `guestfish` run by `parent` whose appliance (qemu) has run for `settled`: past a launch
/// that fails at once (nested KVM), into the write.
fn settled_guestfish(parent: u32, settled: Duration) -> u32 {
    let start = Instant::now();
    let mut seen: Option<(u32, Instant)> = None;
    loop {
        let all = processes();
        let fish = all
            .iter()
            .find(|p| p.1 == parent && p.2 == "guestfish")
            .map(|p| p.0);
        let running = fish.filter(|f| all.iter().any(|p| p.1 == *f && p.2.starts_with("qemu-system")));
        seen = match (running, seen) {
            (Some(f), Some((g, since))) if f == g => {
                if since.elapsed() >= settled {
                    return f;
                }
                Some((g, since))
            }
            (Some(f), _) => Some((f, Instant::now())),
            (None, _) => None,
        };
        assert!(start.elapsed() < Duration::from_secs(300), "no appliance ran");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `image prepare IMG` whose guestfish is killed (SIGKILL) once its appliance has run for 3 s:
/// the copies of the image in the work files beside it at that moment, and the run's output.
fn killed(img: &Path) -> (Vec<PathBuf>, std::process::Output) {
    let child = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["image", "prepare"])
        .arg(img)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = settled_guestfish(child.id(), Duration::from_secs(3));
    let staged = copies(img.parent().unwrap());
    run(Command::new("kill").args(["-KILL", &pid.to_string()]));
    (staged, child.wait_with_output().unwrap())
}

#[test]
fn a_guestfish_killed_half_way_or_missing_leaves_the_image_as_it_was() {
    let test = "a_guestfish_killed_half_way_or_missing_leaves_the_image_as_it_was";
    if !have_tools(test, &image_btrfs::TOOLS) || !have_tools(test, &["mkfs.xfs"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = tree(d, "root", "openSUSE Tumbleweed");
    let img = xfs_image(d, "killed", &root);
    let before = fs::read(&img).unwrap();

    // No guestfish on PATH: exit 3 naming the packages of both families, nothing changed.
    let empty = d.join("empty-path");
    fs::create_dir(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["image", "prepare"])
        .arg(&img)
        .env("PATH", &empty)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("guestfish is not installed")
            && err.contains("libguestfs-xfs")
            && err.contains("guestfs-tools"),
        "{err}"
    );
    assert!(fs::read(&img).unwrap() == before);

    if !guestfs::ready(test) {
        return;
    }
    let (staged, out) = killed(&img);
    assert_eq!(staged.len(), 1, "{staged:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("guestfish"), "{err}");
    assert!(fs::read(&img).unwrap() == before, "the image changed");
    assert!(
        fs::read_dir(d)
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().contains("osconf-work"))
    );
}

/// The copies of an image in the work files beside it (`*.osconf-work.*`, walked): the files
/// that start as a disk image does (qcow2, VMDK, VHD magic, or an MBR's 55 AA), not the files
/// staged for upload.
fn copies(dir: &Path) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        let Ok(meta) = fs::symlink_metadata(p) else {
            return;
        };
        if meta.is_dir() {
            for e in fs::read_dir(p).into_iter().flatten().flatten() {
                walk(&e.path(), out);
            }
            return;
        }
        let mut head = [0u8; 512];
        let n = fs::File::open(p)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .unwrap_or(0);
        if n == 512
            && (head.starts_with(b"QFI\xfb")
                || head.starts_with(b"KDMV")
                || head.starts_with(b"conectix")
                || head[510..] == [0x55, 0xaa])
        {
            out.push(p.to_owned());
        }
    }
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().contains(".osconf-work.") {
            walk(&e.path(), &mut out);
        }
    }
    out
}

#[test]
fn each_format_is_written_on_one_copy_and_a_kill_leaves_it_as_it_was() {
    let test = "each_format_is_written_on_one_copy_and_a_kill_leaves_it_as_it_was";
    if !guestfs::ready(test) || !have_tools(test, &image_btrfs::TOOLS) || !have_tools(test, &["mkfs.xfs"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = tree(d, "root", "openSUSE Tumbleweed");
    let raw = xfs_image(d, "formats", &root);
    // (format, options, what the report says of the copy guestfish wrote, prepared to the end)
    let formats = [
        ("qcow2", "compat=0.10", "copy of the qcow2 (v2) image", false),
        (
            "vpc",
            "subformat=dynamic",
            "copy of the VHD (dynamic) image",
            true,
        ),
        (
            "vmdk",
            "subformat=monolithicSparse",
            "copy of the VMDK (monolithicSparse) image",
            true,
        ),
        // qemu will not rewrite a stream-optimized grain: the raw copy, converted back.
        ("vmdk", "subformat=streamOptimized", "on a raw copy", true),
    ];
    for (i, (format, options, copy_said, to_the_end)) in formats.into_iter().enumerate() {
        let img = d.join(format!("image{i}.{format}"));
        run(Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", format, "-o", options])
            .arg(&raw)
            .arg(&img));
        let before = fs::read(&img).unwrap();
        // While guestfish writes: the image's data is copied once.
        let (staged, out) = killed(&img);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(staged.len(), 1, "{format} {options}: {staged:?}");
        assert_eq!(out.status.code(), Some(1), "{format} {options}: {err}");
        assert!(
            fs::read(&img).unwrap() == before,
            "{format} {options}: the image changed"
        );
        assert!(
            copies(d).is_empty()
                && !fs::read_dir(d)
                    .unwrap()
                    .any(|e| { e.unwrap().file_name().to_string_lossy().contains("osconf-work") })
        );
        if !to_the_end {
            continue;
        }
        let t = Instant::now();
        let said = prepared(&img, &[], "partition 2 (xfs", "usr/sbin/osconf", |p| {
            let back = d.join(format!("back{i}.raw"));
            run(Command::new("qemu-img")
                .args(["convert", "-O", "raw"])
                .arg(&img)
                .arg(&back));
            read_back(&back, p)
        });
        eprintln!(
            "prepare, XFS root, {format} {options}: {:.1} s",
            t.elapsed().as_secs_f64()
        );
        assert!(said.contains(copy_said), "{said}");
        let info = run(Command::new("qemu-img").args(["info", "--output=json"]).arg(&img));
        let info = String::from_utf8_lossy(&info.stdout);
        assert!(info.contains(&format!("\"format\": \"{format}\"")), "{info}");
        if format == "vmdk" {
            let sub = options.trim_start_matches("subformat=");
            assert!(info.contains(&format!("\"create-type\": \"{sub}\"")), "{info}");
            run(Command::new("qemu-img").args(["check", "-q"]).arg(&img));
        }
    }
}
