//! Debian packages a test needs but the host must not install (an init system, a second ifupdown):
//! downloaded with `apt-get download` and unpacked with `dpkg-deb -x` into a private prefix under
//! the tests' scratch directory, never into the host's file system.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

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
/// ifupdown2 would replace its ifupdown.
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

/// Copies `program`'s shared libraries (as ldd lists them) into `root`, at the same paths.
pub fn copy_libraries(program: &Path, root: &Path) {
    let (_, said) = output(Command::new("ldd").arg(program));
    for word in said.split_whitespace().filter(|w| w.starts_with('/')) {
        let dest = root.join(word.trim_start_matches('/'));
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(word, dest).unwrap();
    }
}
