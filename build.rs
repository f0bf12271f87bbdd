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
    if let (Some(dir), Some(common)) = (git(&["--git-dir"]), git(&["--git-common-dir"])) {
        let (dir, common) = (PathBuf::from(dir), PathBuf::from(common));
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        println!("cargo:rerun-if-changed={}", common.join("packed-refs").display());
        if let Some(branch) = git(&["--symbolic-full-name", "HEAD"]).filter(|r| r.starts_with("refs/")) {
            println!("cargo:rerun-if-changed={}", common.join(branch).display());
        }
    }
    let commit = commit.unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=OSCONF_COMMIT={commit}");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=OSCONF_TARGET={target}");
}
