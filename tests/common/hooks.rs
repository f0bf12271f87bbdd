//! The osconf binary built with the `test-hooks` feature (crash points, injected faults), which a
//! release build never has: built once per test process with the cargo that runs the tests, for the
//! target the tests are built for (a cross run, `scripts/cargo-aarch64 test`, gets an aarch64
//! binary, not one for the machine), into a target directory of its own so that it never replaces
//! the ordinary binary.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Exit code of a run stopped at a crash point (`exec::CRASHED`).
pub const CRASHED: i32 = 99;

pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-hooks");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--offline",
                "--features",
                "test-hooks",
                // Panics abort, as in the release binary (its panic hook undoes the mounts).
                "--config",
                "profile.dev.panic=\"abort\"",
                "--bin",
                "osconf",
                // `osconf image …` runs the toolkit found beside it: built with the hooks too.
                "--bin",
                "osconf-image",
                // build.rs gives every target of the package the triple it is built for.
                "--target",
                env!("OSCONF_TARGET"),
            ])
            .arg("--target-dir")
            .arg(&target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("running cargo build --features test-hooks");
        assert!(
            out.status.success(),
            "cargo build --features test-hooks failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = target.join(env!("OSCONF_TARGET")).join("debug/osconf");
        assert_eq!(
            elf_machine(&bin),
            elf_machine(&std::env::current_exe().unwrap()),
            "{} is not built for the machine the tests run on",
            bin.display()
        );
        bin
    })
    .clone()
}

/// The ELF header's e_machine (x86_64 62, aarch64 183) of the file at `path`.
fn elf_machine(path: &Path) -> u16 {
    let mut header = [0; 20];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    u16::from_le_bytes([header[18], header[19]])
}
