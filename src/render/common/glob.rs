//! Shell glob matching, as networkd and netplan match interface names (fnmatch) and as ifupdown's
//! `source` lines match paths (wordexp): `*`, `?` and `[…]` (with `!` or `^` to negate, ranges, and a
//! `]` first in the class taken literally); an unclosed `[` is a literal `[`.
//!
//! Patterns come from foreign files anyone holding the image can edit, so matching must never
//! backtrack exponentially: it keeps one backtrack point (the last `*`), which bounds the work by
//! pattern length × name length, whatever the pattern.

/// True when `name` matches `pattern`. With `path`, no wildcard matches a `/`.
pub fn matches(pattern: &str, name: &str, path: bool) -> bool {
    matches_counting(pattern.as_bytes(), name.as_bytes(), path).0
}

/// The match, and how many steps it took (one per pattern item tried against one name byte).
pub(crate) fn matches_counting(pattern: &[u8], name: &[u8], path: bool) -> (bool, usize) {
    if !path {
        return segment(pattern, name);
    }
    // No wildcard matches a `/`, so each `/` of the name can only meet a literal `/` of the pattern:
    // the two split into segments that must match pairwise.
    let patterns = split_pattern(pattern);
    let names: Vec<&[u8]> = name.split(|&b| b == b'/').collect();
    if patterns.len() != names.len() {
        return (false, 1);
    }
    let mut steps = 0;
    for (p, n) in patterns.iter().zip(names) {
        let (hit, s) = segment(p, n);
        steps += s;
        if !hit {
            return (false, steps);
        }
    }
    (true, steps)
}

/// Splits a pattern at each `/` outside a closed bracket class.
fn split_pattern(pattern: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < pattern.len() {
        match pattern[i] {
            b'/' => {
                out.push(&pattern[start..i]);
                start = i + 1;
                i += 1;
            }
            b'[' => i = class_end(&pattern[i + 1..]).map_or(i + 1, |len| i + 1 + len),
            _ => i += 1,
        }
    }
    out.push(&pattern[start..]);
    out
}

/// Matches one segment (a whole name when not matching paths). The classic greedy algorithm: a `*`
/// first matches nothing; on a mismatch the last `*` takes one more byte and matching resumes after
/// it. Earlier stars never need to change, since the last one can absorb whatever they would.
fn segment(pattern: &[u8], name: &[u8]) -> (bool, usize) {
    let (mut p, mut n, mut steps) = (0, 0, 0);
    // (pattern after the last `*`, name position that `*` stops before)
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        steps += 1;
        if pattern.get(p) == Some(&b'*') {
            p += 1;
            star = Some((p, n));
            continue;
        }
        if let Some(next) = one(&pattern[p..], name[n]) {
            p += next;
            n += 1;
            continue;
        }
        let Some((after, at)) = star else {
            return (false, steps);
        };
        star = Some((after, at + 1));
        p = after;
        n = at + 1;
    }
    while pattern.get(p) == Some(&b'*') {
        p += 1;
    }
    (p == pattern.len(), steps)
}

/// Matches one name byte against the pattern item at the start of `pattern` (not `*`): the item's
/// length when it matches.
fn one(pattern: &[u8], c: u8) -> Option<usize> {
    match *pattern.first()? {
        b'?' => Some(1),
        b'[' => match class_match(&pattern[1..], c) {
            Some((hit, len)) => hit.then_some(1 + len),
            // No closing bracket: a literal `[`.
            None => (c == b'[').then_some(1),
        },
        p => (p == c).then_some(1),
    }
}

/// The length of a bracket class whose `[` is already consumed, up to and including its `]`; `None`
/// when it is not closed.
fn class_end(class: &[u8]) -> Option<usize> {
    let negated = usize::from(matches!(class.first(), Some(b'!' | b'^')));
    // A `]` first in the class is literal.
    let body = &class[negated..];
    let end = 1 + body.get(1..)?.iter().position(|&b| b == b']')?;
    Some(negated + end + 1)
}

/// Matches `c` against a bracket class whose `[` is already consumed; returns the result and the
/// class's length (see [`class_end`]), or `None` when the class is not closed.
fn class_match(class: &[u8], c: u8) -> Option<(bool, usize)> {
    let len = class_end(class)?;
    let negate = matches!(class.first(), Some(b'!' | b'^'));
    let set = &class[usize::from(negate)..len - 1];
    let mut hit = false;
    let mut i = 0;
    while i < set.len() {
        if i + 2 < set.len() && set[i + 1] == b'-' {
            hit |= (set[i]..=set[i + 2]).contains(&c);
            i += 3;
        } else {
            hit |= set[i] == c;
            i += 1;
        }
    }
    Some((hit != negate, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let cases = [
            ("/a/*", "/a/50-osconf", true),
            ("/a/*", "/a/b/c", false),
            ("/a/?0-*", "/a/50-osconf", true),
            ("/a/[!0-4]0*", "/a/50-osconf", true),
            ("/a/[^5]0*", "/a/50-osconf", false),
            ("/a/[]5]0*", "/a/50-osconf", true),
            ("/a/[5", "/a/[5", true),
            ("/a/*f", "/a/50-osconf", true),
            ("/a/*x", "/a/50-osconf", false),
            ("/a[!x]b", "/a/b", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(matches(pattern, name, true), want, "{pattern} {name}");
        }
    }

    #[test]
    fn names() {
        let cases = [
            ("e*", "eth0", true),
            ("en*", "eth0", false),
            ("eth?", "eth1", true),
            ("eth[0-3]", "eth2", true),
            ("eth[!0]", "eth0", false),
            ("*", "", true),
            ("eth0", "eth01", false),
            ("a*", "a/b", true),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(matches(pattern, name, false), want, "{pattern} vs {name}");
        }
    }

    /// Bound: one backtrack point makes the work at most (pattern + 1) × (name + 1) steps, where the
    /// old recursive matcher took 50 s on a `source` line ending in 40 `*` (a hung boot).
    #[test]
    fn regression_stars_do_not_backtrack_exponentially() {
        let name = "/etc/network/interfaces.d/50-osconf";
        let cases = [
            (
                format!("/etc/network/interfaces.d/{}x", "*".repeat(40)),
                name.to_owned(),
                true,
            ),
            (
                format!("/etc/{}/{}x", "*".repeat(40), "*".repeat(40)),
                name.to_owned(),
                true,
            ),
            (format!("{}b", "a*".repeat(40)), "a".repeat(200), false),
            (format!("{}b", "*a".repeat(40)), "a".repeat(200), false),
            (format!("{}[!a]", "?*".repeat(60)), "a".repeat(300), false),
        ];
        for (pattern, name, path) in &cases {
            let (hit, steps) = matches_counting(pattern.as_bytes(), name.as_bytes(), *path);
            assert!(!hit, "{pattern} {name}");
            let bound = (pattern.len() + 1) * (name.len() + 1);
            assert!(steps <= bound, "{pattern}: {steps} steps > {bound}");
        }
    }

    /// Stars and brackets in every position agree with a plain recursive matcher (the old one).
    #[test]
    fn agrees_with_a_recursive_reference() {
        fn reference(p: &[u8], n: &[u8], path: bool) -> bool {
            let wild = |c: u8| !(path && c == b'/');
            match (p.first(), n.first()) {
                (None, None) => true,
                (Some(b'*'), _) => {
                    reference(&p[1..], n, path)
                        || (n.first().is_some_and(|&c| wild(c)) && reference(p, &n[1..], path))
                }
                (Some(b'?'), Some(&c)) => wild(c) && reference(&p[1..], &n[1..], path),
                (Some(b'['), Some(&c)) => match class_match(&p[1..], c) {
                    Some((true, len)) => wild(c) && reference(&p[1 + len..], &n[1..], path),
                    Some((false, _)) => false,
                    None => c == b'[' && reference(&p[1..], &n[1..], path),
                },
                (Some(&a), Some(&c)) => a == c && reference(&p[1..], &n[1..], path),
                _ => false,
            }
        }
        const PIECES: [&[u8]; 9] = [b"*", b"?", b"a", b"/", b"[a/]", b"[!a]", b"[", b"]", b"b"];
        const NAMES: [&[u8]; 9] = [b"", b"a", b"ab", b"a/b", b"[a", b"/a/", b"ba]", b"aab/b", b"b/"];
        let mut seed = 0x2545_f491_u64;
        for _ in 0..20_000 {
            let mut pattern = Vec::new();
            for _ in 0..=seed % 6 {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                pattern.extend_from_slice(PIECES[(seed >> 33) as usize % PIECES.len()]);
            }
            for name in NAMES {
                for path in [false, true] {
                    let want = reference(&pattern, name, path);
                    let got = matches_counting(&pattern, name, path).0;
                    let shown = String::from_utf8_lossy(&pattern);
                    assert_eq!(
                        got,
                        want,
                        "{shown} {:?} path={path}",
                        String::from_utf8_lossy(name)
                    );
                }
            }
        }
    }
}
