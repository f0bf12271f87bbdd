//! The ext reader's older checksums and journals, on filesystems the real tools made: `gdt_csum`
//! (`mkfs.ext4 -O ^metadata_csum,uninit_bg`: a CRC-16 in each group descriptor), the block and
//! inode bitmaps' checksums under `metadata_csum`, a jbd2 journal with v1 checksums (`debugfs`'s
//! `jo -c` on a filesystem without `metadata_csum`, as the kernel's `journal_checksum` writes one),
//! and a `fast_commit` journal. Each checksum broken by one byte in a copy is damage naming the
//! structure and the checksum, and `e2fsck -fn` finds the same copy damaged; untouched, all reads.
//! No root needed.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::real::run;
use crate::disk_journal::{
    before_and_after, data_block, have, journal_byte, journal_into, recovered_by_e2fsck, volume,
    with_new_file,
};
use osconf::disk::Recovery;
use osconf::disk::Volume;

/// An 8 MiB filesystem of 1 KiB blocks (one group: its descriptor at byte 2048) made by
/// `mkfs.ext4 ARGS -d` from a tree holding `etc/os-release`.
fn small_fs(dir: &Path, name: &str, args: &[&str]) -> Vec<u8> {
    let src = dir.join(format!("{name}-src"));
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/os-release"), "ID=old\n").unwrap();
    let file = dir.join(format!("{name}.fs"));
    run(Command::new("truncate").args(["-s", "8M"]).arg(&file));
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-b", "1024"])
        .args(args)
        .arg("-d")
        .arg(&src)
        .arg(&file));
    fs::read(&file).unwrap()
}

/// Whether `e2fsck -fn` finds nothing wrong in `img` (written to `dir/check.fs`).
fn e2fsck_clean(dir: &Path, img: &[u8]) -> bool {
    let file = dir.join("check.fs");
    fs::write(&file, img).unwrap();
    let out = Command::new("e2fsck").arg("-fn").arg(&file).output().unwrap();
    out.status.success()
}

/// The notes of `v`'s journal replay, which must have replayed `transactions` transactions.
fn replayed(v: &Volume<Vec<u8>>, transactions: u32) -> Vec<String> {
    match v.recovery() {
        Some(Recovery::Replayed {
            transactions: t,
            notes,
            ..
        }) if *t == transactions => notes.clone(),
        r => panic!("{r:?}, not {transactions} transactions replayed"),
    }
}

fn le32(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

/// `gdt_csum`'s descriptor checksum, and `metadata_csum`'s of the block and inode bitmaps, each
/// broken in a copy, are damage naming it; e2fsck agrees each copy is damaged.
#[test]
fn gdt_csum_and_the_bitmaps_checksums_are_verified() {
    if !have() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let read = |img: Vec<u8>| -> std::io::Result<Vec<u8>> {
        let v = Volume::open(img, 0)?;
        Ok(v.read_file("etc/os-release")?.unwrap())
    };
    let old = small_fs(dir.path(), "gdt", &["-O", "^metadata_csum,uninit_bg"]);
    let csum = small_fs(dir.path(), "csum", &["-O", "metadata_csum"]);
    // The descriptor of group 0 is block 2; the bitmaps' blocks are its first two numbers.
    let desc = 2048;
    let (block_bitmap, inode_bitmap) = (le32(&csum, desc) * 1024, le32(&csum, desc + 4) * 1024);
    let cases = [
        // The free blocks count, which nothing else reads.
        (
            &old,
            desc + 0x0C,
            "ext: group 0's descriptor: checksum fails (gdt_csum: ",
        ),
        (
            &csum,
            block_bitmap + 500,
            &format!(
                "ext: group 0's block bitmap (block {}): checksum fails (metadata_csum: ",
                block_bitmap / 1024
            )[..],
        ),
        (
            &csum,
            inode_bitmap + 100,
            &format!(
                "ext: group 0's inode bitmap (block {}): checksum fails (metadata_csum: ",
                inode_bitmap / 1024
            )[..],
        ),
    ];
    for (pristine, at, says) in cases {
        assert_eq!(read(pristine.clone()).unwrap(), b"ID=old\n");
        assert!(e2fsck_clean(dir.path(), pristine), "{says}: the pristine copy");
        let mut img = pristine.clone();
        img[at] ^= 0x5A;
        let e = read(img.clone()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{says}: {e}");
        assert!(e.to_string().contains(says), "{says}: {e}");
        assert!(
            !e2fsck_clean(dir.path(), &img),
            "{says}: e2fsck finds nothing wrong"
        );
    }
}

/// A journal with v1 checksums (the CRC-32 of a transaction's descriptor and copies, in its
/// commit block) replays as e2fsck replays it; a copy changed after the commit ends the log before
/// its transaction, said, as e2fsck leaves it unreplayed too.
#[test]
fn a_journal_with_v1_checksums_is_verified_as_e2fsck_does() {
    if !have() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let args = ["-t", "ext4", "-O", "^metadata_csum,uninit_bg"];
    let (before, after, changed) = with_new_file(dir.path(), "v1", &args);
    journal_into(&before, &after, &changed, true, "");
    let image = fs::read(&before).unwrap();
    let compat = journal_byte(&before, 0) + 0x24;
    assert_eq!(image[compat + 3] & 1, 1, "debugfs's jo -c made no v1 journal");
    let new = "journaled\n".repeat(200).into_bytes();

    let v = volume(&before);
    let notes = replayed(&v, 1);
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(v.read_file("etc/new").unwrap().unwrap(), new);
    let fixed = volume(&recovered_by_e2fsck(&before));
    assert_eq!(fixed.read_file("etc/new").unwrap().unwrap(), new);

    // One byte of a copy changed: the commit's CRC-32 fails, nothing is replayed.
    let data = data_block(&after, "etc/new");
    let copy = 2 + changed.iter().position(|&b| b == data).unwrap() as u64;
    let mut img = image.clone();
    img[journal_byte(&before, copy) + 100] ^= 0x40;
    let broken = dir.path().join("v1-broken.fs");
    fs::write(&broken, &img).unwrap();
    let v = volume(&broken);
    let notes = replayed(&v, 0);
    assert!(
        notes.len() == 1 && notes[0].contains("commit block") && notes[0].contains("fails its checksum"),
        "{notes:?}"
    );
    assert_eq!(v.read_file("etc/new").unwrap(), None);
    let out = Command::new("e2fsck").arg("-fy").arg(&broken).output().unwrap();
    assert!(out.status.code().is_some_and(|c| c <= 1), "e2fsck: {out:?}");
    assert_eq!(
        volume(&broken).read_file("etc/new").unwrap(),
        None,
        "e2fsck replayed it"
    );
}

/// A `fast_commit` journal (refused before) has its full commits replayed; when its fast-commit
/// area opens with the head of the next transaction, the replay says those fast commits are not
/// in the view and what to run — a warning in `image check`, which passes. `mkfs.ext4 -O
/// fast_commit` reserves the journal's fast-commit blocks; the journal's own `fast_commit` feature
/// is set here as the kernel sets it when it mounts the filesystem (without journal checksums, so
/// that the superblock needs no new one; `tests/root/ext_fast_commit.rs` has the kernel write it).
#[test]
fn a_fast_commit_journal_replays_its_full_commits_and_says_what_it_leaves() {
    if !have() || !crate::common::real::have_tools("fast_commit image", &["sfdisk", "dd"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (before, after, changed) = before_and_after(
        dir.path(),
        "fc",
        &["-t", "ext4", "-O", "fast_commit,^metadata_csum"],
        "mkdir aliyun_custom_image\n",
    );
    journal_into(&before, &after, &changed, false, "");
    let sb = journal_byte(&before, 0);
    let mut image = fs::read(&before).unwrap();
    image[sb + 0x2B] |= 0x20;
    fs::write(&before, &image).unwrap();
    let be32 = |at: usize| u32::from_be_bytes(image[at..at + 4].try_into().unwrap());
    let v = volume(&before);
    assert_eq!(
        v.recovery(),
        Some(&Recovery::Replayed {
            log: osconf::disk::Log::ExtJournal,
            transactions: 1,
            copies: format!("{} blocks", changed.len()),
            notes: vec![]
        })
    );
    assert!(v.metadata("aliyun_custom_image").unwrap().is_some());

    // The fast-commit area's first block (the kernel's j_fc_first: one after the log's end) made
    // to open transaction s_sequence + 1, the one after the full commit.
    let num_fc = match be32(sb + 0x54) {
        0 => 256,
        n => n,
    };
    let fc_first = u64::from(be32(sb + 0x10) - num_fc + 1);
    let next = be32(sb + 0x18) + 1;
    let at = journal_byte(&before, fc_first);
    let mut img = image.clone();
    img[at..at + 12].copy_from_slice(&[[9u8, 0, 8, 0], [0; 4], next.to_le_bytes()].concat());
    fs::write(&before, &img).unwrap();
    let v = volume(&before);
    let notes = replayed(&v, 1);
    let says = format!("the fast commits of transaction {next} after them are not replayed");
    assert!(
        notes.len() == 1
            && notes[0].contains(&says)
            && notes[0].contains("e2fsck -fy")
            && notes[0].contains("mounting it once"),
        "{notes:?}"
    );

    // In an image, partition 1: check warns and passes.
    let place = format!("cp {} \"$0\"", before.display());
    let mkfs: &[&str] = &["sh", "-c", &place];
    let (disk, _) = crate::common::images::build(
        dir.path(),
        "fc",
        "gpt",
        &[crate::common::images::Part::new(16, mkfs, None)],
    );
    let out = crate::image_write::osconf(&[
        "image".as_ref(),
        "check".as_ref(),
        "--json".as_ref(),
        disk.as_os_str(),
    ]);
    let checks = crate::common::images::checks_of(&out.stdout);
    let journal = checks.iter().find(|c| c.0 == "journal").unwrap();
    assert_eq!(journal.1, "warn", "{journal:?}");
    assert!(journal.2.contains(&says), "{journal:?}");
    assert_eq!(
        checks.iter().find(|c| c.0 == "custom-dir").unwrap().1,
        "pass",
        "{checks:?}"
    );
}
