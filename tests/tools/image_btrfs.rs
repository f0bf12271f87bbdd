//! Btrfs roots read natively (no mount) by `osconf::disk` and `osconf image check`: filesystems made
//! by `mkfs.btrfs --rootdir` (any user) with inline, regular and large files, a directory of
//! thousands of entries, links; as root, the layouts distributions use, made through a loop mount
//! in a private mount namespace (btrfs-progs 6.2 has no `mkfs --subvol`): openSUSE (GPT, `@`
//! subvolumes, default `@/.snapshots/1/snapshot`), Ubuntu (`@` under the top level), Fedora
//! (`root`), with zstd- and zlib-compressed files. Then damaged ones: "image damaged", exit 2 —
//! data sectors that fail their checksums (CRC-32C, xxhash64, SHA-256; compressed extents;
//! `NODATASUM` files read unchecked), found where `btrfs check --check-data-csum` finds them.
//! Also: `/etc/fstab`'s `subvol=` held to the subvolume checked, inode mtimes as `dump-tree` says.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::images::{Part, build};
use crate::common::real::{as_root, have_tools, run};
use crate::image_root::{check, get};
use osconf::disk::{FileType, Image};

pub(crate) const TOOLS: [&str; 4] = ["mkfs.btrfs", "sfdisk", "mkfs.vfat", "truncate"];
const FAT32: &[&str] = &["mkfs.vfat", "-F", "32"];
const MANY: usize = 3000;

/// Deterministic bytes (xorshift) that do not compress.
fn noise(n: usize, mut x: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A root tree: os-release as a link into usr/lib (as distributions ship it), a usable root
/// password, an SSH host key, root's authorized_keys, a systemd layout, inline/regular/large files
/// and a directory of `MANY` entries.
pub(crate) fn tree(dir: &Path, name: &str, pretty: &str) -> PathBuf {
    let root = dir.join(name);
    for d in [
        "etc/ssh",
        "root/.ssh",
        "usr/lib/systemd/system",
        "etc/systemd/system",
        "many",
        "sbin",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(
        root.join("usr/lib/os-release"),
        format!("ID=opensuse-tumbleweed\nPRETTY_NAME=\"{pretty}\"\n"),
    )
    .unwrap();
    symlink("../usr/lib/os-release", root.join("etc/os-release")).unwrap();
    symlink("/usr/lib/systemd/systemd", root.join("sbin/init")).unwrap();
    fs::write(root.join("usr/lib/systemd/systemd"), "ELF").unwrap();
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(root.join("etc/shadow"), "root:$6$salt$hash:19000:0:99999:7:::\n").unwrap();
    fs::write(root.join("etc/ssh/ssh_host_ed25519_key"), "KEY\n").unwrap();
    fs::write(root.join("root/.ssh/authorized_keys"), "ssh-ed25519 AAAA x\n").unwrap();
    fs::write(root.join("regular"), noise(100_000, 7)).unwrap();
    fs::write(root.join("large"), noise((1 << 20) + 4321, 9)).unwrap();
    fs::write(root.join("text"), "compressible text\n".repeat(20_000)).unwrap();
    fs::write(root.join("words"), "zstd compresses these words\n".repeat(30_000)).unwrap();
    for i in 0..MANY {
        fs::write(root.join(format!("many/entry-{i:05}")), format!("{i}\n")).unwrap();
    }
    root
}

/// `mkfs.btrfs --rootdir ROOT` into a file of its own; its path.
pub(crate) fn mkfs(dir: &Path, name: &str, root: &Path) -> PathBuf {
    let fs = dir.join(format!("{name}.btrfs"));
    run(Command::new("truncate").args(["-s", "200M"]).arg(&fs));
    run(Command::new("mkfs.btrfs").args(["-q", "-r"]).arg(root).arg(&fs));
    fs
}

/// A GPT disk: a FAT32 partition 1 and the Btrfs file `btrfs` as partition 2.
pub(crate) fn disk(dir: &Path, name: &str, btrfs: &Path) -> PathBuf {
    let mib = fs::metadata(btrfs).unwrap().len().div_ceil(1 << 20);
    let copy = ["cp", "--sparse=always", btrfs.to_str().unwrap()];
    build(
        dir,
        name,
        "gpt",
        &[Part::new(40, FAT32, None), Part::new(mib, &copy, None)],
    )
    .0
}

/// What the reader finds in partition 2 of `img` is what `root` holds: the files (inline, regular,
/// large), the big directory, the links; and `image check` judges it as on ext.
fn same_as_tree(img: &Path, root: &Path, pretty: &str, subvolume: &str) {
    let image = Image::open(img).unwrap();
    let v = image.partition(2).unwrap();
    assert_eq!(v.fs.kind.name(), "btrfs");
    assert_eq!(v.subvolume().map(|s| s.describe()).as_deref(), Some(subvolume));
    for f in [
        "usr/lib/os-release",
        "etc/os-release",
        "etc/shadow",
        "regular",
        "large",
        "text",
        "words",
    ] {
        let got = v.read_file(f).unwrap().unwrap_or_else(|| panic!("{f} absent"));
        assert!(got == fs::read(root.join(f)).unwrap(), "{f} differs");
    }
    assert_eq!(
        v.read_link("etc/os-release").unwrap().unwrap(),
        b"../usr/lib/os-release"
    );
    let many = v.list_dir("many").unwrap().unwrap();
    assert_eq!(many.len(), MANY);
    assert!(many.iter().all(|e| e.file_type == FileType::File));
    assert_eq!(v.read_file("many/entry-02999").unwrap().unwrap(), b"2999\n");
    assert_eq!(
        v.read_file("/../../many/../etc/passwd").unwrap().unwrap().len(),
        30
    );
    assert!(v.read_file("absent/file").unwrap().is_none());
    assert_eq!(image.damage(), None);

    let (code, checks) = check(img);
    assert_eq!(code, 1, "{checks:?}");
    let (r, why) = get(&checks, "root");
    assert_eq!(r, "pass", "{why}");
    assert!(
        why.contains("partition 2 (btrfs") && why.contains(pretty),
        "{why}"
    );
    assert!(why.contains(subvolume), "{why}");
    assert_eq!(get(&checks, "ssh-host-keys").0, "fail");
    assert_eq!(get(&checks, "root-authorized-keys").0, "fail");
    assert_eq!(get(&checks, "root-password").0, "fail");
    assert!(get(&checks, "agent").1.contains("no os.conf agent"), "{checks:?}");
    assert_eq!(get(&checks, "init").0, "pass", "{checks:?}");
    assert!(get(&checks, "init").1.contains("systemd"), "{checks:?}");
}

#[test]
fn a_btrfs_root_made_by_mkfs_is_read_and_checked_as_ext_is() {
    let test = "a_btrfs_root_made_by_mkfs_is_read_and_checked_as_ext_is";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path(), "root", "openSUSE Tumbleweed");
    let btrfs = mkfs(dir.path(), "plain", &root);
    let img = disk(dir.path(), "plain", &btrfs);
    same_as_tree(&img, &root, "openSUSE Tumbleweed", "subvolume 5 (the top level)");

    // A filesystem over two devices (RAID1) is not read, and said so: a warning, not damage.
    let (a, b) = (dir.path().join("raid-a"), dir.path().join("raid-b"));
    for f in [&a, &b] {
        run(Command::new("truncate").args(["-s", "200M"]).arg(f));
    }
    run(Command::new("mkfs.btrfs")
        .args(["-q", "-d", "raid1", "-m", "raid1"])
        .arg(&a)
        .arg(&b));
    let img = disk(dir.path(), "raid", &a);
    let (code, checks) = check(&img);
    let (r, why) = get(&checks, "root");
    assert_eq!((code, r), (1, "warn"), "{why}");
    assert!(
        why.contains("spans 2 devices; osconf reads single-device btrfs only"),
        "{why}"
    );
}

/// Runs `script` (sh, `$1` the Btrfs file, `$2` a mount point) in a private mount namespace.
fn in_namespace(dir: &Path, btrfs: &Path, script: &str) {
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let script = format!("set -e; mount -o loop,compress=zstd \"$1\" \"$2\"; {script}; umount \"$2\"");
    run(Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(btrfs)
        .arg(&mnt));
}

/// Copies the tree `$S` into `$R`: files copied after a zstd mount are zstd-compressed; `text` is
/// rewritten under zlib, `lzo` under lzo.
const COPY: &str = "cp -a \"$S/.\" \"$R/\"; rm \"$R/text\"; touch \"$R/text\"; \
    btrfs property set \"$R/text\" compression zlib; cat \"$S/text\" > \"$R/text\"; \
    touch \"$R/lzo\"; btrfs property set \"$R/lzo\" compression lzo; cat \"$S/text\" > \"$R/lzo\"";

/// openSUSE's layout for [`layout`]: subvolumes under `@`, the root in the default subvolume
/// `@/.snapshots/1/snapshot`.
pub(crate) fn opensuse() -> String {
    format!(
        "btrfs subvolume create \"$2/@\" >/dev/null; \
         for s in home opt root srv var; do btrfs subvolume create \"$2/@/$s\" >/dev/null; done; \
         btrfs subvolume create \"$2/@/.snapshots\" >/dev/null; mkdir \"$2/@/.snapshots/1\"; \
         btrfs subvolume create \"$2/@/.snapshots/1/snapshot\" >/dev/null; \
         R=\"$2/@/.snapshots/1/snapshot\"; {COPY}; \
         btrfs subvolume set-default \"$R\"; sync"
    )
}

/// The layouts distributions use, made as root; `None` (SKIPPED) elsewhere.
pub(crate) fn layout(dir: &Path, name: &str, root: &Path, script: &str) -> Option<PathBuf> {
    let btrfs = dir.join(format!("{name}.btrfs"));
    run(Command::new("truncate").args(["-s", "300M"]).arg(&btrfs));
    run(Command::new("mkfs.btrfs").arg("-q").arg(&btrfs));
    in_namespace(dir, &btrfs, &format!("S=\"{}\"; {script}", root.display()));
    // Both compressions are really there (zlib: 1, zstd: 3).
    let dump = run(Command::new("btrfs")
        .args(["inspect-internal", "dump-tree"])
        .arg(&btrfs));
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains("compression 1") && dump.contains("compression 3"),
        "{name}"
    );
    Some(disk(dir, name, &btrfs))
}

#[test]
fn distribution_subvolume_layouts_and_compressed_files_are_read() {
    let test = "distribution_subvolume_layouts_and_compressed_files_are_read";
    if !have_tools(test, &TOOLS) || !have_tools(test, &["btrfs", "unshare", "losetup"]) {
        return;
    }
    if !as_root(test, "a loop mount in a private mount namespace") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = COPY;
    let cases = [
        (
            "opensuse",
            "openSUSE Tumbleweed",
            "subvolume @/.snapshots/1/snapshot",
            opensuse(),
        ),
        (
            "ubuntu",
            "Ubuntu 24.04 LTS",
            "subvolume @",
            format!(
                "btrfs subvolume create \"$2/@\" >/dev/null; btrfs subvolume create \"$2/@home\" >/dev/null; \
                 R=\"$2/@\"; {copy}; sync"
            ),
        ),
        (
            "fedora",
            "Fedora Linux 41",
            "subvolume root",
            format!(
                "btrfs subvolume create \"$2/root\" >/dev/null; btrfs subvolume create \"$2/home\" >/dev/null; \
                 R=\"$2/root\"; {copy}; sync"
            ),
        ),
    ];
    // Each distribution's fstab line for / (openSUSE mounts the default subvolume).
    let fstab = [
        ("opensuse", "defaults"),
        ("ubuntu", "defaults,subvol=/@"),
        ("fedora", "subvol=root,compress=zstd:1"),
    ];
    for (name, pretty, subvolume, script) in cases {
        let root = tree(dir.path(), name, pretty);
        let options = fstab.iter().find(|f| f.0 == name).unwrap().1;
        fs::write(root.join("etc/fstab"), format!("UUID=1 / btrfs {options} 0 0\n")).unwrap();
        let img = layout(dir.path(), name, &root, &script).unwrap();
        same_as_tree(&img, &root, pretty, subvolume);
        let (_, checks) = check(&img);
        let (r, why) = get(&checks, "root-subvolume");
        assert_eq!(r, "pass", "{name}: {why}");
        assert!(why.ends_with(&format!("{subvolume}, the one checked")), "{why}");
        // lzo is refused, named: not damage, a file this reader does not read.
        let image = Image::open(&img).unwrap();
        let e = image.partition(2).unwrap().read_file("lzo").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
        assert!(e.to_string().contains("lzo-compressed extent"), "{e}");
    }
}

/// Btrfs's inode mtimes as the reboot check reads them (`image test --boots`: "same mtimes"):
/// `mkfs.btrfs --rootdir` keeps each file's time as `stat` gives it, `btrfs inspect-internal
/// dump-tree` shows it in the inode item, and the reader says the same seconds.
#[test]
fn btrfs_mtimes_are_what_stat_and_dump_tree_say() {
    let test = "btrfs_mtimes_are_what_stat_and_dump_tree_say";
    if !have_tools(test, &["mkfs.btrfs", "btrfs", "touch", "truncate"]) {
        return;
    }
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("times");
    fs::create_dir_all(root.join("etc")).unwrap();
    let stamps = [
        ("etc/hostname", "2024-02-29 23:59:59.75 UTC"),
        ("etc/shadow", "1999-12-31 23:00:01 UTC"),
        ("etc", "2010-06-15 08:30:00 UTC"),
    ];
    for (path, _) in &stamps[..2] {
        fs::write(root.join(path), *path).unwrap();
    }
    for (path, when) in stamps {
        run(Command::new("touch").args(["-d", when]).arg(root.join(path)));
    }
    let btrfs = mkfs(dir.path(), "times", &root);
    let dump = run(Command::new("btrfs")
        .args(["inspect-internal", "dump-tree", "-t", "5"])
        .arg(&btrfs));
    let dump = String::from_utf8_lossy(&dump.stdout);
    let v = osconf::disk::Volume::open(fs::File::open(&btrfs).unwrap(), 0).unwrap();
    for (path, when) in stamps {
        let want = fs::metadata(root.join(path)).unwrap().mtime();
        assert!(
            dump.contains(&format!("mtime {want}.")),
            "{path} ({when}): {want} not in dump-tree"
        );
        assert_eq!(v.metadata(path).unwrap().unwrap().mtime, Some(want), "{path}");
    }
}

/// Where the first extent of file `name` (in subvolume 5's tree) lies on the filesystem `btrfs`:
/// its logical byte as `btrfs inspect-internal dump-tree` shows it, and the physical byte of
/// `sector` bytes after that as `btrfs-map-logical` maps it.
fn data_at(btrfs: &Path, name: &str, sector: u64) -> (u64, u64) {
    let dump = run(Command::new("btrfs")
        .args(["inspect-internal", "dump-tree", "-t", "5"])
        .arg(btrfs));
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    let (mut referring, mut ino) = (None, None);
    let mut lines = dump.lines();
    while let Some(l) = lines.next() {
        let l = l.trim();
        if let Some(rest) = l.split("key (").nth(1) {
            let id = rest.split(' ').next().unwrap().to_owned();
            referring = rest.contains("INODE_REF").then(|| id.clone());
            if ino.as_deref() == Some(id.as_str()) && rest.contains("EXTENT_DATA 0)") {
                let disk = lines.find(|l| l.contains("extent data disk byte")).unwrap();
                let logical: u64 = disk.split_whitespace().nth(4).unwrap().parse().unwrap();
                let at = logical + sector;
                // It says the mapping, and exits 1 past a sector whose checksum fails.
                let map = Command::new("btrfs-map-logical")
                    .args(["-l", &at.to_string()])
                    .arg(btrfs)
                    .output()
                    .unwrap();
                let map = String::from_utf8_lossy(&map.stdout).into_owned();
                let physical = map.split("physical ").nth(1).unwrap().split(' ').next().unwrap();
                return (logical, physical.parse().unwrap());
            }
        } else if l.ends_with(&format!("name: {name}")) && referring.is_some() {
            ino = referring.take();
        }
    }
    panic!("no extent for {name} in {dump}")
}

/// What `btrfs check --check-data-csum` says of the filesystem `btrfs`, which must fail it.
fn check_data_csum(btrfs: &Path) -> String {
    let check = Command::new("btrfs")
        .args(["check", "--check-data-csum"])
        .arg(btrfs)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stderr).into_owned();
    assert!(!check.status.success(), "{said}");
    said
}

/// Flips one byte at `at` of the file `f`.
fn flip(f: &Path, at: u64) {
    use std::os::unix::fs::FileExt as _;
    let file = fs::OpenOptions::new().read(true).write(true).open(f).unwrap();
    let mut b = [0u8];
    file.read_exact_at(&mut b, at).unwrap();
    file.write_all_at(&[!b[0]], at).unwrap();
}

/// A data block whose bytes no longer match the checksum tree is damage naming the file and the
/// logical byte — where `btrfs check --check-data-csum` finds it too — and `image check` says
/// "image damaged" (exit 2); before, the reader handed the corrupt bytes on as the file's.
#[test]
fn a_data_block_that_fails_its_checksum_is_damage_naming_the_file() {
    let test = "a_data_block_that_fails_its_checksum_is_damage_naming_the_file";
    if !have_tools(test, &TOOLS) || !have_tools(test, &["btrfs", "btrfs-map-logical"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path(), "root", "openSUSE Tumbleweed");
    let users: String = (1..200)
        .map(|i| format!("user{i}:x:{i}:{i}::/home/user{i}:/bin/sh\n"))
        .collect();
    fs::write(
        root.join("etc/passwd"),
        format!("root:x:0:0:root:/root:/bin/sh\n{users}"),
    )
    .unwrap();
    let btrfs = mkfs(dir.path(), "csum", &root);
    // The second sector of `regular` (100 000 bytes, so a regular extent of 25 sectors).
    let (logical, physical) = data_at(&btrfs, "regular", 4096);
    flip(&btrfs, physical + 100);
    let said = check_data_csum(&btrfs);
    assert!(said.contains(&format!("bytenr {}", logical + 4096)), "{said}");

    let v = osconf::disk::Volume::open(fs::File::open(&btrfs).unwrap(), 0).unwrap();
    let e = v.read_file("regular").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
    let why = e.to_string();
    assert!(
        why.starts_with("regular: ")
            && why.ends_with(&format!(
                "the data at logical byte {} does not match its checksum",
                logical + 4096
            )),
        "{why}"
    );
    // The other files read as before; so does the link to os-release (inline: no data checksum).
    assert!(v.read_file("large").unwrap().unwrap() == fs::read(root.join("large")).unwrap());
    assert!(v.read_file("etc/os-release").unwrap().is_some());

    // In a root whose etc/passwd (a regular extent: past the inline bound) is damaged, image
    // check fails as "image damaged", naming it.
    let (_, physical) = data_at(&btrfs, "passwd", 0);
    flip(&btrfs, physical + 10);
    let img = disk(dir.path(), "csum", &btrfs);
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["image", "check"])
        .arg(&img)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("image damaged")
            && err.contains("etc/passwd: ")
            && err.contains("does not match its checksum"),
        "{err}"
    );
}

/// As root (a loop mount in a private namespace): a compressed extent's checksums cover its
/// compressed bytes — one flipped there is damage, as `btrfs check --check-data-csum` finds it —
/// and a `chattr +C` file (`NODATASUM`: no checksums) is read as it is, damage and all, as the
/// kernel reads it.
#[test]
fn compressed_extents_are_checked_and_nodatasum_files_are_not() {
    let test = "compressed_extents_are_checked_and_nodatasum_files_are_not";
    if !have_tools(test, &TOOLS) || !have_tools(test, &["btrfs", "btrfs-map-logical", "unshare", "chattr"]) {
        return;
    }
    if !as_root(test, "a loop mount in a private mount namespace") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path(), "src", "openSUSE Tumbleweed");
    let btrfs = dir.path().join("sums.btrfs");
    run(Command::new("truncate").args(["-s", "300M"]).arg(&btrfs));
    run(Command::new("mkfs.btrfs").arg("-q").arg(&btrfs));
    in_namespace(
        dir.path(),
        &btrfs,
        &format!(
            "S=\"{}\"; cat \"$S/text\" > \"$2/packed\"; touch \"$2/nocow\"; chattr +C \"$2/nocow\"; \
             cat \"$S/regular\" > \"$2/nocow\"; sync",
            root.display()
        ),
    );
    let dump = run(Command::new("btrfs")
        .args(["inspect-internal", "dump-tree", "-t", "5"])
        .arg(&btrfs));
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains("compression 3") && dump.contains("NODATASUM"),
        "{dump}"
    );
    let (packed, physical) = data_at(&btrfs, "packed", 0);
    flip(&btrfs, physical + 10);
    let (_, physical) = data_at(&btrfs, "nocow", 4096);
    flip(&btrfs, physical + 100);

    let said = check_data_csum(&btrfs);
    assert!(said.contains(&format!("bytenr {packed}")), "{said}");
    let v = osconf::disk::Volume::open(fs::File::open(&btrfs).unwrap(), 0).unwrap();
    let e = v.read_file("packed").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
    assert!(
        e.to_string().ends_with(&format!(
            "the data at logical byte {packed} does not match its checksum"
        )),
        "{e}"
    );
    let got = v.read_file("nocow").unwrap().unwrap();
    let want = fs::read(root.join("regular")).unwrap();
    let differ: Vec<usize> = (0..want.len()).filter(|&i| got[i] != want[i]).collect();
    assert_eq!(differ, [4096 + 100]);
}

/// `image check` holds the root's `/etc/fstab` entry for `/` to the subvolume it checked: the one
/// `subvol=` (a path, a leading `/` or not) or `subvolid=` names, else the default one. Another one
/// is a warning naming both — the image would boot a root other than the one checked.
#[test]
fn fstab_subvol_of_the_root_is_held_to_the_subvolume_checked() {
    let test = "fstab_subvol_of_the_root_is_held_to_the_subvolume_checked";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let top = "subvolume 5 (the top level)";
    let cases = [
        (
            "defaults",
            "pass",
            "the default subvolume (no subvol= option): subvolume 5 (the top level), the one checked",
        ),
        (
            "subvolid=5,compress=zstd:1",
            "pass",
            "subvolid=5: subvolume 5 (the top level), the one checked",
        ),
        (
            "defaults,subvol=@",
            "warn",
            "/etc/fstab mounts / from subvol=@, but the root checked is subvolume 5 (the top level)",
        ),
        (
            "subvolid=256",
            "warn",
            "from subvolid=256, but the root checked is subvolume 5 (the top level)",
        ),
    ];
    for (i, (options, verdict, says)) in cases.iter().enumerate() {
        let root = dir.path().join(format!("r{i}"));
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(
            root.join("etc/os-release"),
            "ID=opensuse-leap\nPRETTY_NAME=\"openSUSE Leap 15.6\"\n",
        )
        .unwrap();
        fs::write(
            root.join("etc/fstab"),
            format!("# comment / btrfs subvol=x 0 0\nUUID=1234 / btrfs {options} 0 0\nUUID=1234 /home btrfs subvol=@/home 0 0\n"),
        )
        .unwrap();
        let img = disk(
            dir.path(),
            &format!("fstab{i}"),
            &mkfs(dir.path(), &format!("fstab{i}"), &root),
        );
        let (_, checks) = check(&img);
        assert!(get(&checks, "root").1.contains(top), "{checks:?}");
        let (r, why) = get(&checks, "root-subvolume");
        assert_eq!((r, why.contains(says)), (*verdict, true), "{options}: {why}");
    }
    // No fstab entry for / (systemd finds the root itself): nothing to compare, no item.
    let root = dir.path().join("none");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/os-release"), "ID=fedora\n").unwrap();
    fs::write(root.join("etc/fstab"), "UUID=1 /boot ext4 defaults 0 0\n").unwrap();
    let img = disk(dir.path(), "none", &mkfs(dir.path(), "none", &root));
    let (_, checks) = check(&img);
    assert!(!checks.iter().any(|c| c.0 == "root-subvolume"), "{checks:?}");
}

/// Filesystems made with `mkfs.btrfs --csum xxhash|sha256` are read, their superblock, nodes and
/// data checked with that checksum (a data sector flipped is damage, as with CRC-32C); BLAKE2b,
/// which the reader does not compute, is refused by name — not damage. Before, every checksum
/// but CRC-32C was refused.
#[test]
fn xxhash_and_sha256_filesystems_are_read_and_checked_blake2_is_named() {
    let test = "xxhash_and_sha256_filesystems_are_read_and_checked_blake2_is_named";
    if !have_tools(test, &TOOLS) || !have_tools(test, &["btrfs", "btrfs-map-logical"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/os-release"), "ID=fedora\n").unwrap();
    fs::write(root.join("regular"), noise(100_000, 3)).unwrap();
    for csum in ["xxhash", "sha256", "blake2"] {
        let btrfs = dir.path().join(format!("{csum}.btrfs"));
        run(Command::new("truncate").args(["-s", "200M"]).arg(&btrfs));
        run(Command::new("mkfs.btrfs")
            .args(["-q", "--csum", csum, "-r"])
            .arg(&root)
            .arg(&btrfs));
        let opened = osconf::disk::Volume::open(fs::File::open(&btrfs).unwrap(), 0);
        if csum == "blake2" {
            let e = opened.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
            assert!(e.to_string().contains("checksum type 3 (BLAKE2b)"), "{e}");
            continue;
        }
        let v = opened.unwrap_or_else(|e| panic!("{csum}: {e}"));
        assert_eq!(v.read_file("etc/os-release").unwrap().unwrap(), b"ID=fedora\n");
        assert!(
            v.read_file("regular").unwrap().unwrap() == noise(100_000, 3),
            "{csum}"
        );
        let (logical, physical) = data_at(&btrfs, "regular", 8192);
        flip(&btrfs, physical);
        let v = osconf::disk::Volume::open(fs::File::open(&btrfs).unwrap(), 0).unwrap();
        let e = v.read_file("regular").unwrap_err();
        assert!(
            e.to_string().ends_with(&format!(
                "the data at logical byte {} does not match its checksum",
                logical + 8192
            )),
            "{csum}: {e}"
        );
    }
}
