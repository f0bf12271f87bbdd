//! Unified diff of two texts, line by line, as `diff -u` prints it (3 lines of context, `\ No newline
//! at end of file` marks). Myers' O(ND) algorithm with a bound on D: past it the differing middle is
//! shown as removed and added whole — still a correct diff, in bounded time and memory on any input.
//! Written here instead of a crate to keep the static binary small (the `similar` crate weighed 150 KB).

use std::fmt::Write as _;

const CONTEXT: usize = 3;
/// At most this many inserted plus deleted lines are searched for a shortest diff (memory ~ D²).
const MAX_EDITS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    Delete,
    Insert,
}

/// Lines with their terminator, so that a last line without `\n` differs from the same line with it.
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// The edit script turning `a` into `b`, shortest when it has at most `MAX_EDITS` edits.
fn script(a: &[&str], b: &[&str]) -> Vec<Op> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a_rest, b_rest) = (&a[prefix..], &b[prefix..]);
    let suffix = (a_rest.iter().rev().zip(b_rest.iter().rev()))
        .take_while(|(x, y)| x == y)
        .count();
    let (mid_a, mid_b) = (&a_rest[..a_rest.len() - suffix], &b_rest[..b_rest.len() - suffix]);
    let mut ops = vec![Op::Equal; prefix];
    ops.extend(myers(mid_a, mid_b).unwrap_or_else(|| {
        let mut whole = vec![Op::Delete; mid_a.len()];
        whole.extend(std::iter::repeat_n(Op::Insert, mid_b.len()));
        whole
    }));
    ops.extend(std::iter::repeat_n(Op::Equal, suffix));
    ops
}

/// Myers' greedy shortest edit script; `None` past `MAX_EDITS`.
fn myers(a: &[&str], b: &[&str]) -> Option<Vec<Op>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max = (a.len() + b.len()).min(MAX_EDITS) as isize;
    let offset = max + 1;
    // v[k + offset]: the furthest x reached on diagonal k = x - y.
    let mut v = vec![0isize; 2 * max as usize + 3];
    // trace[d]: v over diagonals -d..=d before round d.
    let mut trace: Vec<Vec<isize>> = Vec::new();
    for d in 0..=max {
        trace.push(v[(offset - d) as usize..=(offset + d) as usize].to_vec());
        for k in (-d..=d).step_by(2) {
            let at = |k: isize| v[(k + offset) as usize];
            let mut x = if k == -d || (k != d && at(k - 1) < at(k + 1)) {
                at(k + 1)
            } else {
                at(k - 1) + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[(k + offset) as usize] = x;
            if x >= n && y >= m {
                return Some(backtrack(&trace, n, m));
            }
        }
    }
    None
}

/// Walks the trace back from (n, m) to (0, 0), collecting the edits in reverse.
fn backtrack(trace: &[Vec<isize>], n: isize, m: isize) -> Vec<Op> {
    let (mut x, mut y) = (n, m);
    let mut ops = Vec::new();
    for d in (0..trace.len() as isize).rev() {
        let v = &trace[d as usize];
        let at = |k: isize| v[(k + d) as usize];
        let k = x - y;
        let prev_k = if d == 0 {
            0
        } else if k == -d || (k != d && at(k - 1) < at(k + 1)) {
            k + 1
        } else {
            k - 1
        };
        let prev_x = if d == 0 { 0 } else { at(prev_k) };
        let prev_y = prev_x - prev_k;
        while x > prev_x && y > prev_y {
            ops.push(Op::Equal);
            x -= 1;
            y -= 1;
        }
        if d > 0 {
            ops.push(if x == prev_x { Op::Insert } else { Op::Delete });
            (x, y) = (prev_x, prev_y);
        }
    }
    ops.reverse();
    ops
}

/// `start,len` as a hunk header gives it: one line is just `start`, none is the line before.
fn range(start: usize, len: usize) -> String {
    match len {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        _ => format!("{},{len}", start + 1),
    }
}

fn line(out: &mut String, mark: char, text: &str) {
    out.push(mark);
    out.push_str(text);
    if !text.ends_with('\n') {
        out.push_str("\n\\ No newline at end of file\n");
    }
}

/// `--- old_label`, `+++ new_label` and the hunks; empty when the texts are equal.
pub fn unified(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    let (a, b) = (lines(old), lines(new));
    let ops = script(&a, &b);
    // Positions in a and b before each op.
    let mut at = Vec::with_capacity(ops.len() + 1);
    let (mut i, mut j) = (0, 0);
    for op in &ops {
        at.push((i, j));
        match op {
            Op::Equal => (i, j) = (i + 1, j + 1),
            Op::Delete => i += 1,
            Op::Insert => j += 1,
        }
    }
    at.push((i, j));
    // Hunks: each change with its context, merged where the contexts touch.
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for (n, _) in ops.iter().enumerate().filter(|(_, op)| **op != Op::Equal) {
        let (start, end) = (n.saturating_sub(CONTEXT), (n + 1 + CONTEXT).min(ops.len()));
        match hunks.last_mut() {
            Some(last) if start <= last.1 => last.1 = end,
            _ => hunks.push((start, end)),
        }
    }
    if hunks.is_empty() {
        return String::new();
    }
    let mut out = format!("--- {old_label}\n+++ {new_label}\n");
    for (start, end) in hunks {
        let ((i0, j0), (i1, j1)) = (at[start], at[end]);
        let _ = writeln!(out, "@@ -{} +{} @@", range(i0, i1 - i0), range(j0, j1 - j0));
        for (n, op) in ops[start..end].iter().enumerate() {
            let (i, j) = at[start + n];
            match op {
                Op::Equal => line(&mut out, ' ', a[i]),
                Op::Delete => line(&mut out, '-', a[i]),
                Op::Insert => line(&mut out, '+', b[j]),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunks_as_diff_u_prints_them() {
        assert_eq!(unified("a\n", "a\n", "x", "y"), "");
        assert_eq!(
            unified("", "new\n", "/dev/null", "f"),
            "--- /dev/null\n+++ f\n@@ -0,0 +1 @@\n+new\n"
        );
        assert_eq!(
            unified("one\n", "two", "f", "f"),
            "--- f\n+++ f\n@@ -1 +1 @@\n-one\n+two\n\\ No newline at end of file\n"
        );
        let old: String = (1..=20).map(|n| format!("{n}\n")).collect();
        let new: String = (1..=20)
            .filter(|&n| n != 18)
            .map(|n| {
                if n == 5 {
                    "five\n".to_owned()
                } else {
                    format!("{n}\n")
                }
            })
            .collect();
        assert_eq!(
            unified(&old, &new, "f", "f"),
            "--- f\n+++ f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n\
             @@ -15,6 +15,5 @@\n 15\n 16\n 17\n-18\n 19\n 20\n"
        );
    }

    #[test]
    fn a_diff_past_the_edit_bound_replaces_the_middle_whole() {
        let old: String = (0..2000).map(|n| format!("a{n}\n")).collect();
        let new: String = (0..2000).map(|n| format!("b{n}\n")).collect();
        let text = unified(
            &format!("head\n{old}tail\n"),
            &format!("head\n{new}tail\n"),
            "f",
            "f",
        );
        assert!(
            text.starts_with("--- f\n+++ f\n@@ -1,2002 +1,2002 @@\n head\n-a0\n"),
            "{}",
            &text[..80]
        );
        assert_eq!(text.lines().filter(|l| l.starts_with('-')).count(), 2001);
    }
}
