//! INI-style files as systemd (`.network` files) and GLib keyfiles (NetworkManager) write them:
//! `[Section]` headers, `key=value` entries, `#` and `;` comments. The one reader of their lines;
//! editors built on it keep every other byte.

/// What one line of an INI-style file is.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// `[name]`: the name between the brackets as written (both programs take it so). An
    /// unterminated `[name` is a section of its own whole text, which names no real section.
    Section(&'a str),
    /// `key=value`, both trimmed.
    Entry(&'a str, &'a str),
    /// A comment, a blank line, or anything else neither program reads as an entry.
    Other,
}

impl Line<'_> {
    pub fn of(line: &str) -> Line<'_> {
        let line = line.trim();
        if line.starts_with(['#', ';']) {
            return Line::Other;
        }
        if let Some(rest) = line.strip_prefix('[') {
            return Line::Section(rest.strip_suffix(']').unwrap_or(line));
        }
        line.split_once('=')
            .map_or(Line::Other, |(k, v)| Line::Entry(k.trim(), v.trim()))
    }
}

/// `(section, key, value)` for every entry, in order; `""` is the section before any header.
pub fn entries(text: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    let mut section = "";
    text.lines().filter_map(move |line| match Line::of(line) {
        Line::Section(name) => {
            section = name;
            None
        }
        Line::Entry(key, value) => Some((section, key, value)),
        Line::Other => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_entries() {
        for (line, want) in [
            (" [Match] ", Line::Section("Match")),
            ("[Match", Line::Section("[Match")),
            (" Name = en* ", Line::Entry("Name", "en*")),
            ("a=b=c", Line::Entry("a", "b=c")),
            ("#Name=x", Line::Other),
            ("; Name=x", Line::Other),
            ("", Line::Other),
            ("junk", Line::Other),
        ] {
            assert_eq!(Line::of(line), want, "{line:?}");
        }
        let text = "top=1\n[A]\nk=v\n# k=c\n[B\nk=w\n[A]\nk=x\n";
        let got: Vec<_> = entries(text).collect();
        assert_eq!(
            got,
            [
                ("", "top", "1"),
                ("A", "k", "v"),
                ("[B", "k", "w"),
                ("A", "k", "x")
            ]
        );
    }
}
