//! Build script: records the git commit and the target triple that `osconf --version` reports, and
//! the date the man page's `.TH` carries (the commit's). Never fails: without git (a source tarball)
//! the commit is "unknown" and the date the day of the build.

use std::path::PathBuf;
use std::process::Command;

// The crate's own calendar arithmetic (std only), for the build day.
#[allow(dead_code)]
#[path = "src/clock.rs"]
mod clock;

/// `git rev-parse ARGS` in the crate's directory, trimmed; `None` when git or the repository is absent.
fn git(args: &[&str]) -> Option<String> {
    git_run(&[&["rev-parse"], args].concat())
}

/// `git ARGS`, trimmed stdout; `None` when git or the repository is absent.
fn git_run(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
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
    // YYYY-MM-DD, as mandoc and man-db read `.TH`'s date.
    let date = git_run(&["log", "-1", "--format=%cs", "HEAD"]).unwrap_or_else(|| {
        let d = clock::stamp();
        format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8])
    });
    println!("cargo:rustc-env=OSCONF_DATE={date}");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=OSCONF_TARGET={target}");
}
