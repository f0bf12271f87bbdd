//! The same cases for both resolvers: what the kernel's `RESOLVE_IN_ROOT` does, the walk must do.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, symlink};
use std::path::{Path, PathBuf};

use super::*;
use crate::error::Error;

/// A scratch dir with `outside/` (must never be reached) and `root/` holding planted links.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    for d in [root.join("etc/sub"), root.join("real"), outside.clone()] {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(outside.join("secret"), "outside\n").unwrap();
    fs::write(root.join("real/secret"), "inside\n").unwrap();
    fs::write(root.join("etc/hosts"), "hosts\n").unwrap();
    // An absolute link to the host's file: inside the root that path does not exist.
    symlink(outside.join("secret"), root.join("etc/abs")).unwrap();
    // Climbing above the root stops at the root: this is <root>/real/secret.
    symlink("../../../../real/secret", root.join("etc/sub/climb")).unwrap();
    symlink("/real/secret", root.join("etc/rooted")).unwrap();
    // A directory on the way that points out of the root.
    symlink(&outside, root.join("etc/dirlink")).unwrap();
    symlink("/real", root.join("etc/realdir")).unwrap();
    symlink("loop2", root.join("etc/loop1")).unwrap();
    symlink("loop1", root.join("etc/loop2")).unwrap();
    symlink("/dev/zero", root.join("etc/zero")).unwrap();
    symlink("/nowhere", root.join("etc/dangling")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("etc/fifo"),
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    Tree {
        _dir: dir,
        root,
        outside,
    }
}

/// The kernel's resolver and the walk. Only under qemu-user (`scripts/cargo-aarch64` runs the tests
/// there with `OSCONF_QEMU_USER` set), which implements no `openat2` (ENOSYS), is the kernel's left
/// out, loudly; anywhere else a missing `openat2` fails the test.
fn both(t: &Tree) -> Vec<Root> {
    let mut resolvers = vec![Resolver::Kernel, Resolver::Walk];
    let probe = || {
        rustix::fs::openat2(
            rustix::fs::CWD,
            ".",
            OFlags::PATH,
            Mode::empty(),
            ResolveFlags::IN_ROOT,
        )
    };
    if let Some(qemu) = std::env::var_os("OSCONF_QEMU_USER")
        && probe().err() == Some(Errno::NOSYS)
    {
        let test = std::thread::current().name().unwrap_or("?").to_owned();
        // Straight to the process's stderr: the harness captures `eprintln!` of passing tests.
        let _ = writeln!(
            io::stderr().lock(),
            "\n*** SKIPPED {test} with Resolver::Kernel: qemu-user ({}) has no openat2; the walk is tested ***\n",
            qemu.to_string_lossy()
        );
        resolvers.retain(|r| *r != Resolver::Kernel);
    }
    resolvers
        .into_iter()
        .map(|r| Root::open_with(&t.root, Some(r)).unwrap())
        .collect()
}

fn text(root: &Root, path: &str) -> Result<Option<String>, Error> {
    root.read(path)
        .map(|b| b.map(|b| String::from_utf8(b).unwrap()))
        .map_err(Error::from)
}

#[test]
fn links_resolve_inside_the_root() {
    let t = tree();
    for root in both(&t) {
        let r = root.resolver();
        assert_eq!(text(&root, "/etc/hosts"), Ok(Some("hosts\n".into())), "{r:?}");
        assert_eq!(text(&root, "/etc/abs"), Ok(None), "{r:?}");
        assert_eq!(
            text(&root, "/etc/sub/climb"),
            Ok(Some("inside\n".into())),
            "{r:?}"
        );
        assert_eq!(text(&root, "/etc/rooted"), Ok(Some("inside\n".into())), "{r:?}");
        assert_eq!(
            text(&root, "/../../etc/hosts"),
            Ok(Some("hosts\n".into())),
            "{r:?}"
        );
        assert_eq!(text(&root, "/etc/dirlink/secret"), Ok(None), "{r:?}");
        assert_eq!(
            text(&root, "/etc/realdir/secret"),
            Ok(Some("inside\n".into())),
            "{r:?}"
        );
        assert_eq!(
            text(&root, "/etc/realdir/../etc/hosts"),
            Ok(Some("hosts\n".into())),
            "{r:?}"
        );
        assert_eq!(text(&root, "/etc/zero"), Ok(None), "{r:?}");
        assert_eq!(text(&root, "/etc/dangling"), Ok(None), "{r:?}");
        assert_eq!(text(&root, "/etc/missing"), Ok(None), "{r:?}");
    }
}

#[test]
fn what_is_not_a_regular_file_is_an_error_not_absent() {
    let t = tree();
    fs::write(t.root.join("etc/big"), vec![b'x'; MAX_READ as usize + 1]).unwrap();
    for root in both(&t) {
        let r = root.resolver();
        let err = |p| text(&root, p).unwrap_err().to_string();
        assert!(
            err("/etc/loop1").contains("symbolic links"),
            "{r:?}: {}",
            err("/etc/loop1")
        );
        assert!(err("/etc/fifo").contains("FIFO"), "{r:?}");
        assert!(err("/etc").contains("directory"), "{r:?}");
        assert!(err("/etc/big").contains("larger than 4 MiB"), "{r:?}");
        assert!(err("/etc/hosts/x").contains("Not a directory"), "{r:?}");
        let e = root.read("/etc/fifo").unwrap_err();
        assert_eq!(e.path, t.root.join("etc/fifo"));
    }
}

#[test]
fn entries_links_lists_and_dirs() {
    let t = tree();
    for root in both(&t) {
        let r = root.resolver();
        assert_eq!(
            root.read_link("/etc/rooted").unwrap(),
            Some(PathBuf::from("/real/secret")),
            "{r:?}"
        );
        assert_eq!(root.read_link("/etc/hosts").unwrap(), None, "{r:?}");
        assert_eq!(root.read_link("/etc/none").unwrap(), None, "{r:?}");
        let is_dir = |p: &str| {
            let st = crate::system::Files::stat(&root, p, true).unwrap();
            st.is_some_and(|st| st.kind == crate::system::Kind::Dir)
        };
        assert!(is_dir("/etc/realdir"), "{r:?}");
        assert!(!is_dir("/etc/dirlink"), "{r:?}");
        assert!(!is_dir("/etc/hosts"), "{r:?}");
        let mut names = root.list("/etc/realdir").unwrap();
        names.sort();
        assert_eq!(names, ["secret"], "{r:?}");
        assert!(root.list("/etc/dirlink").unwrap().is_empty(), "{r:?}");
        assert!(root.lstat("/etc/dangling").unwrap().is_some(), "{r:?}");
        assert!(root.lstat("/etc/dirlink/secret").unwrap().is_none(), "{r:?}");
        // An entry through a link out of the root lands inside: creating there stays in the root.
        assert_eq!(
            root.entry("/etc/dirlink/new").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let mirror = t.root.join(t.outside.strip_prefix("/").unwrap());
        fs::create_dir_all(&mirror).unwrap();
        let entry = root.entry("/etc/dirlink/new").unwrap();
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL;
        drop(rustix::fs::openat(&entry.dir, &entry.name, flags, Mode::from_raw_mode(0o600)).unwrap());
        assert!(
            mirror.join("new").exists() && !t.outside.join("new").exists(),
            "{r:?}"
        );
        fs::remove_dir_all(
            t.root
                .join(t.outside.strip_prefix("/").unwrap().iter().next().unwrap()),
        )
        .unwrap();
        let entry = root.entry("/etc/realdir/secret").unwrap();
        let st = rustix::fs::statat(&entry.dir, &entry.name, rustix::fs::AtFlags::empty()).unwrap();
        assert_eq!(st.st_ino, fs::metadata(t.root.join("real/secret")).unwrap().ino());
        assert!(
            root.entry("/").is_err() && root.entry("/etc/..").is_err(),
            "{r:?}"
        );
    }
    assert_eq!(fs::read_dir(&t.outside).unwrap().count(), 1);
}

#[test]
fn conf_file_refuses_links_at_the_file_and_its_directory() {
    let t = tree();
    let root = Root::open(&t.root).unwrap();
    let dir = t.root.join("boot/aliyun_custom_image");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("os.conf"), "hostname=a\n").unwrap();
    let found = ConfFile::find(&root, "boot/aliyun_custom_image", "os.conf")
        .unwrap()
        .unwrap();
    assert_eq!(found.path, dir.join("os.conf"));
    assert!(
        ConfFile::find(&root, "aliyun_custom_image", "os.conf")
            .unwrap()
            .is_none()
    );

    fs::remove_file(dir.join("os.conf")).unwrap();
    symlink(t.outside.join("secret"), dir.join("os.conf")).unwrap();
    let err = ConfFile::find(&root, "boot/aliyun_custom_image", "os.conf").unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    let err = ConfFile::at(&dir.join("os.conf")).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");

    symlink(&dir, t.root.join("aliyun_custom_image")).unwrap();
    let err = ConfFile::find(&root, "aliyun_custom_image", "os.conf").unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    let err = ConfFile::at(&t.root.join("aliyun_custom_image/os.conf")).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(
        ConfFile::at(Path::new("/nonexistent-dir/os.conf"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn directories_made_and_removed_stay_inside() {
    let t = tree();
    for root in both(&t) {
        let r = root.resolver();
        // Through `etc/dirlink` (a link out of the root): made inside, at the path it names.
        assert!(root.dir("/etc/dirlink/a", false).unwrap().is_none(), "{r:?}");
        let mirror = t.root.join(t.outside.strip_prefix("/").unwrap());
        assert!(
            root.dir("/etc/dirlink/a/b", true).is_err(),
            "{r:?}: a dangling link on the way"
        );
        fs::create_dir_all(&mirror).unwrap();
        assert!(root.dir("/etc/dirlink/a/b", true).unwrap().is_some(), "{r:?}");
        assert!(
            mirror.join("a/b").is_dir() && !t.outside.join("a").exists(),
            "{r:?}"
        );
        assert!(
            !root.remove_empty_dir("/etc/dirlink/a").unwrap(),
            "{r:?}: not empty"
        );
        assert!(root.remove_empty_dir("/etc/dirlink/a/b").unwrap(), "{r:?}");
        assert!(root.remove_empty_dir("/etc/dirlink/a").unwrap(), "{r:?}");
        assert!(
            !root.remove_empty_dir("/etc/dirlink/a").unwrap(),
            "{r:?}: gone already"
        );
        // A link itself is not removed, nor what it points at.
        assert!(root.remove_empty_dir("/etc/realdir").is_err(), "{r:?}");
        let sub = root.subdir("/etc/realdir").unwrap();
        assert_eq!(text(&sub, "/secret"), Ok(Some("inside\n".into())), "{r:?}");
        assert_eq!(text(&sub, "/../../secret"), Ok(Some("inside\n".into())), "{r:?}");
        assert_eq!(
            text(&sub, "/../etc/hosts"),
            Ok(None),
            "{r:?}: below the subdir only"
        );
        fs::remove_dir_all(
            t.root
                .join(t.outside.strip_prefix("/").unwrap().iter().next().unwrap()),
        )
        .unwrap();
    }
    assert_eq!(fs::read_dir(&t.outside).unwrap().count(), 1);
}
