//! `osconf image check` on roots inside LVM2 and on XFS, made by the real tools: a RHEL 9 layout
//! (GPT: EFI System Partition, /boot on XFS, PV with `rl/root` on XFS and `rl/swap`; sizes shrunk),
//! and a volume group striped over two partitions. The physical volumes are made by `pvcreate`,
//! `vgcreate` and `lvcreate` on loop devices with a private configuration (a device filter naming
//! only those loops, no devices file, no backups, no activation: `--driverloaded n`), each run in a
//! private mount namespace with its own /run; the filesystems are made by `mkfs.xfs`, filled through
//! a mount in a private namespace (so the kernel's own XFS writes the tree: directories of every
//! form, a file fragmented into a btree fork, a remote link), and written onto the logical volume's
//! extents as `lvs --segments` places them. Root, loop devices, unshare; else SKIPPED.

use std::fs;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::images::checks_of;
use crate::common::real::{cannot_run, is_program, run, sfdisk};
use crate::common::xfs::{check_tree, tree};
use osconf::disk::Image;

const TOOLS: [&str; 8] = [
    "lvm",
    "mkfs.xfs",
    "xfs_db",
    "losetup",
    "unshare",
    "sfdisk",
    "mkfs.vfat",
    "mkfs.ext4",
];
const MIB: u64 = 1 << 20;

fn ready(test: &str) -> bool {
    if !rustix::process::geteuid().is_root() {
        cannot_run(test, "needs root (loop devices, mounts)");
        return false;
    }
    if let Some(t) = TOOLS.iter().find(|t| !is_program(t)) {
        cannot_run(test, &format!("{t} is not installed (.ci/packages.txt lists it)"));
        return false;
    }
    true
}

/// A loop device on a file, detached on drop.
struct Loop(String);

impl Loop {
    fn new(file: &Path) -> Loop {
        let out = run(Command::new("losetup").args(["-f", "--show"]).arg(file));
        Loop(String::from_utf8(out.stdout).unwrap().trim().to_owned())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

/// Runs `lvm ARGS` seeing only `loops`, in a private mount namespace with a tmpfs on /run, its
/// configuration and lock directory in `dir`; stdout.
fn lvm(dir: &Path, loops: &[&Loop], args: &[&str]) -> String {
    let conf = dir.join("lvm-conf");
    fs::create_dir_all(conf.join("lock")).unwrap();
    let accept: String = loops.iter().map(|l| format!("\"a|^{}$|\", ", l.0)).collect();
    fs::write(
        conf.join("lvm.conf"),
        format!(
            "devices {{ filter = [ {accept}\"r|.*|\" ] use_devicesfile = 0 obtain_device_list_from_udev = 0 hints = \"none\" }}\n\
             global {{ locking_dir = \"{}\" use_lvmlockd = 0 }}\n\
             backup {{ backup = 0 archive = 0 }}\n\
             activation {{ udev_sync = 0 udev_rules = 0 monitoring = 0 }}\n",
            conf.join("lock").display()
        ),
    )
    .unwrap();
    let out = run(Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /run && exec lvm \"$@\"",
            "sh",
        ])
        .args(args)
        .env("LVM_SYSTEM_DIR", &conf)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1"));
    String::from_utf8(out.stdout).unwrap()
}

/// A sparse file of `mib` MiB.
fn sparse(path: &Path, mib: u64) {
    fs::File::create(path).unwrap().set_len(mib * MIB).unwrap();
}

/// An XFS of `mib` MiB holding `src`, written by the kernel through a mount in a private
/// namespace: the sparse `fragmented` becomes 300 extents (a btree fork), the long link a block of
/// its own with its v5 header.
fn xfs_filled(dir: &Path, name: &str, mib: u64, src: &Path, mkfs: &[&str]) -> PathBuf {
    let file = dir.join(format!("{name}.xfs"));
    sparse(&file, mib);
    run(Command::new("mkfs.xfs").args(["-q", "-f"]).args(mkfs).arg(&file));
    let mnt = dir.join(format!("{name}.mnt"));
    fs::create_dir_all(&mnt).unwrap();
    let script = "mount -o loop \"$1\" \"$2\" && cp -a --sparse=always \"$3\"/. \"$2\"/ && umount \"$2\"";
    run(Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&file)
        .arg(&mnt)
        .arg(src));
    if !src.join("fragmented").exists() {
        return file;
    }
    let format = run(Command::new("xfs_db")
        .args(["-r", "-c", "path /fragmented", "-c", "print core.format"])
        .arg(&file));
    assert!(
        String::from_utf8_lossy(&format.stdout).contains("btree"),
        "{name}: no btree fork"
    );
    file
}

/// Writes `fs_file` onto logical volume `lv` of the PV files, as `lvs --segments` maps it (the
/// device mapper's linear and striped targets: chunks dealt round the stripes).
fn place(dir: &Path, loops: &[&Loop], pv_files: &[&Path], lv: &str, fs_file: &Path) {
    let starts: Vec<(String, u64)> = lvm(
        dir,
        loops,
        &[
            "pvs",
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            "pv_name,pe_start",
        ],
    )
    .lines()
    .map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f[0].to_owned(), f[1].parse().unwrap())
    })
    .collect();
    let extent: u64 = lvm(
        dir,
        loops,
        &[
            "vgs",
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            "vg_extent_size",
        ],
    )
    .trim()
    .parse()
    .unwrap();
    let segs = lvm(
        dir,
        loops,
        &[
            "lvs",
            "--segments",
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "--separator",
            ";",
            "-o",
            "seg_start,seg_size,stripes,stripe_size,seg_pe_ranges",
            lv,
        ],
    );
    let data = fs::read(fs_file).unwrap();
    for line in segs.lines() {
        let f: Vec<&str> = line.trim().split(';').collect();
        let (start, size, stripes): (u64, u64, u64) = (
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
        );
        let chunk = if stripes == 1 { size } else { f[3].parse().unwrap() };
        // "/dev/loop0:0-37 /dev/loop1:0-37": each stripe's PV and first extent.
        let areas: Vec<(usize, u64)> = f[4]
            .split_whitespace()
            .map(|r| {
                let (dev, range) = r.rsplit_once(':').unwrap();
                let first: u64 = range.split('-').next().unwrap().parse().unwrap();
                let i = loops.iter().position(|l| l.0 == dev).unwrap();
                let pe_start = starts.iter().find(|s| s.0 == dev).unwrap().1;
                (i, pe_start + first * extent)
            })
            .collect();
        for (c, piece) in data[start as usize..(start + size) as usize]
            .chunks(chunk as usize)
            .enumerate()
        {
            let (pv, base) = areas[c % areas.len()];
            let at = base + (c / areas.len()) as u64 * chunk;
            fs::OpenOptions::new()
                .write(true)
                .open(pv_files[pv])
                .unwrap()
                .write_all_at(piece, at)
                .unwrap();
        }
    }
}

/// A GPT disk of the given partitions (MiB, sfdisk type, contents file) from 1 MiB on.
fn disk(dir: &Path, name: &str, parts: &[(u64, &str, &Path)]) -> PathBuf {
    let img = dir.join(format!("{name}.img"));
    sparse(&img, parts.iter().map(|p| p.0).sum::<u64>() + 2);
    let mut script = String::from("label: gpt\n");
    let mut at = 1;
    for (mib, kind, _) in parts {
        script += &format!("start={},size={mib}M,type={kind}\n", at * 2048);
        at += mib;
    }
    sfdisk(&img, &script);
    let mut at = 1;
    for (mib, _, file) in parts {
        run(Command::new("dd")
            .arg(format!("if={}", file.display()))
            .arg(format!("of={}", img.display()))
            .arg(format!("seek={at}"))
            .args(["bs=1M", "conv=notrunc,sparse", "status=none"]));
        at += mib;
    }
    img
}

/// The XFS tree's directories, files and links with the rocky9 example root's /etc, systemd as
/// /sbin/init.
fn rocky_tree(dir: &Path) -> PathBuf {
    let root = tree(dir);
    run(Command::new("cp")
        .arg("-a")
        .arg(crate::common::repo().join("examples/rootfs/rocky9/etc"))
        .arg(&root));
    fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    fs::write(root.join("usr/lib/systemd/systemd"), "ELF").unwrap();
    fs::create_dir_all(root.join("sbin")).unwrap();
    std::os::unix::fs::symlink("/usr/lib/systemd/systemd", root.join("sbin/init")).unwrap();
    root
}

/// The root tree of the RHEL 9 image: [`rocky_tree`] with osconf installed.
fn rhel_root(dir: &Path) -> PathBuf {
    let root = rocky_tree(dir);
    let boot = dir.join("boot-staging");
    fs::create_dir_all(&boot).unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["install", "--init", "systemd", "--root"])
        .arg(&root)
        .arg("--boot-dir")
        .arg(&boot));
    fs::create_dir_all(root.join("root/.ssh")).unwrap();
    fs::write(
        root.join("root/.ssh/authorized_keys"),
        "ssh-ed25519 AAAA baked@builder\n",
    )
    .unwrap();
    root
}

/// `image check --json`: exit code, checks, seconds taken.
fn check(img: &Path) -> (i32, Vec<(String, String, String)>, f64) {
    let t = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["image", "check", "--json"])
        .arg(img)
        .output()
        .unwrap();
    let took = t.elapsed().as_secs_f64();
    (out.status.code().unwrap(), checks_of(&out.stdout), took)
}

/// The root checks (and detection's) that must read the same on any filesystem holding the tree.
const ROOT_KEYS: [&str; 7] = [
    "agent",
    "ssh-host-keys",
    "root-authorized-keys",
    "root-password",
    "distribution",
    "init",
    "stack",
];

fn root_items(checks: &[(String, String, String)]) -> Vec<(String, String, String)> {
    checks
        .iter()
        .filter(|c| ROOT_KEYS.contains(&c.0.as_str()))
        .cloned()
        .collect()
}

/// The RHEL 9 layout of `root` (GPT: ESP FAT32, /boot XFS, a PV holding VG `rl` with `swap` and
/// `root` on XFS; sizes shrunk) in image `NAME.img` under `d`: the image and the root's XFS file.
fn rhel9(d: &Path, name: &str, root: &Path) -> (PathBuf, PathBuf) {
    let d = &d.join(name);
    fs::create_dir_all(d).unwrap();
    // ESP (600 MiB in RHEL 9, 32 here), /boot on XFS (1 GiB, 300 here: mkfs.xfs's least), the PV.
    let esp = d.join("esp.fat");
    sparse(&esp, 32);
    run(Command::new("mkfs.vfat").args(["-F", "32"]).arg(&esp));
    let boot_src = d.join("boot-src");
    fs::create_dir_all(boot_src.join("grub2")).unwrap();
    fs::write(boot_src.join("grub2/grub.cfg"), "set timeout=1\n").unwrap();
    let boot = xfs_filled(d, "boot", 300, &boot_src, &[]);
    let pv = d.join("pv.img");
    sparse(&pv, 340);
    let lo = Loop::new(&pv);
    lvm(d, &[&lo], &["pvcreate", "-y", &lo.0]);
    lvm(d, &[&lo], &["vgcreate", "rl", &lo.0]);
    for (name, size) in [("swap", "8M"), ("root", "304M")] {
        lvm(
            d,
            &[&lo],
            &[
                "lvcreate",
                "--driverloaded",
                "n",
                "-an",
                "-Zn",
                "-L",
                size,
                "-n",
                name,
                "rl",
            ],
        );
    }
    let root_fs = xfs_filled(d, "root", 304, root, &[]);
    place(d, &[&lo], &[&pv], "rl/root", &root_fs);
    drop(lo);
    let img = disk(
        d,
        name,
        &[
            (32, "U", &esp),
            (300, "L", &boot),
            (340, "E6D6D379-F507-44C2-A23C-238F2A3DF928", &pv),
        ],
    );

    (img, root_fs)
}

#[test]
fn a_rhel9_layout_with_the_root_in_lvm_on_xfs_is_checked_as_an_ext_root_is() {
    let test = "a_rhel9_layout_with_the_root_in_lvm_on_xfs_is_checked_as_an_ext_root_is";
    if !ready(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = rhel_root(d);
    let (img, root_fs) = rhel9(d, "rhel9", &root);
    // The reader: every file of the tree through the LV, as the kernel wrote them.
    let image = Image::open(&img).unwrap();
    let found = osconf::image::view::root_partition(&image).unwrap_or_else(|i| panic!("{}", i.reason));
    assert_eq!(
        (found.n, found.place.as_str(), found.fs.kind.name()),
        (3, "LV rl/root (partition 3)", "xfs")
    );
    let (code, checks, took) = check(&img);
    let (_, why) = checks
        .iter()
        .find(|c| c.0 == "root")
        .map(|c| (&c.1, &c.2))
        .unwrap();
    assert!(
        why.starts_with("LV rl/root (partition 3) (xfs") && why.contains("Rocky Linux"),
        "{why}"
    );
    eprintln!("image check of the RHEL 9 layout: {took:.2} s");

    // The same tree on an ext4 partition 3 says the same of every root item.
    let ext = d.join("root.ext4");
    sparse(&ext, 340);
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-O", "^64bit", "-d"])
        .arg(&root)
        .arg(&ext));
    let ext_img = disk(
        d,
        "rhel9-ext",
        &[
            (32, "U", &d.join("rhel9/esp.fat")),
            (300, "L", &d.join("rhel9/boot.xfs")),
            (340, "L", &ext),
        ],
    );
    let (ext_code, ext_checks, _) = check(&ext_img);
    assert_eq!(root_items(&checks), root_items(&ext_checks));
    assert_eq!(root_items(&checks).len(), ROOT_KEYS.len(), "{checks:?}");
    assert_eq!(code, ext_code, "{checks:?}");
    assert!(
        checks.iter().any(|c| c.0 == "agent" && c.1 == "pass"),
        "{checks:?}"
    );
    assert!(
        checks
            .iter()
            .any(|c| c.0 == "root-authorized-keys" && c.1 == "fail"),
        "{checks:?}"
    );

    // Through the library: the whole tree, the btree fork and the remote link the kernel wrote.
    let v = osconf::disk::Volume::open(fs::File::open(&root_fs).unwrap(), 0).unwrap();
    check_tree(&v, &root, "rl/root", true);
    // cp -a kept the tree's times: the reader's are the same (bigtime, on by default in v5).
    use std::os::unix::fs::MetadataExt as _;
    let want = fs::metadata(root.join("big")).unwrap().mtime();
    assert_eq!(v.metadata("big").unwrap().unwrap().mtime, Some(want));
}

#[test]
fn a_volume_group_striped_over_two_partitions_is_read() {
    let test = "a_volume_group_striped_over_two_partitions_is_read";
    if !ready(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = tree(d);
    let (a, b) = (d.join("pv-a.img"), d.join("pv-b.img"));
    sparse(&a, 200);
    sparse(&b, 200);
    let (la, lb) = (Loop::new(&a), Loop::new(&b));
    let loops = [&la, &lb];
    lvm(d, &loops, &["pvcreate", "-y", &la.0, &lb.0]);
    lvm(d, &loops, &["vgcreate", "vg", &la.0, &lb.0]);
    // A linear volume first, so the striped one starts past both PVs' first extents; then a
    // linear one spanning what is left of both.
    lvm(
        d,
        &loops,
        &[
            "lvcreate",
            "--driverloaded",
            "n",
            "-an",
            "-Zn",
            "-L",
            "12M",
            "-n",
            "first",
            "vg",
            &la.0,
        ],
    );
    lvm(
        d,
        &loops,
        &[
            "lvcreate",
            "--driverloaded",
            "n",
            "-an",
            "-Zn",
            "-i",
            "2",
            "-I",
            "64k",
            "-L",
            "304M",
            "-n",
            "root",
            "vg",
        ],
    );
    let root_fs = xfs_filled(d, "striped", 304, &src, &[]);
    place(d, &loops, &[&a, &b], "vg/root", &root_fs);
    drop((la, lb));
    let img = disk(
        d,
        "striped",
        &[
            (200, "E6D6D379-F507-44C2-A23C-238F2A3DF928", &a),
            (200, "E6D6D379-F507-44C2-A23C-238F2A3DF928", &b),
        ],
    );
    let image = Image::open(&img).unwrap();
    let found = osconf::image::view::root_partition(&image).unwrap_or_else(|i| panic!("{}", i.reason));
    assert_eq!(found.place, "LV vg/root (partition 1)");
    let sys = osconf::image::view::system(&img, found).unwrap();
    assert_eq!(
        sys.read("fragmented").unwrap().unwrap(),
        fs::read(src.join("fragmented")).unwrap()
    );
    assert_eq!(
        sys.read("node/entry-with-a-longer-name-02999").unwrap().unwrap(),
        b"2999\n"
    );
    assert_eq!(
        sys.read("big").unwrap().unwrap(),
        fs::read(src.join("big")).unwrap()
    );
}

#[test]
fn prepare_installs_osconf_into_a_rhel9_layout_through_libguestfs() {
    let test = "prepare_installs_osconf_into_a_rhel9_layout_through_libguestfs";
    if !ready(test) || !crate::common::guestfs::ready(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = rocky_tree(d);
    // SELinux enforcing, as RHEL ships: what prepare writes gets the policy's labels.
    let selinux = crate::common::guestfs::selinux_root(test, &root);
    let (img, _) = rhel9(d, "bare", &root);
    let t = std::time::Instant::now();
    let read = |path: &str| {
        let image = Image::open(&img).unwrap();
        let found = osconf::image::view::root_partition(&image).unwrap_or_else(|i| panic!("{}", i.reason));
        let mode = found.metadata(path).unwrap().unwrap().mode;
        (found.read_file(path).unwrap().unwrap(), mode)
    };
    let said = crate::common::guestfs::prepared(
        &img,
        &[],
        "LV rl/root (partition 3) (xfs",
        "usr/sbin/osconf",
        read,
    );
    eprintln!(
        "prepare, RHEL 9 layout (LVM, XFS), raw: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    if selinux {
        assert!(said.contains("SELinux (enforcing): "), "{said}");
        let labels = crate::common::guestfs::labeled_as_policy_says(&img, "/dev/rl/root", &said, &[]);
        eprintln!("labels: {labels:?}");
        assert!(
            labels.contains(&("/usr/sbin/osconf".into(), "system_u:object_r:bin_t:s0".into())),
            "{labels:?}"
        );
    }
}
