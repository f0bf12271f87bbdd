//! Status: the record of the last `osconf apply` that found an os.conf — when, the exit code and a
//! one-line result, where os.conf was, the stack, what changed (paths and live actions, never a
//! value from a secret file), where the backup is, and where the run's time went (each step timed,
//! see `timing`) — shown by `osconf status` as text or JSON. A run
//! that succeeded keeps it in `<root>/var/lib/osconf/last-run`; one that failed changes nothing in
//! its root, so on `/` (at boot) its record goes to `/run/osconf/last-run` and elsewhere there is
//! none (the caller has stderr). The record is a few lines of `key value`, replaced
//! whole at each run (renamed into place, not flushed: losing it in a crash loses no configuration).
//! A run that finds no os.conf leaves the record alone, so that it keeps telling what the last
//! change did, and costs the boot nothing — unless it completed a run cut short after removing
//! its os.conf (from that run's journal), whose record it then writes.

use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags};

use crate::error::Error;
use crate::json;
use crate::output::Said;
use crate::plan::{FileOp, Plan};
use crate::root::Root;
use crate::timing::{self, Step};

/// Where the record of a run that succeeded is kept, in the target.
pub const STATE_DIR: &str = "/var/lib/osconf";
/// Where the record of a run on `/` that failed is kept: this boot's volatile state, since a failed
/// run changes nothing in the root.
pub const FAILED_DIR: &str = "/run/osconf";
const NAME: &str = "last-run";
const HEADER: &str = "# The last run of osconf apply that found an os.conf; read by osconf status.\n";

/// One run, filled in as it goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Run {
    pub time: String,
    pub exit: u8,
    pub result: String,
    pub config: Option<String>,
    pub stack: Option<String>,
    /// `write /etc/hosts`, `link …`, `remove …`: what the plan did to files (undone when it failed).
    pub files: Vec<String>,
    /// The live actions, as `plan` describes them.
    pub live: Vec<String>,
    pub backup: Option<String>,
    /// Each step of the run, timed.
    pub timings: Vec<Step>,
}

impl Run {
    /// What the plan changes, without any content; its live actions only when they are done.
    pub fn planned(&mut self, plan: &Plan, live: bool) {
        self.stack = Some(plan.stack.clone());
        self.files = plan
            .ops
            .iter()
            .map(|op| match op {
                FileOp::Write { path, .. } => format!("write {path}"),
                FileOp::Symlink { path, target } => format!("link {path} -> {target}"),
                FileOp::Remove { path } => format!("remove {path}"),
            })
            .collect();
        if live {
            self.live = plan.live.iter().map(crate::plan::describe_live).collect();
        }
    }

    /// Records how the run ended (its error, as main will report it) and writes the record, when
    /// the run found an os.conf. A record that cannot be written is said, never fatal.
    pub fn finish(mut self, root: &Path, failed: Option<&Error>) {
        // Before the record, whose own failure is logged.
        crate::log::finish(failed.is_none() || root == Path::new("/"));
        if self.config.is_none() {
            return;
        }
        self.time = crate::clock::stamp();
        let written = match failed {
            None => {
                self.exit = crate::error::EXIT_OK;
                write(root, STATE_DIR, &self.render())
            }
            // A failed run changes nothing in its root: at boot its record goes to /run.
            Some(_) if root != Path::new("/") => return,
            Some(e) => {
                self.exit = e.exit_code();
                // The failed step, when there was one, then what main reports.
                self.result = match self.result.as_str() {
                    "" => e.to_string(),
                    step => format!("{step}; {e}"),
                };
                write(root, FAILED_DIR, &self.render())
            }
        };
        if let Err(e) = written {
            crate::output::say(format!("cannot keep the status record: {e}"));
        }
    }

    fn render(&self) -> String {
        let mut out = HEADER.to_owned();
        let mut put = |key: &str, value: &str| {
            let _ = writeln!(out, "{key} {}", escape(value));
        };
        put("time", &self.time);
        put("exit", &self.exit.to_string());
        put("result", &self.result);
        self.config.iter().for_each(|v| put("config", v));
        self.stack.iter().for_each(|v| put("stack", v));
        self.backup.iter().for_each(|v| put("backup", v));
        self.files.iter().for_each(|v| put("file", v));
        self.live.iter().for_each(|v| put("live", v));
        for step in &self.timings {
            let value = format!("{} {} {}", step.took_us, step.at_us, step.name);
            put("step", &value);
        }
        out
    }

    /// Reads a record back; unknown keys are skipped (a newer osconf may add some).
    pub fn parse(text: &str) -> Result<Run, Error> {
        let mut run = Run::default();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let value = unescape(value);
            match key {
                "time" => run.time = value,
                "exit" => {
                    run.exit = value
                        .parse()
                        .map_err(|_| Error::failed(None, format!("{NAME}: exit {value:?} is not a number")))?
                }
                "result" => run.result = value,
                "config" => run.config = Some(value),
                "stack" => run.stack = Some(value),
                "backup" => run.backup = Some(value),
                "file" => run.files.push(value),
                "live" => run.live.push(value),
                "step" => run.timings.push(parse_step(&value)?),
                _ => {}
            }
        }
        Ok(run)
    }

    /// For a terminal: every value with its control characters escaped (a record is read from the
    /// root, and a crafted one must not move the cursor or retitle the window).
    fn text(&self, root: &Path) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "last run: {}", printable(&self.time));
        let _ = writeln!(out, "result:   exit {} — {}", self.exit, printable(&self.result));
        let _ = writeln!(
            out,
            "os.conf:  {}",
            printable(self.config.as_deref().unwrap_or("?"))
        );
        if let Some(stack) = &self.stack {
            let _ = writeln!(out, "stack:    {}", printable(stack));
        }
        let changed = if self.exit == 0 { "changed" } else { "rolled back" };
        let _ = writeln!(out, "{changed}:");
        for item in self.files.iter().chain(&self.live) {
            let _ = writeln!(out, "  {}", printable(item));
        }
        if self.files.is_empty() && self.live.is_empty() {
            out.push_str("  nothing\n");
        }
        let backup = self.backup.as_deref().unwrap_or("none (nothing was replaced)");
        let _ = writeln!(out, "backup:   {}", printable(backup));
        if !self.timings.is_empty() {
            let shown: Vec<Step> = (self.timings.iter())
                .map(|s| Step {
                    name: printable(&s.name),
                    ..s.clone()
                })
                .collect();
            out.push_str(&timing::text(&shown));
        }
        let _ = writeln!(out, "log:      {}", root.join(&crate::log::LOG[1..]).display());
        out
    }

    fn json(&self) -> String {
        let strings = |v: &[String]| json::array(v.iter().map(|s| json::string(s)));
        let opt = |v: &Option<String>| json::string_or_null(v.as_deref());
        let steps = json::array(self.timings.iter().map(|s| {
            format!(
                "{{\"step\":{},\"ms\":{},\"at_ms\":{}}}",
                json::string(&s.name),
                timing::ms(s.took_us),
                timing::ms(s.at_us)
            )
        }));
        format!(
            "{{\"recorded\":true,\"time\":{},\"exit\":{},\"result\":{},\"config\":{},\"stack\":{},\
             \"files\":{},\"live\":{},\"backup\":{},\"steps\":{}}}\n",
            json::string(&self.time),
            self.exit,
            json::string(&self.result),
            opt(&self.config),
            opt(&self.stack),
            strings(&self.files),
            strings(&self.live),
            opt(&self.backup),
            steps,
        )
    }
}

/// `osconf status`: the last run's record, as text or JSON — on `/`, the newer of the last run
/// that succeeded and this boot's failed one.
pub fn show(root: &Path, json: bool) -> Result<Said, Error> {
    let unreadable = |e: crate::system::Error| Error::failed(Some(&e.path), e.error.to_string());
    let sys = crate::system::System::probe(root).map_err(unreadable)?;
    let dirs: &[&str] = if root == Path::new("/") {
        &[STATE_DIR, FAILED_DIR]
    } else {
        &[STATE_DIR]
    };
    let mut runs = Vec::new();
    for dir in dirs {
        if let Some(text) = sys.read_text(&format!("{dir}/{NAME}")).map_err(unreadable)? {
            runs.push(Run::parse(&text)?);
        }
    }
    Ok(Said::text(match newest(runs) {
        Some(run) if json => run.json(),
        Some(run) => run.text(root),
        None if json => "{\"recorded\":false}\n".to_owned(),
        None => format!(
            "no run of osconf apply that found an os.conf is recorded in {}\n",
            sys.host_path(STATE_DIR).display()
        ),
    }))
}

/// The run with the latest time (stamps compare as text).
fn newest(runs: Vec<Run>) -> Option<Run> {
    runs.into_iter().max_by(|a, b| a.time.cmp(&b.time))
}

/// Replaces the record in `dir` (made when missing), resolved inside the root: a temporary file
/// beside it, then a rename, both relative to the directory's handle.
fn write(root: &Path, dir: &str, text: &str) -> io::Result<()> {
    let dir = Root::open(root)?
        .dir(dir, true)?
        .ok_or_else(|| io::Error::other("no directory"))?;
    let tmp = format!("{TEMP_PREFIX}{}", std::process::id());
    remove_stale_temps(&dir);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let written = rustix::fs::openat(&dir, &tmp, flags, Mode::from_raw_mode(0o600))
        .map_err(io::Error::from)
        .and_then(|fd| io::Write::write_all(&mut File::from(fd), text.as_bytes()))
        .and_then(|()| Ok(rustix::fs::renameat(&dir, &tmp, &dir, NAME)?));
    if written.is_err() {
        let _ = rustix::fs::unlinkat(&dir, &tmp, AtFlags::empty());
    }
    written
}

/// The temp name a record is written under, with the writer's PID after it.
const TEMP_PREFIX: &str = ".last-run.osconf-";

/// Removes the temp records of runs killed before their rename (their PID is gone; this process's
/// own is a leftover too), so that none stays past the next run.
fn remove_stale_temps(dir: &rustix::fd::OwnedFd) {
    let Ok(entries) = rustix::fs::Dir::read_from(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(TEMP_PREFIX).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            let _ = rustix::fs::unlinkat(dir, name.as_str(), AtFlags::empty());
        }
    }
}

/// Removes what a run killed while writing its record left, in the target (at the start of an
/// apply: a killed run's record may not be followed by another for a long time).
pub fn clean(root: &Path) {
    for dir in [STATE_DIR, FAILED_DIR] {
        if dir == FAILED_DIR && root != Path::new("/") {
            continue;
        }
        if let Ok(Some(fd)) = Root::open(root).and_then(|r| r.dir(dir, false)) {
            remove_stale_temps(&fd);
        }
    }
}

/// A `step` line's value: `TOOK_US AT_US NAME`.
fn parse_step(value: &str) -> Result<Step, Error> {
    let mut words = value.splitn(3, ' ');
    let mut number = || {
        words.next().and_then(|w| w.parse::<u64>().ok()).ok_or_else(|| {
            Error::failed(
                None,
                format!("{NAME}: step {value:?} is not `microseconds microseconds name`"),
            )
        })
    };
    let (took_us, at_us) = (number()?, number()?);
    Ok(Step {
        took_us,
        at_us,
        name: words.next().unwrap_or_default().to_owned(),
    })
}

/// One line per value: backslash and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

/// `v` with each control character (C0, DEL, C1) written as `\u{..}`; a newline (a failure with
/// its rollback lines) continues on an indented line.
fn printable(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\n' => out.push_str("\n          "),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Run {
        Run {
            time: "20261201T111200Z".into(),
            exit: 1,
            result: "failed writing /etc/hosts: disk full\nrollback: x \\ y".into(),
            config: Some("/boot/aliyun_custom_image/os.conf".into()),
            stack: Some("ifupdown".into()),
            files: vec!["write /etc/hosts".into(), "link /a -> \"b\"\t".into()],
            live: vec!["set the kernel host name to h".into()],
            backup: None,
            timings: vec![
                Step {
                    name: "read os.conf".into(),
                    took_us: 1_042,
                    at_us: 4_000_123,
                },
                Step {
                    name: "live: configure ens5".into(),
                    took_us: 3,
                    at_us: 4_000_200,
                },
            ],
        }
    }

    #[test]
    fn the_newest_run_is_shown() {
        let at = |time: &str| Run {
            time: time.into(),
            ..Run::default()
        };
        let runs = vec![
            at("20261201T111200Z"),
            at("20261201T121200Z"),
            at("20261130T235959Z"),
        ];
        assert_eq!(newest(runs).unwrap().time, "20261201T121200Z");
    }

    #[test]
    fn record_round_trip() {
        let run = sample();
        assert_eq!(Run::parse(&run.render()).unwrap(), run);
        assert_eq!(run.render().lines().count(), 11);
        assert!(Run::parse("step 12 x y\n").is_err());
    }

    #[test]
    fn text_escapes_control_characters() {
        let run = Run {
            result: "failed \u{1b}]0;owned\u{7}\u{1b}[2J\r\u{9b}x é".into(),
            stack: Some("a\u{1b}[31m".into()),
            ..sample()
        };
        let text = run.text(Path::new("/"));
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
        assert!(
            text.contains("\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{d}\\u{9b}x é"),
            "{text}"
        );
        assert!(text.contains("a\\u{1b}[31m"), "{text}");
    }

    #[test]
    fn json_parses_with_serde_json() {
        let run = sample();
        let v: serde_json::Value = serde_json::from_str(&run.json()).unwrap();
        assert_eq!(v["exit"], 1);
        assert_eq!(v["result"], run.result.as_str());
        assert_eq!(v["files"][1], "link /a -> \"b\"\t");
        assert_eq!(v["backup"], serde_json::Value::Null);
        assert_eq!(v["steps"][0]["step"], "read os.conf");
        assert_eq!(v["steps"][0]["ms"], 1.042);
        assert_eq!(v["steps"][1]["at_ms"], 4000.2);
    }
}
