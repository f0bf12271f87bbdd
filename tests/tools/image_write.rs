//! `osconf image inject` with the real binary on sparse images made by the real tools (sfdisk,
//! mkfs.vfat, mkfs.ext4 -d): FAT32 and ext4 partition 1, MBR and GPT, one-partition and /boot+root
//! layouts. What it wrote is read back with mtools and debugfs (and osconf's own reader); an
//! invalid os.conf, a partition 1 that cannot take it, and an interrupted earlier write are each
//! checked to leave the image exactly as it was (or as it was before the interruption).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::images::{Part, build};
use crate::common::real::{have_tools, run};

const TOOLS: [&str; 7] = [
    "sfdisk",
    "mkfs.vfat",
    "mkfs.ext4",
    "mcopy",
    "mtype",
    "debugfs",
    "truncate",
];

pub(crate) fn osconf(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(args)
        .output()
        .unwrap()
}

/// The stdout of a run that must succeed.
fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Partition bytes `[offset, offset + mib MiB)` of `img` as a file of their own.
fn extract(img: &Path, offset: u64, mib: u64, to: &Path) {
    run(Command::new("dd")
        .arg(format!("if={}", img.display()))
        .arg(format!("of={}", to.display()))
        .arg(format!("skip={}", offset >> 20))
        .arg(format!("count={mib}"))
        .args(["bs=1M", "status=none"]));
}

fn inject(img: &Path, conf: &Path) -> Output {
    osconf(&[
        "image".as_ref(),
        "inject".as_ref(),
        img.as_os_str(),
        conf.as_os_str(),
    ])
}

/// os.conf inside partition 1 at `offset`, as mtools (FAT) or debugfs (ext) read it.
fn read_back(img: &Path, offset: u64, fat: bool) -> Vec<u8> {
    if fat {
        let at = format!("{}@@{offset}", img.display());
        return run(Command::new("mtype").args(["-i", &at, "::/aliyun_custom_image/os.conf"])).stdout;
    }
    let at = format!("{}?offset={offset}", img.display());
    run(Command::new("debugfs").args(["-R", "cat /aliyun_custom_image/os.conf", &at])).stdout
}

/// A root tree as mkfs.ext4 -d takes it.
fn root_tree(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("boot")).unwrap();
    fs::write(root.join("etc/os-release"), "ID=debian\nVERSION_ID=12\n").unwrap();
    root
}

#[test]
fn inject_writes_os_conf_into_partition_1_as_the_tools_read_it() {
    let test = "inject_writes_os_conf_into_partition_1_as_the_tools_read_it";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = root_tree(dir.path());
    let vpc = crate::common::repo().join("examples/vpc/os.conf");
    let classic = crate::common::repo().join("examples/classic/os.conf");
    let fat32: &[&str] = &["mkfs.vfat", "-F", "32"];
    let ext4: &[&str] = &["mkfs.ext4", "-q", "-F", "-O", "^64bit"];
    let part = Part::new;
    let boot_root = |boot| vec![part(40, boot, None), part(32, ext4, Some(tree.as_path()))];
    let layouts: Vec<(&str, &str, Vec<Part>, bool)> = vec![
        ("fat-boot-mbr", "dos", boot_root(fat32), true),
        ("fat-boot-gpt", "gpt", boot_root(fat32), true),
        ("ext-boot-gpt", "gpt", boot_root(ext4), false),
        (
            "ext-one-mbr",
            "dos",
            vec![part(48, ext4, Some(tree.as_path()))],
            false,
        ),
    ];
    for (name, label, parts, fat) in &layouts {
        let (img, offsets) = build(dir.path(), name, label, parts);
        let before_root = fs::read(&img).unwrap()[offsets.last().copied().unwrap() as usize..].to_vec();
        let said = ok(inject(&img, &vpc), name);
        assert!(
            said.contains("wrote aliyun_custom_image/os.conf"),
            "{name}: {said}"
        );
        assert_eq!(
            read_back(&img, offsets[0], *fat),
            fs::read(&vpc).unwrap(),
            "{name}"
        );
        // osconf's own reader agrees, and ext got a root-only os.conf.
        let image = osconf::disk::Image::open(&img).unwrap();
        let p1 = image.partition(1).unwrap();
        assert_eq!(
            p1.read_file("aliyun_custom_image/os.conf").unwrap().unwrap(),
            fs::read(&vpc).unwrap()
        );
        if !fat {
            let meta = p1.metadata("aliyun_custom_image/os.conf").unwrap().unwrap();
            assert_eq!((meta.mode, meta.uid), (0o600, 0), "{name}");
        }
        if parts.len() > 1 {
            let after_root = fs::read(&img).unwrap()[offsets[1] as usize..].to_vec();
            assert!(before_root == after_root, "{name}: partition 2 changed");
        }
        // Again with another os.conf: replaced, as ECS replaces it after a change.
        assert!(inject(&img, &classic).status.success(), "{name}");
        assert_eq!(
            read_back(&img, offsets[0], *fat),
            fs::read(&classic).unwrap(),
            "{name}"
        );
        // The image stays sparse: a few blocks were written, not the partition.
        let used = fs::metadata(&img)
            .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
            .unwrap();
        assert!(used < 24 << 20, "{name}: {used} bytes allocated");
        assert!(!dir.path().join(format!("{name}.img.osconf-undo")).exists());
    }
}

#[test]
fn inject_changes_nothing_when_it_cannot_write() {
    let test = "inject_changes_nothing_when_it_cannot_write";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vpc = crate::common::repo().join("examples/vpc/os.conf");
    let fat32: &[&str] = &["mkfs.vfat", "-F", "32"];
    let (img, offsets) = build(dir.path(), "fat", "dos", &[Part::new(40, fat32, None)]);
    let pristine = fs::read(&img).unwrap();

    // An invalid os.conf: exit 2, every error named, the image untouched.
    let bad = dir.path().join("bad.conf");
    fs::write(&bad, "hostname=ok\neth0_ip_addr=10.0.0.300\nfrobnicate=1\n").unwrap();
    let out = inject(&img, &bad);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("eth0_ip_addr"), "{err}");
    assert!(
        fs::read(&img).unwrap() == pristine,
        "an invalid os.conf changed the image"
    );

    // os.conf is read once, as apply reads it: a FIFO is refused without hanging (`timeout` ends a
    // run that blocks on it), a file past reader::MAX_SIZE too; exit 2, the image untouched.
    let fifo = dir.path().join("fifo.conf");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let big = dir.path().join("big.conf");
    fs::write(&big, format!("hostname=ok\n{}", "#".repeat(64 * 1024))).unwrap();
    for (conf, why) in [(&fifo, "not a regular file"), (&big, "larger than 65536 bytes")] {
        let out = Command::new("timeout")
            .arg("20")
            .args([env!("CARGO_BIN_EXE_osconf"), "image", "inject"])
            .args([&img, conf])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{why}: {err}");
        assert!(err.contains(why), "{err}");
        assert!(fs::read(&img).unwrap() == pristine, "{why}: the image changed");
    }

    // aliyun_custom_image is a file on partition 1: refused, exit 1, untouched.
    let file = dir.path().join("aliyun_custom_image");
    fs::write(&file, "x").unwrap();
    let at = format!("{}@@{}", img.display(), offsets[0]);
    run(Command::new("mcopy")
        .args(["-i", &at])
        .arg(&file)
        .arg("::/aliyun_custom_image"));
    let pristine = fs::read(&img).unwrap();
    let out = inject(&img, &vpc);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a directory") && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(
        fs::read(&img).unwrap() == pristine,
        "a refused inject changed the image"
    );

    // Not an image, a qcow2 header of a version that does not exist, a missing OS_CONF operand.
    let junk = dir.path().join("junk.img");
    fs::write(&junk, vec![0u8; 1 << 20]).unwrap();
    assert_eq!(inject(&junk, &vpc).status.code(), Some(2));
    let mut qcow = b"QFI\xfb".to_vec();
    qcow.resize(4096, 0);
    fs::write(&junk, qcow).unwrap();
    let out = inject(&junk, &vpc);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a qcow2 image with version 0"));
    let out = osconf(&["image".as_ref(), "inject".as_ref(), img.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs OS_CONF"));
    let out = osconf(&[
        "image".as_ref(),
        "check".as_ref(),
        img.as_os_str(),
        vpc.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_interrupted_write_is_put_back_by_the_next_inject() {
    let test = "an_interrupted_write_is_put_back_by_the_next_inject";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vpc = crate::common::repo().join("examples/vpc/os.conf");
    let ext4: &[&str] = &["mkfs.ext4", "-q", "-F", "-O", "^64bit"];
    let (img, offsets) = build(dir.path(), "ext", "gpt", &[Part::new(16, ext4, None)]);
    let pristine = fs::read(&img).unwrap();
    // As a crash would leave it: the undo file flushed (old bytes of the superblock's page), and
    // that page overwritten with garbage.
    let at = offsets[0];
    let old = &pristine[at as usize..at as usize + 4096];
    let mut undo = b"osconf-undo 2\n".to_vec();
    undo.extend(1u64.to_le_bytes());
    undo.extend(at.to_le_bytes());
    undo.extend((16u64 << 20).to_le_bytes());
    undo.extend(at.to_le_bytes());
    undo.extend(4096u64.to_le_bytes());
    undo.extend(old);
    undo.extend(b"end\n");
    let undo_path = dir.path().join("ext.img.osconf-undo");
    fs::write(&undo_path, &undo).unwrap();
    let mut damaged = pristine.clone();
    damaged[at as usize..at as usize + 4096].fill(0xAA);
    fs::write(&img, &damaged).unwrap();

    let out = inject(&img, &vpc);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("put back 4096 bytes an interrupted osconf image write had changed"),
        "{said}"
    );
    assert!(!undo_path.exists());
    assert_eq!(read_back(&img, at, false), fs::read(&vpc).unwrap());
    // Only the injected file differs from the pristine image: e2fsck finds the filesystem clean.
    let part = dir.path().join("p1");
    extract(&img, at, 16, &part);
    let fsck = Command::new("e2fsck").args(["-fn"]).arg(&part).output().unwrap();
    assert_eq!(
        fsck.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );

    // An undo file cut short: the image had not been touched; it is only removed.
    fs::write(&undo_path, &undo[..100]).unwrap();
    let out = inject(&img, &vpc);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("had not touched the image yet"));
    assert!(!undo_path.exists());
}

/// A root tree whose init system install detects: systemd (merged /usr: `sbin -> usr/sbin`) or
/// sysvinit (Debian's rcS.d).
pub(crate) fn init_tree(dir: &Path, name: &str, init: &str) -> PathBuf {
    let root = dir.join(name);
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/os-release"), "ID=debian\nVERSION_ID=12\n").unwrap();
    fs::write(root.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
    if init == "systemd" {
        for d in [
            "usr/sbin",
            "usr/lib/systemd",
            "etc/systemd/system/multi-user.target.wants",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("usr/lib/systemd/systemd"), "ELF").unwrap();
        std::os::unix::fs::symlink("usr/sbin", root.join("sbin")).unwrap();
        std::os::unix::fs::symlink("/usr/lib/systemd/systemd", root.join("usr/sbin/init")).unwrap();
    } else {
        for d in ["sbin", "etc/init.d", "etc/rcS.d"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("sbin/init"), "ELF").unwrap();
        fs::write(
            root.join("etc/inittab"),
            "id:2:initdefault:\nsi::sysinit:/etc/init.d/rcS\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("../init.d/networking", root.join("etc/rcS.d/S07networking")).unwrap();
        fs::write(root.join("etc/init.d/networking"), "#!/bin/sh\n").unwrap();
    }
    root
}

/// The files `osconf install --root` writes into a copy of `tree` (with partition 1 at
/// `boot_dir`, or in the root), as (path, bytes) — what prepare must have put into the image.
fn installed_by_install(dir: &Path, tree: &Path, one_partition: bool) -> Vec<(String, Vec<u8>)> {
    let copy = dir.join(format!(
        "{}-installed",
        tree.file_name().unwrap().to_string_lossy()
    ));
    run(Command::new("cp").arg("-a").arg(tree).arg(&copy));
    let boot = dir.join("install-boot");
    let _ = fs::create_dir(&boot);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_osconf"));
    cmd.args(["install", "--root"]).arg(&copy).arg("--boot-dir");
    cmd.arg(if one_partition { copy.clone() } else { boot });
    run(&mut cmd);
    let manifest = fs::read_to_string(copy.join("var/lib/osconf/installed")).unwrap();
    let mut files = vec![(
        "var/lib/osconf/installed".to_owned(),
        manifest.clone().into_bytes(),
    )];
    for line in manifest.lines() {
        let Some(path) = line.strip_prefix("new ").or_else(|| line.strip_prefix("edited ")) else {
            continue;
        };
        let p = copy.join(path.trim_start_matches('/'));
        if p.symlink_metadata().unwrap().is_file() {
            files.push((path.trim_start_matches('/').to_owned(), fs::read(p).unwrap()));
        }
    }
    files
}

#[test]
fn prepare_installs_what_osconf_install_writes_and_check_then_passes_the_agent() {
    let test = "prepare_installs_what_osconf_install_writes_and_check_then_passes_the_agent";
    if !have_tools(test, &TOOLS) || !have_tools(test, &["e2fsck", "mdir", "cp", "cmp"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fat32: &[&str] = &["mkfs.vfat", "-F", "32"];
    let ext4: &[&str] = &["mkfs.ext4", "-q", "-F", "-O", "^64bit"];
    for (name, label, init, boot) in [
        ("systemd-fat-gpt", "gpt", "systemd", Some(fat32)),
        ("sysv-fat-mbr", "dos", "sysv", Some(fat32)),
        ("systemd-ext-mbr", "dos", "systemd", Some(ext4)),
        ("sysv-one-gpt", "gpt", "sysv", None),
    ] {
        let tree = init_tree(dir.path(), name, init);
        let parts = match boot {
            Some(mkfs) => vec![Part::new(40, mkfs, None), Part::new(128, ext4, Some(&tree))],
            None => vec![Part::new(128, ext4, Some(&tree))],
        };
        let (img, offsets) = build(dir.path(), name, label, &parts);
        let said = ok(
            osconf(&["image".as_ref(), "prepare".as_ref(), img.as_os_str()]),
            name,
        );
        assert!(
            said.contains(&format!("installed osconf for {init}")),
            "{name}: {said}"
        );

        // Each file osconf install writes is in the root partition, byte for byte (debugfs).
        let root_at = format!("{}?offset={}", img.display(), offsets.last().unwrap());
        for (path, want) in installed_by_install(dir.path(), &tree, boot.is_none()) {
            let got = run(Command::new("debugfs").args(["-R", &format!("cat /{path}"), &root_at])).stdout;
            assert!(
                got == want,
                "{name}: /{path} differs from what osconf install writes"
            );
        }
        // The agent, not the toolkit (osconf-image) that ran prepare.
        let agent = run(Command::new("debugfs").args(["-R", "cat /usr/sbin/osconf", &root_at])).stdout;
        assert!(
            agent == fs::read(env!("CARGO_BIN_EXE_osconf")).unwrap(),
            "{name}: /usr/sbin/osconf is not the agent"
        );
        let stat = run(Command::new("debugfs").args(["-R", "stat /usr/sbin/osconf", &root_at])).stdout;
        assert!(String::from_utf8_lossy(&stat).contains("Mode:  0755"), "{name}");
        // The filesystems are consistent after the edits.
        for (i, offset) in offsets.iter().enumerate() {
            let (fat, mib) = (boot == Some(fat32) && i == 0, parts[i].mib);
            let p = dir.path().join("part");
            extract(&img, *offset, mib, &p);
            if fat {
                run(Command::new("mdir")
                    .args(["-i"])
                    .arg(&p)
                    .arg("::/aliyun_custom_image"));
            } else {
                let fsck = Command::new("e2fsck").arg("-fn").arg(&p).output().unwrap();
                assert_eq!(
                    fsck.status.code(),
                    Some(0),
                    "{name} p{}: {}",
                    i + 1,
                    String::from_utf8_lossy(&fsck.stdout)
                );
            }
            fs::remove_file(p).unwrap();
        }
        // image check: the agent and the custom directory pass now.
        run(Command::new("truncate").args(["-s", "6G"]).arg(&img));
        let check = osconf(&[
            "image".as_ref(),
            "check".as_ref(),
            "--json".as_ref(),
            img.as_os_str(),
        ]);
        let checks = crate::common::images::checks_of(&check.stdout);
        let get = |k: &str| {
            checks
                .iter()
                .find(|c| c.0 == k)
                .unwrap_or_else(|| panic!("{name}: {k}: {checks:?}"))
        };
        assert_eq!(get("agent").1, "pass", "{name}: {checks:?}");
        assert!(
            get("agent")
                .2
                .starts_with(&format!("osconf, installed and enabled for {init}")),
            "{name}: {checks:?}"
        );
        assert_eq!(get("custom-dir").1, "pass", "{name}: {checks:?}");
        assert_eq!(check.status.code(), Some(0), "{name}: {checks:?}");

        // Again: nothing left to do, the image stays as it is. Compared with a sparse copy by cmp:
        // read into memory, the 6 GiB image took 12 GiB and the OOM killer ended the test binary.
        let before = dir.path().join("before.img");
        run(Command::new("cp").arg("--sparse=always").arg(&img).arg(&before));
        let again = osconf(&["image".as_ref(), "prepare".as_ref(), img.as_os_str()]);
        assert!(
            again.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        let same = Command::new("cmp")
            .arg("-s")
            .arg(&img)
            .arg(&before)
            .status()
            .unwrap();
        assert!(same.success(), "{name}: a second prepare changed the image");
        fs::remove_file(&img).unwrap();
        fs::remove_file(&before).unwrap();
    }
}

#[test]
fn prepare_refuses_images_it_cannot_write_unchanged() {
    let test = "prepare_refuses_images_it_cannot_write_unchanged";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fat32: &[&str] = &["mkfs.vfat", "-F", "32"];
    let luks: &[&str] = &[
        "sh",
        "-c",
        "printf 'LUKS\\272\\276' | dd of=\"$0\" conv=notrunc status=none",
    ];
    for (name, parts, says) in [
        (
            "no-root",
            vec![Part::new(40, fat32, None)],
            "no partition holds etc/os-release",
        ),
        (
            "luks-root",
            vec![Part::new(40, fat32, None), Part::new(8, luks, None)],
            "encrypted root: partition 2",
        ),
    ] {
        let (img, _) = build(dir.path(), name, "gpt", &parts);
        let before = fs::read(&img).unwrap();
        let out = osconf(&["image".as_ref(), "prepare".as_ref(), img.as_os_str()]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(says) && err.contains("nothing was changed"),
            "{name}: {err}"
        );
        assert!(fs::read(&img).unwrap() == before, "{name}");
    }
}
