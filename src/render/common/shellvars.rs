//! Shell-variable files (`KEY=value`, as sh sources them): reading values, setting keys in place,
//! osconf's `# osconf` marks on the assignments it owns in files it shares with people, and
//! commenting out assignments that would fight its own. Every other line is kept.

use super::DISABLED;

/// Ends every line osconf writes into a shell-variable file it shares with people.
pub const MARK: &str = "# osconf";

/// Replaces (or appends) `KEY=value` lines of a shell-style file such as /etc/sysconfig/network.
/// `None` as a value removes the key. Other lines are kept as they are.
pub fn set_shell_vars(text: &str, vars: &[(&str, Option<String>)]) -> String {
    let mut out = String::new();
    let mut done = Vec::new();
    for line in text.lines() {
        let key = line.trim_start().split('=').next().unwrap_or("").trim();
        match vars.iter().find(|(k, _)| *k == key && line.contains('=')) {
            Some((k, value)) => {
                if let (Some(v), false) = (value, done.contains(k)) {
                    out.push_str(&format!("{k}={v}\n"));
                }
                done.push(*k);
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (k, value) in vars {
        if let (Some(v), false) = (value, done.contains(k)) {
            out.push_str(&format!("{k}={v}\n"));
        }
    }
    out
}

/// `(key, unquoted value, line)` for every active `KEY=value` line.
pub fn assignments(text: &str) -> impl Iterator<Item = (String, String, &str)> {
    text.lines().filter_map(|line| {
        let (k, v) = split_assignment(line)?;
        Some((k.to_owned(), unquote(v), line))
    })
}

/// `KEY=value` → (key, raw value with any trailing comment); `None` for comments and other lines.
pub fn split_assignment(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.trim_start().split_once('=')?;
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '[' | ']'))
        && !key.starts_with(|c: char| c.is_ascii_digit() || c == '[');
    valid.then_some((key, value))
}

/// The value of one shell word as sh reads it: `"v"` (with `\"`, `\\`, `\$` and `` \` `` escaped),
/// `'v'` (literal) or `v`, ignoring whatever follows the closing quote and a trailing ` # comment`.
/// The one reader of quoted values: shell-variable files, os-release (same syntax) and netplan's
/// quoted YAML scalars.
pub fn unquote(raw: &str) -> String {
    let raw = raw.trim();
    if let Some(rest) = raw.strip_prefix('\'') {
        return rest.split('\'').next().unwrap_or("").to_owned();
    }
    let Some(rest) = raw.strip_prefix('"') else {
        return raw.split(" #").next().unwrap_or("").trim().to_owned();
    };
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                other => out.extend(Some('\\').into_iter().chain(other)),
            },
            c => out.push(c),
        }
    }
    out
}

/// The value a shell-variable file gives `key` (its last active assignment).
pub fn shell_value(text: &str, key: &str) -> Option<String> {
    assignments(text)
        .filter(|(k, _, _)| k == key)
        .map(|(_, v, _)| v)
        .last()
}

/// Comments out (with [`DISABLED`]) every active assignment whose key `hit` accepts.
pub fn comment_out(text: &str, mut hit: impl FnMut(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match split_assignment(line) {
            Some((key, _)) if hit(key) => {
                out.push_str(DISABLED);
            }
            _ => {}
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// What becomes of a line osconf marked before whose key a new os.conf no longer sets (a NIC that
/// left os.conf).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Removed.
    Drop,
    /// Kept as `KEY=""`, unmarked: a file whose template lists every key keeps its shape.
    Empty,
    /// Kept as it is: the edit is about other keys only.
    Keep,
}

/// Sets `KEY="value" # osconf` assignments in a shell-variable file, keeping every other line:
/// the first assignment of each key is replaced and later ones dropped; lines osconf marked before
/// whose key is no longer set are handled as `stale` says; a key not yet in the file is inserted at
/// `place(lines, key)`. Values are double-quoted: they are addresses and host names.
pub fn set_marked_vars(
    text: &str,
    vars: &[(String, String)],
    stale: Stale,
    place: impl Fn(&[String], &str) -> usize,
) -> String {
    let assign = |k: &str, v: &str| format!("{k}=\"{v}\" {MARK}");
    let mut lines: Vec<String> = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    for line in text.lines() {
        let Some((key, _)) = split_assignment(line) else {
            lines.push(line.to_owned());
            continue;
        };
        match vars.iter().find(|(k, _)| k == key) {
            Some((k, v)) => {
                if !done.contains(&k.as_str()) {
                    lines.push(assign(k, v));
                    done.push(k);
                }
            }
            None if line.trim_end().ends_with(MARK) => match stale {
                Stale::Drop => {}
                Stale::Empty => lines.push(format!("{key}=\"\"")),
                Stale::Keep => lines.push(line.to_owned()),
            },
            None => lines.push(line.to_owned()),
        }
    }
    for (k, v) in vars {
        if !done.contains(&k.as_str()) {
            let at = place(&lines, k).min(lines.len());
            lines.insert(at, assign(k, v));
        }
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_vars_replace_remove_append() {
        let text = "NETWORKING=yes\nGATEWAY=1.2.3.4\n# GATEWAY=keep\nHOSTNAME=old\nHOSTNAME=dup\n";
        let got = set_shell_vars(
            text,
            &[
                ("GATEWAY", None),
                ("HOSTNAME", Some("new".into())),
                ("NOZEROCONF", Some("yes".into())),
            ],
        );
        assert_eq!(
            got,
            "NETWORKING=yes\n# GATEWAY=keep\nHOSTNAME=new\nNOZEROCONF=yes\n"
        );
    }

    #[test]
    fn values_and_comments() {
        assert_eq!(unquote("\"a b\" # osconf"), "a b");
        assert_eq!(unquote("'x'"), "x");
        assert_eq!(unquote("yes # c"), "yes");
        assert_eq!(unquote(r#" "a \"b\" \\ \x" "#), r#"a "b" \ \x"#);
        assert_eq!(unquote("'a \\\"' b"), "a \\\"");
        assert_eq!(unquote("\"open"), "open");
        let text = "HWADDR[0]=\"00:11:22:33:44:55\"\n#HWADDR[1]=\"x\"\nA=1\n";
        let got = comment_out(text, |k| k.starts_with("HWADDR"));
        assert_eq!(
            got,
            format!("{DISABLED}HWADDR[0]=\"00:11:22:33:44:55\"\n#HWADDR[1]=\"x\"\nA=1\n")
        );
        assert_eq!(shell_value("A=1\nA='2'\n", "A").as_deref(), Some("2"));
    }
}
