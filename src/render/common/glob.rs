//! Shell glob matching, as networkd and netplan match interface names (fnmatch) and as ifupdown's
//! `source` lines match paths (wordexp): `*`, `?` and `[…]` (with `!` or `^` to negate, ranges, and a
//! `]` first in the class taken literally); an unclosed `[` is a literal `[`.

/// True when `name` matches `pattern`. With `path`, no wildcard matches a `/`.
pub fn matches(pattern: &str, name: &str, path: bool) -> bool {
    glob(pattern.as_bytes(), name.as_bytes(), path)
}

fn glob(pattern: &[u8], name: &[u8], path: bool) -> bool {
    let wild = |c: u8| !(path && c == b'/');
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], name, path)
                || (name.first().is_some_and(|&c| wild(c)) && glob(pattern, &name[1..], path))
        }
        (Some(b'?'), Some(&c)) => wild(c) && glob(&pattern[1..], &name[1..], path),
        (Some(b'['), Some(&c)) => match class_match(&pattern[1..], c) {
            Some((true, rest)) => wild(c) && glob(rest, &name[1..], path),
            Some((false, _)) => false,
            // No closing bracket: a literal `[`.
            None => c == b'[' && glob(&pattern[1..], &name[1..], path),
        },
        (Some(&p), Some(&c)) => p == c && glob(&pattern[1..], &name[1..], path),
        _ => false,
    }
}

/// Matches `c` against a bracket class whose `[` is already consumed; returns the result and the
/// pattern after the closing `]`, or `None` when the class is not closed.
fn class_match(class: &[u8], c: u8) -> Option<(bool, &[u8])> {
    let (negate, body) = match class.first() {
        Some(b'!' | b'^') => (true, &class[1..]),
        _ => (false, class),
    };
    // A `]` first in the class is literal.
    let end = 1 + body.get(1..)?.iter().position(|&b| b == b']')?;
    let set = &body[..end];
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
    Some((hit != negate, &body[end + 1..]))
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
}
