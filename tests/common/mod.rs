//! Helpers shared by the integration tests: copying trees and describing them as text.
#![allow(dead_code)]

pub mod debs;
pub mod guestfs;
pub mod hooks;
pub mod images;
pub mod journal;
pub mod real;
pub mod scratch;
pub mod xfs;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository, where the examples are.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The text of `examples/<name>/os.conf` (`vpc`, `classic`).
pub fn example_conf(name: &str) -> String {
    fs::read_to_string(repo().join("examples").join(name).join("os.conf")).unwrap()
}

/// A scratch copy of `examples/rootfs/<rootfs>` at `<scratch>/root`.
pub fn example_root(scratch: &Path, rootfs: &str) -> PathBuf {
    let root = scratch.join("root");
    copy_tree(&repo().join("examples/rootfs").join(rootfs), &root).unwrap();
    root
}

/// Puts the os.conf text `conf` where the finder looks under a root
/// (`<root>/boot/aliyun_custom_image/os.conf`); returns its path.
pub fn place_conf(root: &Path, conf: &str) -> PathBuf {
    let path = root.join("boot/aliyun_custom_image/os.conf");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, conf).unwrap();
    path
}

/// The classic network with eth1's gateway outside its /25: the default route needs to be on-link.
pub const CLASSIC_ON_LINK: &str = "hostname=iZ23r29djmjZ
eth0_ip_addr=10.171.254.123
eth0_mac_addr=00:8c:fa:5e:14:23
eth0_netmask=255.255.255.0
eth0_gateway=10.171.254.1
eth0_route=\"10.0.0.0/8 10.171.254.1;172.16.0.0/12 10.171.254.1\"
eth1_ip_addr=42.120.74.205
eth1_mac_addr=00:8c:fa:5e:14:24
eth1_netmask=255.255.255.128
eth1_gateway=42.120.74.1
eth1_route=\"0.0.0.0/0 42.120.74.1\"
dns_nameserver=\"7.7.7.7 8.8.8.8\"
";

/// The real binary run with `args`, then `--root root`; its output whatever the status.
pub fn osconf_in(args: &[&str], root: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(args)
        .arg("--root")
        .arg(root)
        .output()
        .unwrap()
}

/// `osconf apply --no-live` of the os.conf text `conf` to `root` with the real binary. The text is
/// written beside `root` first, since apply deletes its --config file.
pub fn osconf_apply(root: &Path, conf: &str) {
    let file = root.with_extension("os.conf");
    fs::write(&file, conf).unwrap();
    real::run(
        Command::new(env!("CARGO_BIN_EXE_osconf"))
            .args(["apply", "--no-live", "--root"])
            .arg(root)
            .arg("--config")
            .arg(&file),
    );
}

pub use osconf::harness::copy_tree;

/// A tree as text: every file with its content, every link with its target, sorted by path.
/// Comparing two snapshots compares the trees byte for byte, and a diff of them reads well.
pub fn snapshot(root: &Path) -> String {
    entries(root)
        .into_iter()
        .map(|(rel, body)| format!("== {rel}{body}"))
        .collect()
}

/// Every entry of a tree by relative path: ` -> target` for a link, `/` for a directory, a newline
/// and the content for a file.
pub fn entries(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            let target = fs::read_link(&path).unwrap();
            out.insert(rel, format!(" -> {}\n", target.display()));
        } else if kind.is_dir() {
            out.insert(format!("{rel}/"), "\n".to_owned());
            walk(root, &path, out);
        } else {
            let bytes = fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            let end = if text.ends_with('\n') || text.is_empty() {
                ""
            } else {
                "\n\\ no newline at end\n"
            };
            out.insert(rel, format!("\n{text}{end}"));
        }
    }
}

/// Like [`snapshot`] but exact for any bytes and with the metadata a rollback must also restore:
/// kind, permission bits, owner and extended attributes of every entry (directories included).
/// FIFOs and devices are named with their device numbers, never opened.
pub fn fingerprint(root: &Path) -> String {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            let md = path.symlink_metadata().unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let head = format!("== {rel} {:o} {}:{}", md.mode(), md.uid(), md.gid());
            let body = if md.file_type().is_symlink() {
                format!(" -> {}", fs::read_link(&path).unwrap().display())
            } else if md.is_dir() {
                dirs.push(path.clone());
                String::new()
            } else if !md.is_file() {
                format!(" special {:?} {}", md.file_type(), md.rdev())
            } else {
                match fs::read(&path) {
                    Ok(bytes) => {
                        let lines: Vec<String> = bytes
                            .split(|&b| b == b'\n')
                            .map(|l| l.escape_ascii().to_string())
                            .collect();
                        format!("\n{}", lines.join("\n"))
                    }
                    // A file made unreadable for an unprivileged run: what replacing it would change.
                    Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                        format!(" unreadable, inode {}, {} bytes", md.ino(), md.len())
                    }
                    Err(e) => panic!("{}: {e}", path.display()),
                }
            };
            let mut xattrs = String::new();
            if !md.file_type().is_symlink() {
                // Whatever their size (ext4 with ea_inode keeps values up to 64 KiB).
                let mut names = vec![0u8; rustix::fs::listxattr_query(&path).unwrap_or(0)];
                let len = rustix::fs::listxattr(&path, &mut names).unwrap_or(0);
                for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
                    let name = String::from_utf8_lossy(name).into_owned();
                    let size = rustix::fs::getxattr_query(&path, name.as_str()).unwrap();
                    let mut value = vec![0u8; size];
                    let vlen = rustix::fs::getxattr(&path, name.as_str(), &mut value).unwrap();
                    xattrs.push_str(&format!(" [{name}={}]", value[..vlen].escape_ascii()));
                }
            }
            out.push(format!("{head}{xattrs}{body}\n"));
        }
    }
    out.sort();
    out.concat()
}
