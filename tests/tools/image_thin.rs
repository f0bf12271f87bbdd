//! `osconf image check` and `image prepare` on roots in LVM thin volumes, made by the real tools:
//! this host's kernel may have no device mapper (a VM's often has none), so the thin pool, the thin
//! volumes, their filesystems (the appliance's `mkfs.xfs`/`mkfs.ext4`, the tree put in by
//! `tar-in`) and a thin snapshot are made inside libguestfs's appliance — its own kernel's dm-thin,
//! its own lvm2 — by a guestfish script, the volume group deactivated at the end. Nothing on the
//! host is activated, mounted or attached; the host's `thin_check` judges the pool's metadata.
//! Then: check reads each root (XFS and ext4), the snapshot reads as it was when taken, prepare
//! installs into the ext4 one and leaves a pool `thin_check` passes; a node made damaged, and the
//! kernel's needs_check flag, are named.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::common::guestfs::{self, prepared};
use crate::common::images::checks_of;
use crate::common::osconf_in;
use crate::common::real::{have_tools, run};
use crate::image_btrfs::tree;
use osconf::disk::lvm::{self, thin};
use osconf::disk::{Image, ReadAt, Volume, Window, Work};
use std::os::unix::fs::FileExt as _;

fn ready(test: &str) -> bool {
    guestfs::ready(test) && have_tools(test, &["thin_check", "tar", "truncate"])
}

/// A raw image (GPT: a 32 MiB FAT partition 1, an LVM PV) whose VG `vg` has a thin pool `pool`
/// of 200 MiB and a thin volume `root` of 1 GiB holding `root` on `fs`, made in the appliance;
/// with `snapshot`, a thin snapshot `snap` taken, then `etc/after-snapshot` written in `root`.
fn thin_image(dir: &Path, name: &str, fs: &str, root: &Path, snapshot: bool) -> PathBuf {
    let img = dir.join(format!("{name}.img"));
    run(Command::new("truncate").args(["-s", "300M"]).arg(&img));
    let tar = dir.join(format!("{name}.tar"));
    run(Command::new("tar")
        .arg("-C")
        .arg(root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    let lvm = |args: &str| {
        let (cmd, rest) = args.split_once(' ').unwrap();
        osconf::image::guestfs::lvm_line(cmd, rest)
    };
    let mut script = format!(
        "add-drive {} format:raw\nrun\npart-init /dev/sda gpt\npart-add /dev/sda p 2048 67583\n\
         part-add /dev/sda p 67584 -34\nmkfs vfat /dev/sda1\npvcreate /dev/sda2\nvgcreate vg /dev/sda2\n",
        img.display()
    );
    script += &lvm("lvcreate --type thin-pool -L 200M -n pool vg");
    script += &lvm("lvcreate -V 1G --thinpool vg/pool -n root");
    script += &format!(
        "mkfs {fs} /dev/vg/root\nmount /dev/vg/root /\ntar-in {} /\numount-all\n",
        tar.display()
    );
    if snapshot {
        script += &lvm("lvcreate -s vg/root -n snap");
        script += "mount /dev/vg/root /\nwrite /etc/after-snapshot \"origin\"\numount-all\n";
    }
    script += &lvm("vgchange -an vg");
    script += "sync\nshutdown\n";
    let file = dir.join(format!("{name}.guestfish"));
    fs::write(&file, script).unwrap();
    let guestfish = |tcg: bool| {
        let mut cmd = Command::new("guestfish");
        cmd.arg("--file").arg(&file).env("LIBGUESTFS_BACKEND", "direct");
        if tcg {
            cmd.env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg");
        }
        cmd.output().unwrap()
    };
    // As image prepare does: under TCG when the appliance does not start under KVM (nested KVM).
    let mut out = guestfish(false);
    if String::from_utf8_lossy(&out.stderr).contains("guestfs_launch failed") {
        out = guestfish(true);
    }
    assert!(
        out.status.success(),
        "guestfish: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    img
}

/// Logical volume `lv` of the image's one volume group, read as a filesystem.
fn volume(img: &Path, lv: &str) -> Volume<lvm::Lv<Arc<Window<osconf::disk::format::Disk>>>> {
    let image = Image::open(img).unwrap();
    let w = Arc::new(image.window(2).unwrap());
    let pv = lvm::label(&*w).unwrap().unwrap();
    let vg = lvm::vg::groups(&[pv.text.as_deref().unwrap()]).unwrap().remove(0);
    let lv = vg.open(lv, &[(pv.uuid, w)]).unwrap();
    Volume::on(Window::rest(lv, 0, Work::new()).unwrap()).unwrap()
}

/// `image check --json` of `img`.
fn check_output(img: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["image", "check", "--json"])
        .arg(img)
        .output()
        .unwrap()
}

/// `image check --json` of `img`: exit code and checks.
fn check(img: &Path) -> (i32, Vec<(String, String, String)>) {
    let out = check_output(img);
    assert!(!out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap(), checks_of(&out.stdout))
}

fn get(checks: &[(String, String, String)], key: &str) -> (String, String) {
    let c = checks
        .iter()
        .find(|c| c.0 == key)
        .unwrap_or_else(|| panic!("no {key}: {checks:?}"));
    (c.1.clone(), c.2.clone())
}

/// The byte offset in `img` of its pool's dm-thin superblock (block-aligned in partition 2, its
/// magic and checksum right).
fn superblock(img: &Path) -> u64 {
    let image = Image::open(img).unwrap();
    let (start, len) = image.extent(2).unwrap();
    let f = fs::File::open(img).unwrap();
    let mut b = vec![0u8; thin::BLOCK];
    (start..start + len)
        .step_by(thin::BLOCK)
        .find(|&at| {
            f.read_exact_at(&mut b, at).is_ok()
                && b[32..40] == thin::MAGIC.to_le_bytes()
                && thin::checksum(&b, thin::SUPERBLOCK_XOR).to_le_bytes() == b[..4]
        })
        .expect("no dm-thin superblock in partition 2")
}

/// Changes block `at` of `img` with `change`, then makes its checksum right again when `xor`.
fn patch(img: &Path, at: u64, change: impl Fn(&mut [u8]), xor: Option<u32>) {
    let f = fs::OpenOptions::new().read(true).write(true).open(img).unwrap();
    let mut b = vec![0u8; thin::BLOCK];
    f.read_exact_at(&mut b, at).unwrap();
    change(&mut b);
    if let Some(xor) = xor {
        let sum = thin::checksum(&b, xor);
        b[..4].copy_from_slice(&sum.to_le_bytes());
    }
    f.write_all_at(&b, at).unwrap();
}

#[test]
fn an_xfs_root_in_a_thin_volume_is_checked_and_its_snapshot_reads_as_taken() {
    let test = "an_xfs_root_in_a_thin_volume_is_checked_and_its_snapshot_reads_as_taken";
    if !ready(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = tree(d, "root", "Thin XFS");
    let boot = d.join("boot-staging");
    fs::create_dir_all(&boot).unwrap();
    let boot = boot.to_str().unwrap();
    let out = osconf_in(&["install", "--init", "systemd", "--boot-dir", boot], &root);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t = std::time::Instant::now();
    let img = thin_image(d, "xfs", "xfs", &root, true);
    eprintln!("made the thin XFS image in {:.1} s", t.elapsed().as_secs_f64());

    let (_, checks) = check(&img);
    let (verdict, why) = get(&checks, "root");
    assert_eq!(verdict, "pass", "{checks:?}");
    assert!(
        why.starts_with("LV vg/root (partition 2) (xfs") && why.contains("Thin XFS"),
        "{why}"
    );
    assert_eq!(get(&checks, "agent").0, "pass", "{checks:?}");
    assert_eq!(get(&checks, "distribution").0, "pass", "{checks:?}");
    assert!(!checks.iter().any(|c| c.0 == "root-lv"), "{checks:?}");

    // Every file of the tree through the thin volume, and the snapshot as it was taken: without
    // what the origin wrote after, sharing the rest.
    let origin = volume(&img, "root");
    let snap = volume(&img, "snap");
    for v in [&origin, &snap] {
        for f in [
            "large",
            "regular",
            "text",
            "words",
            "many/entry-00007",
            "usr/sbin/osconf",
        ] {
            assert!(
                v.read_file(f).unwrap().unwrap() == fs::read(root.join(f)).unwrap(),
                "{f}"
            );
        }
    }
    assert_eq!(
        origin.read_file("etc/after-snapshot").unwrap().unwrap(),
        b"origin"
    );
    assert_eq!(snap.read_file("etc/after-snapshot").unwrap(), None);

    // The host's thin_check agrees the pool the appliance made is sound.
    let image = Image::open(&img).unwrap();
    let found = osconf::image::view::root_partition(&image).unwrap_or_else(|i| panic!("{}", i.reason));
    let pool = found.pool.as_ref().expect("a thin pool");
    assert_eq!(pool.name, "vg/pool");
    osconf::image::guestfs::thin_check(pool, &d.join("tmeta")).unwrap();
    assert!(pool.metadata.size().unwrap() >= 2 << 20);
}

#[test]
fn prepare_installs_osconf_into_an_ext4_root_in_a_thin_volume_and_thin_check_passes() {
    let test = "prepare_installs_osconf_into_an_ext4_root_in_a_thin_volume_and_thin_check_passes";
    if !ready(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = tree(d, "root", "Thin ext4");
    let img = thin_image(d, "ext4", "ext4", &root, false);
    let (_, checks) = check(&img);
    assert!(
        get(&checks, "root")
            .1
            .starts_with("LV vg/root (partition 2) (ext4"),
        "{checks:?}"
    );
    assert_eq!(get(&checks, "agent").0, "fail", "{checks:?}");

    // Damage first, on copies: a node of the pool's metadata, then the kernel's needs_check flag.
    let sb = superblock(&img);
    let mut sb_bytes = vec![0u8; thin::BLOCK];
    fs::File::open(&img)
        .unwrap()
        .read_exact_at(&mut sb_bytes, sb)
        .unwrap();
    let mapping = u64::from_le_bytes(sb_bytes[320..328].try_into().unwrap());
    let damaged = d.join("damaged.img");
    fs::copy(&img, &damaged).unwrap();
    patch(&damaged, sb + mapping * thin::BLOCK as u64, |b| b[200] ^= 1, None);
    let before = fs::read(&damaged).unwrap();
    let out = check_output(&damaged);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "image damaged: LV vg/pool's metadata (pool_tmeta), node at block {mapping}: its \
             checksum is wrong"
        )),
        "{err}"
    );
    let out = guestfs::prepare(&damaged, &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        fs::read(&damaged).unwrap() == before,
        "prepare changed a damaged image"
    );

    let flagged = d.join("flagged.img");
    fs::copy(&img, &flagged).unwrap();
    patch(&flagged, sb, |b| b[4] |= 1, Some(thin::SUPERBLOCK_XOR));
    let (_, checks) = check(&flagged);
    let (verdict, why) = get(&checks, "root-lv");
    assert_eq!(verdict, "warn", "{checks:?}");
    assert!(
        why.contains("LV vg/root: its thin pool's metadata is marked as needing a check"),
        "{why}"
    );
    let before = fs::read(&flagged).unwrap();
    let out = guestfs::prepare(&flagged, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("lvconvert --repair vg/pool"), "{err}");
    assert!(
        fs::read(&flagged).unwrap() == before,
        "prepare changed a flagged image"
    );

    let t = std::time::Instant::now();
    let read = |path: &str| {
        let v = volume(&img, "root");
        let mode = v.metadata(path).unwrap().unwrap().mode;
        (v.read_file(path).unwrap().unwrap(), mode)
    };
    let said = prepared(
        &img,
        &[],
        "LV vg/root (partition 2) (ext4",
        "usr/sbin/osconf",
        read,
    );
    eprintln!(
        "prepare, thin ext4 root, raw: {:.1} s: {said}",
        t.elapsed().as_secs_f64()
    );
    // The pool prepare left (it ran thin_check itself before the rename): the host's thin_check
    // again, the tree's other files as they were.
    let image = Image::open(&img).unwrap();
    let found = osconf::image::view::root_partition(&image).unwrap_or_else(|i| panic!("{}", i.reason));
    osconf::image::guestfs::thin_check(found.pool.as_ref().unwrap(), &d.join("tmeta")).unwrap();
    assert!(
        volume(&img, "root").read_file("large").unwrap().unwrap() == fs::read(root.join("large")).unwrap()
    );
}
