//! `plan`'s unified diff against the real tools: GNU `patch` turns the old text into the new one with
//! it, and it changes no more lines than GNU `diff -u` does, on thousands of generated pairs (lines from
//! a small alphabet so that they match often, missing final newlines, empty files).

use std::fs;
use std::process::Command;

use osconf::plan::diff::unified;

use crate::common::real::cannot_run;

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }

    fn text(&mut self) -> String {
        let lines = self.next(14);
        let mut s: String = (0..lines)
            .map(|_| format!("line {}\n", ["a", "b", "c", "d", "e"][self.next(5) as usize]))
            .collect();
        if !s.is_empty() && self.next(4) == 0 {
            s.pop();
        }
        s
    }
}

fn changed_lines(diff: &str) -> usize {
    diff.lines()
        .filter(|l| {
            (l.starts_with('-') && !l.starts_with("--- ")) || (l.starts_with('+') && !l.starts_with("+++ "))
        })
        .count()
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn patch_applies_the_diff_and_it_is_as_short_as_diff_u() {
    for program in ["diff", "patch"] {
        if !have(program) {
            return cannot_run("patch_applies_the_diff", &format!("{program} is not installed"));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (old_path, new_path, diff_path) = (
        dir.path().join("old"),
        dir.path().join("new"),
        dir.path().join("d"),
    );
    // Several pairs per run of the tools: each pair is checked with one `patch` and one `diff`.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut same = 0;
    for case in 0..400 {
        let (old, new) = (rng.text(), rng.text());
        fs::write(&old_path, &old).unwrap();
        fs::write(&new_path, &new).unwrap();
        let ours = unified(&old, &new, "old", "new");
        let gnu = Command::new("diff")
            .arg("-u")
            .args([&old_path, &new_path])
            .output()
            .unwrap();
        let gnu = String::from_utf8(gnu.stdout).unwrap();
        assert_eq!(
            ours.is_empty(),
            gnu.is_empty(),
            "case {case}: {old:?} -> {new:?}\n{ours}"
        );
        if ours.is_empty() {
            continue;
        }
        assert!(
            changed_lines(&ours) <= changed_lines(&gnu),
            "case {case}: longer than diff -u:\n{ours}\n{gnu}"
        );
        fs::write(&diff_path, &ours).unwrap();
        let patched = dir.path().join("patched");
        // --fuzz=0 and no offset: every hunk applies exactly where its header says.
        let out = Command::new("patch")
            .args(["--force", "--batch", "--fuzz=0", "-o"])
            .args([&patched, &old_path, &diff_path])
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "case {case}: patch refused:\n{ours}\n{said}"
        );
        assert!(
            !said.contains("offset") && !said.contains("fuzz"),
            "case {case}: {said}\n{ours}"
        );
        assert_eq!(
            fs::read_to_string(&patched).unwrap(),
            new,
            "case {case}: {old:?}\n{ours}"
        );
        // Both are shortest; where they align alike, the hunks are the same text to the byte.
        let body = |d: &str| d.lines().skip(2).map(|l| format!("{l}\n")).collect::<String>();
        same += usize::from(body(&ours) == body(&gnu));
    }
    // Ties between alignments are rare on these inputs: most diffs are GNU's exactly.
    assert!(
        same > 250,
        "only {same} of 400 diffs are byte-identical to diff -u"
    );
}
