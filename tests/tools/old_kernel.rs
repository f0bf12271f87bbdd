//! On an old kernel (CentOS 7 has 3.10) every system call newer than the kernel is ENOSYS: openat2,
//! getrandom, statx, copy_file_range, clone3, rseq... A seccomp filter makes this kernel answer as
//! 3.10 would, ENOSYS for every x86_64 call after `finit_module` (313), and the real binary runs
//! under it: `apply` and `install` must take their fallbacks (the path walk instead of openat2,
//! `/dev/urandom` instead of getrandom, std's and glibc's own) and write what they write without it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::real::cannot_run;
use crate::common::{entries, example_conf, example_root};

/// `old.py PROGRAM ARGS...`: installs the filter, checks that it answers getrandom and openat2 with
/// ENOSYS, then executes PROGRAM, which inherits the filter. Exit 3 when seccomp is not available.
const OLD_KERNEL: &str = r#"
import ctypes, os, struct, sys
LAST = 313  # finit_module: the last x86_64 system call of Linux 3.10
ENOSYS = 38
def insn(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)
prog = b"".join([
    insn(0x20, 0, 0, 4),                    # ld  [arch]
    insn(0x15, 0, 3, 0xC000003E),           # jeq AUDIT_ARCH_X86_64 ? next : allow
    insn(0x20, 0, 0, 0),                    # ld  [nr]
    insn(0x25, 0, 1, LAST),                 # jgt LAST ? errno : allow
    insn(0x06, 0, 0, 0x00050000 | ENOSYS),  # ret SECCOMP_RET_ERRNO | ENOSYS
    insn(0x06, 0, 0, 0x7FFF0000),           # ret SECCOMP_RET_ALLOW
])
buf = ctypes.create_string_buffer(prog)
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = Fprog(len(prog) // 8, ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
# PR_SET_NO_NEW_PRIVS, then PR_SET_SECCOMP with SECCOMP_MODE_FILTER.
if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:
    print("seccomp: " + os.strerror(ctypes.get_errno()), file=sys.stderr)
    sys.exit(3)
out = ctypes.create_string_buffer(64)
for nr in (318, 437):  # getrandom, openat2
    if libc.syscall(ctypes.c_long(nr), out, ctypes.c_long(8), ctypes.c_long(0)) != -1 or ctypes.get_errno() != ENOSYS:
        sys.exit("system call %d is not ENOSYS under the filter" % nr)
os.execv(sys.argv[1], sys.argv[1:])
"#;

/// The real binary with `args`, on this kernel (`old` false) or under the 3.10 filter; `None` (after
/// saying why) when the filter cannot be installed here.
fn osconf(test: &str, old: bool, args: &[&str], root: &Path) -> Option<Output> {
    let bin = env!("CARGO_BIN_EXE_osconf");
    let mut cmd = if old {
        let mut c = Command::new("python3");
        c.args(["-c", OLD_KERNEL, bin]);
        c
    } else {
        Command::new(bin)
    };
    let out = match cmd.args(args).arg("--root").arg(root).output() {
        Ok(out) => out,
        Err(e) => {
            cannot_run(test, &format!("python3: {e}"));
            return None;
        }
    };
    if old && out.status.code() == Some(3) {
        cannot_run(test, String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    Some(out)
}

/// `YYYYMMDDTHHMMSSZ` time stamps (backup directories, the last run's record) as `STAMP`.
fn without_stamps(text: &str) -> String {
    let b = text.as_bytes();
    let is_stamp = |i: usize| {
        b.len() >= i + 16
            && b[i + 8] == b'T'
            && b[i + 15] == b'Z'
            && (0..15).all(|j| j == 8 || b[i + j].is_ascii_digit())
    };
    let (mut out, mut i) = (String::new(), 0);
    while i < text.len() {
        if is_stamp(i) {
            out.push_str("STAMP");
            i += 16;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The tree with stamps, step timings and the scratch directory `dir` masked, root's password hash
/// replaced by `HASH` (its salt is random), and the installed binary left out (compared on its own).
fn comparable(root: &Path, dir: &Path) -> BTreeMap<String, String> {
    let dir = dir.to_str().unwrap();
    entries(root)
        .into_iter()
        .filter(|(path, _)| path != "usr/sbin/osconf")
        .map(|(path, body)| {
            let body = body.replace(dir, "SCRATCH");
            let body = body
                .lines()
                .map(|l| {
                    if let Some(rest) = l.strip_prefix("root:$6$") {
                        format!("root:HASH:{}", rest.split_once(':').unwrap().1)
                    } else if let Some(step) = l.strip_prefix("step ") {
                        // The last run's step timings (`TOOK_US AT_US NAME`) differ run to run.
                        format!("step TIME TIME {}", step.splitn(3, ' ').nth(2).unwrap_or(""))
                    } else {
                        l.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            (without_stamps(&path), without_stamps(&body))
        })
        .collect()
}

fn root_hash(root: &Path) -> String {
    let shadow = fs::read_to_string(root.join("etc/shadow")).unwrap();
    let line = shadow.lines().find(|l| l.starts_with("root:")).unwrap();
    line.split(':').nth(1).unwrap().to_owned()
}

#[test]
fn apply_and_install_on_a_kernel_without_newer_system_calls() {
    let test = "apply_and_install_on_a_kernel_without_newer_system_calls";
    let scratch = tempfile::tempdir().unwrap();
    let mut hashes = Vec::new();
    let mut trees = Vec::new();
    for old in [false, true] {
        let dir = scratch.path().join(if old { "old" } else { "new" });
        let root = example_root(&dir, "centos7");
        fs::create_dir_all(root.join("boot")).unwrap();
        let conf = dir.join("os.conf");
        fs::write(&conf, example_conf("vpc")).unwrap();
        let conf = conf.to_str().unwrap();
        let runs: [&[&str]; 3] = [
            &["apply", "--no-live", "--config", conf],
            &["install", "--init", "systemd"],
            &["status"],
        ];
        for args in runs {
            let Some(out) = osconf(test, old, args, &root) else {
                return;
            };
            assert!(
                out.status.success(),
                "{args:?} (old kernel: {old}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(!Path::new(conf).exists(), "os.conf kept (old kernel: {old})");
        hashes.push(root_hash(&root));
        trees.push(comparable(&root, &dir));
    }
    // The same files, byte for byte, but for the salted hash; the installed binary is this one.
    let differ: Vec<_> = trees[0]
        .iter()
        .filter(|(k, v)| trees[1].get(*k) != Some(v))
        .collect();
    assert!(
        differ.is_empty() && trees[0].len() == trees[1].len(),
        "{differ:?}\n{:?}",
        trees[1]
    );
    assert_eq!(
        fs::read(scratch.path().join("old/root/usr/sbin/osconf")).unwrap(),
        fs::read(env!("CARGO_BIN_EXE_osconf")).unwrap()
    );
    // Each run drew its own salt, from getrandom or from /dev/urandom.
    let salt = |h: &str| h.split('$').nth(2).unwrap().to_owned();
    assert!(
        hashes.iter().all(|h| h.starts_with("$6$") && salt(h).len() == 16),
        "{hashes:?}"
    );
    assert_ne!(salt(&hashes[0]), salt(&hashes[1]));
}

#[test]
fn stamps_are_masked() {
    assert_eq!(
        without_stamps("backup/20261201T135252Z/etc 20261201T13525Z é"),
        "backup/STAMP/etc 20261201T13525Z é"
    );
}
