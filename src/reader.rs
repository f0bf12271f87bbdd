//! Reader: turns the bytes of os.conf into raw `key = value` entries with line numbers.
//!
//! It accepts only the shell-assignment subset ECS writes and never expands anything: `$`, backticks
//! and backslashes are kept as plain data for the validator to judge. It must never run or interpret
//! the file as shell.

use std::fmt;
use std::io::Read;
use std::ops::Deref;

use crate::error::Error;
use crate::secret::{HIDDEN, Secret};

/// os.conf is a handful of lines; anything larger is not what ECS wrote.
pub const MAX_SIZE: usize = 64 * 1024;

/// One `key=value` line as written, value unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub key: String,
    pub value: Value,
}

/// A value as written. The password's is a [`Secret`]: formatting an entry never shows it.
#[derive(Clone, Eq)]
pub enum Value {
    Plain(String),
    Secret(Secret<String>),
}

impl Deref for Value {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Value::Plain(s) => s,
            Value::Secret(s) => s.expose(),
        }
    }
}

/// Values compare by their text, secret or not.
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        **self == **other
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Plain(s.to_owned())
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Plain(s) => fmt::Debug::fmt(s, f),
            Value::Secret(_) => f.write_str(HIDDEN),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Plain(s) => f.write_str(s),
            Value::Secret(_) => f.write_str(HIDDEN),
        }
    }
}

/// A problem found in os.conf, located by line and (where known) key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    /// 1-based line; 0 when the problem concerns the whole file.
    pub line: usize,
    pub key: Option<String>,
    pub message: String,
}

impl ConfError {
    pub fn new(line: usize, key: Option<&str>, message: impl Into<String>) -> Self {
        ConfError {
            line,
            key: key.map(str::to_owned),
            message: hide_passwords(message.into()),
        }
    }
}

/// A garbled file can merge the password line into another value (a lost newline or quote), and an
/// error quoting that value would print the password: whatever follows `password=` in a message is
/// hidden up to the end of the quoted text (`{:?}` quoting: an unescaped `"`), whichever key the
/// message is about.
fn hide_passwords(message: String) -> String {
    const KEY: &str = "password=";
    let mut out = String::with_capacity(message.len());
    let mut rest = message.as_str();
    while let Some(at) = rest.find(KEY) {
        out.push_str(&rest[..at + KEY.len()]);
        rest = &rest[at + KEY.len()..];
        let bytes = rest.as_bytes();
        let end = (0..bytes.len())
            .find(|&i| bytes[i] == b'"' && (i == 0 || bytes[i - 1] != b'\\'))
            .unwrap_or(bytes.len());
        if end > 0 {
            out.push_str(HIDDEN);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Entries in file order.
#[derive(Debug, Default)]
pub struct RawConf {
    pub entries: Vec<Entry>,
}

/// Reads at most [`MAX_SIZE`] bytes and parses them; every bad line is reported, not just the first.
pub fn read(input: impl Read) -> Result<RawConf, Vec<ConfError>> {
    let bytes = read_bytes(input).map_err(|e| vec![e])?;
    parse(bytes.expose())
}

/// Reads at most [`MAX_SIZE`] bytes: more is an error. The bytes (the password among them) are read
/// into one buffer that never grows and is zeroed when dropped.
pub fn read_bytes(mut input: impl Read) -> Result<Secret<Vec<u8>>, ConfError> {
    let mut bytes = Secret::new(vec![0u8; MAX_SIZE + 1]);
    let mut filled = 0;
    while filled < bytes.expose().len() {
        match input.read(&mut bytes.as_mut_slice()[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ConfError::new(0, None, format!("cannot read: {e}"))),
        }
    }
    if filled > MAX_SIZE {
        let msg = format!("file is larger than {MAX_SIZE} bytes; refusing to read it");
        return Err(ConfError::new(0, None, msg));
    }
    bytes.truncate(filled);
    Ok(bytes)
}

/// Parses a whole file already in memory.
pub fn parse(bytes: &[u8]) -> Result<RawConf, Vec<ConfError>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut conf = RawConf::default();
    let mut errors = Vec::new();
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    for (index, raw) in lines.into_iter().enumerate() {
        let line_no = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.contains(&0) {
            errors.push(ConfError::new(line_no, key_of(raw), "contains a NUL byte"));
            continue;
        }
        // A lone CR would hide the rest of a line (a comment could swallow a whole CR-ended file).
        if raw.contains(&b'\r') {
            errors.push(ConfError::new(line_no, key_of(raw), "contains a carriage return"));
            continue;
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            errors.push(ConfError::new(line_no, key_of(raw), "is not valid UTF-8"));
            continue;
        };
        match parse_line(text) {
            Ok(None) => {}
            Ok(Some((key, value))) => {
                if let Some(first) = conf.entries.iter().find(|e| e.key == key) {
                    let msg = format!("given twice (first on line {})", first.line);
                    errors.push(ConfError::new(line_no, Some(key), msg));
                } else {
                    conf.entries.push(Entry {
                        line: line_no,
                        key: key.to_owned(),
                        value,
                    });
                }
            }
            Err((key, message)) => errors.push(ConfError::new(line_no, key, message)),
        }
    }
    if errors.is_empty() { Ok(conf) } else { Err(errors) }
}

/// The key of a line that cannot be parsed as text, so that its error can still name it.
fn key_of(raw: &[u8]) -> Option<&str> {
    let end = raw.iter().position(|&b| b == b'=')?;
    let key = std::str::from_utf8(&raw[..end])
        .ok()?
        .trim_start_matches(is_blank);
    is_valid_key(key).then_some(key)
}

type LineError<'a> = (Option<&'a str>, String);

/// Parses one line: `None` for blank and comment lines.
fn parse_line(text: &str) -> Result<Option<(&str, Value)>, LineError<'_>> {
    let text = text.trim_matches(is_blank);
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    // The line is not quoted back: it may be a piece of the password cut off by a stray newline.
    let Some((key, rest)) = text.split_once('=') else {
        return Err((None, "expected key=value".into()));
    };
    if !is_valid_key(key) {
        let what = if key.ends_with(is_blank) {
            "blank before '='"
        } else {
            "not a valid key name"
        };
        return Err((None, format!("{key:?}: {what}")));
    }
    let secret = key == "password";
    let value = parse_value(rest, secret).map_err(|m| (Some(key), m.message))?;
    let value = if secret {
        Value::Secret(Secret::new(value.to_owned()))
    } else {
        Value::Plain(value.to_owned())
    };
    Ok(Some((key, value)))
}

/// Unquotes a value. No escapes exist: a quote ends at the next quote of its kind. A `secret` value's
/// text is never quoted in an error.
fn parse_value(rest: &str, secret: bool) -> Result<&str, Error> {
    let (value, after) = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let body = &rest[1..];
            let Some(end) = body.find(q) else {
                return Err(Error::bad(format!("unterminated {q} quote")));
            };
            (&body[..end], &body[end + 1..])
        }
        _ => match rest.find(is_blank) {
            Some(end) => (&rest[..end], &rest[end..]),
            None => (rest, ""),
        },
    };
    // As in sh, `#` starts a comment only after a blank: `"web"#1` is one word, `web#1`.
    let glued = !after.is_empty() && !after.starts_with(is_blank);
    let after = after.trim_start_matches(is_blank);
    if glued || !(after.is_empty() || after.starts_with('#')) {
        let shown = if secret {
            HIDDEN.to_owned()
        } else {
            format!("{after:?}")
        };
        return Err(Error::bad(format!(
            "unexpected text after the value: {shown} (quote values that hold blanks)"
        )));
    }
    if (after.starts_with('#') || value.is_empty()) && rest.starts_with(is_blank) {
        return Err(Error::bad("blank after '=' (quote values that hold blanks)"));
    }
    Ok(value)
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Shell variable names: a letter or `_`, then letters, digits or `_`.
fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Result<Option<(String, String)>, Error> {
        parse_line(line)
            .map(|o| o.map(|(k, v)| (k.to_owned(), v.to_string())))
            .map_err(|(_, m)| Error::bad(m))
    }

    #[test]
    fn accepted_lines() {
        let table: &[(&str, Option<(&str, &str)>)] = &[
            ("", None),
            ("   ", None),
            ("# comment", None),
            ("  # indented comment", None),
            ("hostname=web1", Some(("hostname", "web1"))),
            ("  hostname=web1  ", Some(("hostname", "web1"))),
            ("hostname=\"web1\"", Some(("hostname", "web1"))),
            ("hostname='web1'", Some(("hostname", "web1"))),
            ("eth0_route=\"a b;c d\"", Some(("eth0_route", "a b;c d"))),
            ("x=\"$(reboot)\"", Some(("x", "$(reboot)"))),
            ("x='`id`\\'", Some(("x", "`id`\\"))),
            ("x=", Some(("x", ""))),
            ("x=\"\"", Some(("x", ""))),
            ("x=v # trailing comment", Some(("x", "v"))),
            ("x=\"v\"\t# trailing comment", Some(("x", "v"))),
            ("x=\"v\" #", Some(("x", "v"))),
            ("x='v'  ", Some(("x", "v"))),
            ("x=a#b", Some(("x", "a#b"))),
            ("_k2=v", Some(("_k2", "v"))),
        ];
        for (line, want) in table {
            let got = one(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            let want = want.map(|(k, v)| (k.to_owned(), v.to_owned()));
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn rejected_lines() {
        let table: &[(&str, &str)] = &[
            ("hostname", "expected key=value"),
            ("host name=x", "not a valid key name"),
            ("hostname =x", "blank before '='"),
            ("2x=y", "not a valid key name"),
            ("x=a b", "unexpected text after the value"),
            ("x= b", "unexpected text after the value"),
            ("x= # c", "blank after '='"),
            ("x=\"abc", "unterminated \" quote"),
            ("x='abc", "unterminated ' quote"),
            ("x=\"a\"b", "unexpected text after the value"),
            ("x=\"a\";reboot", "unexpected text after the value"),
            ("hostname=\"web\"#1", "unexpected text after the value"),
            ("x='a'#", "unexpected text after the value"),
        ];
        for (line, want) in table {
            let err = one(line).expect_err(line);
            assert!(err.message.contains(want), "{line:?}: {err}");
        }
    }

    #[test]
    fn file_level_rules() {
        let conf = parse(b"\xEF\xBB\xBFhostname=a\r\n\r\npassword=b\r\n").unwrap();
        assert_eq!(conf.entries.len(), 2);
        assert_eq!(
            conf.entries[1],
            Entry {
                line: 3,
                key: "password".into(),
                value: "b".into()
            }
        );

        let errs = parse(b"a=1\nb=\"x\nc=2\na=3\nd=\xff\ne=\0\n").unwrap_err();
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            [
                "line 2: b: unterminated \" quote",
                "line 4: a: given twice (first on line 1)",
                "line 5: d: is not valid UTF-8",
                "line 6: e: contains a NUL byte",
            ]
        );
    }

    #[test]
    fn regression_a_password_line_merged_into_another_value_is_not_printed() {
        let errs = parse(b"dns_nameserver=\"7.7.7.7\"password=cXdlcjEyMzQK\nhostname=a password='x y'\n")
            .unwrap_err();
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            shown.iter().all(|m| !m.contains("cXdl") && !m.contains("'x")),
            "{shown:?}"
        );
        assert!(shown[0].contains("password=(not shown)"), "{shown:?}");
    }

    #[test]
    fn size_limit() {
        let big = vec![b'#'; MAX_SIZE + 1];
        let errs = read(&big[..]).unwrap_err();
        assert!(errs[0].to_string().contains("larger than 65536 bytes"));
        assert!(read(&big[..MAX_SIZE]).is_ok());
    }
}
