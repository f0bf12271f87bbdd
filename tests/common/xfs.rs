//! XFS filesystems made by the real `mkfs.xfs` from a tree (its `-p` protofile, no mount), the tree
//! that exercises every directory form (shortform, block, leaf, node) and both link forms (inline,
//! remote), and the comparison of what `osconf::disk` reads with that tree.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt as _, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::real::run;
use osconf::disk::{FileType, ReadAt, Volume};

/// Entries of the directories made to be in block, leaf and node form (4 KiB directory blocks).
pub const FORMS: [(&str, usize); 4] = [("short", 3), ("block", 40), ("leaf", 300), ("node", 3000)];

/// A tree with an os-release, files of many sizes (one sparse, in 300 pieces), the directories of
/// [`FORMS`], and links: inline,
/// remote (a 600-byte target), absolute, climbing above the root, through a directory, a loop.
pub fn tree(dir: &Path) -> PathBuf {
    let src = dir.join("xfs-src");
    let big: Vec<u8> = (0..(3u32 << 20) + 77)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for (path, data) in [
        ("etc/os-release", &b"ID=test\nNAME=\"Test\"\n"[..]),
        ("empty", b""),
        ("small", b"hello\n"),
        ("big", &big),
        ("deep/a/b/c/d/file", b"deep\n"),
    ] {
        let p = src.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
    // Data every other 8 KiB: written sparse (cp --sparse=always), 300 extents, a btree fork.
    let frag = fs::File::create(src.join("fragmented")).unwrap();
    for i in 0..300u64 {
        std::os::unix::fs::FileExt::write_all_at(&frag, &[(i % 251 + 1) as u8; 4096], i * 8192).unwrap();
    }
    for (d, n) in FORMS {
        fs::create_dir(src.join(d)).unwrap();
        for i in 0..n {
            fs::write(
                src.join(format!("{d}/entry-with-a-longer-name-{i:05}")),
                format!("{i}\n"),
            )
            .unwrap();
        }
    }
    let long = format!("{}deep/a/b/c/d/file", "./".repeat(300));
    for (link, target) in [
        ("fast", "small"),
        ("remote", long.as_str()),
        ("abs", "/etc/os-release"),
        ("up", "../../../../etc/os-release"),
        ("dirlink", "deep/a"),
        ("loop1", "loop2"),
        ("loop2", "loop1"),
        ("dangling", "nowhere"),
    ] {
        symlink(target, src.join(link)).unwrap();
    }
    src
}

/// The protofile that makes `src` with `mkfs.xfs -p` (owners, modes, file contents, link targets
/// as in the tree; names may not hold blanks).
pub fn protofile(src: &Path) -> String {
    fn dir(d: &Path, out: &mut String) {
        let mut names: Vec<_> = fs::read_dir(d).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        for p in names {
            let m = fs::symlink_metadata(&p).unwrap();
            let name = p.file_name().unwrap().to_str().unwrap();
            assert!(!name.contains(char::is_whitespace), "{name}");
            let (kind, extra) = if m.is_dir() {
                ('d', String::new())
            } else if m.is_symlink() {
                ('l', fs::read_link(&p).unwrap().to_str().unwrap().to_owned())
            } else {
                ('-', p.to_str().unwrap().to_owned())
            };
            *out += &format!(
                "{name} {kind}--{:o} {} {} {extra}\n",
                m.mode() & 0o777,
                m.uid(),
                m.gid()
            );
            if m.is_dir() {
                dir(&p, out);
                *out += "$\n";
            }
        }
    }
    let mut out = String::from("/dev/null\n0 0\nd--755 0 0\n");
    dir(src, &mut out);
    out + "$\n"
}

/// `mkfs.xfs ARGS -p PROTO` of `src` into a new sparse file of `size` (XFS's smallest is 300 MiB).
pub fn mkfs(dir: &Path, name: &str, src: &Path, size: &str, args: &[&str]) -> PathBuf {
    let fs_file = dir.join(format!("{name}.xfs"));
    let proto = dir.join(format!("{name}.proto"));
    fs::write(&proto, protofile(src)).unwrap();
    run(Command::new("truncate").args(["-s", size]).arg(&fs_file));
    run(Command::new("mkfs.xfs")
        .args(["-q", "-f"])
        .args(args)
        .arg("-p")
        .arg(&proto)
        .arg(&fs_file));
    fs_file
}

/// The regular files of `src`, as paths from its root.
pub fn regular_files(src: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![src.to_owned()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                out.push(e.path().strip_prefix(src).unwrap().to_str().unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

fn kind(t: fs::FileType) -> FileType {
    if t.is_dir() {
        FileType::Dir
    } else if t.is_symlink() {
        FileType::Symlink
    } else if t.is_file() {
        FileType::File
    } else {
        FileType::Other
    }
}

/// Every file of `src` read back through `v` and equal; every directory listed as `src` lists it
/// (`lost+found` aside); links followed inside the filesystem as a chroot would. `remote`: whether
/// the remote link's blocks are right (xfsprogs 6.1's `mkfs -p` writes v5 ones without their
/// header, which `xfs_repair -n` reports as a CRC error).
pub fn check_tree<R: ReadAt>(v: &Volume<R>, src: &Path, what: &str, remote: bool) {
    for path in regular_files(src) {
        let want = fs::read(src.join(&path)).unwrap();
        let got = v
            .read_file(&path)
            .unwrap_or_else(|e| panic!("{what}: {path}: {e}"));
        assert!(
            got.as_deref() == Some(want.as_slice()),
            "{what}: {path} differs from the tree"
        );
        let meta = v.metadata(&path).unwrap().unwrap();
        assert_eq!(
            (meta.file_type, meta.size),
            (FileType::File, want.len() as u64),
            "{what}: {path}"
        );
    }
    let mut dirs = vec![PathBuf::new()];
    while let Some(d) = dirs.pop() {
        let theirs: BTreeSet<(String, FileType)> = fs::read_dir(src.join(&d))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    dirs.push(d.join(e.file_name()));
                }
                (e.file_name().into_string().unwrap(), kind(e.file_type().unwrap()))
            })
            .collect();
        let shown = format!("/{}", d.display());
        let ours: BTreeSet<(String, FileType)> = v
            .list_dir(&shown)
            .unwrap_or_else(|e| panic!("{what}: {shown}: {e}"))
            .unwrap()
            .into_iter()
            .filter(|e| !(e.name == "lost+found" && d.as_os_str().is_empty()))
            .map(|e| (e.name, e.file_type))
            .collect();
        assert!(
            ours == theirs,
            "{what}: {shown}: {} entries vs {}",
            ours.len(),
            theirs.len()
        );
    }
    let os_release = fs::read(src.join("etc/os-release")).unwrap();
    for link in ["abs", "up", "/etc/../up"] {
        let got = v
            .read_file(link)
            .unwrap_or_else(|e| panic!("{what}: {link}: {e}"));
        assert_eq!(got.as_deref(), Some(os_release.as_slice()), "{what}: {link}");
    }
    assert_eq!(v.read_file("fast").unwrap().unwrap(), b"hello\n", "{what}");
    if remote {
        assert_eq!(v.read_file("remote").unwrap().unwrap(), b"deep\n", "{what}");
        let target = fs::read_link(src.join("remote")).unwrap();
        assert_eq!(
            v.read_link("remote").unwrap().unwrap(),
            target.to_str().unwrap().as_bytes(),
            "{what}"
        );
    } else {
        let err = v.read_link("remote").unwrap_err();
        assert!(err.to_string().contains("no link block magic"), "{what}: {err}");
    }
    assert_eq!(
        v.read_file("dirlink/b/c/d/file").unwrap().unwrap(),
        b"deep\n",
        "{what}"
    );
    assert_eq!(
        v.symlink_metadata("fast").unwrap().unwrap().file_type,
        FileType::Symlink
    );
    assert_eq!(v.read_file("dangling").unwrap(), None, "{what}");
    assert_eq!(v.read_file("nothing/here").unwrap(), None, "{what}");
    let err = v.read_file("loop1").unwrap_err();
    assert!(err.to_string().contains("more than 40 links"), "{what}: {err}");
    assert!(v.read_file("etc").is_err(), "{what}: a directory is not a file");
    assert!(v.read_file("small/x").is_err(), "{what}: through a file");
}
