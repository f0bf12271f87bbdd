//! The disk readers against real images made in userspace by the real tools (sfdisk, mkfs.ext4,
//! mkfs.vfat, mtools) and against what `blkid -p` (util-linux) reads from the same bytes. No root
//! needed; without the tools the tests say SKIPPED (and fail under CI=true).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use crate::common::real::{have_tools, run, sfdisk};
use osconf::disk::{self, Filesystem, Kind, TableKind};

const TOOLS: [&str; 7] = [
    "blkid",
    "sfdisk",
    "mkfs.ext4",
    "mkfs.vfat",
    "mlabel",
    "mcopy",
    "dumpe2fs",
];

fn tools(test: &str) -> bool {
    have_tools(test, &TOOLS)
}

/// `blkid -p -o export` of the region at `offset` of `file`: KEY → value.
fn blkid(file: &Path, offset: u64) -> BTreeMap<String, String> {
    let out = Command::new("blkid")
        .args(["-p", "-o", "export", "-O", &offset.to_string()])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Ours, in blkid's keys (ext's VERSION, its superblock revision, is not reported by us).
fn ours(fs: &Filesystem) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("TYPE".to_owned(), fs.kind.name().to_owned());
    for (k, v) in [
        ("UUID", fs.uuid.clone()),
        ("LABEL", fs.label.clone()),
        ("VERSION", fs.kind.version().map(str::to_owned)),
        ("BLOCK_SIZE", fs.block_size.map(|b| b.to_string())),
    ] {
        if let Some(v) = v {
            m.insert(k.to_owned(), v);
        }
    }
    m
}

/// Compares what we read at `offset` with blkid, on the keys we report.
fn same_as_blkid(file: &Path, offset: u64) -> Filesystem {
    let fs = disk::probe(&File::open(file).unwrap(), offset)
        .unwrap()
        .unwrap_or_else(|| panic!("nothing found in {} at {offset}", file.display()));
    let mut theirs = blkid(file, offset);
    theirs.retain(|k, _| ["TYPE", "UUID", "LABEL", "VERSION", "BLOCK_SIZE"].contains(&k.as_str()));
    if matches!(fs.kind, Kind::Ext(..)) {
        theirs.remove("VERSION");
    }
    assert_eq!(ours(&fs), theirs, "{} at {offset}", file.display());
    fs
}

fn sparse(path: &Path, size: &str) {
    run(Command::new("truncate").args(["-s", size]).arg(path));
}

/// (number, start, size, type) of each partition as `sfdisk -J` lists them.
fn sfdisk_partitions(path: &Path) -> Vec<(u32, u64, u64, String)> {
    let out = run(Command::new("sfdisk").arg("-J").arg(path));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let node_prefix = path.display().to_string();
    v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let node = p["node"].as_str().unwrap();
            (
                node[node_prefix.len()..].parse().unwrap(),
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                p["type"].as_str().unwrap().to_lowercase(),
            )
        })
        .collect()
}

fn table_matches_sfdisk_and_blkid(path: &Path) -> disk::PartitionTable {
    let t = disk::table::read(&File::open(path).unwrap()).unwrap().unwrap();
    let mine: Vec<_> = t
        .partitions
        .iter()
        .map(|p| {
            (
                p.number,
                p.start,
                p.sectors,
                p.type_id.trim_start_matches('0').to_owned(),
            )
        })
        .collect();
    let theirs: Vec<_> = sfdisk_partitions(path)
        .into_iter()
        .map(|(n, s, z, ty)| (n, s, z, ty.trim_start_matches('0').to_owned()))
        .collect();
    assert_eq!(mine, theirs);
    let b = blkid(path, 0);
    assert_eq!(b.get("PTTYPE").map(String::as_str), Some(t.kind.name()));
    assert_eq!(b.get("PTUUID"), t.id.as_ref());
    t
}

/// Copies the filesystem image `fs` into `disk` at byte `offset`.
fn place(disk: &Path, offset: u64, fs: &Path) {
    let mut d = OpenOptions::new().write(true).open(disk).unwrap();
    d.seek(SeekFrom::Start(offset)).unwrap();
    d.write_all(&fs::read(fs).unwrap()).unwrap();
}

#[test]
fn mbr_primary_extended_and_logical_partitions() {
    if !tools("mbr_primary_extended_and_logical_partitions") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("mbr.img");
    sparse(&img, "120M");
    sfdisk(
        &img,
        "label: dos\nlabel-id: 0x1234abcd\nstart=2048,size=20M,type=c,bootable\nsize=20M,type=83\n\
         size=10M,type=83\nsize=50M,type=5\nsize=10M,type=83\nsize=10M,type=82\n",
    );
    let t = table_matches_sfdisk_and_blkid(&img);
    assert_eq!(t.kind, TableKind::Mbr);
    assert_eq!(t.id.as_deref(), Some("1234abcd"));
    let numbers: Vec<u32> = t.partitions.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
    assert!(t.partition(1).unwrap().bootable && !t.partition(2).unwrap().bootable);
    assert!(t.partition(4).unwrap().is_extended());
    assert!(t.partition(6).unwrap().start > t.partition(5).unwrap().start);
}

#[test]
fn gpt_primary_and_backup_header() {
    if !tools("gpt_primary_and_backup_header") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("gpt.img");
    sparse(&img, "100M");
    // Partition 1 sits after partition 2 on the disk, as on some images.
    sfdisk(
        &img,
        "label: gpt\nlabel-id: 0B1C6A3E-1111-4222-8333-444455556666\n\
         1: start=43008,size=20M,type=U\n2: start=2048,size=20M,type=L\n",
    );
    let t = table_matches_sfdisk_and_blkid(&img);
    assert_eq!(t.kind, TableKind::Gpt);
    assert_eq!(t.id.as_deref(), Some("0b1c6a3e-1111-4222-8333-444455556666"));
    let p1 = t.partition(1).unwrap();
    assert!(p1.is_esp());
    assert_eq!(t.offset(p1), 43008 * 512);
    // A damaged primary header: the backup at the last sector gives the same table.
    let mut f = OpenOptions::new().write(true).open(&img).unwrap();
    f.seek(SeekFrom::Start(512 + 24)).unwrap();
    f.write_all(&[0xFF; 4]).unwrap();
    drop(f);
    let again = disk::table::read(&File::open(&img).unwrap()).unwrap().unwrap();
    assert_eq!(again, t);
}

#[test]
fn a_disk_without_table_has_none() {
    if !tools("a_disk_without_table_has_none") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("superfloppy.img");
    sparse(&img, "40M");
    run(Command::new("mkfs.vfat").args(["-F", "32"]).arg(&img));
    assert_eq!(disk::table::read(&File::open(&img).unwrap()).unwrap(), None);
    assert!(!blkid(&img, 0).contains_key("PTTYPE"));
    let zero = dir.path().join("zero.img");
    sparse(&zero, "1M");
    assert_eq!(disk::table::read(&File::open(&zero).unwrap()).unwrap(), None);
    assert_eq!(disk::probe(&File::open(&zero).unwrap(), 0).unwrap(), None);
}

#[test]
fn ext2_ext3_ext4_with_and_without_64bit() {
    if !tools("ext2_ext3_ext4_with_and_without_64bit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (mkfs_type, extra, flavour) in [
        ("ext2", "", "ext2"),
        ("ext3", "", "ext3"),
        ("ext4", "^64bit", "ext4"),
        ("ext4", "64bit", "ext4"),
        ("ext4", "^has_journal", "ext4"),
    ] {
        let img = dir.path().join(format!("{mkfs_type}{extra}.img"));
        sparse(&img, "64M");
        let mut cmd = Command::new("mkfs.ext4");
        cmd.args([
            "-q",
            "-F",
            "-t",
            mkfs_type,
            "-U",
            "0b1c6a3e-1111-4222-8333-444455556666",
            "-L",
            "BOOT",
        ]);
        if !extra.is_empty() {
            cmd.args(["-O", extra]);
        }
        run(cmd.arg(&img));
        let fs = same_as_blkid(&img, 0);
        let Kind::Ext(f, features) = fs.kind else {
            panic!("{fs:?}")
        };
        assert_eq!(f.name(), flavour);
        if extra.ends_with("64bit") {
            assert_eq!(features.has_64bit(), extra == "64bit", "{mkfs_type} {extra}");
        }
        // Every feature we name is one dumpe2fs names, and none it names that we know is missing.
        let out = run(Command::new("dumpe2fs").arg("-h").arg(&img));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.starts_with("Filesystem features:"))
            .unwrap();
        let theirs: Vec<&str> = line.split_whitespace().skip(2).collect();
        for name in features.names() {
            assert!(theirs.contains(&name), "{name} not in {theirs:?}");
        }
        assert_eq!(theirs.contains(&"64bit"), features.has_64bit());
        assert_eq!(theirs.contains(&"has_journal"), features.has_journal());
    }
}

#[test]
fn fat12_fat16_fat32_volume_id_and_label() {
    if !tools("fat12_fat16_fat32_volume_id_and_label") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (bits, size, version) in [
        ("12", "2M", "FAT12"),
        ("16", "32M", "FAT16"),
        ("32", "64M", "FAT32"),
    ] {
        let img = dir.path().join(format!("fat{bits}.img"));
        sparse(&img, size);
        run(Command::new("mkfs.vfat")
            .args(["-F", bits, "-i", "DEADBEEF", "-n", "MYBOOT"])
            .arg(&img));
        let fs = same_as_blkid(&img, 0);
        assert_eq!(fs.uuid.as_deref(), Some("DEAD-BEEF"));
        assert_eq!(fs.label.as_deref(), Some("MYBOOT"));
        assert_eq!(fs.kind.version(), Some(version));
        // No label at all ("NO NAME" in the boot sector): none.
        run(Command::new("mkfs.vfat")
            .args(["-F", bits, "-i", "0000abcd"])
            .arg(&img));
        assert_eq!(same_as_blkid(&img, 0).label, None);
    }
}

/// blkid's LABEL is the root directory's volume-label entry, not the boot sector's copy.
#[test]
fn fat_label_comes_from_the_root_directory() {
    if !tools("fat_label_comes_from_the_root_directory") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("fat.img");
    sparse(&img, "64M");
    run(Command::new("mkfs.vfat")
        .args(["-F", "32", "-i", "DEADBEEF", "-n", "BOOTSECT"])
        .arg(&img));
    run(Command::new("mlabel").arg("-i").arg(&img).arg("::ROOTDIR"));
    // mlabel wrote both copies; put the old one back in the boot sector (at 0x47 on FAT32).
    let mut f = OpenOptions::new().write(true).open(&img).unwrap();
    f.seek(SeekFrom::Start(0x47)).unwrap();
    f.write_all(b"BOOTSECT   ").unwrap();
    drop(f);
    assert_eq!(
        blkid(&img, 0).get("LABEL_FATBOOT").map(String::as_str),
        Some("BOOTSECT")
    );
    assert_eq!(same_as_blkid(&img, 0).label.as_deref(), Some("ROOTDIR"));

    // A root directory spanning clusters (one sector each), the label in the second one.
    run(Command::new("mkfs.vfat")
        .args(["-F", "32", "-s", "1", "-i", "01020304"])
        .arg(&img));
    let file = dir.path().join("F");
    fs::write(&file, "x").unwrap();
    for i in 0..20 {
        run(Command::new("mcopy")
            .arg("-i")
            .arg(&img)
            .arg(&file)
            .arg(format!("::F{i:02}")));
    }
    run(Command::new("mlabel").arg("-i").arg(&img).arg("::LATE"));
    let mut f = OpenOptions::new().write(true).open(&img).unwrap();
    f.seek(SeekFrom::Start(0x47)).unwrap();
    f.write_all(b"NO NAME    ").unwrap();
    drop(f);
    assert_eq!(same_as_blkid(&img, 0).label.as_deref(), Some("LATE"));
}

/// The image tools' case: a table, then the first partition's filesystem at its offset.
#[test]
fn filesystems_at_the_offset_of_partition_1() {
    if !tools("filesystems_at_the_offset_of_partition_1") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (label, mkfs) in [
        ("dos", ["mkfs.vfat", "-F", "32"]),
        ("gpt", ["mkfs.ext4", "-q", "-F"]),
    ] {
        let img = dir.path().join(format!("{label}.img"));
        sparse(&img, "200M");
        sfdisk(&img, &format!("label: {label}\nstart=2048,size=100M\nsize=50M\n"));
        let part = dir.path().join("p1.img");
        let _ = fs::remove_file(&part);
        sparse(&part, "100M");
        run(Command::new(mkfs[0]).args(&mkfs[1..]).arg(&part));
        let t = disk::table::read(&File::open(&img).unwrap()).unwrap().unwrap();
        let offset = t.offset(t.partition(1).unwrap());
        place(&img, offset, &part);
        same_as_blkid(&img, offset);
    }
}

/// UFS has no mkfs here: a superblock with UFS2's magic, ID and volume name, as FreeBSD writes it.
#[test]
fn ufs2_and_ufs1_by_their_magic() {
    if !tools("ufs2_and_ufs1_by_their_magic") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (at, magic, big_endian, version) in [
        (65536u64, 0x1954_0119u32, false, "2"),
        (8192, 0x0001_1954, true, "1"),
    ] {
        let img = dir.path().join(format!("ufs{version}.img"));
        sparse(&img, "1M");
        let mut sb = vec![0u8; 1376];
        let word = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        sb[144..148].copy_from_slice(&word(0x5f0a_1b2c));
        sb[148..152].copy_from_slice(&word(0x1234_5678));
        sb[680..684].copy_from_slice(b"ROOT");
        sb[48..52].copy_from_slice(&word(32768)); // fs_bsize
        sb[52..56].copy_from_slice(&word(4096)); // fs_fsize
        sb[1372..1376].copy_from_slice(&word(magic));
        let mut f = OpenOptions::new().write(true).open(&img).unwrap();
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&sb).unwrap();
        drop(f);
        let fs = same_as_blkid(&img, 0);
        assert_eq!(fs.uuid.as_deref(), Some("5f0a1b2c12345678"));
        assert_eq!(fs.label.is_some(), version == "2");
    }
}
