//! Which program reads `/etc/network/interfaces` on an ifupdown system — Debian's ifupdown,
//! ifupdown-ng or ifupdown2, each installed as `ifup` — and the one place they read the format
//! differently: the `source` and `source-directory` lines that make them read osconf's file.
//!
//! Found in their source and checked by running each (`tests/root/real_ifupdown.rs`):
//! - ifupdown expands a `source` pattern (relative to /etc/network) and reads `source-directory`.
//! - ifupdown-ng (0.11, 0.12) opens a `source` path as it is, no pattern, relative to its working
//!   directory: Debian's `source /etc/network/interfaces.d/*` fails the whole file ("could not
//!   parse"), so no NIC comes up at all. It reads every regular file of a `source-directory`.
//! - ifupdown2 globs a `source` path (relative to its working directory) and knows no
//!   `source-directory` (an error line, skipped).

use super::super::common::glob;
use crate::system::{self, System};

/// The program that reads the interfaces files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Ifupdown,
    Ng,
    Ifupdown2,
}

/// Files only each variant's package installs: (reader, path).
const EVIDENCE: [(Reader, &str); 4] = [
    (Reader::Ng, "/etc/network/ifupdown-ng.conf"),
    (Reader::Ng, "/sbin/ifupdown"),
    (Reader::Ifupdown2, "/etc/network/ifupdown2/ifupdown2.conf"),
    (Reader::Ifupdown2, "/usr/share/ifupdown2/ifupdown2"),
];

impl Reader {
    /// The variant installed in `sys`, with the file that says so (`None` for Debian's ifupdown).
    pub fn find(sys: &System) -> system::Result<(Reader, Option<&'static str>)> {
        for (reader, path) in EVIDENCE {
            if sys.exists(path)? {
                return Ok((reader, Some(path)));
            }
        }
        Ok((Reader::Ifupdown, None))
    }

    pub fn name(self) -> &'static str {
        match self {
            Reader::Ifupdown => "ifupdown",
            Reader::Ng => "ifupdown-ng",
            Reader::Ifupdown2 => "ifupdown2",
        }
    }

    /// True when the words of one line make this reader read `file`, which lies in `dir`.
    pub fn reads(self, words: &[&str], file: &str, dir: &str) -> bool {
        let relative_to_etc_network = |p: &str| {
            if p.starts_with('/') {
                p.to_owned()
            } else {
                format!("/etc/network/{p}")
            }
        };
        match (self, words) {
            (Reader::Ifupdown, ["source", pattern]) => {
                glob::matches(&relative_to_etc_network(pattern), file, true)
            }
            (Reader::Ifupdown, ["source-directory", d]) => {
                glob::matches(&relative_to_etc_network(d.trim_end_matches('/')), dir, true)
            }
            (Reader::Ng, ["source", path]) => *path == file,
            (Reader::Ng, ["source-directory", d]) => d.trim_end_matches('/') == dir,
            (Reader::Ifupdown2, ["source", pattern]) => {
                pattern.starts_with('/') && glob::matches(pattern, file, true)
            }
            _ => false,
        }
    }

    /// True for a line this reader cannot read at all and which fails the whole file: ifupdown-ng's
    /// `source` of a pattern or a relative path.
    pub fn fails_on(self, words: &[&str]) -> bool {
        match (self, words) {
            (Reader::Ng, ["source", path]) => !path.starts_with('/') || path.contains(['*', '?', '[']),
            _ => false,
        }
    }
}

/// Comments out (never deletes) the lines of `text` that `reader` fails on, each after a line saying
/// why. `None` when there is none; else the new text and the lines disabled.
pub fn disable_unreadable(text: &str, reader: Reader) -> Option<(String, Vec<String>)> {
    let mut out = String::with_capacity(text.len() + 100);
    let mut disabled = Vec::new();
    for line in text.split_inclusive('\n') {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !reader.fails_on(&words) {
            out.push_str(line);
            continue;
        }
        let body = line.trim_end_matches(['\n', '\r']);
        out.push_str(&format!(
            "{}{} cannot read this line and would read no stanza at all.\n# {body}\n",
            super::super::common::DISABLED,
            reader.name()
        ));
        disabled.push(body.trim().to_owned());
    }
    (!disabled.is_empty()).then_some((out, disabled))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/network/interfaces.d/50-osconf";
    const DIR: &str = "/etc/network/interfaces.d";

    #[test]
    fn each_reader_reads_its_own_source_lines() {
        use Reader::{Ifupdown, Ifupdown2, Ng};
        let cases: &[(&str, [bool; 3])] = &[
            ("source /etc/network/interfaces.d/*", [true, false, true]),
            ("source interfaces.d/*", [true, false, false]),
            ("source /etc/network/interfaces.d/50-osconf", [true, true, true]),
            ("source-directory /etc/network/interfaces.d/", [true, true, false]),
            ("source-directory interfaces.d", [true, false, false]),
            ("source /etc/network/interfaces.d/*.cfg", [false, false, false]),
        ];
        for (line, want) in cases {
            let words: Vec<&str> = line.split_whitespace().collect();
            let got = [Ifupdown, Ng, Ifupdown2].map(|r| r.reads(&words, FILE, DIR));
            assert_eq!(&got, want, "{line}");
        }
    }

    #[test]
    fn ifupdown_ng_patterns_are_commented_out_with_why() {
        let text = "auto lo\nsource /etc/network/interfaces.d/*\nsource /etc/network/extra\n";
        let (new, disabled) = disable_unreadable(text, Reader::Ng).unwrap();
        assert_eq!(
            new,
            "auto lo\n# Disabled by osconf: ifupdown-ng cannot read this line and would read no stanza at all.\n\
             # source /etc/network/interfaces.d/*\nsource /etc/network/extra\n"
        );
        assert_eq!(disabled, ["source /etc/network/interfaces.d/*"]);
        assert_eq!(disable_unreadable(&new, Reader::Ng), None);
        assert_eq!(disable_unreadable(text, Reader::Ifupdown2), None);
    }
}
