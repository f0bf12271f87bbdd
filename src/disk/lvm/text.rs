//! LVM2's metadata text format (`vg { key = value … section { … } }`), parsed into a tree with
//! bounds on its size, depth and number of values: the volume group's text is read from the disk
//! and is as hostile as any other byte there. Errors name the line.

use std::io;

use crate::disk::corrupt;

/// The most text parsed (LVM's default metadata area is 1 MiB).
pub const MAX_TEXT: usize = 16 << 20;
/// Sections inside sections.
const MAX_DEPTH: usize = 16;
/// Values (numbers, strings, list items, sections) in all.
const MAX_VALUES: usize = 1 << 20;

/// A value of the text format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Str(String),
    List(Vec<Value>),
    Section(Section),
}

/// The keys of a section, in their order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section(pub Vec<(String, Value)>);

impl Section {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn section(&self, key: &str) -> Option<&Section> {
        match self.get(key)? {
            Value::Section(s) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The subsections, by name.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Section)> {
        self.0.iter().filter_map(|(k, v)| match v {
            Value::Section(s) => Some((k.as_str(), s)),
            _ => None,
        })
    }
}

struct Parser<'a> {
    b: &'a [u8],
    p: usize,
    line: usize,
    values: usize,
}

/// The text's top-level keys (the volume group is the one section among them).
pub fn parse(text: &[u8]) -> io::Result<Section> {
    if text.len() > MAX_TEXT {
        return Err(corrupt(format!("LVM metadata of {} bytes", text.len())));
    }
    let mut p = Parser {
        b: text,
        p: 0,
        line: 1,
        values: 0,
    };
    p.section(0, true)
}

impl Parser<'_> {
    fn err(&self, what: &str) -> io::Error {
        corrupt(format!("LVM metadata line {}: {what}", self.line))
    }

    /// Skips blanks and comments; the next byte, if any.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&c) = self.b.get(self.p) {
            match c {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' => {}
                b'#' => {
                    while self.b.get(self.p).is_some_and(|&c| c != b'\n') {
                        self.p += 1;
                    }
                    continue;
                }
                // The text ends at a NUL (the area holds it NUL-terminated).
                0 => {
                    self.p = self.b.len();
                    return None;
                }
                _ => return Some(c),
            }
            self.p += 1;
        }
        None
    }

    fn section(&mut self, depth: usize, top: bool) -> io::Result<Section> {
        if depth > MAX_DEPTH {
            return Err(self.err("sections nested too deep"));
        }
        let mut s = Section::default();
        loop {
            match self.peek() {
                None if top => return Ok(s),
                None => return Err(self.err("a section is not closed")),
                Some(b'}') if !top => {
                    self.p += 1;
                    return Ok(s);
                }
                Some(_) => {}
            }
            let key = self.word()?;
            self.count()?;
            let value = match self.peek() {
                Some(b'{') => {
                    self.p += 1;
                    Value::Section(self.section(depth + 1, false)?)
                }
                Some(b'=') => {
                    self.p += 1;
                    self.value()?
                }
                _ => return Err(self.err(&format!("{key:?} is followed by neither = nor {{"))),
            };
            s.0.push((key, value));
        }
    }

    fn count(&mut self) -> io::Result<()> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(self.err("more values than any volume group holds"));
        }
        Ok(())
    }

    fn word(&mut self) -> io::Result<String> {
        let start = self.p;
        while self
            .b
            .get(self.p)
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"_.+-".contains(c))
        {
            self.p += 1;
        }
        if start == self.p {
            return Err(self.err("a name is expected"));
        }
        Ok(String::from_utf8_lossy(&self.b[start..self.p]).into_owned())
    }

    fn value(&mut self) -> io::Result<Value> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::Str),
            Some(b'[') => {
                self.p += 1;
                let mut items = Vec::new();
                loop {
                    match self.peek() {
                        Some(b']') => {
                            self.p += 1;
                            return Ok(Value::List(items));
                        }
                        Some(b',') if !items.is_empty() => self.p += 1,
                        _ if items.is_empty() => {}
                        _ => return Err(self.err("list items are not separated by commas")),
                    }
                    if self.peek() == Some(b']') {
                        continue;
                    }
                    self.count()?;
                    match self.peek() {
                        Some(b'"') => items.push(Value::Str(self.string()?)),
                        Some(b'[') => return Err(self.err("a list inside a list")),
                        _ => items.push(Value::Int(self.int()?)),
                    }
                }
            }
            _ => self.int().map(Value::Int),
        }
    }

    fn int(&mut self) -> io::Result<i64> {
        let start = self.p;
        if self.b.get(self.p) == Some(&b'-') {
            self.p += 1;
        }
        while self.b.get(self.p).is_some_and(u8::is_ascii_digit) {
            self.p += 1;
        }
        std::str::from_utf8(&self.b[start..self.p])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.err("a number, a string or a list is expected"))
    }

    fn string(&mut self) -> io::Result<String> {
        self.p += 1;
        let mut out = Vec::new();
        loop {
            match self.b.get(self.p) {
                None | Some(0) => return Err(self.err("a string is not closed")),
                Some(b'"') => {
                    self.p += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') if self.p + 1 < self.b.len() => {
                    out.push(self.b[self.p + 1]);
                    self.p += 2;
                }
                Some(&c) => {
                    if c == b'\n' {
                        self.line += 1;
                    }
                    out.push(c);
                    self.p += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_group_parses() {
        let text = b"rl {\nid = \"abc\"\nseqno = 3\nstatus = [\"READ\", \"WRITE\"]\n\
            flags = []\n# a comment\nlogical_volumes {\nroot {\nstripes = [\n\"pv0\", 0\n]\n}\n}\n}\n\
            contents = \"Text Format Volume Group\"\nversion = 1\n\0garbage";
        let top = parse(text).unwrap();
        let vg = top.section("rl").unwrap();
        assert_eq!(vg.int("seqno"), Some(3));
        assert_eq!(vg.str("id"), Some("abc"));
        assert_eq!(vg.get("flags"), Some(&Value::List(vec![])));
        let root = vg.section("logical_volumes").unwrap().section("root").unwrap();
        assert_eq!(
            root.get("stripes"),
            Some(&Value::List(vec![Value::Str("pv0".into()), Value::Int(0)]))
        );
        assert_eq!(top.int("version"), Some(1));
    }

    #[test]
    fn bad_text_names_its_line() {
        for (text, says) in [
            (&b"a {\nb = \n}"[..], "line 3: a number"),
            (b"a {\nb = 1\n", "line 3: a section is not closed"),
            (b"a = \"x", "line 1: a string is not closed"),
            (b"a = [1 2]", "commas"),
            (b"a = 99999999999999999999", "a number"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        let deep = "a {".repeat(100);
        assert!(
            parse(deep.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("too deep")
        );
    }
}
