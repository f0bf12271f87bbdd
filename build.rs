//! Build script: records the git commit and the target triple that `osconf --version` reports.
//! Never fails: without git (a source tarball) the commit is "unknown".

use std::path::PathBuf;
use std::process::Command;

/// `git rev-parse ARGS` in the crate's directory, trimmed; `None` when git or the repository is absent.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("rev-parse").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let commit = git(&["--short", "HEAD"]);
    // Rebuild when HEAD moves: HEAD itself (a worktree has its own), the branch it names, packed refs.
    // Only files that exist: cargo reruns the script on every build while a watched file is missing
    // (a fresh clone or worktree has no packed-refs; a packed branch has no file of its own). When
    // git packs or unpacks a ref, one of the watched files goes or comes, which cargo sees too.
    if let (Some(dir), Some(common)) = (git(&["--git-dir"]), git(&["--git-common-dir"])) {
        let (dir, common) = (PathBuf::from(dir), PathBuf::from(common));
        let branch = git(&["--symbolic-full-name", "HEAD"]).filter(|r| r.starts_with("refs/"));
        let watched = [
            Some(dir.join("HEAD")),
            Some(common.join("packed-refs")),
            branch.map(|b| common.join(b)),
        ];
        for path in watched.into_iter().flatten().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let commit = commit.unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=OSCONF_COMMIT={commit}");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=OSCONF_TARGET={target}");
}
