//! JSON output: the one writer of JSON text for every command that offers `--json` (`status`,
//! `detect`, `image check`), so that escaping is done once and right (RFC 8259). Writes only; osconf
//! never reads JSON.

use std::fmt::Write as _;

/// A JSON string literal: quote, backslash and control characters escaped.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON array of the values given, each already JSON.
pub fn array(values: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", values.into_iter().collect::<Vec<_>>().join(","))
}

/// A string, or `null` when there is none.
pub fn string_or_null(s: Option<&str>) -> String {
    s.map_or_else(|| "null".to_owned(), string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_arrays_parse_with_serde_json() {
        let odd = "\u{1}\u{7f}é\r\"\\\t\n";
        let back: String = serde_json::from_str(&string(odd)).unwrap();
        assert_eq!(back, odd);
        let v: serde_json::Value = serde_json::from_str(&array([string("a"), string_or_null(None)])).unwrap();
        assert_eq!(v, serde_json::json!(["a", null]));
        assert_eq!(array([]), "[]");
    }
}
