//! The shipped binaries run on any distribution: fully static (no `PT_INTERP`, no needed library),
//! stripped, the agent (`osconf`) at most 2 MiB without the image toolkit's code, the toolkit
//! (`osconf-image`) within its own budget, and `--version` works in an empty chroot holding only
//! the binary. The release binaries are the ones `cargo build --release` made (`scripts/test-all`
//! builds them first).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::real::cannot_run;

/// The agent runs inside every instance at boot.
const AGENT_MAX: u64 = 2 * 1024 * 1024;
/// The toolkit runs on a builder's workstation: room for what it may grow (crates that serve it).
const TOOLKIT_MAX: u64 = 4 * 1024 * 1024;

/// Text only the toolkit's code holds, one per part the agent must not carry: the qemu runner, the
/// disk's file readers (ext, the volume, Btrfs and its zlib/zstd inflaters, XFS, LVM's metadata
/// parser and its CRC-32C), the image writers (mtools, inject), the image formats' readers (qcow2,
/// VHD, VMDK) and the write path through qemu-img. Help texts name the tools too, so these are
/// arguments and messages, not tool names alone. A message reworded must be changed here as well:
/// the toolkit is checked to hold each.
const TOOLKIT_ONLY: [&str; 13] = [
    "hubport",
    "ext: the root inode is not a directory",
    "btrfs: the superblock's checksum does not match",
    "zstd data does not inflate",
    "xfs: the root inode is not a directory",
    "LVM metadata line",
    "holds no filesystem osconf recognises",
    "mcopy",
    "did not come out as written",
    "bytes, not a cluster",
    "the VMDK footer's markers are not where they belong",
    "a differencing VHD",
    "written back as ",
];

const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NEEDED: u64 = 1;
const SHT_SYMTAB: u32 = 2;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// What the ELF headers say about linking: a 64-bit little-endian executable is read by hand.
#[derive(Debug, Default)]
struct Elf {
    interpreter: bool,
    needed: usize,
    symtab: bool,
}

fn read_elf(path: &Path) -> Elf {
    let b = fs::read(path).unwrap();
    assert_eq!(&b[..4], b"\x7fELF", "{} is not ELF", path.display());
    assert_eq!((b[4], b[5]), (2, 1), "expected a 64-bit little-endian ELF");
    let mut elf = Elf::default();
    let (phoff, phentsize, phnum) = (
        u64_at(&b, 0x20) as usize,
        u16_at(&b, 0x36) as usize,
        u16_at(&b, 0x38),
    );
    for i in 0..phnum as usize {
        let ph = phoff + i * phentsize;
        match u32_at(&b, ph) {
            PT_INTERP => elf.interpreter = true,
            PT_DYNAMIC => {
                let (offset, size) = (u64_at(&b, ph + 8) as usize, u64_at(&b, ph + 32) as usize);
                elf.needed += (0..size / 16)
                    .filter(|i| u64_at(&b, offset + i * 16) == DT_NEEDED)
                    .count();
            }
            _ => {}
        }
    }
    let (shoff, shentsize, shnum) = (
        u64_at(&b, 0x28) as usize,
        u16_at(&b, 0x3a) as usize,
        u16_at(&b, 0x3c),
    );
    elf.symtab = (0..shnum as usize).any(|i| u32_at(&b, shoff + i * shentsize + 4) == SHT_SYMTAB);
    elf
}

/// `target/release/NAME` beside the test build's `target/debug/osconf`, if it was built from the
/// same commit (an older one would test yesterday's binary).
fn release_binary(test: &str, name: &str) -> Option<PathBuf> {
    let debug = Path::new(env!("CARGO_BIN_EXE_osconf"));
    let release = debug.parent()?.parent()?.join("release").join(name);
    if !release.exists() {
        cannot_run(
            test,
            &format!("{} is not built: run cargo build --release", release.display()),
        );
        return None;
    }
    let version = |bin: &Path| Command::new(bin).arg("--version").output().unwrap().stdout;
    if version(&release) != version(debug) {
        cannot_run(
            test,
            &format!("{} is stale: run cargo build --release", release.display()),
        );
        return None;
    }
    Some(release)
}

#[test]
fn every_build_is_static() {
    // .cargo/config.toml links every profile with crt-static, so the test build shows it too.
    let elf = read_elf(Path::new(env!("CARGO_BIN_EXE_osconf")));
    assert!(
        !elf.interpreter,
        "the binary asks for a dynamic loader (PT_INTERP)"
    );
    assert_eq!(elf.needed, 0, "the binary needs shared libraries (DT_NEEDED)");
    assert!(
        elf.symtab,
        "the test build keeps its symbols: the reader must see them"
    );
    // The reader sees what it looks for: the system's dynamically linked shell.
    let sh = read_elf(&fs::canonicalize("/bin/sh").unwrap());
    assert!(sh.interpreter && sh.needed > 0, "/bin/sh: {sh:?}");
}

#[test]
fn the_release_binaries_are_static_stripped_and_within_their_budgets() {
    let test = "the_release_binaries_are_static_stripped_and_within_their_budgets";
    for (name, max) in [("osconf", AGENT_MAX), ("osconf-image", TOOLKIT_MAX)] {
        let Some(release) = release_binary(test, name) else {
            return;
        };
        let elf = read_elf(&release);
        assert!(!elf.interpreter && elf.needed == 0, "{name} not static: {elf:?}");
        assert!(!elf.symtab, "{name} not stripped: it has a symbol table");
        let size = fs::metadata(&release).unwrap().len();
        assert!(size <= max, "{} is {size} bytes, over {max}", release.display());
        // readelf agrees that there is no interpreter, where binutils is installed.
        if let Ok(out) = Command::new("readelf").args(["-lW"]).arg(&release).output() {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && text.contains("LOAD"),
                "readelf -l: {text}"
            );
            assert!(
                !text.contains("INTERP"),
                "readelf -l shows an interpreter:\n{text}"
            );
        }
    }
}

/// The agent links none of the toolkit's code: each part's text is in the toolkit and not in the
/// agent (the linker keeps only what the agent's `main` reaches).
#[test]
fn the_agent_carries_no_image_tool_code() {
    let test = "the_agent_carries_no_image_tool_code";
    let (Some(agent), Some(toolkit)) = (
        release_binary(test, "osconf"),
        release_binary(test, "osconf-image"),
    ) else {
        return;
    };
    let (agent, toolkit) = (fs::read(agent).unwrap(), fs::read(toolkit).unwrap());
    let holds = |b: &[u8], s: &str| b.windows(s.len()).any(|w| w == s.as_bytes());
    for marker in TOOLKIT_ONLY {
        assert!(
            holds(&toolkit, marker),
            "the toolkit lacks {marker:?}: reworded? update TOOLKIT_ONLY"
        );
        assert!(
            !holds(&agent, marker),
            "the agent carries toolkit code: {marker:?}"
        );
    }
}

#[test]
fn the_release_binary_runs_in_an_empty_chroot() {
    let test = "the_release_binary_runs_in_an_empty_chroot";
    let (Some(release), Some(toolkit)) = (
        release_binary(test, "osconf"),
        release_binary(test, "osconf-image"),
    ) else {
        return;
    };
    if !rustix::process::geteuid().is_root() {
        return cannot_run(test, "needs root (chroot)");
    }
    let dir = tempfile::tempdir().unwrap();
    fs::copy(&release, dir.path().join("osconf")).unwrap();
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "the chroot holds only the binary"
    );
    let chroot = |program: &str, args: &[&str]| {
        Command::new("chroot")
            .arg(dir.path())
            .arg(program)
            .args(args)
            .output()
            .unwrap()
    };
    // Without the toolkit, an image command says what to install (exit 3).
    let out = chroot("/osconf", &["image", "check", "/disk.raw"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("osconf-image, which is not installed"),
        "{stderr}"
    );
    fs::copy(&toolkit, dir.path().join("osconf-image")).unwrap();
    let out = chroot("/osconf-image", &["--version"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // With it beside the agent, osconf image runs it: a missing DISK is exit 2 from image check.
    let out = chroot("/osconf", &["image", "check", "/disk.raw"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/disk.raw: cannot open"), "{stderr}");
    for args in [&["--version"][..], &["--help"], &["generate", "man"]] {
        let out = chroot("/osconf", args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?} in an empty chroot: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(!stdout.is_empty(), "{args:?}");
        if args == ["--version"] {
            let expected = format!("osconf {} (commit ", env!("CARGO_PKG_VERSION"));
            assert!(stdout.starts_with(&expected), "{stdout}");
        }
    }
}

/// The build script cargo compiled for this package (the newest, when older ones are left).
fn build_script() -> PathBuf {
    let build = Path::new(env!("CARGO_BIN_EXE_osconf"))
        .parent()
        .unwrap()
        .join("build");
    fs::read_dir(&build)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("osconf-"))
        .map(|p| p.join("build-script-build"))
        .filter(|p| p.exists())
        .max_by_key(|p| p.metadata().unwrap().modified().unwrap())
        .expect("no compiled build script under target/debug/build")
}

/// The build script run in `dir` with `path` as PATH: the values it gives rustc and the files
/// whose change reruns it.
fn run_build_script(dir: &Path, path: &str) -> (Vec<String>, Vec<PathBuf>) {
    let out = Command::new(build_script())
        .current_dir(dir)
        .env("PATH", path)
        .env("TARGET", "x86_64-unknown-linux-gnu")
        .env("GIT_CEILING_DIRECTORIES", dir.parent().unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let env = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("cargo:rustc-env="))
        .map(String::from)
        .collect();
    let watched = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("cargo:rerun-if-changed="))
        .map(PathBuf::from)
        .collect();
    (env, watched)
}

#[test]
fn version_says_unknown_commit_without_git() {
    let scratch = tempfile::tempdir().unwrap();
    let expected = [
        "OSCONF_COMMIT=unknown".to_owned(),
        "OSCONF_DATE=".to_owned(),
        "OSCONF_TARGET=x86_64-unknown-linux-gnu".to_owned(),
    ];
    // A source tarball (no repository), with git installed and without it: the man page's date is
    // the day of the build (YYYY-MM-DD).
    let system_path = std::env::var("PATH").unwrap_or_default();
    for path in [system_path.as_str(), ""] {
        let (mut env, watched) = run_build_script(scratch.path(), path);
        let date = env[1].split_off("OSCONF_DATE=".len());
        assert!(
            date.len() == 10
                && date.bytes().enumerate().all(|(i, b)| match i {
                    4 | 7 => b == b'-',
                    _ => b.is_ascii_digit(),
                }),
            "{date}"
        );
        assert_eq!(env, expected, "PATH={path:?}");
        assert_eq!(watched, [PathBuf::from("build.rs")], "PATH={path:?}");
    }
    // `--version` prints what the build script gave: here, the repository's commit.
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .arg("--version")
        .output()
        .unwrap();
    let (env, _) = run_build_script(Path::new(env!("CARGO_MANIFEST_DIR")), &system_path);
    let commit = env[0].strip_prefix("OSCONF_COMMIT=").unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "osconf {} (commit {commit}, target x86_64-unknown-linux-gnu)\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn the_build_script_watches_only_files_that_exist() {
    // cargo reruns a build script, and rebuilds osconf, on every build while a watched file is
    // missing: a fresh clone or worktree has no packed-refs.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (env, watched) = run_build_script(repo, &std::env::var("PATH").unwrap_or_default());
    for path in &watched {
        assert!(
            repo.join(path).exists(),
            "watches {} that does not exist",
            path.display()
        );
    }
    if env[0] != "OSCONF_COMMIT=unknown" {
        assert!(watched.iter().any(|p| p.ends_with("HEAD")), "{watched:?}");
    }
}
