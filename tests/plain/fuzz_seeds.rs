//! The fuzz targets' checked-in seed corpus (`fuzz/corpus/<target>/`) through the same harness the
//! cargo-fuzz targets use, in plain `cargo test`: the harness builds and holds on the seeds, and every
//! target has a corpus and a `fuzz/fuzz_targets/<target>.rs`. Fuzzing itself runs in `scripts/fuzz`.

use std::fs;
use std::path::{Path, PathBuf};

use osconf::harness::{self, FOREIGN, Foreign};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = repo().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds for {target}");
    files.iter().map(|f| fs::read(f).unwrap()).collect()
}

fn has_target(name: &str) -> bool {
    Path::new(&repo().join("fuzz/fuzz_targets").join(format!("{name}.rs"))).is_file()
}

#[test]
fn reader_and_glob_seeds_hold() {
    let reader = seeds("reader");
    assert!(reader.len() > 100, "the reader corpus holds the hostile files");
    reader.iter().for_each(|s| harness::reader(s));
    seeds("glob").iter().for_each(|s| harness::glob(s));
    let disks = seeds("disk");
    disks.iter().for_each(|s| harness::disk(s));
    // The seeds are real filesystems (mkfs.ext4 -d, mkfs.vfat + mcopy) the fuzzer starts inside.
    for s in &disks {
        let v = osconf::disk::Volume::open(s.as_slice(), 0).unwrap();
        assert_eq!(v.read_file("etc/os-release").unwrap().unwrap(), b"ID=debian\n");
    }
    assert!(has_target("reader") && has_target("glob") && has_target("disk"));
}

#[test]
fn every_foreign_file_target_has_seeds_that_hold() {
    for (name, _, _) in FOREIGN {
        assert!(has_target(name), "no fuzz/fuzz_targets/{name}.rs");
        let target = Foreign::named(name);
        let corpus = seeds(name);
        for file in 0..target.files() {
            assert!(
                corpus.contains(&target.seed(file)),
                "{name}: the corpus lacks the example's file {file}"
            );
        }
        corpus.iter().for_each(|s| target.run(s));
    }
}

#[test]
fn journal_seeds_hold_and_only_what_osconf_writes_is_accepted() {
    assert!(has_target("journal"));
    let dir = repo().join("fuzz/corpus/journal");
    let corpus = seeds("journal");
    corpus.iter().for_each(|s| harness::journal(s));
    // A journal a real run left (cut after its 4th step), cut short, empty: accepted; the hostile
    // ones: refused.
    for name in ["centos7-classic", "cut-short", "cut-in-first-line", "empty"] {
        let bytes = fs::read(dir.join(name)).unwrap();
        assert!(osconf::exec::journal_accepted(&bytes).is_ok(), "{name}");
    }
    for name in [
        "tmp-absolute",
        "tmp-climbing",
        "tmp-percent-climbing",
        "backup-root",
        "backup-etc",
        "dir-elsewhere",
        "version-2",
        "unmanaged-path",
        "escape-sequence",
    ] {
        let bytes = fs::read(dir.join(name)).unwrap();
        assert!(osconf::exec::journal_accepted(&bytes).is_err(), "{name}");
    }
}

/// The image formats' targets: every seed (qcow2 v2, v3 and compressed, made by qemu-img; VHD
/// dynamic with 4 KiB blocks and fixed, VMDK monolithicSparse and streamOptimized with 4 KiB grains,
/// made by hand and read right by qemu-img) presents the same 48 KiB disk; the hostile variant of
/// each (its first table entry past the end of the file) is damage. With `OSCONF_FUZZ_SEEDS=DIR`
/// the hostile seeds are written to `DIR/<target>/` for `scripts/fuzz`.
#[test]
fn image_format_seeds_read_as_one_disk_and_the_hostile_ones_are_damage() {
    use osconf::disk::ReadAt as _;
    use osconf::harness::formats;
    let out = std::env::var_os("OSCONF_FUZZ_SEEDS").map(PathBuf::from);
    let mut disks = Vec::new();
    for (target, run) in [
        ("qcow2", formats::qcow2 as fn(&[u8])),
        ("vhd", formats::vhd),
        ("vmdk", formats::vmdk),
    ] {
        assert!(has_target(target), "no fuzz/fuzz_targets/{target}.rs");
        for seed in seeds(target) {
            run(&seed);
            let disk = osconf::disk::format::from_bytes(seed.clone()).unwrap();
            assert_eq!(disk.format.name(), if target == "vhd" { "vpc" } else { target });
            let mut bytes = vec![0u8; 48 << 10];
            assert_eq!(disk.read_at(&mut bytes, 0).unwrap(), bytes.len(), "{target}");
            disks.push(bytes);
            let hostile = formats::hostile(target, &seed);
            for h in &hostile {
                run(h);
                let e = osconf::disk::format::from_bytes(h.clone())
                    .and_then(|d| d.read_at(&mut [0u8; 4096], 0))
                    .expect_err(target);
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{target}: {e}");
            }
            if let Some(dir) = &out {
                let dir = dir.join(target);
                fs::create_dir_all(&dir).unwrap();
                for (i, h) in hostile.iter().enumerate() {
                    fs::write(dir.join(format!("hostile-{}-{i}", disks.len())), h).unwrap();
                }
            }
        }
    }
    assert_eq!(disks.len(), 7);
    assert!(disks.iter().all(|d| d == &disks[0]), "the seeds are not one disk");
    assert!(disks[0].windows(16).any(|w| w == b"the end of disk!"));
}

/// The image readers' targets: the checked-in seeds and the hostile images of issue 17 (made in
/// code from the `disk` corpus's ext4 image) through the harness; the hostile ones are refused by
/// the readers. With `OSCONF_FUZZ_SEEDS=DIR` the generated seeds are written to `DIR/<target>/`,
/// where `scripts/fuzz` starts each of these targets from.
#[test]
fn image_reader_seeds_hold_and_the_hostile_images_are_refused() {
    use osconf::harness::images;
    let ext = fs::read(repo().join("fuzz/corpus/disk/ext4.img")).unwrap();
    let out = std::env::var_os("OSCONF_FUZZ_SEEDS").map(PathBuf::from);
    for (target, run) in [
        ("table", images::table as fn(&[u8])),
        ("ufs", images::ufs),
        ("walk", images::walk),
        ("undo", images::undo),
        ("disk", harness::disk),
        ("ext_journal", images::ext_journal),
        ("btrfs", harness::btrfs::btrfs),
        ("xfs", harness::xfs_lvm::xfs),
        ("xfs_log", harness::xfs_lvm::xfs_log),
        ("lvm", harness::xfs_lvm::lvm),
    ] {
        assert!(has_target(target), "no fuzz/fuzz_targets/{target}.rs");
        let hostile = images::hostile(target, &ext);
        seeds(target).iter().chain(&hostile).for_each(|s| run(s));
        if let Some(dir) = &out {
            let dir = dir.join(target);
            fs::create_dir_all(&dir).unwrap();
            for (i, s) in hostile.iter().enumerate() {
                fs::write(dir.join(format!("hostile-{i}")), s).unwrap();
            }
        }
    }
    // Each hostile filesystem is damage to the reader: a name with `/`, `..` or NUL, the root
    // linked from /etc.
    for img in images::hostile("disk", &ext) {
        let v = osconf::disk::Volume::open(img.as_slice(), 0).unwrap();
        let e = v.list_dir("etc").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
        assert!(e.to_string().contains("the name"), "{e}");
    }
    for s in images::hostile("table", &ext) {
        let read = osconf::disk::table::read(s.as_slice());
        assert_eq!(read.is_ok(), s == images::hostile("table", &ext)[1], "{read:?}");
    }
    // The Btrfs seeds (CRC-32C, xxhash64, SHA-256) are the ones the harness builds, and read
    // right, the checksums verified; each hostile one is damage.
    use osconf::harness::btrfs;
    let built = btrfs::seeds();
    for (name, seed) in &built {
        let file = repo().join("fuzz/corpus/btrfs").join(name);
        assert!(
            fs::read(&file).ok().as_ref() == Some(seed),
            "{} is stale",
            file.display()
        );
        let dev = btrfs::device(seed);
        assert_eq!(
            &dev[0x10000..],
            &seed[..],
            "{name}: its checksums were right already"
        );
        let v = osconf::disk::Volume::open(dev.as_slice(), 0).unwrap();
        assert_eq!(v.read_file("etc/rel").unwrap().unwrap(), b"ID=debian\n");
        assert_eq!(v.read_file("big").unwrap().unwrap(), btrfs::big(), "{name}");
        // What the fuzzer changes inside a tree block is read, not refused as a checksum failure:
        // the harness makes the block's checksum right with the filesystem's own (it wrote
        // CRC-32C whatever the superblock named, so xxhash64 and SHA-256 inputs went no deeper).
        let mut changed = seed.clone();
        let at = changed.windows(10).position(|w| w == b"ID=debian\n").unwrap();
        changed[at + 3] = b'D';
        let dev = btrfs::device(&changed);
        let v = osconf::disk::Volume::open(dev.as_slice(), 0).unwrap();
        assert_eq!(
            v.read_file("etc/os-release").unwrap().unwrap(),
            b"ID=Debian\n",
            "{name}"
        );
    }
    assert_eq!(
        seeds("btrfs").len(),
        built.len(),
        "a file in fuzz/corpus/btrfs no seed is"
    );
    for (img, says) in btrfs::hostile_seeds().iter().zip([
        "past the end of the device",
        "has level 1, where 0 is due",
        "item 0 lies outside the leaf",
        "big: inode 260, extent at 0: btrfs: the data at logical byte 1064960 does not match its checksum",
    ]) {
        let dev = btrfs::device(img);
        let e = osconf::disk::Volume::open(dev.as_slice(), 0)
            .and_then(|v| v.read_file("etc/os-release").and(v.read_file("big")))
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
        assert!(e.to_string().contains(says), "{e}");
    }
    assert!(
        seeds("ufs")
            .iter()
            .all(|s| osconf::disk::ufs::probe(s.as_slice(), 0).unwrap().is_some())
    );
}

/// The XFS seeds (v5 and v4 with 1 KiB blocks, made by `mkfs.xfs -p`, the filesystem's first 64 and
/// 32 KiB: the rest is zeros) read right through the harness's device; the LVM seed (a PV's first
/// bytes, made by pvcreate/vgcreate/lvcreate) holds the volume group `rl` and its two volumes.
#[test]
fn xfs_and_lvm_seeds_are_real_filesystems_and_volume_groups() {
    use osconf::disk::{Volume, lvm};
    use osconf::harness::xfs_lvm::{lvm_device, xfs_device};
    // By name: beside them lie inputs that once crashed the harness (`regression-*`).
    let seed =
        |target: &str, name: &str| fs::read(repo().join("fuzz/corpus").join(target).join(name)).unwrap();
    for name in ["v4-1k", "v5-1k"] {
        let v = Volume::open(xfs_device(&seed("xfs", name)), 0).unwrap();
        assert_eq!(v.read_file("os-release").unwrap().unwrap(), b"ID=seed\n");
        assert_eq!(v.read_file("lnk").unwrap().unwrap(), b"ID=seed\n");
    }
    let pv = lvm::label(&lvm_device(&seed("lvm", "pv"))).unwrap().unwrap();
    let groups = lvm::vg::groups(&[pv.text.as_deref().unwrap()]).unwrap();
    assert_eq!(groups[0].name, "rl");
    assert_eq!(groups[0].lv_names().collect::<Vec<_>>(), ["root", "swap"]);
}

/// The dm-thin seed is the pool the harness builds (two devices, one mapping through an internal
/// node), and the harness reads it whole.
#[test]
fn the_thin_seed_is_the_harness_pool() {
    use osconf::harness::thin;
    assert!(has_target("thin"), "no fuzz/fuzz_targets/thin.rs");
    assert_eq!(seeds("thin"), [thin::seed()], "fuzz/corpus/thin/seed is stale");
    seeds("thin").iter().for_each(|s| thin::thin(s));
}
