//! The osconf binary built with the `test-hooks` feature (crash points, injected faults), which a
//! release build never has: built once per test process with the cargo that runs the tests, into a
//! target directory of its own so that it never replaces the ordinary binary.

use std::path::PathBuf;
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
        target.join("debug/osconf")
    })
    .clone()
}
