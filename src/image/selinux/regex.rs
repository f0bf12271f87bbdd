//! The regular expressions of SELinux `file_contexts` specs, matched as libselinux matches them:
//! PCRE's syntax for what policies use (literals, `.`, classes, `\d`-style escapes, groups,
//! `|`, `*` `+` `?` `{n,m}`, `^` `$`), `.` matching every byte (`PCRE2_DOTALL`), a match anywhere
//! in the subject (the anchors libselinux adds, `^` + spec + `$`, make it whole). A spec is read
//! from the image, so it is hostile: the pattern is compiled into a program of bounded size and
//! run as a Pike VM — every thread advanced in step over the subject — so a match costs at most
//! the subject's length times the program's, whatever the pattern (no backtracking to blow up).
//! Lookbehind, backreferences, possessive quantifiers and the other `(?` forms are refused by
//! name: no policy needs them.

/// The most instructions one spec compiles to (a counted repetition is expanded).
const MAX_PROGRAM: usize = 20_000;
/// The deepest nesting of groups.
const MAX_DEPTH: usize = 64;
/// The largest count in `{n,m}` (PCRE's own limit is 65535).
const MAX_COUNT: u32 = 1000;

/// A set of bytes, one bit each.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Set([u64; 4]);

impl Set {
    fn none() -> Set {
        Set([0; 4])
    }
    fn all() -> Set {
        Set([u64::MAX; 4])
    }
    fn add(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }
    fn add_range(&mut self, lo: u8, hi: u8) {
        for b in lo..=hi {
            self.add(b);
        }
    }
    fn has(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }
    fn invert(&mut self) {
        for w in &mut self.0 {
            *w = !*w;
        }
    }
    fn union(&mut self, other: &Set) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
    }
}

enum Node {
    Set(Set),
    Start,
    End,
    Cat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat(Box<Node>, u32, Option<u32>),
}

enum Inst {
    Byte(Set),
    Split(usize, usize),
    Jump(usize),
    /// `^`: only at the subject's start.
    Start,
    /// `$`: at the end, or before a newline that ends the subject.
    End,
    Match,
}

/// A compiled spec.
pub struct Regex {
    program: Vec<Inst>,
}

impl Regex {
    /// Compiles `pattern`; why not, in PCRE's words where it has them.
    pub fn new(pattern: &str) -> Result<Regex, Refused> {
        let mut p = Parser {
            bytes: pattern.as_bytes(),
            at: 0,
            depth: 0,
        };
        let node = p.alternation()?;
        if p.at < p.bytes.len() {
            return refused(format!("unmatched ) at byte {}", p.at + 1));
        }
        let mut program = Vec::new();
        emit(&node, &mut program)?;
        push(&mut program, Inst::Match)?;
        Ok(Regex { program })
    }

    /// Whether the pattern matches somewhere in `subject`.
    pub fn is_match(&self, subject: &[u8]) -> bool {
        let n = self.program.len();
        let (mut now, mut next) = (Vec::with_capacity(n), Vec::with_capacity(n));
        // The step each instruction was last added in: a thread is added once per step.
        let mut seen = vec![usize::MAX; n];
        let mut stack = Vec::new();
        for at in 0..=subject.len() {
            self.add(&mut now, &mut seen, &mut stack, 0, at, subject);
            let mut matched = false;
            for &pc in &now {
                match &self.program[pc] {
                    Inst::Match => matched = true,
                    Inst::Byte(set) if subject.get(at).is_some_and(|&b| set.has(b)) => {
                        self.add(&mut next, &mut seen, &mut stack, pc + 1, at + 1, subject);
                    }
                    _ => {}
                }
            }
            if matched {
                return true;
            }
            std::mem::swap(&mut now, &mut next);
            next.clear();
        }
        false
    }

    /// Adds the thread at `pc` for position `at` to `list`, following jumps, splits and anchors.
    fn add(
        &self,
        list: &mut Vec<usize>,
        seen: &mut [usize],
        stack: &mut Vec<usize>,
        pc: usize,
        at: usize,
        subject: &[u8],
    ) {
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if seen[pc] == at {
                continue;
            }
            seen[pc] = at;
            match self.program[pc] {
                Inst::Jump(to) => stack.push(to),
                Inst::Split(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                Inst::Start if at == 0 => stack.push(pc + 1),
                Inst::End if at == subject.len() || (at + 1 == subject.len() && subject[at] == b'\n') => {
                    stack.push(pc + 1)
                }
                Inst::Start | Inst::End => {}
                Inst::Byte(_) | Inst::Match => list.push(pc),
            }
        }
    }
}

fn push(program: &mut Vec<Inst>, inst: Inst) -> Result<usize, Refused> {
    if program.len() >= MAX_PROGRAM {
        return refused(format!("more than {MAX_PROGRAM} instructions once compiled"));
    }
    program.push(inst);
    Ok(program.len() - 1)
}

fn emit(node: &Node, program: &mut Vec<Inst>) -> Result<(), Refused> {
    match node {
        Node::Set(s) => push(program, Inst::Byte(s.clone())).map(drop),
        Node::Start => push(program, Inst::Start).map(drop),
        Node::End => push(program, Inst::End).map(drop),
        Node::Cat(all) => all.iter().try_for_each(|n| emit(n, program)),
        Node::Alt(all) => {
            let mut jumps = Vec::new();
            for (i, n) in all.iter().enumerate() {
                if i + 1 == all.len() {
                    emit(n, program)?;
                    break;
                }
                let split = push(program, Inst::Split(0, 0))?;
                emit(n, program)?;
                jumps.push(push(program, Inst::Jump(0))?);
                program[split] = Inst::Split(split + 1, program.len());
            }
            let end = program.len();
            for j in jumps {
                program[j] = Inst::Jump(end);
            }
            Ok(())
        }
        Node::Repeat(n, min, max) => {
            for _ in 0..*min {
                emit(n, program)?;
            }
            match max {
                None => {
                    let split = push(program, Inst::Split(0, 0))?;
                    emit(n, program)?;
                    push(program, Inst::Jump(split))?;
                    program[split] = Inst::Split(split + 1, program.len());
                }
                Some(max) => {
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        splits.push(push(program, Inst::Split(0, 0))?);
                        emit(n, program)?;
                    }
                    let end = program.len();
                    for s in splits {
                        program[s] = Inst::Split(s + 1, end);
                    }
                }
            }
            Ok(())
        }
    }
}

/// Why a pattern is not compiled, in PCRE's words where it has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn refused<T>(what: String) -> Result<T, Refused> {
    Err(Refused(what))
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn alternation(&mut self) -> Result<Node, Refused> {
        let mut all = vec![self.sequence()?];
        while self.peek() == Some(b'|') {
            self.at += 1;
            all.push(self.sequence()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Node::Alt(all)
        })
    }

    fn sequence(&mut self) -> Result<Node, Refused> {
        let mut all = Vec::new();
        while let Some(b) = self.peek() {
            if b == b'|' || b == b')' {
                break;
            }
            let atom = self.atom()?;
            all.push(self.quantified(atom)?);
        }
        Ok(Node::Cat(all))
    }

    fn atom(&mut self) -> Result<Node, Refused> {
        let at = self.at + 1;
        let b = self.next().unwrap_or(0);
        Ok(match b {
            b'(' => {
                if self.peek() == Some(b'?') {
                    if self.bytes.get(self.at + 1) != Some(&b':') {
                        return refused(format!("(? at byte {at}: only (?: groups are read"));
                    }
                    self.at += 2;
                }
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return refused(format!("groups nested deeper than {MAX_DEPTH}"));
                }
                let inner = self.alternation()?;
                self.depth -= 1;
                if self.next() != Some(b')') {
                    return refused(format!("missing ) for the ( at byte {at}"));
                }
                inner
            }
            b'[' => Node::Set(self.class()?),
            b'.' => Node::Set(Set::all()),
            b'^' => Node::Start,
            b'$' => Node::End,
            b'\\' => Node::Set(self.escape()?),
            b'*' | b'+' | b'?' => {
                return refused(format!("quantifier {} at byte {at} follows nothing", b as char));
            }
            b'{' if self.counts().is_some() => {
                return refused(format!("quantifier {{ at byte {at} follows nothing"));
            }
            _ => {
                let mut s = Set::none();
                s.add(b);
                Node::Set(s)
            }
        })
    }

    /// `{n}`, `{n,}`, `{n,m}` at the position (after its `{`), without consuming it; anything else
    /// is no quantifier (PCRE then reads the `{` as itself).
    fn counts(&self) -> Option<(usize, u32, Option<u32>)> {
        let rest = &self.bytes[self.at..];
        let close = rest.iter().position(|&b| b == b'}')?;
        let inside = std::str::from_utf8(&rest[..close]).ok()?;
        let number = |s: &str| -> Option<u32> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().unwrap_or(u32::MAX))
        };
        let (min, max) = match inside.split_once(',') {
            None => (number(inside)?, number(inside)),
            Some((a, "")) => (number(a)?, None),
            Some((a, b)) => (number(a)?, Some(number(b)?)),
        };
        Some((close + 1, min, max))
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, Refused> {
        let at = self.at + 1;
        let (min, max) = match self.peek() {
            Some(b'*') => (0, None),
            Some(b'+') => (1, None),
            Some(b'?') => (0, Some(1)),
            Some(b'{') => {
                self.at += 1;
                match self.counts() {
                    Some((len, min, max)) => {
                        self.at += len - 1;
                        (min, max)
                    }
                    None => {
                        self.at -= 1;
                        return Ok(atom);
                    }
                }
            }
            _ => return Ok(atom),
        };
        self.at += 1;
        if min > MAX_COUNT || max.is_some_and(|m| m > MAX_COUNT) {
            return refused(format!("a count at byte {at} is over {MAX_COUNT}"));
        }
        if max.is_some_and(|m| m < min) {
            return refused(format!("numbers out of order in {{}} quantifier at byte {at}"));
        }
        match self.peek() {
            // Lazy: the same set of subjects matches.
            Some(b'?') => self.at += 1,
            Some(b'+') => return refused(format!("possessive quantifier at byte {at}")),
            _ => {}
        }
        match self.peek() {
            Some(b'*' | b'+' | b'?') => {
                refused(format!("quantifier at byte {} follows a quantifier", self.at + 1))
            }
            _ => Ok(Node::Repeat(Box::new(atom), min, max)),
        }
    }

    /// After a `\`: the bytes it stands for.
    fn escape(&mut self) -> Result<Set, Refused> {
        let at = self.at;
        let Some(b) = self.next() else {
            return refused("\\ at the end of the pattern".into());
        };
        let mut s = Set::none();
        match b {
            b'd' | b'D' => s.add_range(b'0', b'9'),
            b'w' | b'W' => {
                s.add_range(b'0', b'9');
                s.add_range(b'a', b'z');
                s.add_range(b'A', b'Z');
                s.add(b'_');
            }
            b's' | b'S' => [b' ', b'\t', b'\n', b'\r', 0x0b, 0x0c]
                .into_iter()
                .for_each(|c| s.add(c)),
            b'n' => s.add(b'\n'),
            b't' => s.add(b'\t'),
            b'r' => s.add(b'\r'),
            _ if b.is_ascii_alphanumeric() => {
                return refused(format!("escape \\{} at byte {at} is not read", b as char));
            }
            _ => s.add(b),
        }
        if b.is_ascii_uppercase() {
            s.invert();
        }
        Ok(s)
    }

    /// After a `[`: the class, through its `]`.
    fn class(&mut self) -> Result<Set, Refused> {
        let at = self.at;
        let mut set = Set::none();
        let negated = self.peek() == Some(b'^');
        if negated {
            self.at += 1;
        }
        let mut first = true;
        loop {
            let Some(b) = self.next() else {
                return refused(format!("missing ] for the [ at byte {at}"));
            };
            if b == b']' && !first {
                break;
            }
            first = false;
            let lo = match b {
                b'[' if self.peek() == Some(b':') => {
                    set.union(&self.posix()?);
                    continue;
                }
                b'\\' => {
                    let e = self.escape()?;
                    if e.0.iter().map(|w| w.count_ones()).sum::<u32>() != 1 {
                        set.union(&e);
                        continue;
                    }
                    (0..=255u8).find(|&c| e.has(c)).unwrap_or(0)
                }
                _ => b,
            };
            // A range, unless the `-` is the class's last byte.
            if self.peek() == Some(b'-') && self.bytes.get(self.at + 1).is_some_and(|&c| c != b']') {
                self.at += 1;
                let hi = match self.next() {
                    Some(b'\\') => {
                        let e = self.escape()?;
                        (0..=255u8).find(|&c| e.has(c)).unwrap_or(0)
                    }
                    Some(c) => c,
                    None => return refused(format!("missing ] for the [ at byte {at}")),
                };
                if hi < lo {
                    return refused(format!("range out of order in the class at byte {at}"));
                }
                set.add_range(lo, hi);
            } else {
                set.add(lo);
            }
        }
        if negated {
            set.invert();
        }
        Ok(set)
    }

    /// After `[` inside a class, at `:`: a POSIX class `[:name:]`.
    fn posix(&mut self) -> Result<Set, Refused> {
        let rest = &self.bytes[self.at..];
        let end = rest
            .windows(2)
            .skip(1)
            .position(|w| w == b":]")
            .map(|i| i + 1)
            .ok_or_else(|| Refused(format!("[: at byte {} is not closed", self.at)))?;
        let name = &rest[1..end];
        self.at += end + 2;
        let mut s = Set::none();
        match name {
            b"alpha" => {
                s.add_range(b'a', b'z');
                s.add_range(b'A', b'Z');
            }
            b"digit" => s.add_range(b'0', b'9'),
            b"alnum" => {
                s.add_range(b'a', b'z');
                s.add_range(b'A', b'Z');
                s.add_range(b'0', b'9');
            }
            b"lower" => s.add_range(b'a', b'z'),
            b"upper" => s.add_range(b'A', b'Z'),
            b"xdigit" => {
                s.add_range(b'0', b'9');
                s.add_range(b'a', b'f');
                s.add_range(b'A', b'F');
            }
            b"space" => [b' ', b'\t', b'\n', b'\r', 0x0b, 0x0c]
                .into_iter()
                .for_each(|c| s.add(c)),
            _ => {
                return refused(format!(
                    "POSIX class [:{}:] is not read",
                    String::from_utf8_lossy(name)
                ));
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::Regex;

    #[test]
    fn specs_match_as_pcre_matches_them() {
        // (pattern as libselinux anchors it, subject, matches)
        let table: &[(&str, &str, bool)] = &[
            ("^/usr/sbin(/.*)?$", "/usr/sbin/osconf", true),
            ("^/usr/sbin(/.*)?$", "/usr/sbin", true),
            ("^/usr/sbin(/.*)?$", "/usr/sbinx", false),
            (
                "^/etc/systemd/system(/.*)?$",
                "/etc/systemd/system/osconf.service",
                true,
            ),
            ("^/usr/lib/systemd/system(/.*)?$", "/etc/systemd/system/x", false),
            ("^/.*$", "/anything/at/all", true),
            ("^/usr/s?bin/[^/]*$", "/usr/bin/ls", true),
            ("^/usr/s?bin/[^/]*$", "/usr/bin/a/b", false),
            ("^/var/lib/nfs/rpc_pipefs(/.*)?$", "/var/lib/nfs/rpc_pipefs", true),
            ("^/dev/tty[0-9]+$", "/dev/tty12", true),
            ("^/dev/tty[0-9]+$", "/dev/tty", false),
            ("^/dev/pts/[0-9]{1,3}$", "/dev/pts/123", true),
            ("^/dev/pts/[0-9]{1,3}$", "/dev/pts/1234", false),
            ("^/x\\.y$", "/x.y", true),
            ("^/x\\.y$", "/xzy", false),
            ("^/(usr|etc)/a$", "/etc/a", true),
            ("^/(?:usr|etc)/a$", "/opt/a", false),
            // Anchors as libselinux adds them: `^a|b$` is "starts with a, or ends with b".
            ("^/a|/b$", "/a/zzz", true),
            ("^/a|/b$", "/zzz/b", true),
            ("^/a|/b$", "/zzz", false),
            ("^/x{2$", "/x{2", true),
            ("^/[]a]$", "/]", true),
            ("^/[^a-c-]$", "/-", false),
            ("^/[^a-c-]$", "/d", true),
            ("^/[[:digit:]]\\d*$", "/42", true),
            ("^/.*?\\.so$", "/lib/x.so", true),
            ("^(a*)*b$", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac", false),
            ("^/trailing$", "/trailing\n", true),
        ];
        for (pattern, subject, want) in table {
            let re = Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
            assert_eq!(re.is_match(subject.as_bytes()), *want, "{pattern} on {subject:?}");
        }
    }

    #[test]
    fn hostile_patterns_are_refused_or_bounded() {
        for (pattern, says) in [
            ("/a(", "missing )"),
            ("/a)", "unmatched )"),
            ("*a", "follows nothing"),
            ("/a++", "possessive"),
            ("(?<=a)b", "only (?: groups"),
            ("\\1", "is not read"),
            ("[a", "missing ]"),
            ("a{5,2}", "out of order"),
            ("a{99999}", "over 1000"),
            ("((a{1000}){1000})", "instructions"),
            ("[[:foo:]]", "not read"),
            ("[[:]", "not closed"),
        ] {
            let e = Regex::new(pattern)
                .err()
                .unwrap_or_else(|| panic!("{pattern} compiled"));
            assert!(e.0.contains(says), "{pattern}: {e}");
        }
        let deep = "(".repeat(100) + &")".repeat(100);
        assert!(Regex::new(&deep).err().unwrap().0.contains("nested"));
    }
}
