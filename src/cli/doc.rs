//! Text generated from the command-line definition: `--help`, the man page (roff) and the README's
//! command reference. Pure functions of `defs`; nothing here is written by hand twice.

use std::fmt::Write as _;

use super::complete;
use super::defs::{self, CommandDef, Flag};
use crate::render;

/// What `osconf generate KIND` prints, in the order of `defs::GENERATED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generated {
    Man,
    Bash,
    Zsh,
    Fish,
    /// osconf.service as `osconf install` writes it, for packages.
    Unit,
}

impl Generated {
    pub const ALL: [Generated; 5] = [
        Generated::Man,
        Generated::Bash,
        Generated::Zsh,
        Generated::Fish,
        Generated::Unit,
    ];
}

pub fn generate(what: Generated) -> String {
    match what {
        Generated::Man => man(),
        Generated::Bash => complete::bash(),
        Generated::Zsh => complete::zsh(),
        Generated::Fish => complete::fish(),
        Generated::Unit => crate::install::systemd_unit(
            "Installed by the osconf package (made with osconf generate unit); the package removes it.",
        ),
    }
}

const WIDTH: usize = 100;

/// `--root DIR`, `--live, --no-live`, `-h, --help`: a flag as help and the man page name it.
fn flag_label(f: &Flag) -> String {
    let mut s = String::new();
    if let Some(c) = f.short {
        let _ = write!(s, "-{c}, ");
    }
    let _ = write!(s, "--{}", f.long);
    if let Some(v) = &f.value {
        let _ = write!(s, " {}", v.name);
    }
    if let Some(n) = f.negated {
        let _ = write!(s, ", --{n}");
    }
    s
}

/// `[--root DIR]`, `[--ifname ethN=NAME]...`, `[--live | --no-live]`.
fn flag_synopsis(f: &Flag) -> String {
    let mut s = format!("[--{}", f.long);
    if let Some(v) = &f.value {
        let _ = write!(s, " {}", v.name);
    }
    if let Some(n) = f.negated {
        let _ = write!(s, " | --{n}");
    }
    s.push(']');
    if f.repeat {
        s.push_str("...");
    }
    s
}

/// A command's synopsis after `osconf NAME`: operands, then flags.
fn synopsis_args(c: &CommandDef) -> String {
    let parts: Vec<String> = (c.operands.iter().map(|o| match o.optional {
        true => format!("[{}]", o.name),
        false => o.name.to_owned(),
    }))
    .chain(c.flags.iter().map(|f| flag_synopsis(f)))
    .collect();
    parts.join(" ")
}

/// One line per command, names aligned: the top of `--help` and the README.
pub fn synopsis() -> String {
    synopsis_of(defs::COMMANDS.iter())
}

/// One line per command of `commands`, names aligned.
fn synopsis_of<'a>(commands: impl Iterator<Item = &'a CommandDef> + Clone) -> String {
    let width = commands.clone().map(|c| c.name.len()).max().unwrap_or(0);
    let mut s = String::new();
    for c in commands {
        let line = format!("{} {:<width$} {}", defs::NAME, c.name, synopsis_args(c));
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

/// `text` wrapped to `WIDTH` columns, starting at column `first`, every further line indented by
/// `indent` columns.
fn wrap(text: &str, first: usize, indent: usize) -> String {
    let mut out = String::new();
    let mut col = first;
    let mut line_empty = true;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if !line_empty && col + 1 + len > WIDTH {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', indent));
            col = indent;
            line_empty = true;
        }
        if !line_empty {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += len;
        line_empty = false;
    }
    out
}

/// Paragraphs separated by blank lines, each wrapped.
fn paragraphs(text: &str) -> String {
    text.split("\n\n")
        .map(|p| wrap(p, 0, 0) + "\n")
        .collect::<Vec<_>>()
        .join("\n")
}

/// A two-column list (`  label  help`) with the help wrapped under itself.
fn table<'a>(rows: impl Iterator<Item = (String, &'a str)>) -> String {
    let rows: Vec<(String, &str)> = rows.collect();
    let width = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0)
        .max(16)
        + 2;
    let mut s = String::new();
    for (label, help) in rows {
        let _ = writeln!(s, "  {label:<width$}{}", wrap(help, width + 2, width + 2));
    }
    s
}

fn exit_status() -> String {
    let codes: Vec<String> = defs::EXIT_CODES
        .iter()
        .map(|(code, meaning)| format!("{code} {meaning}"))
        .collect();
    paragraphs(&format!("Exit status: {}.", codes.join("; ")))
}

/// `osconf --version`: version, the git commit it was built from and the target triple, one line.
pub fn version() -> String {
    format!(
        "{} {} (commit {}, target {})\n",
        defs::NAME,
        env!("CARGO_PKG_VERSION"),
        env!("OSCONF_COMMIT"),
        env!("OSCONF_TARGET")
    )
}

/// `osconf --help`: the synopsis, the commands, the exit codes and the stacks in detection order.
pub fn help() -> String {
    let mut s = format!("{} — {}\n\nUsage:\n", defs::NAME, defs::SUMMARY);
    for line in synopsis().lines() {
        let _ = writeln!(s, "  {line}");
    }
    let _ = writeln!(s, "  {} COMMAND --help\n\nCommands:", defs::NAME);
    s += &table(defs::COMMANDS.iter().map(|c| (c.name.to_owned(), c.summary)));
    s += "\nOptions:\n";
    s += &table(defs::GLOBAL_FLAGS.iter().map(|f| (flag_label(f), f.help)));
    s += "\n";
    s += &exit_status();
    s += "\nStacks (--stack NAME), in detection order:\n";
    for stack in render::STACKS {
        let _ = writeln!(s, "  {:<15} {}", stack.name, stack.systems);
    }
    s
}

/// The short text after a command-line error: how to call osconf.
pub fn usage() -> String {
    let mut s = String::from("Usage:\n");
    for line in synopsis().lines() {
        let _ = writeln!(s, "  {line}");
    }
    let _ = writeln!(s, "  {} COMMAND --help", defs::NAME);
    s
}

/// The toolkit's usage after a command-line error: the image commands.
pub fn toolkit_usage() -> String {
    let mut s = String::from("Usage:\n");
    for line in synopsis_of(defs::GROUPS[0].commands()).lines() {
        let _ = writeln!(s, "  {line}");
    }
    let _ = writeln!(s, "  {} {} ACTION --help", defs::NAME, defs::GROUPS[0].name);
    s
}

/// `osconf COMMAND --help`.
pub fn command_help(c: &CommandDef) -> String {
    let mut s = format!("{} {} — {}\n\n", defs::NAME, c.name, c.summary);
    let usage = format!("Usage: {} {} {}", defs::NAME, c.name, synopsis_args(c));
    s += &wrap(usage.trim_end(), 0, 7);
    s += "\n";
    if !c.operands.is_empty() {
        s += "\nArguments:\n";
        s += &table(c.operands.iter().map(|o| (o.name.to_owned(), o.help)));
    }
    s += "\nOptions:\n";
    s += &table(c.all_flags().map(|f| (flag_label(f), f.help)));
    if !c.about.is_empty() {
        s += "\n";
        s += &paragraphs(c.about);
    }
    s
}

/// `osconf image --help`: what the group is for, its commands' synopses and summaries.
pub fn group_help(g: &defs::Group) -> String {
    let mut s = format!("{} {} — {}\n\nUsage:\n", defs::NAME, g.name, g.summary);
    for line in synopsis_of(g.commands()).lines() {
        let _ = writeln!(s, "  {line}");
    }
    let _ = writeln!(s, "  {} {} ACTION --help\n\nCommands:", defs::NAME, g.name);
    s += &table(g.commands().map(|c| (c.name.to_owned(), c.summary)));
    s += "\n";
    s += &paragraphs(g.about);
    s
}

/// The README's command reference (between its `generated` markers): synopsis and exit codes.
pub fn markdown() -> String {
    let mut s = format!("```\n{}```\n\n| exit | meaning |\n|---|---|\n", synopsis());
    for (code, meaning) in defs::EXIT_CODES {
        let _ = writeln!(s, "| {code} | {meaning} |");
    }
    let _ = writeln!(
        s,
        "\n`{0} COMMAND --help` and `man {0}` describe every option.",
        defs::NAME
    );
    s
}

/// Text for roff: backslashes and hyphens escaped, non-ASCII as `\[uXXXX]`, no line starting with a
/// control character.
fn roff(text: &str) -> String {
    let mut s = String::new();
    for c in text.chars() {
        match c {
            '\\' => s.push_str("\\e"),
            '-' => s.push_str("\\-"),
            '\n' => s.push('\n'),
            c if c.is_ascii() => s.push(c),
            c => {
                let _ = write!(s, "\\[u{:04X}]", c as u32);
            }
        }
    }
    s.lines()
        .map(|l| {
            if l.starts_with(['.', '\'']) {
                format!("\\&{l}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

fn roff_paragraphs(text: &str) -> String {
    text.split("\n\n")
        .map(|p| roff(&p.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect::<Vec<_>>()
        .join(".PP\n")
}

/// `\fB--root\fR \fIDIR\fR`.
fn roff_flag(f: &Flag) -> String {
    let mut s = String::new();
    if let Some(c) = f.short {
        let _ = write!(s, "\\fB\\-{c}\\fR, ");
    }
    let _ = write!(s, "\\fB\\-\\-{}\\fR", roff(f.long).trim_end());
    if let Some(v) = &f.value {
        let _ = write!(s, " \\fI{}\\fR", roff(v.name).trim_end());
    }
    if let Some(n) = f.negated {
        let _ = write!(s, ", \\fB\\-\\-{}\\fR", roff(n).trim_end());
    }
    s
}

/// `\fBosconf apply\fR [\fB--root\fR \fIDIR\fR]...`: one command's synopsis line.
fn roff_synopsis(c: &CommandDef) -> String {
    let mut s = format!("\\fB{} {}\\fR", defs::NAME, roff(c.name).trim_end());
    for o in c.operands {
        let (open, close) = if o.optional { ("[", "]") } else { ("", "") };
        let _ = write!(s, " {open}\\fI{}\\fR{close}", roff(o.name).trim_end());
    }
    for f in c.flags {
        let _ = write!(s, " [\\fB\\-\\-{}\\fR", roff(f.long).trim_end());
        if let Some(v) = &f.value {
            let _ = write!(s, " \\fI{}\\fR", roff(v.name).trim_end());
        }
        if let Some(n) = f.negated {
            let _ = write!(s, " | \\fB\\-\\-{}\\fR", roff(n).trim_end());
        }
        s.push(']');
        if f.repeat {
            s.push_str("...");
        }
    }
    s + "\n"
}

/// The man page, osconf(8).
pub fn man() -> String {
    let version = env!("CARGO_PKG_VERSION");
    let mut s = format!(
        ".TH OSCONF {} {} \"{} {version}\" \"System Manager's Manual\"\n.SH NAME\n{} \\- {}",
        defs::MAN_SECTION,
        env!("OSCONF_DATE"),
        defs::NAME,
        defs::NAME,
        roff(defs::SUMMARY)
    );
    s += ".SH SYNOPSIS\n.nh\n.ad l\n";
    for c in defs::COMMANDS {
        s += &roff_synopsis(c);
        s += ".br\n";
    }
    let _ = writeln!(
        s,
        "\\fB{}\\fR \\fICOMMAND\\fR \\fB\\-\\-help\\fR\n.ad\n.hy",
        defs::NAME
    );
    s += ".SH DESCRIPTION\n";
    s += &roff_paragraphs(defs::DESCRIPTION);
    s += ".SH OPTIONS\n";
    for f in defs::GLOBAL_FLAGS {
        let _ = write!(s, ".TP\n{}\n{}", roff_flag(f), roff(f.help));
    }
    s += ".SH COMMANDS\n";
    let mut groups_said = Vec::new();
    for c in defs::COMMANDS {
        let group = defs::GROUPS.iter().find(|g| Some(g.name) == c.group());
        if let Some(g) = group.filter(|g| !groups_said.contains(&g.name)) {
            groups_said.push(g.name);
            let _ = writeln!(s, ".SS \"{} {}\"", defs::NAME, g.name);
            s += &roff(&format!("{}.", g.summary));
            s += ".PP\n";
            s += &roff_paragraphs(g.about);
        }
        let _ = writeln!(s, ".SS \"{} {}\"", defs::NAME, c.name);
        s += &roff(&format!("{}.", c.summary));
        s += ".PP\n";
        s += ".nh\n.ad l\n";
        s += &roff_synopsis(c);
        s += ".ad\n.hy\n";
        for o in c.operands {
            let _ = write!(s, ".TP\n\\fI{}\\fR\n{}", roff(o.name).trim_end(), roff(o.help));
        }
        for f in c.all_flags() {
            let _ = write!(s, ".TP\n{}\n{}", roff_flag(f), roff(f.help));
        }
        if !c.about.is_empty() {
            s += ".PP\n";
            s += &roff_paragraphs(c.about);
        }
    }
    s += ".SH \"EXIT STATUS\"\n";
    for (code, meaning) in defs::EXIT_CODES {
        let _ = write!(s, ".TP\n.B {code}\n{}", roff(meaning));
    }
    s += ".SH STACKS\nIn detection order; the first that the image enables is used.\n";
    for stack in render::STACKS {
        let _ = write!(
            s,
            ".TP\n.B {}\n{}",
            roff(stack.name).trim_end(),
            roff(stack.systems)
        );
    }
    s += ".SH FILES\n";
    for (path, what) in defs::FILES {
        let _ = write!(s, ".TP\n.I {}\n{}", roff(path).trim_end(), roff(what));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_every_word_and_the_width() {
        let text = "word ".repeat(60);
        let wrapped = wrap(&text, 10, 4);
        assert_eq!(wrapped.split_whitespace().count(), 60);
        assert!(wrapped.lines().all(|l| l.len() <= WIDTH), "{wrapped}");
        assert!(
            wrapped.lines().skip(1).all(|l| l.starts_with("    word")),
            "{wrapped}"
        );
    }

    #[test]
    fn roff_escapes_what_troff_would_interpret() {
        assert_eq!(
            roff("a-b \\ c — d\n.x\n'y"),
            "a\\-b \\e c \\[u2014] d\n\\&.x\n\\&'y\n"
        );
    }
}
