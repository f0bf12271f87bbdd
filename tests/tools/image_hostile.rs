//! Hostile images (issue 17 §2), each crafted here from an image the real tools made (sfdisk,
//! mkfs.ext4 -d, mkfs.vfat + mcopy), its bytes then changed as an attacker would: directory entries
//! whose names hold `/` and `..`, a GPT start past 2^64 bytes, forged undo files, a directory linked
//! to the root, a huge directory walked again and again through one long link; Btrfs made by
//! `mkfs.btrfs` with a chunk mapped past the device, a node whose child is itself, an item whose
//! data lies outside its leaf (checksums made right again, found with btrfs-progs' own dump-tree
//! and btrfs-map-logical). Each command ends in
//! bounded time (a generous process-level timeout and a 2 GiB address-space limit, never a timed
//! assertion) with "image damaged" (exit 2), the image as it was and nothing beside it created.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common;
use crate::common::images::{Part, build};
use crate::common::real::{have_tools, run};

const TOOLS: [&str; 7] = [
    "sfdisk",
    "mkfs.ext4",
    "mkfs.vfat",
    "mcopy",
    "debugfs",
    "truncate",
    "prlimit",
];
/// Seconds a command may take on a hostile image before the test calls it unbounded (they take a
/// few; the same commands took 7 minutes before the work budget).
const LIMIT: u32 = 120;
const EXT4: &[&str] = &[
    "mkfs.ext4",
    "-q",
    "-F",
    "-O",
    "^64bit,^metadata_csum",
    "-b",
    "4096",
];

/// `osconf ARGS` killed after [`LIMIT`] seconds (exit 137) and limited to 2 GiB of address space.
fn bounded(args: &[&std::ffi::OsStr]) -> Output {
    Command::new("timeout")
        .args(["-s", "KILL", &LIMIT.to_string()])
        .args(["prlimit", "--as=2147483648", "--"])
        .arg(env!("CARGO_BIN_EXE_osconf"))
        .args(args)
        .output()
        .unwrap()
}

fn image_cmd(verb: &str, img: &Path, more: &[&Path]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec!["image".as_ref(), verb.as_ref(), img.as_os_str()];
    args.extend(more.iter().map(|p| p.as_os_str()));
    bounded(&args)
}

/// Asserts a run refused the image as damaged: exit 2, in time, the message saying `says`.
fn refused_as_damaged(out: &Output, what: &str, says: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        None,
        "{what}: killed (over {LIMIT} s or 2 GiB): {err}"
    );
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert!(
        err.contains("image damaged") && err.contains(says),
        "{what}: {err}"
    );
}

/// Replaces the one occurrence of `from` in the file with `to` (same length).
fn patch(file: &Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut bytes = fs::read(file).unwrap();
    let found: Vec<usize> = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(found.len(), 1, "{}", String::from_utf8_lossy(from));
    bytes[found[0]..found[0] + to.len()].copy_from_slice(to);
    fs::write(file, bytes).unwrap();
}

/// Where the one occurrence of `what` is in the file.
fn find(file: &Path, what: &[u8]) -> usize {
    let bytes = fs::read(file).unwrap();
    let found: Vec<usize> = bytes
        .windows(what.len())
        .enumerate()
        .filter(|(_, w)| *w == what)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(found.len(), 1, "{}", String::from_utf8_lossy(what));
    found[0]
}

fn write_at(file: &Path, at: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt as _;
    let f = fs::OpenOptions::new().write(true).open(file).unwrap();
    f.write_all_at(bytes, at).unwrap();
}

/// The entries of `dir` beside the image, but the image and its scratch files.
fn beside(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn root_tree(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(name);
    fs::create_dir_all(root.join("etc/init.d")).unwrap();
    fs::create_dir_all(root.join("var/lib/osconf")).unwrap();
    fs::write(root.join("etc/os-release"), "ID=debian\nVERSION_ID=12\n").unwrap();
    fs::write(root.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
    root
}

#[test]
fn names_holding_a_slash_or_dot_dot_are_damage_and_never_reach_the_host() {
    let test = "names_holding_a_slash_or_dot_dot_are_damage_and_never_reach_the_host";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The image's own /PWNED (setuid) and /LINK give the bytes, mode and target of what the
    // entries etc/../../../PWNED and var/lib/osconf/../../../../../LINK would make beside DISK,
    // once joined onto a host directory three and five levels below it.
    let tree = root_tree(dir.path(), "tree");
    fs::write(tree.join("PWNED"), "#!/bin/sh\nid\n").unwrap();
    fs::set_permissions(tree.join("PWNED"), fs::Permissions::from_mode(0o4755)).unwrap();
    symlink("/etc/shadow", tree.join("LINK")).unwrap();
    fs::write(tree.join("etc/escape-etc-aaa"), "x").unwrap();
    fs::write(tree.join("var/lib/osconf/escape-state-bbbbbb"), "x").unwrap();
    fs::write(tree.join("etc/init.d/escape-initd-c"), "x").unwrap();
    let img_dir = dir.path().join("images");
    fs::create_dir(&img_dir).unwrap();
    let (img, _) = build(&img_dir, "names", "gpt", &[Part::new(32, EXT4, Some(&tree))]);
    patch(&img, b"escape-etc-aaa", b"../../../PWNED");
    patch(&img, b"escape-state-bbbbbb", b"../../../../../LINK");
    patch(&img, b"escape-initd-c", b"init\0d/../x/..");
    let before = fs::read(&img).unwrap();
    let listed = beside(&img_dir);
    for verb in ["prepare", "check"] {
        let out = image_cmd(verb, &img, &[]);
        refused_as_damaged(&out, verb, "holds a slash");
        assert!(fs::read(&img).unwrap() == before, "{verb} changed the image");
        assert_eq!(beside(&img_dir), listed, "{verb} made files beside the image");
        assert!(dir.path().join("PWNED").symlink_metadata().is_err());
    }

    // The same in a FAT partition 1: a long name holding `/` (its checksum, over the 8.3 name,
    // still holds).
    let fat32: &[&str] = &["mkfs.vfat", "-F", "32"];
    let (img, offsets) = build(&img_dir, "fat", "gpt", &[Part::new(40, fat32, None)]);
    let src = dir.path().join("escape-fat-name.txt");
    fs::write(&src, "x").unwrap();
    let at = format!("{}@@{}", img.display(), offsets[0]);
    run(Command::new("mmd").args(["-i", &at, "::/aliyun_custom_image"]));
    run(Command::new("mcopy")
        .args(["-i", &at])
        .arg(&src)
        .arg("::/escape-fat-name.txt"));
    patch(&img, b"-\0f\0a\0t\0", b"/\0f\0a\0t\0");
    let out = image_cmd("check", &img, &[]);
    refused_as_damaged(&out, "fat", "holds a slash");
    let conf = common::repo().join("examples/vpc/os.conf");
    let before = fs::read(&img).unwrap();
    let out = image_cmd("inject", &img, &[&conf]);
    refused_as_damaged(&out, "fat inject", "holds a slash");
    assert!(fs::read(&img).unwrap() == before, "inject changed the image");
}

#[test]
fn a_gpt_start_past_2_64_bytes_is_damage_not_the_next_partition() {
    let test = "a_gpt_start_past_2_64_bytes_is_damage_not_the_next_partition";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = root_tree(dir.path(), "tree");
    let (img, offsets) = build(
        dir.path(),
        "gpt",
        "gpt",
        &[Part::new(8, EXT4, None), Part::new(16, EXT4, Some(&tree))],
    );
    // Partition 1 starts at LBA 2^55 + X, X being partition 2's start: X × 512 modulo 2^64.
    let bytes = fs::read(&img).unwrap();
    let le64 = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let le32 = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let (entries, count, size) = (le64(512 + 72) as usize * 512, le32(512 + 80), le32(512 + 84));
    let x = offsets[1] / 512;
    let first = (1u64 << 55) + x;
    let mut array = bytes[entries..entries + count * size].to_vec();
    array[32..40].copy_from_slice(&first.to_le_bytes());
    array[40..48].copy_from_slice(&(first + (16 << 11) - 1).to_le_bytes());
    write_at(&img, entries as u64, &array);
    // The CRCs made right again (of the entries, then of the header), as a forger would.
    let fixed = osconf::harness::images::with_gpt_crcs(&fs::read(&img).unwrap());
    write_at(&img, 512, &fixed[512..1024]);

    let before = fs::read(&img).unwrap();
    let conf = common::repo().join("examples/vpc/os.conf");
    let out = image_cmd("inject", &img, &[&conf]);
    refused_as_damaged(&out, "inject", "partition 1: sectors 36028797018982400+");
    assert!(fs::read(&img).unwrap() == before, "inject wrote into the image");
    refused_as_damaged(
        &image_cmd("check", &img, &[]),
        "check",
        "beyond the end of the disk",
    );
}

#[test]
fn a_forged_undo_file_is_refused_unread_and_the_image_kept() {
    let test = "a_forged_undo_file_is_refused_unread_and_the_image_kept";
    if !have_tools(test, &[&TOOLS[..], &["mkfifo"]].concat()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = root_tree(dir.path(), "tree");
    let (img, offsets) = build(dir.path(), "undo", "gpt", &[Part::new(16, EXT4, Some(&tree))]);
    let undo = dir.path().join("undo.img.osconf-undo");
    let conf = common::repo().join("examples/vpc/os.conf");
    let before = fs::read(&img).unwrap();
    let size = before.len() as u64;
    // A complete undo file of this osconf's format with one record.
    let forged = |at: u64, len: u64| {
        let mut u = b"osconf-undo 2\n".to_vec();
        u.extend(1u64.to_le_bytes());
        u.extend(offsets[0].to_le_bytes());
        u.extend((16u64 << 20).to_le_bytes());
        u.extend(at.to_le_bytes());
        u.extend(len.to_le_bytes());
        u.extend(vec![0xAA; len as usize]);
        u.extend(b"end\n");
        u
    };
    type Plant<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Plant, &str)> = vec![
        (
            "a link to /dev/zero",
            Box::new(|p: &Path| symlink("/dev/zero", p).unwrap()),
            "a link",
        ),
        (
            "a FIFO",
            Box::new(|p: &Path| {
                run(Command::new("mkfifo").arg(p));
            }),
            "not a regular file",
        ),
        (
            "4 GiB",
            Box::new(|p: &Path| fs::File::create(p).unwrap().set_len(4 << 30).unwrap()),
            "larger than",
        ),
        (
            "a record at 2^40",
            Box::new(|p: &Path| fs::write(p, forged(1 << 40, 4096)).unwrap()),
            "outside",
        ),
        (
            "a record over the partition table",
            Box::new(|p: &Path| fs::write(p, forged(0, 4096)).unwrap()),
            "outside",
        ),
        (
            "a partition the table does not have",
            Box::new(|p: &Path| {
                let mut u = forged(offsets[0], 4096);
                u[14 + 16..14 + 24].copy_from_slice(&(32u64 << 20).to_le_bytes());
                fs::write(p, u).unwrap()
            }),
            "not a partition of",
        ),
    ];
    for (what, plant, says) in cases {
        plant(&undo);
        let out = image_cmd("inject", &img, &[&conf]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), None, "{what}: killed: {err}");
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains("osconf-undo") && err.contains(says), "{what}: {err}");
        let after = fs::metadata(&img).unwrap();
        assert_eq!(after.len(), size, "{what}: the image grew");
        assert!(fs::read(&img).unwrap() == before, "{what}: the image changed");
        // Kept for a person to look at, as it was.
        assert!(undo.symlink_metadata().is_ok(), "{what}");
        fs::remove_file(&undo).unwrap();
    }
    assert_eq!(fs::metadata("/dev/zero").unwrap().mode() & 0o170000, 0o020000);
}

#[test]
fn images_made_to_be_slow_fail_in_bounded_time() {
    let test = "images_made_to_be_slow_fail_in_bounded_time";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    // etc/loop is the root directory itself (an entry whose inode is 2): /etc holds /etc/loop/etc…
    let tree = root_tree(dir.path(), "loop");
    fs::create_dir(tree.join("etc/loopmarker")).unwrap();
    let (img, _) = build(dir.path(), "loop", "gpt", &[Part::new(16, EXT4, Some(&tree))]);
    let name_at = find(&img, b"loopmarker") as u64;
    write_at(&img, name_at - 8, &2u32.to_le_bytes());
    let before = fs::read(&img).unwrap();
    for verb in ["check", "prepare"] {
        let out = image_cmd(verb, &img, &[]);
        refused_as_damaged(&out, verb, "links the root directory");
        assert!(fs::read(&img).unwrap() == before, "{verb}");
    }

    // A 28 MiB directory of empty records whose last entry `z` is lost+found, and /etc a link
    // through it 800 times (`big/z/../z/..…`): every path under /etc looks `z` up 800 times.
    let tree = root_tree(dir.path(), "big");
    fs::rename(tree.join("etc"), tree.join("realetc")).unwrap();
    let mut records = Vec::with_capacity(28 << 20);
    for _ in 0..(28 << 20) / 4096 - 1 {
        records.extend([0, 0, 0, 0, 0x00, 0x10, 0, 0]);
        records.resize(records.len() + 4088, 0);
    }
    records.extend(11u32.to_le_bytes());
    records.extend([0x00, 0x10, 1, 2, b'z']);
    records.resize(28 << 20, 0);
    fs::write(tree.join("big"), &records).unwrap();
    let target = format!("big/{}../realetc", "z/../".repeat(800));
    assert!(target.len() < 4096);
    symlink(&target, tree.join("etc")).unwrap();
    let (img, offsets) = build(dir.path(), "big", "gpt", &[Part::new(64, EXT4, Some(&tree))]);
    let at = format!("{}?offset={}", img.display(), offsets[0]);
    run(Command::new("debugfs").args(["-w", "-R", "sif /big mode 040755", &at]));
    let before = fs::read(&img).unwrap();
    // Legal, only slow: each directory is read once per command (then looked up in memory), so
    // both end within the bound with their usual verdicts — check reads the root (exit 1: the
    // image lacks the agent, its size…), prepare finds no init there (exit 1).
    for verb in ["check", "prepare"] {
        let out = image_cmd(verb, &img, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{verb}: {err}");
        assert!(fs::read(&img).unwrap() == before, "{verb}");
    }
    let out = image_cmd("check", &img, &[]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pass  root: partition 1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // One command's lookups share one budget: walking that link again and again ends in "image
    // damaged" (every later read too), however the lookups are spread; a new command starts afresh.
    let image = osconf::disk::Image::open(&img).unwrap();
    let v = image.partition(1).unwrap();
    let err = (0..100_000)
        .find_map(|_| v.read_file("etc/os-release").err())
        .expect("the budget ends the lookups");
    assert!(err.to_string().contains("reading it takes more than"), "{err}");
    assert!(
        image
            .partition(1)
            .and_then(|v| v.read_file("realetc/os-release"))
            .is_err()
    );
    assert!(image.damage().is_some());
    let again = osconf::disk::Image::open(&img).unwrap().partition(1).unwrap();
    assert!(again.read_file("etc/os-release").unwrap().is_some());
}

#[test]
fn a_killed_inject_leaves_work_files_the_next_run_removes() {
    let test = "a_killed_inject_leaves_work_files_the_next_run_removes";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = root_tree(dir.path(), "tree");
    let (img, _) = build(dir.path(), "killed", "gpt", &[Part::new(16, EXT4, Some(&tree))]);
    let conf = common::repo().join("examples/vpc/os.conf");
    // Stopped (SIGSTOP) once partition 1 is staged, then killed as the OOM killer or a power cut
    // would: its copy of the partition stays behind.
    let mut child = Command::new(common::hooks::binary())
        .args(["image", "inject"])
        .arg(&img)
        .arg(&conf)
        .env("OSCONF_TEST_STOP_AT", "image-staged")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stat = format!("/proc/{}/stat", child.id());
    let stopped = || {
        fs::read_to_string(&stat)
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with('T')))
            .unwrap_or(false)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(LIMIT.into());
    while !stopped() {
        assert!(
            std::time::Instant::now() < deadline,
            "inject never reached image-staged"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let work = dir
        .path()
        .join(format!("killed.img.osconf-work.{}.p1", child.id()));
    assert!(work.join("partition1").is_file(), "{:?}", beside(dir.path()));
    // Another run's work directory (a live PID: this test's) and a link of that name stay.
    let live = dir
        .path()
        .join(format!("killed.img.osconf-work.{}.p1", std::process::id()));
    fs::create_dir(&live).unwrap();
    let link = dir.path().join("killed.img.osconf-work.1999999.p2");
    symlink(dir.path().join("tree"), &link).unwrap();

    let out = image_cmd("inject", &img, &[&conf]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("the work files of an osconf image run that was killed"),
        "{said}"
    );
    assert!(work.symlink_metadata().is_err(), "{said}");
    assert!(live.is_dir() && link.symlink_metadata().is_ok());
    assert!(dir.path().join("tree/etc/os-release").is_file());
}

/// The number after `word ` in the first line of `text` holding it.
fn number_after(text: &str, word: &str) -> u64 {
    let rest = &text[text.find(word).unwrap_or_else(|| panic!("no {word:?} in {text}")) + word.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

fn tool_out(args: &[&str], file: &Path) -> String {
    String::from_utf8(run(Command::new(args[0]).args(&args[1..]).arg(file)).stdout).unwrap()
}

#[test]
fn btrfs_chunks_past_the_device_node_loops_and_items_outside_leaves_are_damage() {
    use crate::image_btrfs;
    use osconf::disk::btrfs::Sum;
    use osconf::harness::btrfs::checksum;
    let test = "btrfs_chunks_past_the_device_node_loops_and_items_outside_leaves_are_damage";
    if !have_tools(test, &image_btrfs::TOOLS) || !have_tools(test, &["btrfs", "btrfs-map-logical", "prlimit"])
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = image_btrfs::tree(dir.path(), "tree", "openSUSE Tumbleweed");
    let good = image_btrfs::mkfs(dir.path(), "good", &tree);
    let node_size = number_after(
        &tool_out(&["btrfs", "inspect-internal", "dump-super"], &good),
        "nodesize",
    );
    // Where a tree block lies on the device (the first copy: the one a reader takes).
    let physical = |logical: u64| {
        number_after(
            &tool_out(&["btrfs-map-logical", "-l", &logical.to_string()], &good),
            "physical",
        )
    };
    let fs_root = number_after(
        &tool_out(&["btrfs", "inspect-internal", "dump-tree", "-t", "5"], &good),
        "node",
    );
    let fs_dump = tool_out(&["btrfs", "inspect-internal", "dump-tree", "-t", "5"], &good);
    assert!(
        fs_dump.contains(&format!("node {fs_root} level 1")),
        "{fs_dump:.300}"
    );
    let root_leaf = number_after(
        &tool_out(&["btrfs", "inspect-internal", "dump-super"], &good),
        "\nroot\t",
    );
    // (name, block to change, byte in it, new bytes, what the error says)
    let sys_stripe = 0x32b + 17 + 56;
    let cases: [(&str, u64, usize, u64, &str); 3] = [
        (
            "chunk",
            0x10000,
            sys_stripe,
            1 << 40,
            "past the end of the device",
        ),
        (
            "loop",
            physical(fs_root),
            0x65 + 17,
            fs_root,
            "has level 1, where 0 is due",
        ),
        (
            "item",
            physical(root_leaf),
            0x65 + 17,
            0xFFFF_FF00,
            "item 0 lies outside the leaf",
        ),
    ];
    for (name, block, at, value, says) in cases {
        let file = dir.path().join(format!("{name}.btrfs"));
        fs::copy(&good, &file).unwrap();
        let len = if block == 0x10000 {
            4096
        } else {
            node_size as usize
        };
        let mut b = vec![0u8; len];
        {
            use std::os::unix::fs::FileExt as _;
            fs::File::open(&file)
                .unwrap()
                .read_exact_at(&mut b, block)
                .unwrap();
        }
        let width = if name == "item" { 4 } else { 8 };
        b[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
        checksum(&mut b, Sum::Crc32c);
        write_at(&file, block, &b);
        let img = image_btrfs::disk(dir.path(), name, &file);
        let before = fs::read(&img).unwrap();
        let out = image_cmd("check", &img, &[]);
        refused_as_damaged(&out, name, says);
        assert!(fs::read(&img).unwrap() == before, "{name}");
    }
}
