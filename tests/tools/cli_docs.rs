//! The help, the man page, the shell completions and the README's reference all come from the one
//! command-line definition (`osconf::cli::defs`): every flag of every command appears in each, and each
//! generated file is accepted by the program that consumes it (groff/man, bash, zsh, fish).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use osconf::cli::defs::{self, Flag};

use crate::common::real::cannot_run;

fn osconf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(args)
        .output()
        .unwrap()
}

/// What `osconf ARGS` prints, checking it succeeds quietly.
fn printed(args: &[&str]) -> String {
    let out = osconf(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `--long`, its `--no-…` form and `-s`: every way to write a flag.
fn spellings(f: &Flag) -> Vec<String> {
    let mut s = vec![format!("--{}", f.long)];
    s.extend(f.negated.map(|n| format!("--{n}")));
    s.extend(f.short.map(|c| format!("-{c}")));
    s
}

/// A generated file in a temporary directory, for the shells and groff to read.
fn generated(dir: &Path, kind: &str, name: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, printed(&["generate", kind])).unwrap();
    path
}

fn is_program(p: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {p}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `program args`, returning stdout; `None` (after `cannot_run`) when the program is missing.
fn run(test: &str, program: &str, args: &[&str]) -> Option<String> {
    if !is_program(program) {
        cannot_run(
            test,
            &format!("{program} is not installed (see .ci/packages.txt)"),
        );
        return None;
    }
    // A home of its own: fish makes ~/.config/fish and ~/.local/share/fish even for `-n`, which as
    // root under a HOME that does not exist creates it on the host.
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(program)
        .args(args)
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_STATE_HOME")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program} {args:?}: {stderr}");
    assert_eq!(stderr, "", "{program} {args:?} warned");
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn every_flag_of_every_command_is_in_help_man_page_and_completions() {
    let man = printed(&["generate", "man"]).replace("\\-", "-");
    let scripts = ["complete-bash", "complete-zsh", "complete-fish"].map(|k| (k, printed(&["generate", k])));
    let top = printed(&["--help"]);
    for f in defs::GLOBAL_FLAGS {
        for spelling in spellings(f) {
            assert!(top.contains(&spelling), "--help lacks {spelling}");
            assert!(man.contains(&spelling), "the man page lacks {spelling}");
        }
    }
    for c in defs::COMMANDS {
        let words: Vec<&str> = c.name.split(' ').chain(["--help"]).collect();
        let help = printed(&words);
        assert!(
            top.contains(c.name) && man.contains(&format!("osconf {}", c.name)),
            "{}",
            c.name
        );
        for o in c.operands {
            assert!(
                help.contains(o.name) && man.contains(o.name),
                "{} {}",
                c.name,
                o.name
            );
        }
        for f in c.all_flags() {
            for spelling in spellings(f) {
                assert!(help.contains(&spelling), "{} --help lacks {spelling}", c.name);
                assert!(man.contains(&spelling), "the man page lacks {spelling}");
            }
            for (kind, script) in &scripts {
                // fish names flags without their dashes (`-l root`, `-s h`).
                let names = match *kind {
                    "complete-fish" => {
                        let mut n = vec![format!("-l {}", f.long)];
                        n.extend(f.negated.map(|neg| format!("-l {neg}")));
                        n.extend(f.short.map(|s| format!("-s {s}")));
                        n
                    }
                    _ => spellings(f),
                };
                for name in names {
                    assert!(script.contains(&name), "{kind} lacks {name} of {}", c.name);
                }
            }
        }
        for (kind, script) in &scripts {
            assert!(script.contains(c.action()), "{kind} lacks the command {}", c.name);
        }
    }
    for g in defs::GROUPS {
        let help = printed(&[g.name, "--help"])
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for c in g.commands() {
            assert!(
                help.contains(c.name) && help.contains(c.summary),
                "{} --help lacks {}",
                g.name,
                c.name
            );
        }
    }
    // Two different flags never share a name (the parser would only ever see the first).
    let mut flags: Vec<&Flag> = defs::COMMANDS
        .iter()
        .flat_map(|c| c.all_flags())
        .chain(defs::GLOBAL_FLAGS.iter().copied())
        .collect();
    flags.sort_by_key(|f| std::ptr::from_ref(*f) as usize);
    flags.dedup_by_key(|f| std::ptr::from_ref(*f) as usize);
    let mut names: Vec<&str> = flags
        .iter()
        .flat_map(|f| [Some(f.long), f.negated])
        .flatten()
        .collect();
    let count = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), count, "two different flags named alike");
}

/// `[--root DIR]` → `--root`: the flags a synopsis offers.
fn offered(synopsis: &str) -> Vec<String> {
    let mut flags: Vec<String> = synopsis
        .split(['[', '|'])
        .filter_map(|w| w.trim().strip_prefix("--"))
        .map(|w| w.split([' ', ']']).next().unwrap().to_owned())
        .collect();
    flags.sort();
    flags
}

/// Each command's usage — in `osconf --help`, the README, its own `--help` and the man page —
/// offers exactly the flags it takes (the four image commands once shared one list of eight).
#[test]
fn each_usage_offers_only_the_commands_own_flags() {
    let top = printed(&["--help"]);
    let readme = fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let man = printed(&["generate", "man"])
        .replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "");
    for c in defs::COMMANDS {
        let mut own: Vec<String> = (c.flags.iter())
            .flat_map(|f| [Some(f.long), f.negated])
            .flatten()
            .map(str::to_owned)
            .collect();
        own.sort();
        let start = format!("osconf {} ", c.name);
        for (what, text) in [("--help", &top), ("README.md", &readme), ("the man page", &man)] {
            let line = text
                .lines()
                .find(|l| l.trim_start().starts_with(&start) || l.trim_start() == start.trim_end())
                .unwrap_or_else(|| panic!("{what} has no usage of {}", c.name));
            assert_eq!(offered(line), own, "{what}: {line}");
        }
        let words: Vec<&str> = c.name.split(' ').chain(["--help"]).collect();
        let help = printed(&words);
        let usage = help[help.find("Usage:").unwrap()..].split("\n\n").next().unwrap();
        assert_eq!(
            offered(&usage.replace('\n', " ")),
            own,
            "{} --help: {usage}",
            c.name
        );
    }
}

#[test]
fn the_man_page_renders_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let page = generated(dir.path(), "man", &format!("osconf.{}", defs::MAN_SECTION));
    let page = page.to_str().unwrap();
    let test = "the_man_page_renders_without_a_warning";
    let Some(_) = run(test, "groff", &["-man", "-Tutf8", "-ww", "-z", page]) else {
        return;
    };
    let Some(text) = run(test, "man", &["--warnings", "-l", "-P", "cat", page]) else {
        return;
    };
    // mandoc's linter, as distributions run it on packaged pages: nothing at warning level or above
    // (`.TH` carries a date, no macro misused).
    let Some(lint) = run(test, "mandoc", &["-T", "lint", "-W", "warning", page]) else {
        return;
    };
    assert_eq!(lint, "", "mandoc -T lint -W warning");
    let title = format!("OSCONF({})", defs::MAN_SECTION);
    for expected in [
        title.as_str(),
        "SYNOPSIS",
        "EXIT STATUS",
        "--ifname ethN=NAME",
        "--no-live",
        "networkmanager",
    ] {
        assert!(text.contains(expected), "man -l lacks {expected:?}:\n{text}");
    }
}

/// The man page's section is one: the page's `.TH`, where scripts/package puts the page and where
/// the .deb and .rpm metadata (Cargo.toml) and scripts/test-package look for it.
#[test]
fn the_man_section_agrees_everywhere() {
    let n = defs::MAN_SECTION;
    let th = format!(".TH OSCONF {n} ");
    assert!(printed(&["generate", "man"]).starts_with(&th));
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "Cargo.toml",
        "scripts/package",
        "scripts/test-package",
        "README.md",
    ] {
        let text = fs::read_to_string(repo.join(file)).unwrap();
        let paths = man_paths(&text);
        assert!(!paths.is_empty(), "{file} names no man page");
        for p in paths {
            assert!(
                p == format!("osconf.{n}") || p == format!("man{n}"),
                "{file}: {p}"
            );
        }
    }
}

/// Every `osconf.N` and `manN` (N a digit) in `text`.
fn man_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in ["osconf.", "/man"] {
        for (at, _) in text.match_indices(prefix) {
            let rest = &text[at + prefix.len()..];
            let digit = rest.chars().next().filter(char::is_ascii_digit);
            let end = rest.chars().nth(1).is_none_or(|c| !c.is_ascii_alphanumeric());
            if let (Some(d), true) = (digit, end) {
                out.push(format!("{}{d}", prefix.trim_start_matches('/')));
            }
        }
    }
    out
}

/// Runs the bash completion for `words` (the last one being completed) and returns what it offers.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}' && complete -p osconf >&2 && COMP_WORDS=({}) && COMP_CWORD={} && _osconf && \
         for w in \"${{COMPREPLY[@]}}\"; do printf '%s\\n' \"$w\"; done",
        script.display(),
        quoted.join(" "),
        words.len() - 1
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{words:?}: {stderr}");
    assert_eq!(stderr.trim(), "complete -F _osconf osconf", "{words:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_bash_completion_is_valid_and_completes_commands_flags_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let script = generated(dir.path(), "complete-bash", "osconf.bash");
    run("bash completion", "bash", &["-n", script.to_str().unwrap()]).unwrap();
    fs::create_dir(dir.path().join("subdir")).unwrap();
    let sub = format!("{}/su", dir.path().display());
    let cases: &[(&[&str], &[&str])] = &[
        (&["osconf", "ap"], &["apply"]),
        (&["osconf", "--v"], &["--version"]),
        (&["osconf", "apply", "--st"], &["--stack"]),
        (&["osconf", "plan", "--no"], &["--no-live"]),
        (&["osconf", "detect", "--"], &["--root", "--json", "--help"]),
        (&["osconf", "apply", "--stack", "netp"], &["netplan"]),
        (&["osconf", "apply", "--stack", "=", "netp"], &["netplan"]),
        (&["osconf", "apply", "--root", &sub], &[&format!("{sub}bdir")]),
        (&["osconf", "generate", "complete-z"], &["complete-zsh"]),
        (&["osconf", "apply", "--ifname", ""], &[]),
        (&["osconf", "im"], &["image"]),
        (&["osconf", "image", "in"], &["inject"]),
        (&["osconf", "image", "check", "--"], &["--json", "--help"]),
        (&["osconf", "image", "test", "--ac"], &["--accel"]),
        (&["osconf", "image", "test", "--accel", "t"], &["tcg"]),
        (&["osconf", "image", "--v"], &["--verbose"]),
        (
            &["osconf", "image", "prepare", "--"],
            &["--agent", "--remove-host-keys", "--lock-root-password", "--help"],
        ),
        (&["osconf", "image", "test", "--firmware", "u"], &["uefi"]),
    ];
    for (words, expected) in cases {
        let offered = bash_complete(&script, words);
        assert_eq!(offered, *expected, "{words:?}");
    }
}

#[test]
fn the_zsh_completion_parses_and_registers_with_compinit() {
    let dir = tempfile::tempdir().unwrap();
    let script = generated(dir.path(), "complete-zsh", "_osconf");
    let test = "the_zsh_completion_parses_and_registers_with_compinit";
    let Some(_) = run(test, "zsh", &["-n", script.to_str().unwrap()]) else {
        return;
    };
    let program = format!(
        "fpath=('{}' $fpath); autoload -Uz compinit; compinit -u -D; print -r -- ${{_comps[osconf]}}",
        dir.path().display()
    );
    let registered = run(test, "zsh", &["-f", "-c", &program]).unwrap();
    assert_eq!(registered, "_osconf\n");
}

#[test]
fn the_fish_completion_parses_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let script = generated(dir.path(), "complete-fish", "osconf.fish");
    let path = script.to_str().unwrap();
    let test = "the_fish_completion_parses_and_completes";
    let Some(_) = run(test, "fish", &["--no-execute", path]) else {
        return;
    };
    for (line, expected) in [
        ("osconf ap", "apply"),
        ("osconf apply --st", "--stack"),
        ("osconf plan --no-", "--no-live"),
        ("osconf apply --stack netp", "netplan"),
        ("osconf generate m", "man"),
        ("osconf image pr", "prepare"),
        ("osconf image test --ac", "--accel"),
        ("osconf image check --j", "--json"),
    ] {
        let program = format!("source '{path}'; complete -C '{line}'");
        let offered = run(test, "fish", &["--no-config", "-c", &program]).unwrap();
        let first: Vec<&str> = offered.lines().map(|l| l.split('\t').next().unwrap()).collect();
        assert_eq!(first, [expected], "{line}");
    }
}

/// The README's command reference is the generated one; `OSCONF_BLESS=1` rewrites it.
#[test]
fn readme_command_reference_is_generated_from_the_definition() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = fs::read_to_string(&path).unwrap();
    let (begin, end) = ("<!-- generated from src/cli/defs.rs", "<!-- end generated -->");
    let begin = readme.find(begin).expect("the begin marker");
    let start = begin + readme[begin..].find('\n').unwrap() + 1;
    let stop = readme.find(end).expect("the end marker");
    let expected = osconf::cli::doc::markdown();
    if std::env::var_os("OSCONF_BLESS").is_some() {
        fs::write(
            &path,
            format!("{}{expected}{}", &readme[..start], &readme[stop..]),
        )
        .unwrap();
        return;
    }
    assert_eq!(
        readme[start..stop],
        expected,
        "README.md's command reference differs from the definition; rerun with OSCONF_BLESS=1"
    );
}
