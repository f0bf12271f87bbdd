//! The partition finder on fake /proc, /sys and /dev trees (no root needed): every device naming,
//! MBR and GPT numbering as sysfs shows it, device-mapper stacks, /boot on another disk, partition 1
//! not first on the disk, mounted, not mounted, autofs, and `--device UUID=` found by superblock.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::real::{have_tools, run};
use osconf::boot::{self, DeviceSpec, FindError, Options, Roots, Spot};

/// A fake host: `<tmp>/{proc,sys,dev,fs,run}`.
struct Host {
    _dir: tempfile::TempDir,
    roots: Roots,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let roots = Roots {
            proc: d.join("proc"),
            sys: d.join("sys"),
            dev: d.join("dev"),
            fs: d.join("fs"),
            run: d.join("run"),
        };
        for p in [
            roots.proc.join("self"),
            roots.sys.join("class/block"),
            roots.sys.join("dev/block"),
            roots.dev.clone(),
            roots.fs.clone(),
        ] {
            fs::create_dir_all(p).unwrap();
        }
        Host { _dir: dir, roots }
    }

    /// A device directory under `<sys>/devices/…/block/<parent>/<name>`, linked from class/block
    /// and dev/block (as relative links, the way sysfs has them), with its /dev node.
    fn device(&self, under: &Path, name: &str, dev: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = under.join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("dev"), format!("{dev}\n")).unwrap();
        fs::write(dir.join("size"), "2048\n").unwrap();
        for (f, v) in files {
            fs::write(dir.join(f), format!("{v}\n")).unwrap();
        }
        let rel = dir.strip_prefix(&self.roots.sys).unwrap();
        symlink(
            Path::new("../..").join(rel),
            self.roots.sys.join("class/block").join(name),
        )
        .unwrap();
        symlink(
            Path::new("../..").join(rel),
            self.roots.sys.join("dev/block").join(dev),
        )
        .unwrap();
        fs::write(self.roots.dev.join(name), "").unwrap();
        dir
    }

    /// A disk `name` with device number `dev` (`254:0`) and its partitions, each (name, number,
    /// start sector), numbered after the disk as the kernel numbers them (`254:1`, …).
    fn disk(&self, name: &str, dev: &str, parts: &[(&str, u32, u64)]) -> PathBuf {
        let under = self
            .roots
            .sys
            .join("devices/pci0000:00/0000:00:05.0/virtio2/block");
        let disk = self.device(&under, name, dev, &[]);
        let (major, minor) = dev.split_once(':').unwrap();
        for (part, number, start) in parts {
            let dev = format!("{major}:{}", minor.parse::<u32>().unwrap() + number);
            let (number, start) = (number.to_string(), start.to_string());
            self.device(&disk, part, &dev, &[("partition", &number), ("start", &start)]);
        }
        disk
    }

    /// A device-mapper device built on `slaves` (names of devices already made).
    fn dm(&self, name: &str, dev: &str, slaves: &[&str]) {
        let dir = self.device(&self.roots.sys.join("devices/virtual/block"), name, dev, &[]);
        fs::create_dir_all(dir.join("slaves")).unwrap();
        for s in slaves {
            let target = fs::canonicalize(self.roots.sys.join("class/block").join(s)).unwrap();
            symlink(target, dir.join("slaves").join(s)).unwrap();
        }
    }

    fn mountinfo(&self, text: &str) {
        fs::write(self.roots.proc.join("self/mountinfo"), text).unwrap();
    }

    fn locate(&self, device: Option<DeviceSpec>) -> Result<Spot, FindError> {
        boot::locate(&self.roots, &options(device), &mut |_| {})
    }

    /// [`Host::locate`] without `--device`, which must find partition `p1`.
    fn finds(&self, p1: &str) -> Spot {
        let spot = self.locate(None).unwrap();
        assert_eq!(spot.target.node, self.roots.dev.join(p1));
        spot
    }
}

fn options(device: Option<DeviceSpec>) -> Options {
    Options {
        device,
        wait: Duration::ZERO,
        writable: false,
    }
}

/// A typical image: partition 1 (`/boot`) and 2 (`/`) of one disk, named as `disk` and `p1`/`p2`.
fn two_partitions(disk: &str, p1: &str, p2: &str, major: u32) -> Host {
    let h = Host::new();
    h.disk(disk, &format!("{major}:0"), &[(p1, 1, 2048), (p2, 2, 1050624)]);
    h
}

#[test]
fn every_device_naming_finds_partition_1() {
    for (disk, p1, p2, major) in [
        ("vda", "vda1", "vda2", 254),
        ("xvda", "xvda1", "xvda2", 202),
        ("sda", "sda1", "sda2", 8),
        ("nvme0n1", "nvme0n1p1", "nvme0n1p2", 259),
        ("mmcblk0", "mmcblk0p1", "mmcblk0p2", 179),
    ] {
        let h = two_partitions(disk, p1, p2, major);
        h.mountinfo(&format!(
            "22 1 0:21 / /proc rw - proc proc rw\n\
             27 1 {major}:2 / / rw,relatime shared:1 - ext4 /dev/{p2} rw\n\
             30 27 {major}:1 / /boot rw,relatime shared:5 - ext4 /dev/{p1} rw\n"
        ));
        let spot = h.finds(p1);
        assert_eq!(
            spot.target.what,
            format!("partition 1 of {disk}, the disk holding /")
        );
        assert_eq!(spot.mount.unwrap().mount_point, PathBuf::from("/boot"));
        assert!(spot.target.notes.is_empty());
    }
}

#[test]
fn an_esp_mounted_at_boot_efi_is_used_there() {
    let h = two_partitions("nvme0n1", "nvme0n1p1", "nvme0n1p2", 259);
    h.mountinfo(
        "27 1 259:2 / / rw - xfs /dev/nvme0n1p2 rw\n\
         31 27 259:1 / /boot/efi rw,relatime - vfat /dev/nvme0n1p1 rw,fmask=0077\n",
    );
    let m = h.locate(None).unwrap().mount.unwrap();
    assert_eq!(
        (m.mount_point.as_path(), m.fstype.as_str()),
        (Path::new("/boot/efi"), "vfat")
    );
}

#[test]
fn device_mapper_stacks_lead_to_the_disk() {
    // LVM on LUKS on vda3: / on dm-1 → dm-0 → vda3 → vda.
    let h = Host::new();
    h.disk("vda", "254:0", &[("vda1", 1, 2048), ("vda3", 3, 4096)]);
    h.dm("dm-0", "253:0", &["vda3"]);
    h.dm("dm-1", "253:1", &["dm-0"]);
    h.mountinfo("27 1 253:1 / / rw - ext4 /dev/mapper/vg-root rw\n");
    let spot = h.finds("vda1");
    assert_eq!(
        spot.target.what,
        "partition 1 of vda, the disk holding / (dm-1 → dm-0 → vda3 → vda)"
    );
    assert!(spot.mount.is_none(), "vda1 is not mounted");
}

#[test]
fn partition_1_after_another_partition_is_used_and_said() {
    let h = Host::new();
    h.disk("vda", "254:0", &[("vda1", 1, 43008), ("vda2", 2, 2048)]);
    h.mountinfo("27 1 254:2 / / rw - ext4 /dev/vda2 rw\n");
    let spot = h.finds("vda1");
    assert_eq!(spot.target.notes.len(), 1);
    assert!(
        spot.target.notes[0].contains("vda2 (partition 2) starts before vda1"),
        "{:?}",
        spot.target.notes
    );
}

#[test]
fn boot_on_another_disk_wins() {
    let h = Host::new();
    h.disk("vda", "254:0", &[("vda1", 1, 2048)]);
    h.disk("vdb", "254:16", &[("vdb1", 1, 2048), ("vdb2", 2, 4096)]);
    h.mountinfo("27 1 254:18 / / rw - ext4 /dev/vdb2 rw\n30 27 254:1 / /boot ro - ext4 /dev/vda1 rw\n");
    let spot = h.finds("vda1");
    assert!(spot.target.what.ends_with("the disk holding /boot"));
    assert!(spot.mount.unwrap().read_only());
}

#[test]
fn no_partition_1_is_nothing_to_do() {
    // / on a whole disk (no table), or on an overlay with no /boot: no partition 1 here.
    let h = Host::new();
    h.disk("vda", "254:0", &[]);
    h.mountinfo("27 1 254:0 / / rw - ext4 /dev/vda rw\n");
    assert!(matches!(h.locate(None), Err(FindError::NoPartition(why)) if why.contains("vda")));
    h.mountinfo("27 1 0:40 / / rw - overlay overlay rw,lowerdir=/a\n");
    assert!(matches!(h.locate(None), Err(FindError::NoPartition(_))));
}

#[test]
fn a_bind_mount_of_a_directory_of_partition_1_is_not_its_mount() {
    let h = two_partitions("vda", "vda1", "vda2", 254);
    h.mountinfo(
        "27 1 254:2 / / rw - ext4 /dev/vda2 rw\n40 27 254:1 /grub /mnt/grub rw - ext4 /dev/vda1 rw\n",
    );
    assert!(h.locate(None).unwrap().mount.is_none());
}

#[test]
fn autofs_is_triggered_by_access() {
    let h = two_partitions("vda", "vda1", "vda2", 254);
    let before = "27 1 254:2 / / rw - ext4 /dev/vda2 rw\n\
                  35 27 0:50 / /boot rw,relatime - autofs systemd-1 rw,fd=50\n\
                  36 22 0:51 / /proc/sys/fs/binfmt_misc rw - autofs systemd-1 rw\n";
    h.mountinfo(before);
    let mut triggered = Vec::new();
    let spot = boot::locate(&h.roots, &options(None), &mut |path: &Path| {
        // What the automounter does when /boot is looked into: partition 1 appears on it.
        triggered.push(path.to_owned());
        h.mountinfo(&format!(
            "{before}60 35 254:1 / /boot rw,relatime - vfat /dev/vda1 rw\n"
        ));
    })
    .unwrap();
    assert_eq!(triggered, [h.roots.fs.join("boot/aliyun_custom_image")]);
    assert_eq!(spot.mount.unwrap().fstype, "vfat");
}

#[test]
fn a_missing_node_is_waited_for_then_an_error() {
    let h = two_partitions("vda", "vda1", "vda2", 254);
    fs::remove_file(h.roots.dev.join("vda1")).unwrap();
    h.mountinfo("27 1 254:2 / / rw - ext4 /dev/vda2 rw\n");
    let mut opts = options(None);
    opts.wait = Duration::from_millis(250);
    let start = std::time::Instant::now();
    let err = boot::locate(&h.roots, &opts, &mut |_| {}).unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(250));
    assert!(
        matches!(&err, FindError::Failed(why) if why.contains("vda1 not found after waiting")),
        "{err:?}"
    );
    // It appears while we wait (drivers load late): found.
    let node = h.roots.dev.join("vda1");
    let maker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        fs::write(node, "").unwrap();
    });
    opts.wait = Duration::from_secs(5);
    assert!(boot::locate(&h.roots, &opts, &mut |_| {}).is_ok());
    maker.join().unwrap();
}

/// `--device UUID=…` and `LABEL=…` without /dev/disk/by-*: the superblocks of the block devices
/// (here files holding real filesystems) are read; a second device with the same UUID is an error.
#[test]
fn device_by_uuid_and_label_from_the_superblocks() {
    if !have_tools("device_by_uuid_and_label_from_the_superblocks", &["mkfs.vfat"]) {
        return;
    }
    let h = Host::new();
    h.disk("vda", "254:0", &[("vda1", 1, 2048), ("vda2", 2, 4096)]);
    h.disk("vdb", "254:16", &[]);
    for (node, id) in [("vda1", "DEADBEEF"), ("vda2", "12345678"), ("vdb", "0000CAFE")] {
        let f = h.roots.dev.join(node);
        run(Command::new("truncate").args(["-s", "8M"]).arg(&f));
        run(Command::new("mkfs.vfat")
            .args(["-i", id, "-n", &format!("L{id}")])
            .arg(&f));
    }
    h.mountinfo("27 1 254:2 / / rw - ext4 /dev/vda2 rw\n50 27 254:16 / /data rw - vfat /dev/vdb rw\n");
    let spot = h.locate(Some(DeviceSpec::Uuid("dead-beef".into()))).unwrap();
    assert_eq!(spot.target.node, h.roots.dev.join("vda1"));
    assert_eq!(spot.target.fs.unwrap().label.as_deref(), Some("LDEADBEEF"));
    assert!(spot.mount.is_none());
    let spot = h.locate(Some(DeviceSpec::Label("L0000CAFE".into()))).unwrap();
    assert_eq!(spot.mount.unwrap().mount_point, PathBuf::from("/data"));
    assert!(matches!(
        h.locate(Some(DeviceSpec::Uuid("0000-0000".into()))),
        Err(FindError::Failed(why)) if why.contains("UUID=0000-0000 not found after waiting")
    ));
    // A clone of vda1 attached as vdc: two devices with one UUID.
    h.disk("vdc", "254:32", &[]);
    fs::copy(h.roots.dev.join("vda1"), h.roots.dev.join("vdc")).unwrap();
    assert!(matches!(
        h.locate(Some(DeviceSpec::Uuid("DEAD-BEEF".into()))),
        Err(FindError::Failed(why)) if why.contains("more than one device")
    ));
}
