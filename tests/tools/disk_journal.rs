//! The ext reader on filesystems whose journal needs recovery, made by the real tools: `mkfs.ext4`
//! makes the filesystem, `debugfs -w` writes a file into a copy of it, and the blocks that write
//! changed go into the original's journal as one committed transaction (`debugfs`'s own
//! `journal_write`, jbd2 as the kernel writes it: 32- and 64-bit tags, no checksums or csum v3,
//! escaped blocks). The reader's view must be what `e2fsck -fy` makes of the image, while the
//! image's bytes stay as they were; revokes, a commit or a copy failing its checksum, and a journal
//! made to point outside the filesystem are each seen. No root needed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::real::{have_tools, run};
use osconf::disk::Recovery;
use osconf::disk::Volume;

/// jbd2's magic, which a block copied into the journal must not start with (it is escaped).
const JBD2_MAGIC: [u8; 4] = [0xC0, 0x3B, 0x39, 0x98];

fn debugfs(fs_file: &Path, commands: &str) -> String {
    let script = fs_file.with_extension("cmd");
    fs::write(&script, commands).unwrap();
    let out = Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&script)
        .arg(fs_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "debugfs {commands}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn block_size(fs_file: &Path) -> usize {
    let v = Volume::open(fs::read(fs_file).unwrap(), 0).unwrap();
    v.fs.block_size.unwrap() as usize
}

/// A filesystem of `mkfs_args` holding `etc/os-release` and `etc/old` (`old`), then the same
/// filesystem after `change` (debugfs commands run on a copy): (before, after, the blocks that
/// differ).
pub(crate) fn before_and_after(
    dir: &Path,
    name: &str,
    mkfs_args: &[&str],
    change: &str,
) -> (PathBuf, PathBuf, Vec<u64>) {
    let src = dir.join(format!("{name}-src"));
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/os-release"), "ID=test\n").unwrap();
    fs::write(src.join("etc/old"), "old data\n").unwrap();
    let before = dir.join(format!("{name}.fs"));
    run(Command::new("truncate").args(["-s", "16M"]).arg(&before));
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&src)
        .args(mkfs_args)
        .arg(&before));
    let after = dir.join(format!("{name}-after.fs"));
    fs::copy(&before, &after).unwrap();
    debugfs(&after, change);
    let bs = block_size(&before);
    let (a, b) = (fs::read(&before).unwrap(), fs::read(&after).unwrap());
    let changed = (0..a.len() / bs)
        .filter(|&i| a[i * bs..(i + 1) * bs] != b[i * bs..(i + 1) * bs])
        .map(|i| i as u64)
        .collect();
    (before, after, changed)
}

/// Journals blocks `blocks` of `after` into `before` as one transaction (`jo -c`: csum v3 when
/// `csum`), then `extra` debugfs journal commands; the journal is left needing recovery.
pub(crate) fn journal_into(before: &Path, after: &Path, blocks: &[u64], csum: bool, extra: &str) {
    let bs = block_size(before);
    let b = fs::read(after).unwrap();
    let data: Vec<u8> = blocks
        .iter()
        .flat_map(|&n| b[n as usize * bs..(n as usize + 1) * bs].to_vec())
        .collect();
    let copies = before.with_extension("blocks");
    fs::write(&copies, data).unwrap();
    let list: Vec<String> = blocks.iter().map(u64::to_string).collect();
    let open = if csum { "jo -c" } else { "jo" };
    debugfs(
        before,
        &format!(
            "{open}\njw -b {} {}\n{extra}jc\n",
            list.join(","),
            copies.display()
        ),
    );
}

/// What `e2fsck -fy` makes of a copy of `fs_file`: the journal replayed into it for real.
pub(crate) fn recovered_by_e2fsck(fs_file: &Path) -> PathBuf {
    let copy = fs_file.with_extension("e2fsck");
    fs::copy(fs_file, &copy).unwrap();
    let out = Command::new("e2fsck").arg("-fy").arg(&copy).output().unwrap();
    // 0: clean, 1: errors corrected (replaying a journal is one).
    assert!(out.status.code().is_some_and(|c| c <= 1), "e2fsck: {out:?}");
    copy
}

pub(crate) fn volume(fs_file: &Path) -> Volume<Vec<u8>> {
    Volume::open(fs::read(fs_file).unwrap(), 0).unwrap()
}

pub(crate) fn have() -> bool {
    have_tools(
        "ext journal replay",
        &["mkfs.ext4", "debugfs", "e2fsck", "truncate"],
    )
}

#[test]
fn a_file_written_only_in_the_journal_reads_as_e2fsck_recovers_it() {
    if !have() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The new file's first bytes are jbd2's magic, so its copy in the journal is escaped.
    let new = dir.path().join("new");
    let mut contents = JBD2_MAGIC.to_vec();
    contents.extend(b" new file\n".repeat(300));
    fs::write(&new, &contents).unwrap();
    let change = format!("write {} etc/new\nrm etc/old\nmkdir etc/newdir\n", new.display());
    let variants: &[(&str, &[&str], bool)] = &[
        ("ext4-csum-v3", &["-t", "ext4"], true),
        ("ext4-csum-v3-1k", &["-t", "ext4", "-b", "1024"], true),
        (
            "ext4-32bit-plain",
            &["-t", "ext4", "-O", "^64bit,^metadata_csum"],
            false,
        ),
        ("ext3-blockmap", &["-t", "ext3", "-b", "2048"], false),
    ];
    for (name, args, csum) in variants {
        let (before, after, changed) = before_and_after(dir.path(), name, args, &change);
        assert!(changed.len() > 3, "{name}: {changed:?}");
        journal_into(&before, &after, &changed, *csum, "");
        let image = fs::read(&before).unwrap();

        let v = volume(&before);
        let Some(Recovery::Replayed {
            transactions: 1,
            copies,
            notes,
            ..
        }) = v.recovery()
        else {
            panic!("{name}: {:?}", v.recovery());
        };
        assert_eq!(
            (copies.clone(), notes.len()),
            (format!("{} blocks", changed.len()), 0),
            "{name}"
        );
        assert_eq!(v.read_file("etc/new").unwrap().unwrap(), contents, "{name}");
        assert_eq!(v.read_file("etc/old").unwrap(), None, "{name}");
        assert!(v.metadata("etc/newdir").unwrap().unwrap().file_type == osconf::disk::FileType::Dir);
        assert!(
            v.recovery()
                .unwrap()
                .describe("partition 2")
                .contains("1 transactions replayed")
        );

        // What e2fsck makes of it, for real, reads the same; the image is as it was.
        let fixed = volume(&recovered_by_e2fsck(&before));
        assert_eq!(fixed.recovery(), None);
        for path in ["etc", "etc/new", "etc/os-release", "etc/newdir"] {
            assert_eq!(
                fixed.metadata(path).unwrap(),
                v.metadata(path).unwrap(),
                "{name}: {path}"
            );
        }
        assert_eq!(fixed.list_dir("etc").unwrap(), v.list_dir("etc").unwrap());
        assert_eq!(fixed.read_file("etc/new").unwrap().unwrap(), contents);
        assert_eq!(fs::read(&before).unwrap(), image, "{name}: the image changed");

        // Without the replay (the flag cleared), the old file is there and the new one is not.
        let unreplayed = before.with_extension("unreplayed");
        fs::copy(&before, &unreplayed).unwrap();
        debugfs(&unreplayed, "feature -needs_recovery\n");
        let raw = volume(&unreplayed);
        assert_eq!(raw.recovery(), None);
        assert_eq!(raw.read_file("etc/new").unwrap(), None, "{name}");
        assert_eq!(raw.read_file("etc/old").unwrap().unwrap(), b"old data\n");
    }
}

/// Where the journal's block `n` lies in `fs_file`, in bytes.
pub(crate) fn journal_byte(fs_file: &Path, n: u64) -> usize {
    let out = debugfs(fs_file, &format!("bmap <8> {n}\n"));
    let block: usize = out.lines().last().unwrap().trim().parse().unwrap();
    block * block_size(fs_file)
}

/// The filesystem block holding `path`'s first byte.
pub(crate) fn data_block(fs_file: &Path, path: &str) -> u64 {
    let out = debugfs(fs_file, &format!("bmap {path} 0\n"));
    out.lines().last().unwrap().trim().parse().unwrap()
}

/// [`before_and_after`] writing `etc/new` ("journaled\n" 200 times).
pub(crate) fn with_new_file(dir: &Path, name: &str, mkfs_args: &[&str]) -> (PathBuf, PathBuf, Vec<u64>) {
    let new = dir.join(format!("{name}-new"));
    fs::write(&new, "journaled\n".repeat(200)).unwrap();
    before_and_after(
        dir,
        name,
        mkfs_args,
        &format!("write {} etc/new\n", new.display()),
    )
}

#[test]
fn a_revoke_cancels_the_copies_before_it_and_the_last_copy_wins() {
    if !have() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (before, after, changed) = with_new_file(dir.path(), "revoke", &["-t", "ext4"]);
    let data = data_block(&after, "etc/new");
    assert!(changed.contains(&data));
    let bs = block_size(&before);
    // Transaction 2 writes the data block again, other bytes; transaction 3 revokes
    // os-release's block, whose copy transaction 2 also holds.
    let release = data_block(&before, "etc/os-release");
    let again = dir.path().join("again");
    let mut second = b"second copy\n".repeat(bs / 12);
    second.resize(bs, b'.');
    let mut bogus = b"ID=bogus\n".to_vec();
    bogus.resize(bs, 0);
    second.extend(&bogus);
    fs::write(&again, &second).unwrap();
    journal_into(
        &before,
        &after,
        &changed,
        true,
        &format!("jw -b {data},{release} {}\njw -r {release}\n", again.display()),
    );
    let v = volume(&before);
    assert!(
        matches!(v.recovery(), Some(Recovery::Replayed { transactions: 3, .. })),
        "{:?}",
        v.recovery()
    );
    let got = v.read_file("etc/new").unwrap().unwrap();
    let mut want = second[..bs].to_vec();
    want.extend(&"journaled\n".repeat(200).as_bytes()[bs..]);
    assert_eq!(got, want, "the last copy of the first block wins");
    assert_eq!(
        v.read_file("etc/os-release").unwrap().unwrap(),
        b"ID=test\n",
        "revoked"
    );
    // e2fsck replays it alike.
    let fixed = volume(&recovered_by_e2fsck(&before));
    assert_eq!(fixed.read_file("etc/new").unwrap().unwrap(), got);
    assert_eq!(fixed.read_file("etc/os-release").unwrap().unwrap(), b"ID=test\n");
}

#[test]
fn journal_checksum_failures_are_named_and_a_crafted_journal_is_refused() {
    if !have() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (before, after, changed) = with_new_file(dir.path(), "csum", &["-t", "ext4"]);
    journal_into(&before, &after, &changed, true, "");
    let image = fs::read(&before).unwrap();
    // Block 0: the journal's superblock, 1: the descriptor, 2..: the copies, in `changed`'s order,
    // then the commit block.
    let data = data_block(&after, "etc/new");
    let copy = 2 + changed.iter().position(|&b| b == data).unwrap() as u64;
    let flipped = |n: u64, at: usize| {
        let mut img = image.clone();
        img[journal_byte(&before, n) + at] ^= 0x40;
        img
    };
    // A copy failing its checksum: the read that takes it says which.
    let v = Volume::open(flipped(copy, 100), 0).unwrap();
    let e = v.read_file("etc/new").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    let says = format!("journal block {copy}, the copy of block {data}, fails its checksum");
    assert!(e.to_string().contains(&says), "{e}");
    assert!(v.read_file("etc/os-release").is_ok());
    // A commit block failing its checksum ends the log before its transaction, said so.
    let commit = 2 + changed.len() as u64;
    let v = Volume::open(flipped(commit, 0x40), 0).unwrap();
    let Some(Recovery::Replayed {
        transactions: 0,
        notes,
        ..
    }) = v.recovery()
    else {
        panic!("{:?}", v.recovery());
    };
    assert!(
        notes[0].contains("commit block") && notes[0].contains("checksum"),
        "{notes:?}"
    );
    assert_eq!(v.read_file("etc/new").unwrap(), None);
    // A descriptor failing its checksum in a committed transaction is damage.
    let e = Volume::open(flipped(1, 20), 0).unwrap_err();
    assert!(e.to_string().contains("descriptor block 1 fails"), "{e}");
    // The journal's superblock too.
    let e = Volume::open(flipped(0, 0x30), 0).unwrap_err();
    assert!(e.to_string().contains("superblock checksum"), "{e}");

    // Without checksums, a tag made to name a block past the filesystem's end is refused.
    let (before, after, changed) =
        with_new_file(dir.path(), "plain", &["-t", "ext4", "-O", "^metadata_csum"]);
    journal_into(&before, &after, &changed, false, "");
    let mut img = fs::read(&before).unwrap();
    let tag = journal_byte(&before, 1) + 12;
    img[tag..tag + 4].copy_from_slice(&0x7FFF_FFF0u32.to_be_bytes());
    let e = Volume::open(img, 0).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("outside the filesystem"), "{e}");
}

/// `image check` reads partition 1 as the journal leaves it and says it was replayed; `inject` and
/// `prepare` refuse to write into it (exit 2), naming e2fsck, and change nothing.
#[test]
fn check_says_the_journal_was_replayed_and_inject_and_prepare_refuse() {
    if !have() || !have_tools("ext journal image", &["sfdisk", "dd", "mkfs.vfat"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // aliyun_custom_image/ is made only in the journal.
    let (before, after, changed) =
        before_and_after(dir.path(), "cut", &["-t", "ext4"], "mkdir aliyun_custom_image\n");
    journal_into(&before, &after, &changed, true, "");
    let place = format!("cp {} \"$0\"", before.display());
    let mkfs: &[&str] = &["sh", "-c", &place];
    let (img, _) = crate::common::images::build(
        dir.path(),
        "cut",
        "gpt",
        &[crate::common::images::Part::new(16, mkfs, None)],
    );
    let image = fs::read(&img).unwrap();
    let osconf = crate::image_write::osconf;

    let out = osconf(&[
        "image".as_ref(),
        "check".as_ref(),
        "--json".as_ref(),
        img.as_os_str(),
    ]);
    let checks = crate::common::images::checks_of(&out.stdout);
    let find = |key: &str| checks.iter().find(|c| c.0 == key).cloned().unwrap();
    let (_, verdict, reason) = find("journal");
    assert_eq!(verdict, "warn");
    assert_eq!(
        reason,
        format!(
            "partition 1: journal needed recovery: 1 transactions replayed in the view read ({} blocks); \
             the image itself is unchanged",
            changed.len()
        )
    );
    assert_eq!(find("custom-dir").1, "pass", "{checks:?}");

    // The same filesystem as the root, partition 2 (a FAT partition 1): said of partition 2.
    let fat32: &[&str] = &["mkfs.vfat", "-F", "32"];
    let (two, _) = crate::common::images::build(
        dir.path(),
        "cut2",
        "gpt",
        &[
            crate::common::images::Part::new(40, fat32, None),
            crate::common::images::Part::new(16, mkfs, None),
        ],
    );
    let out = osconf(&[
        "image".as_ref(),
        "check".as_ref(),
        "--json".as_ref(),
        two.as_os_str(),
    ]);
    let checks = crate::common::images::checks_of(&out.stdout);
    let journal: Vec<_> = checks.iter().filter(|c| c.0 == "journal").collect();
    assert_eq!(journal.len(), 1, "{checks:?}");
    assert!(
        journal[0]
            .2
            .starts_with("partition 2: journal needed recovery: 1 transactions"),
        "{journal:?}"
    );

    let conf = dir.path().join("os.conf");
    fs::write(&conf, "hostname=cut\n").unwrap();
    for args in [
        vec![
            "image".as_ref(),
            "inject".as_ref(),
            img.as_os_str(),
            conf.as_os_str(),
        ],
        vec!["image".as_ref(), "prepare".as_ref(), img.as_os_str()],
    ] {
        let out = osconf(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("partition 1: the ext journal needs recovery")
                && err.contains("e2fsck -fy")
                && err.contains("nothing was changed"),
            "{args:?}: {err}"
        );
        assert!(fs::read(&img).unwrap() == image, "{args:?} changed the image");
    }
}

/// The first number after `key` in `text` (debugfs's output).
fn number_after(text: &str, key: &str) -> u64 {
    let at = text.find(key).unwrap_or_else(|| panic!("{key:?} in {text}")) + key.len();
    let digits: String = text[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

/// Each `metadata_csum` structure the reader meets, its checksum broken by one byte the structure's
/// own checks do not see, is damage naming the structure and where it is; untouched, all read.
#[test]
fn metadata_csum_failures_name_the_structure() {
    if !have() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("csum-src");
    fs::create_dir_all(src.join("etc/many")).unwrap();
    fs::write(src.join("etc/os-release"), "ID=x\n").unwrap();
    for i in 0..200 {
        fs::write(src.join(format!("etc/many/file-{i}")), "x\n").unwrap();
    }
    // Twelve runs of data apart: more extents than the inode holds, so an extent tree block.
    let sparse = fs::File::create(src.join("sparse")).unwrap();
    for i in 0..12u64 {
        std::os::unix::fs::FileExt::write_all_at(&sparse, &[b'y'; 1024], i * 8192).unwrap();
    }
    let fs_file = dir.path().join("csum.fs");
    run(Command::new("truncate").args(["-s", "8M"]).arg(&fs_file));
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-b", "1024", "-O", "metadata_csum", "-d"])
        .arg(&src)
        .arg(&fs_file));
    // e2fsck -D makes etc/many an htree (mkfs -d makes it linear).
    Command::new("e2fsck").arg("-fyD").arg(&fs_file).output().unwrap();
    let pristine = fs::read(&fs_file).unwrap();
    let read_all = |img: Vec<u8>| -> std::io::Result<()> {
        let v = Volume::open(img, 0)?;
        v.read_file("etc/os-release")?;
        v.read_file("sparse")?;
        v.list_dir("etc/many")?;
        v.read_file("etc/many/file-7")?;
        Ok(())
    };
    read_all(pristine.clone()).unwrap();

    let stat = |path: &str| debugfs(&fs_file, &format!("stat {path}\nimap {path}\n"));
    let release = stat("/etc/os-release");
    let inode_at = number_after(&release, "located at block") * 1024
        + u64::from_str_radix(release.split("offset 0x").nth(1).unwrap().trim(), 16).unwrap();
    let etb = number_after(&stat("/sparse"), "(ETB0):") * 1024;
    let (etc_block, htree_root) = (
        data_block(&fs_file, "/etc") * 1024,
        data_block(&fs_file, "/etc/many") * 1024,
    );
    assert!(stat("/etc/many").contains("Flags: 0x81000"), "not an htree");
    let inode = format!("ext: inode {}: checksum fails", number_after(&release, "Inode:"));
    // (where, what the error says): bytes no other check reads.
    let damages: [(u64, &str); 6] = [
        (1024 + 0x30, "ext: superblock: checksum fails"),
        (2 * 1024 + 0x0C, "ext: group 0's descriptor: checksum fails"),
        (inode_at + 0x08, &inode),
        // The extent block's last (unused) entry.
        (etb + 1020 - 12, "extent tree block"),
        // The slack after etc's last entry.
        (etc_block + 1000, "its block 0 (leaf): checksum fails"),
        // The hash of the root's second index entry.
        (htree_root + 0x28, "its block 0 (htree index): checksum fails"),
    ];
    for (at, says) in damages {
        let mut img = pristine.clone();
        img[at as usize] ^= 0x5A;
        let e = read_all(img).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{says}: {e}");
        assert!(e.to_string().contains(says), "{says}: {e}");
    }
}
