//! Debian packages a test needs but the host must not install (an init system, a second ifupdown):
//! downloaded with `apt-get download` and unpacked with `dpkg-deb -x` into a private prefix under
//! the tests' scratch directory, never into the host's file system.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use super::real::{cannot_run, is_program};

/// Runs `cmd`; whether it succeeded, and its stdout and stderr together.
pub fn output(cmd: &mut Command) -> (bool, String) {
    let out: Output = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// One unpacking at a time: tests running in parallel ask for the same packages.
static UNPACKING: Mutex<()> = Mutex::new(());

/// Debian's `packages`, unpacked once into the test scratch directory `name` (their root), ready
/// when it holds `probe`: installing openrc or runit would make them the host's init, ifupdown-ng or
/// ifupdown2 would replace its ifupdown, connman would start and take the host's network.
pub fn unpacked_debs(name: &str, packages: &[&str], probe: &str) -> Result<PathBuf, String> {
    let _one = UNPACKING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let unpacked = dir.join("root");
    if unpacked.join(probe).is_file() {
        return Ok(unpacked);
    }
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (ok, said) = output(
        Command::new("apt-get")
            .current_dir(&dir)
            .args(["download", "-q"])
            .args(packages),
    );
    if !ok {
        return Err(format!("apt-get download {} failed: {said}", packages.join(" ")));
    }
    for deb in fs::read_dir(&dir).map_err(|e| e.to_string())? {
        let deb = deb.map_err(|e| e.to_string())?.path();
        if deb.extension().is_some_and(|e| e == "deb") {
            let (ok, said) = output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked));
            if !ok {
                return Err(format!("dpkg-deb -x {}: {said}", deb.display()));
            }
        }
    }
    Ok(unpacked)
}

/// Copies the file `from` to `to` as `fs::copy` does (links followed), by `cp` in a child process,
/// never in the test's own: a program written here stays open for writing in any child another
/// test thread forks meanwhile (until that child execs), and running it then fails with ETXTBSY
/// ("Text file busy").
pub fn cp(from: &Path, to: &Path) {
    run_cp(&["-L"], from, to);
}

/// Copies the tree `from` into the directory `to` (made if absent), links kept, as [`cp`] does.
fn cp_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    run_cp(&["-a"], &from.join("."), to);
}

fn run_cp(flags: &[&str], from: &Path, to: &Path) {
    let (ok, said) = output(Command::new("cp").args(flags).arg(from).arg(to));
    assert!(ok, "cp {flags:?} {} {}: {said}", from.display(), to.display());
}

/// Copies `program`'s shared libraries (as ldd lists them) into `root`, at the same paths.
pub fn copy_libraries(program: &Path, root: &Path) {
    let (_, said) = output(Command::new("ldd").arg(program));
    for word in said.split_whitespace().filter(|w| w.starts_with('/')) {
        let dest = root.join(word.trim_start_matches('/'));
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        cp(Path::new(word), &dest);
    }
}

/// The host's /bin/busybox when it is a static build (busybox-static), which runs in any chroot.
pub fn static_busybox() -> Option<&'static Path> {
    let busybox = Path::new("/bin/busybox");
    let (_, ldd) = output(Command::new("ldd").arg(busybox));
    (busybox.is_file() && ldd.contains("not a dynamic executable")).then_some(busybox)
}

/// Debian's openrc (and the libraries it needs) unpacked once, or `None` after the loud skip of
/// `test` when that or the chroot it runs in cannot be.
pub fn openrc_debs(test: &str) -> Option<PathBuf> {
    if !rustix::process::geteuid().is_root() {
        cannot_run(test, "needs root (chroot)");
        return None;
    }
    if static_busybox().is_none() || !is_program("apt-get") || !is_program("ldd") {
        cannot_run(test, "needs busybox-static, apt-get and ldd");
        return None;
    }
    unpacked_debs(
        "openrc-debs",
        &["openrc", "librc1", "libeinfo1"],
        "lib/rc/bin/rc-depend",
    )
    .map_err(|why| cannot_run(test, &why))
    .ok()
}

/// Makes `root` a chroot OpenRC runs in: the unpacked `openrc`, the libraries of its `programs`,
/// static busybox as /bin/busybox and /bin/sh, and an empty /run/openrc.
pub fn openrc_in(root: &Path, openrc: &Path, programs: &[&str]) {
    cp_tree(openrc, root);
    for program in programs {
        copy_libraries(&openrc.join(program), root);
    }
    fs::create_dir_all(root.join("bin")).unwrap();
    cp(Path::new("/bin/busybox"), &root.join("bin/busybox"));
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    fs::create_dir_all(root.join("run/openrc")).unwrap();
}
