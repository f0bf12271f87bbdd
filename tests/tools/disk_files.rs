//! The file reader of `osconf::disk` (no mount) against filesystems made by the real tools from one
//! source tree: ext2/3/4 by `mkfs.ext4 -d` in many feature sets (extents or block maps, 64bit or
//! not, 1 KiB to 64 KiB blocks, 128-byte inodes, meta_bg, inline_data, no filetype, htree
//! directories of thousands of entries made by `e2fsck -D`), compared with the tree and with what
//! `debugfs` lists and prints; FAT12/16/32 by `mkfs.vfat` + `mcopy`, compared with `mdir`. Then
//! damaged images: errors, never a panic. No root needed; without the tools the tests say SKIPPED
//! (and fail under CI=true).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::real::{have_tools, run, sfdisk};
use crate::common::xfs::regular_files;
use osconf::disk::{FileType, Image, Volume};

const MANY: usize = 3000;
const FAT_MANY: usize = 400;

/// Deterministic bytes (xorshift), for file contents and damage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The source tree every filesystem is made from. Links: fast (in the inode), slow (a block),
/// absolute, climbing above the root (which a chroot stops at), through a directory link, a loop
/// and a dangling one.
fn source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("etc/os-release", b"ID=test\nNAME=\"Test\"\n".to_vec()),
        ("empty", Vec::new()),
        ("small", b"hello\n".to_vec()),
        ("exact4096", rng.bytes(4096)),
        ("big", rng.bytes((1 << 20) + 123)),
        ("deep/a/b/c/d/e/f/g/h/file", b"deep\n".to_vec()),
        ("Mixed Case Long Name.text", b"lfn\n".to_vec()),
        ("\u{fc}n\u{ef} c\u{f4}d\u{e9}", b"unicode\n".to_vec()),
    ];
    for (path, data) in &files {
        let p = src.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
    fs::create_dir_all(src.join("etc/ssh")).unwrap();
    let sparse = File::create(src.join("sparse")).unwrap();
    sparse.set_len(3 << 20).unwrap();
    sparse.write_all_at(b"start", 0).unwrap();
    sparse.write_all_at(b"middle", 5 << 19).unwrap();
    fs::create_dir(src.join("many")).unwrap();
    for i in 0..MANY {
        fs::write(
            src.join(format!("many/file-with-a-longer-name-{i:05}")),
            format!("{i}\n"),
        )
        .unwrap();
    }
    let long = format!("deep/a/b/../b/c/d/e/f/g/h/{}/../file", "x".repeat(40));
    fs::create_dir(src.join("deep/a/b/c/d/e/f/g/h").join("x".repeat(40))).unwrap();
    for (link, target) in [
        ("fast", "small"),
        ("slow", long.as_str()),
        ("abs", "/etc/os-release"),
        ("up", "../../../../etc/os-release"),
        ("dirlink", "deep/a"),
        ("loop1", "loop2"),
        ("loop2", "loop1"),
        ("dangling", "nowhere"),
        ("etc/ssh/../../deep/up2", "../../../../../small"),
    ] {
        symlink(target, src.join(link)).unwrap();
    }
    src
}

fn debugfs(fs_file: &Path, request: &str) -> Vec<u8> {
    let out = run(Command::new("debugfs").arg("-R").arg(request).arg(fs_file));
    out.stdout
}

/// What `debugfs ls -p` lists: (name, mode) of each entry but `.` and `..`.
fn debugfs_ls(fs_file: &Path, dir: &str) -> BTreeSet<(String, u32)> {
    String::from_utf8_lossy(&debugfs(fs_file, &format!("ls -p \"{dir}\"")))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('/').collect();
            (f.len() >= 7 && f[1] != "0" && f[5] != "." && f[5] != "..")
                .then(|| (f[5].to_owned(), u32::from_str_radix(f[2], 8).unwrap()))
        })
        .collect()
}

fn kind_of_mode(mode: u32) -> FileType {
    match mode & 0o170000 {
        0o100000 => FileType::File,
        0o040000 => FileType::Dir,
        0o120000 => FileType::Symlink,
        _ => FileType::Other,
    }
}

/// Reads every file back, follows every link, lists directories: all as the tree and debugfs say.
fn check_ext(src: &Path, fs_file: &Path, what: &str) {
    let v = Volume::open(File::open(fs_file).unwrap(), 0).unwrap_or_else(|e| panic!("{what}: {e}"));
    for path in regular_files(src) {
        let got = v
            .read_file(&path)
            .unwrap_or_else(|e| panic!("{what}: {path}: {e}"));
        let got = got.unwrap_or_else(|| panic!("{what}: {path} not found"));
        if !path.starts_with("many/") {
            let mut theirs = debugfs(fs_file, &format!("cat \"/{path}\""));
            // debugfs cat prints an inline file's whole 60-byte i_block, past its size.
            if what.starts_with("ext4-inline") && got.len() < 60 && theirs.len() == 60 {
                assert!(theirs[got.len()..].iter().all(|&b| b == 0), "{what}: {path}");
                theirs.truncate(got.len());
            }
            assert!(got == theirs, "{what}: {path} differs from debugfs cat");
        }
        // mkfs.ext4 -O inline_data -d cuts a sparse file short (e2fsprogs 1.47.0): debugfs is the
        // reference there.
        if what.starts_with("ext4-inline") && path == "sparse" {
            continue;
        }
        let want = fs::read(src.join(&path)).unwrap();
        assert!(got == want, "{what}: {path} differs from the source");
        let meta = v.metadata(&path).unwrap().unwrap();
        assert_eq!(
            (meta.file_type, meta.size),
            (FileType::File, want.len() as u64),
            "{what}: {path}"
        );
    }
    let os_release = fs::read(src.join("etc/os-release")).unwrap();
    for link in ["abs", "up", "/etc/../up"] {
        let got = v
            .read_file(link)
            .unwrap_or_else(|e| panic!("{what}: {link}: {e}"));
        assert_eq!(got.as_deref(), Some(os_release.as_slice()), "{what}: {link}");
    }
    // `..` after a link to a file: not a directory, as the kernel says of the source tree — the
    // same walk (`osconf::walk`) resolves a root on this machine and a filesystem in an image.
    let through_file = "deep/up2/../etc/os-release";
    assert!(v.read_file(through_file).is_err(), "{what}: {through_file}");
    for resolver in [osconf::root::Resolver::Kernel, osconf::root::Resolver::Walk] {
        let root = osconf::root::Root::open_with(src, Some(resolver)).unwrap();
        let err = root.read(through_file).unwrap_err();
        assert_eq!(err.error.raw_os_error(), Some(20), "{resolver:?}: {err}"); // ENOTDIR
    }
    assert_eq!(v.read_file("fast").unwrap().unwrap(), b"hello\n", "{what}");
    assert_eq!(v.read_file("deep/up2").unwrap().unwrap(), b"hello\n", "{what}");
    assert_eq!(v.read_file("slow").unwrap().unwrap(), b"deep\n", "{what}");
    assert_eq!(
        v.read_file("dirlink/b/c/d/e/f/g/h/file").unwrap().unwrap(),
        b"deep\n"
    );
    let slow = fs::read_link(src.join("slow")).unwrap();
    assert_eq!(
        v.read_link("slow").unwrap().unwrap(),
        slow.to_str().unwrap().as_bytes()
    );
    assert_eq!(
        v.symlink_metadata("fast").unwrap().unwrap().file_type,
        FileType::Symlink
    );
    assert_eq!(v.metadata("dirlink").unwrap().unwrap().file_type, FileType::Dir);
    assert_eq!(v.read_file("dangling").unwrap(), None, "{what}");
    assert_eq!(v.read_file("nothing/here").unwrap(), None, "{what}");
    let err = v.read_file("loop1").unwrap_err();
    assert!(err.to_string().contains("more than 40 links"), "{what}: {err}");
    assert!(v.read_file("etc").is_err(), "a directory is not a file");
    assert!(v.read_file("small/x").is_err(), "through a file");
    for dir in ["/", "/many", "/etc", "/etc/ssh", "/deep/a"] {
        let ours: BTreeSet<(String, FileType)> = v
            .list_dir(dir)
            .unwrap_or_else(|e| panic!("{what}: {dir}: {e}"))
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.file_type))
            .collect();
        let theirs: BTreeSet<(String, FileType)> = debugfs_ls(fs_file, dir)
            .into_iter()
            .filter(|(n, _)| n != "lost+found" || dir != "/")
            .map(|(n, m)| (n, kind_of_mode(m)))
            .collect();
        let ours: BTreeSet<_> = ours.into_iter().filter(|(n, _)| n != "lost+found").collect();
        same(&ours, &theirs, &format!("{what}: {dir}"));
    }
    assert_eq!(v.list_dir("/many").unwrap().unwrap().len(), MANY, "{what}");
    assert_eq!(
        v.read_file("many/file-with-a-longer-name-02345")
            .unwrap()
            .unwrap(),
        b"2345\n"
    );
}

fn mkfs_ext(dir: &Path, src: &Path, name: &str, args: &[&str]) -> PathBuf {
    let fs_file = dir.join(format!("{name}.fs"));
    run(Command::new("truncate").args(["-s", "64M"]).arg(&fs_file));
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(src)
        .args(args)
        .arg(&fs_file));
    fs_file
}

#[test]
fn ext_filesystems_made_by_mkfs_read_as_debugfs_shows_them() {
    let test = "ext_filesystems_made_by_mkfs_read_as_debugfs_shows_them";
    if !have_tools(test, &["mkfs.ext4", "debugfs", "e2fsck", "truncate"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let variants: &[(&str, &[&str])] = &[
        ("ext4", &["-t", "ext4"]),
        ("ext4-no64bit", &["-t", "ext4", "-O", "^64bit"]),
        (
            "ext4-blockmap-1k",
            &["-t", "ext4", "-b", "1024", "-O", "^extent,^64bit,^flex_bg"],
        ),
        ("ext2-1k", &["-t", "ext2", "-b", "1024"]),
        ("ext2-nofiletype", &["-t", "ext2", "-O", "^filetype"]),
        ("ext3-128", &["-t", "ext3", "-I", "128"]),
        ("ext4-inline", &["-t", "ext4", "-O", "inline_data"]),
        ("ext4-metabg", &["-t", "ext4", "-O", "meta_bg,^resize_inode"]),
        // Small files inline: 3000 of them in 64 KiB blocks would not fit in 64 MiB.
        (
            "ext4-inline-64k",
            &["-t", "ext4", "-b", "65536", "-N", "8192", "-O", "inline_data"],
        ),
        (
            "ext4-2k-csum",
            &["-t", "ext4", "-b", "2048", "-O", "metadata_csum"],
        ),
    ];
    for (name, args) in variants {
        let fs_file = mkfs_ext(dir.path(), &src, name, args);
        check_ext(&src, &fs_file, name);
        // e2fsck -D turns every large directory into an htree (mkfs -d makes them linear).
        let status = Command::new("e2fsck")
            .args(["-fyD"])
            .arg(&fs_file)
            .output()
            .unwrap()
            .status;
        assert!(matches!(status.code(), Some(0 | 1)), "{name}: e2fsck {status}");
        if !name.starts_with("ext2-no") {
            let htree = debugfs(&fs_file, "htree /many");
            assert!(
                String::from_utf8_lossy(&htree).contains("Root node dump"),
                "{name}: no htree"
            );
        }
        let v = Volume::open(File::open(&fs_file).unwrap(), 0).unwrap();
        let listed: BTreeSet<_> = v
            .list_dir("many")
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.file_type))
            .collect();
        let theirs = debugfs_ls(&fs_file, "/many")
            .into_iter()
            .map(|(n, m)| (n, kind_of_mode(m)))
            .collect();
        same(&listed, &theirs, &format!("{name} after e2fsck -D: /many"));
        for i in (0..MANY).step_by(7) {
            let got = v
                .read_file(&format!("many/file-with-a-longer-name-{i:05}"))
                .unwrap();
            assert_eq!(
                got.unwrap(),
                format!("{i}\n").as_bytes(),
                "{name} after e2fsck -D"
            );
        }
        fs::remove_file(&fs_file).unwrap();
    }
}

/// What `mdir -b` lists in a FAT directory (long names, else 8.3; directories end in `/`).
fn mdir(fs_file: &Path, dir: &str) -> BTreeSet<(String, FileType)> {
    let out = run(Command::new("mdir")
        .args(["-a", "-b", "-i"])
        .arg(fs_file)
        .arg(format!("::{dir}")));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (path, kind) = match l.strip_suffix('/') {
                Some(p) => (p, FileType::Dir),
                None => (l, FileType::File),
            };
            (path.rsplit('/').next().unwrap().to_owned(), kind)
        })
        .collect()
}

/// Fails with what differs between two listings (not the whole of each).
fn same(ours: &BTreeSet<(String, FileType)>, theirs: &BTreeSet<(String, FileType)>, what: &str) {
    let only_ours: Vec<_> = ours.difference(theirs).take(5).collect();
    let only_theirs: Vec<_> = theirs.difference(ours).take(5).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "{what}: {} vs {} entries; only ours: {only_ours:?}; only theirs: {only_theirs:?}",
        ours.len(),
        theirs.len()
    );
}

#[test]
fn fat_filesystems_made_by_mkfs_vfat_and_mcopy_read_as_mdir_shows_them() {
    let test = "fat_filesystems_made_by_mkfs_vfat_and_mcopy_read_as_mdir_shows_them";
    if !have_tools(test, &["mkfs.vfat", "mcopy", "mdir", "mmd", "truncate"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    // FAT has no links: a copy of the tree without them, and FAT_MANY of many/ (mcopy slows
    // down with the square of a directory's entries; 400 long names span many clusters).
    let plain = dir.path().join("plain");
    let kept = |p: &String| !p.starts_with("many/") || p[p.len() - 5..].parse::<usize>().unwrap() < FAT_MANY;
    for path in regular_files(&src).into_iter().filter(kept) {
        let to = plain.join(&path);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(src.join(&path), to).unwrap();
    }
    for (bits, size, extra) in [
        ("12", "16M", &["-s", "16"][..]),
        ("16", "64M", &[][..]),
        ("32", "64M", &["-s", "1"][..]),
    ] {
        // FAT12 holds at most 4084 clusters: not the thousands of files of many/.
        let skip_many = bits == "12";
        let fs_file = dir.path().join(format!("fat{bits}.fs"));
        run(Command::new("truncate").args(["-s", size]).arg(&fs_file));
        run(Command::new("mkfs.vfat")
            .args(["-F", bits])
            .args(extra)
            .arg(&fs_file));
        let mut mcopy = Command::new("mcopy");
        mcopy.args(["-s", "-i"]).arg(&fs_file);
        for e in fs::read_dir(&plain).unwrap() {
            let p = e.unwrap().path();
            if !(skip_many && p.ends_with("many")) {
                mcopy.arg(p);
            }
        }
        run(mcopy.arg("::/"));
        run(Command::new("mmd")
            .arg("-i")
            .arg(&fs_file)
            .arg("::/aliyun_custom_image"));
        let what = format!("FAT{bits}");
        let v = Volume::open(File::open(&fs_file).unwrap(), 0).unwrap();
        for path in regular_files(&plain)
            .into_iter()
            .filter(|p| !(skip_many && p.starts_with("many/")))
        {
            let want = fs::read(plain.join(&path)).unwrap();
            let got = v
                .read_file(&path)
                .unwrap_or_else(|e| panic!("{what}: {path}: {e}"));
            assert!(got.as_deref() == Some(want.as_slice()), "{what}: {path} differs");
        }
        // Names are found case-insensitively, as the kernel's vfat finds them.
        assert_eq!(
            v.read_file("ETC/OS-RELEASE").unwrap().unwrap(),
            b"ID=test\nNAME=\"Test\"\n"
        );
        assert_eq!(
            v.read_file("mixed case long name.TEXT").unwrap().unwrap(),
            b"lfn\n"
        );
        assert_eq!(
            v.read_file("/deep/a/../a/b/c/d/e/f/g/h/../h/file")
                .unwrap()
                .unwrap(),
            b"deep\n"
        );
        assert_eq!(v.read_file("nothing").unwrap(), None);
        assert!(v.read_file("etc").is_err());
        for d in ["/", "/many", "/etc", "/deep/a/b"] {
            if skip_many && d == "/many" {
                continue;
            }
            let ours: BTreeSet<_> = v
                .list_dir(d)
                .unwrap()
                .unwrap()
                .into_iter()
                .map(|e| (e.name, e.file_type))
                .collect();
            same(&ours, &mdir(&fs_file, d), &format!("{what}: {d}"));
        }
        if !skip_many {
            assert_eq!(v.list_dir("many").unwrap().unwrap().len(), FAT_MANY, "{what}");
        }
        assert_eq!(
            v.metadata("aliyun_custom_image").unwrap().unwrap().file_type,
            FileType::Dir
        );
    }
}

/// An image whose partition 1 is the filesystem in `fs_file` (an MBR table at 1 MiB).
fn partitioned(dir: &Path, fs_file: &Path) -> PathBuf {
    let img = dir.join("disk.img");
    let len = fs::metadata(fs_file).unwrap().len();
    run(Command::new("truncate")
        .arg("-s")
        .arg(format!("{}", len + (2 << 20)))
        .arg(&img));
    sfdisk(&img, &format!("label: dos\nstart=2048,size={}\n", len / 512));
    let mut out = OpenOptions::new().write(true).open(&img).unwrap();
    out.seek(SeekFrom::Start(1 << 20)).unwrap();
    std::io::copy(&mut File::open(fs_file).unwrap(), &mut out).unwrap();
    img
}

/// Reads everything reachable, as a caller exploring a hostile image would: returns how many reads
/// failed. A panic fails the test.
fn explore<R: osconf::disk::ReadAt>(v: &Volume<R>) -> usize {
    let mut errors = 0;
    let mut todo = vec![String::from("/")];
    let mut seen = 0;
    while let Some(d) = todo.pop() {
        let entries = match v.list_dir(&d) {
            Ok(Some(e)) => e,
            _ => {
                errors += 1;
                continue;
            }
        };
        for e in entries {
            seen += 1;
            if seen > 10_000 {
                return errors;
            }
            let p = format!("{}/{}", d.trim_end_matches('/'), e.name);
            match e.file_type {
                FileType::Dir if todo.len() < 64 => todo.push(p),
                _ => errors += usize::from(v.read_file(&p).is_err()),
            }
        }
    }
    errors
}

#[test]
fn damaged_images_give_errors_never_panics() {
    let test = "damaged_images_give_errors_never_panics";
    if !have_tools(
        test,
        &["mkfs.ext4", "mkfs.vfat", "mcopy", "sfdisk", "debugfs", "truncate"],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("etc/deep/er")).unwrap();
    fs::write(src.join("etc/os-release"), "ID=x\n").unwrap();
    fs::write(src.join("etc/deep/er/f"), vec![7u8; 50_000]).unwrap();
    for i in 0..200 {
        fs::write(src.join(format!("etc/deep/n{i}")), "x").unwrap();
    }
    let fs_file = dir.path().join("ext.fs");
    run(Command::new("truncate").args(["-s", "8M"]).arg(&fs_file));
    // Without metadata_csum: each damage must meet the check of its own structure, not a checksum
    // (tests/tools/disk_journal.rs damages a metadata_csum filesystem).
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-b", "1024", "-O", "^metadata_csum", "-d"])
        .arg(&src)
        .arg(&fs_file));
    let pristine = fs::read(&fs_file).unwrap();
    let img = partitioned(dir.path(), &fs_file);
    let v = Image::open(&img).unwrap().partition(1).unwrap();
    assert_eq!(v.read_file("etc/os-release").unwrap().unwrap(), b"ID=x\n");
    assert_eq!(explore(&v), 0);
    assert_eq!(
        Image::open(&img).unwrap().partition(2).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Targeted damage: the inode of etc/deep/er/f, its extent header, a directory block, the
    // superblock's counts. Each is an error naming what is wrong.
    let stat = String::from_utf8(debugfs(&fs_file, "stat /etc/deep/er/f")).unwrap();
    let ino: u64 = stat.split_whitespace().nth(1).unwrap().parse().unwrap();
    let imap = String::from_utf8(debugfs(&fs_file, &format!("imap <{ino}>"))).unwrap();
    let (block, offset) = {
        let w: Vec<&str> = imap.split_whitespace().collect();
        // "located at block 277, offset 0x0300"
        let at = w.iter().position(|x| *x == "located").unwrap();
        let blk: u64 = w[at + 3].trim_end_matches(',').parse().unwrap();
        let off = u64::from_str_radix(w[at + 5].trim_start_matches("0x"), 16).unwrap();
        (blk, off)
    };
    let inode_at = (block * 1024 + offset) as usize;
    let blocks = String::from_utf8(debugfs(&fs_file, "blocks /etc/deep")).unwrap();
    let dir_block: usize = blocks.split_whitespace().next().unwrap().parse().unwrap();
    // (what, where, the bytes written there, what the error says)
    let (extent, dir_at) = (inode_at + 0x28, dir_block * 1024);
    let damages: [(&str, usize, &[u8], &str); 6] = [
        ("extent magic", extent, &[0], "extent tree: header magic"),
        ("size 2^40", inode_at + 0x6C, &[0, 1, 0, 0], "more than"),
        ("extent beyond", extent + 20, &[0xFF; 4], "beyond the filesystem"),
        ("rec_len 0", dir_at + 4, &[0, 0], "record length 0"),
        ("inodes per group 0", 1024 + 0x28, &[0; 4], "inodes per group"),
        ("inode size 3", 1024 + 0x58, &[3, 0], "inode size"),
    ];
    for (what, at, damage, says) in damages {
        let mut bytes = pristine.clone();
        bytes[at..at + damage.len()].copy_from_slice(damage);
        fs::write(&fs_file, &bytes).unwrap();
        let got = Volume::open(File::open(&fs_file).unwrap(), 0)
            .and_then(|v| v.read_file("etc/deep/er/f").map(|_| v))
            .and_then(|v| v.list_dir("etc/deep").map(|_| ()));
        let err = got.expect_err(what).to_string();
        assert!(err.contains(says), "{what}: {err}");
    }

    // Random damage to the metadata (superblock, descriptors, bitmaps, inode table, directories):
    // whatever is read, nothing panics.
    let meta_end = pristine.len().min(300 * 1024);
    let mut rng = Rng(42);
    for _ in 0..300 {
        let mut bytes = pristine.clone();
        for _ in 0..1 + rng.next() % 16 {
            let at = 1024 + (rng.next() as usize) % (meta_end - 1024);
            bytes[at] = rng.next() as u8;
        }
        fs::write(&fs_file, &bytes).unwrap();
        if let Ok(v) = Volume::open(File::open(&fs_file).unwrap(), 0) {
            explore(&v);
        }
    }

    // FAT: a cluster chain that loops, a directory cluster out of range.
    let fat = dir.path().join("fat.fs");
    run(Command::new("truncate").args(["-s", "40M"]).arg(&fat));
    run(Command::new("mkfs.vfat").args(["-F", "32", "-s", "1"]).arg(&fat));
    let big = dir.path().join("BIG");
    fs::write(&big, vec![1u8; 5000]).unwrap();
    run(Command::new("mcopy").arg("-i").arg(&fat).arg(&big).arg("::/BIG"));
    let pristine = fs::read(&fat).unwrap();
    let reserved = u16::from_le_bytes([pristine[14], pristine[15]]) as usize * 512;
    let v = Volume::open(File::open(&fat).unwrap(), 0).unwrap();
    assert_eq!(v.read_file("big").unwrap().unwrap().len(), 5000);
    // BIG is the first file, in clusters 3..=12 (2 is the root's): its chain cut short; the
    // root's chain looping onto itself; the root's chain into a reserved cluster number.
    let fat_entry = |bytes: &mut Vec<u8>, cluster: usize, value: u32| {
        bytes[reserved + 4 * cluster..reserved + 4 * cluster + 4].copy_from_slice(&value.to_le_bytes())
    };
    let cases: [(usize, u32, &str); 3] = [
        (4, 0x0FFF_FFFF, "ends after 2 of 10 clusters"),
        (2, 2, "longer than"),
        (2, 0x0FFF_FFF0, "is not a data cluster"),
    ];
    for (cluster, value, says) in cases {
        let mut bytes = pristine.clone();
        fat_entry(&mut bytes, cluster, value);
        fs::write(&fat, &bytes).unwrap();
        let v = Volume::open(File::open(&fat).unwrap(), 0).unwrap();
        let err = v.read_file("big").unwrap_err().to_string();
        assert!(err.contains(says), "{cluster} -> {value:#x}: {err}");
    }
}

/// FAT's write times as the reboot check reads them (`image test --boots`: "same mtimes"): what
/// mcopy -m wrote from files `stat` gives a time, in FAT's 2-second steps (an odd second is
/// floored, as mtools and the kernel store it), local time written under TZ=UTC and read as UTC;
/// mdir shows the same minute. The root directory has none.
#[test]
fn fat_mtimes_are_the_seconds_mcopy_wrote() {
    let test = "fat_mtimes_are_the_seconds_mcopy_wrote";
    if !have_tools(test, &["mkfs.vfat", "mcopy", "mdir", "touch", "truncate"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fs_file = dir.path().join("times.fat");
    run(Command::new("truncate").args(["-s", "64M"]).arg(&fs_file));
    run(Command::new("mkfs.vfat").args(["-F", "32"]).arg(&fs_file));
    let stamps = [
        ("leap", "2024-02-29 23:59:59", 1_709_251_198),
        ("even", "2007-07-01 12:34:56", 1_183_293_296),
        ("early", "1980-01-01 00:00:01", 315_532_800),
    ];
    for (name, when, _) in stamps {
        let f = dir.path().join(name);
        fs::write(&f, name).unwrap();
        run(Command::new("touch").args(["-d", &format!("{when} UTC")]).arg(&f));
        run(Command::new("mcopy")
            .env("TZ", "UTC")
            .args(["-m", "-i"])
            .arg(&fs_file)
            .arg(&f)
            .arg("::/"));
    }
    let v = Volume::open(File::open(&fs_file).unwrap(), 0).unwrap();
    let listing = String::from_utf8_lossy(
        &run(Command::new("mdir")
            .env("TZ", "UTC")
            .arg("-i")
            .arg(&fs_file)
            .arg("::/"))
        .stdout,
    )
    .into_owned();
    for (name, when, want) in stamps {
        let stat = fs::metadata(dir.path().join(name)).unwrap();
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(stat.mtime() & !1, want, "{name}: stat");
        let got = v.metadata(name).unwrap().unwrap().mtime;
        assert_eq!(got, Some(want), "{name}");
        // mdir: `leap  2024-02-29  23:59`, ` 0:00` (its date and minute, the hour space-padded).
        let hour: u32 = when[11..13].parse().unwrap();
        let (date, minute) = (&when[..10], format!("{hour:>2}:{}", &when[14..16]));
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(name) && l.contains(date) && l.contains(&minute)),
            "{name}: {listing}"
        );
    }
    assert_eq!(v.metadata("/").unwrap().unwrap().mtime, None);
}
