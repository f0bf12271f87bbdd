//! A test of the source tree's shape: the modules of `src/` import one another without a cycle.
//!
//! Each file is a module (a folder's `mod.rs` is the folder's); an edge is every `crate::…` or
//! `super::…` path in code that is not a test, to the deepest module the path names. A module's
//! own folder and sub-folders are one unit with it, so paths between a module and its ancestors or
//! descendants are not edges (`disk::fat::dir` may use `disk::fat`'s and `disk`'s items); between
//! any two other modules an edge in each direction, or a longer loop, is a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

/// Every module file under `src` (the crate root, `main.rs` and `bin/` left out) and its text
/// without test code. Files declared `#[cfg(test)] mod x;` are left out too.
fn modules(src: &Path) -> BTreeMap<Module, String> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    let mut test_files = BTreeSet::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path != src.join("bin") {
                    dirs.push(path);
                }
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Module = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if module.last().is_some_and(|l| l == "mod") {
                module.pop();
            }
            if path.extension().is_none_or(|e| e != "rs") || module == ["lib"] || module == ["main"] {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices("#[cfg(test)]\nmod ") {
                let name = text[at + 17..].split([';', ' ']).next().unwrap();
                if text[at + 17 + name.len()..].starts_with(';') {
                    let mut m = module.clone();
                    m.push(name.to_owned());
                    test_files.insert(m);
                }
            }
            found.insert(module, without_tests(&text));
        }
    }
    found.retain(|m, _| !test_files.iter().any(|t| m.starts_with(t)));
    found
}

/// `text` without its `#[cfg(test)]` items (a module block or one item), braces matched.
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let (mut depth, mut end) = (0usize, item.len());
        for (i, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 1 => {
                    end = i + 1;
                    break;
                }
                '}' => depth = depth.saturating_sub(1),
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out + rest
}

/// The modules each module's paths name, per the rules in the module's comment.
fn edges(mods: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (from, text) in mods {
        let to_all = graph.entry(from.clone()).or_default();
        for start in ["crate::", "super::"] {
            for (at, _) in text.match_indices(start) {
                let before = text[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let path: Vec<&str> = text[at..]
                    .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap()
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .collect();
                let mut to: Module = Vec::new();
                let mut words = path.iter().peekable();
                if start == "super::" {
                    to = from.clone();
                    while words.next_if(|w| **w == "super").is_some() {
                        to.pop();
                    }
                } else {
                    words.next();
                }
                for w in words {
                    let mut deeper = to.clone();
                    deeper.push((*w).to_owned());
                    if !mods.contains_key(&deeper) {
                        break;
                    }
                    to = deeper;
                }
                let related = to.starts_with(from) || from.starts_with(&to);
                if !related {
                    to_all.insert(to);
                }
            }
        }
    }
    graph
}

/// The strongly connected components of more than one module (Tarjan's algorithm).
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, (usize, usize)>,
        stack: Vec<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let n = s.index.len();
        s.index.insert(v, (n, n));
        s.stack.push(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.index[w].1.min(s.index[v].1);
                s.index.get_mut(v).unwrap().1 = low;
            } else if s.stack.contains(&w) {
                let low = s.index[w].0.min(s.index[v].1);
                s.index.get_mut(v).unwrap().1 = low;
            }
        }
        if s.index[v].0 == s.index[v].1 {
            let at = s.stack.iter().rposition(|m| *m == v).unwrap();
            let component: Vec<Module> = s.stack.drain(at..).cloned().collect();
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn the_import_graph_of_src_has_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    assert!(mods.contains_key(&vec!["disk".to_owned(), "fat".to_owned(), "dir".to_owned()]));
    let graph = edges(&mods);
    let named = |c: &Vec<Module>| c.iter().map(|m| m.join("::")).collect::<Vec<_>>().join(" ↔ ");
    let found: Vec<String> = cycles(&graph).iter().map(named).collect();
    assert!(
        found.is_empty(),
        "{} cycle(s):\n{}",
        found.len(),
        found.join("\n")
    );
}

/// The check finds what it is for: a loop of two modules and one of three, not a parent and its
/// child.
#[test]
fn the_check_finds_a_cycle() {
    let m = |s: &str| -> Module { s.split("::").map(str::to_owned).collect() };
    let mods: BTreeMap<Module, String> = [
        ("a", "use crate::b::X;"),
        ("b", "fn f() { crate::a::g() }"),
        ("c", "use crate::d;"),
        ("d", "use super::e::Y;"),
        ("e", "use crate::c::Z; use crate::e::f::W;"),
        (
            "e::f",
            "use super::V; #[cfg(test)]\nmod tests { use crate::a::T; }",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (m(k), without_tests(v)))
    .collect();
    let mut found = cycles(&edges(&mods));
    found.iter_mut().for_each(|c| c.sort());
    found.sort();
    assert_eq!(found, [vec![m("a"), m("b")], vec![m("c"), m("d"), m("e")]]);
}

/// Every `Result<T, String>` written in `text` (generics nested to any depth): an error that is
/// only text, without the kind, path and outcome `error::Error` carries.
fn string_errors(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("Result<") {
        let bytes = text.as_bytes();
        let (mut depth, mut end, mut last_comma) = (0usize, None, None);
        for (i, &b) in bytes.iter().enumerate().skip(at + 6) {
            match b {
                b'<' | b'(' | b'[' => depth += 1,
                b'>' if i > 0 && bytes[i - 1] == b'-' => {}
                b'>' | b')' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                b',' if depth == 1 => last_comma = Some(i),
                _ => {}
            }
        }
        // `io::Result<String>` and other one-argument aliases have no error type written.
        let (Some(end), Some(comma)) = (end, last_comma) else {
            continue;
        };
        if text[comma + 1..end].trim() == "String" {
            found.push(text[at..=end].to_owned());
        }
    }
    found
}

/// Issue 13 §3: no error in `src/` is a bare `String` (code and tests alike).
#[test]
fn no_result_with_a_string_error_in_src() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut dirs = vec![src];
    let mut found = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("import_graph.rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                found.extend(
                    string_errors(&text)
                        .into_iter()
                        .map(|r| format!("{}: {r}", path.display())),
                );
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The scan sees nested generics, and only a `String` in the error's place.
#[test]
fn the_scan_finds_string_errors_only() {
    let text = "fn a() -> Result<Option<(u8, String)>, String> {} \
                fn b() -> Result<BTreeMap<u32, String>, Error> {} \
                fn c() -> io::Result<String> {} \
                fn d(f: fn(&str) -> Result<T, String>) {}";
    assert_eq!(
        string_errors(text),
        ["Result<Option<(u8, String)>, String>", "Result<T, String>"]
    );
}
