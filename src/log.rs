//! Log: every message osconf says on stderr (the serial console at boot) is also appended to
//! `<root>/var/log/osconf.log` during `apply`, and written to `/dev/kmsg` when it runs on `/` before
//! any log daemon, so that a boot's story can be read at 3 a.m. from dmesg, the console or the file.
//! Logging is best effort: it never fails a run, never blocks, and never follows a link out of the
//! root. On a root other than `/` (an image being prepared) a run that fails leaves no line in its
//! log — the caller has stderr — so that a failed run changes nothing there at all.
//!
//! "Before any log daemon" means: stderr is not a journald stream (`$JOURNAL_STREAM`, which systemd
//! sets for a unit whose output goes to the journal — journald then keeps and forwards the lines
//! itself) and no syslog socket `/dev/log` exists yet (sysvinit, OpenRC, runit and busybox boots run
//! osconf before their syslogd starts). A person running osconf by hand on a booted system has one
//! of the two, so their dmesg stays clean.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::root::Root;

/// The log file, in the target.
pub const LOG: &str = "/var/log/osconf.log";
/// Past this size the log is moved to `osconf.log.1` (replacing it) when a run starts: the two
/// files together stay under twice this plus one run.
pub const MAX_BYTES: u64 = 256 * 1024;
/// Kernel log priority of osconf's lines: informational.
const KMSG_PREFIX: &str = "<6>osconf: ";
/// The lines the kernel takes from one open /dev/kmsg before it drops the rest for 5 s (its
/// per-open ratelimit, DEFAULT_RATELIMIT_BURST, unless the boot says `printk.devkmsg=on`): a run
/// says more, and its last lines (the result) were lost. A fresh open gets a fresh allowance.
const KMSG_BURST: u32 = 10;

struct Sinks {
    kmsg: Option<Kmsg>,
    file: Option<File>,
    /// For a root other than `/`: the lines, kept until the run has succeeded, so that a failed
    /// run leaves that root byte for byte as it was.
    pending: Option<(PathBuf, String)>,
}

/// The kernel log, opened again each [`KMSG_BURST`] lines.
struct Kmsg {
    file: File,
    lines: u32,
}

impl Kmsg {
    fn open() -> Option<Kmsg> {
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(open_flags().bits() as i32)
            .open("/dev/kmsg")
            .ok()?;
        Some(Kmsg { file, lines: 0 })
    }

    /// One line, one record; an open that fails keeps the old file (its lines may be dropped).
    fn write(&mut self, line: &str) {
        if self.lines == KMSG_BURST
            && let Some(fresh) = Kmsg::open()
        {
            *self = fresh;
        }
        self.lines = self.lines.saturating_add(1);
        let _ = self.file.write_all(format!("{KMSG_PREFIX}{line}\n").as_bytes());
    }
}

static SINKS: Mutex<Sinks> = Mutex::new(Sinks {
    kmsg: None,
    file: None,
    pending: None,
});

/// From now on, messages also go to the root's log file and, at boot, to the kernel log. On `/`
/// each line is appended as it is said (a run cut short still leaves its story); on another root
/// the lines are appended by [`finish`] if the run succeeded.
pub fn start(root: &Path) {
    if root != Path::new("/") {
        if let Ok(mut sinks) = SINKS.lock() {
            sinks.pending = Some((root.to_owned(), String::new()));
        }
        return;
    }
    let kmsg = (root == Path::new("/")
        && before_log_daemon(
            std::env::var_os("JOURNAL_STREAM").is_some(),
            Path::new("/dev/log").symlink_metadata().is_ok(),
        ))
    .then(Kmsg::open)
    .flatten();
    let file = open_log(root);
    if let Ok(mut sinks) = SINKS.lock() {
        *sinks = Sinks {
            kmsg,
            file,
            pending: None,
        };
    }
}

/// Ends the run's logging: the kept lines go to the log of a root other than `/` when the run
/// `succeeded`, and are dropped otherwise.
pub fn finish(succeeded: bool) {
    let Ok(mut sinks) = SINKS.lock() else { return };
    if let Some((root, lines)) = sinks.pending.take()
        && succeeded
        && let Some(mut file) = open_log(&root)
    {
        let _ = file.write_all(lines.as_bytes());
    }
    sinks.file = None;
}

/// True when no log daemon would keep osconf's stderr: see the module's comment.
pub fn before_log_daemon(journal_stream: bool, dev_log: bool) -> bool {
    !journal_stream && !dev_log
}

/// Copies one message (as said on stderr, without its `osconf: ` prefix) to the open sinks, a
/// line each for a message of several lines.
pub fn tee(msg: &str) {
    append(msg, true);
}

/// Appends one message to the log file only: detail read after the boot (each step's time), which
/// would crowd the console and the kernel's log, whose lines the kernel rate-limits.
pub fn record(msg: &str) {
    append(msg, false);
}

fn append(msg: &str, everywhere: bool) {
    let Ok(mut sinks) = SINKS.lock() else { return };
    if sinks.kmsg.is_none() && sinks.file.is_none() && sinks.pending.is_none() {
        return;
    }
    let stamp = crate::clock::stamp();
    for line in msg.lines() {
        if let Some((_, pending)) = &mut sinks.pending {
            pending.push_str(&format!("{stamp} osconf: {line}\n"));
        }
        if let Some(kmsg) = sinks.kmsg.as_mut().filter(|_| everywhere) {
            // One write per record: the kernel takes each write as one log line.
            kmsg.write(line);
        }
        if let Some(file) = &mut sinks.file {
            let _ = file.write_all(format!("{stamp} osconf: {line}\n").as_bytes());
        }
    }
}

/// Opens the log for appending, rotated first when it has grown past [`MAX_BYTES`]; `None` when
/// /var/log is missing or not writable (a read-only root at boot), or the log is not a regular
/// file. /var/log is resolved inside the root and the log opened relative to its handle.
fn open_log(root: &Path) -> Option<File> {
    let (dir, name) = LOG.rsplit_once('/')?;
    let dir = Root::open(root).ok()?.dir(dir, false).ok()??;
    if let Ok(st) = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
        && FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
        && st.st_size as u64 >= MAX_BYTES
    {
        let _ = rustix::fs::renameat(&dir, name, &dir, format!("{name}.1"));
    }
    let flags = OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE | OFlags::NOFOLLOW;
    let fd = rustix::fs::openat(&dir, name, flags | open_flags(), Mode::from_raw_mode(0o640)).ok()?;
    let file = File::from(fd);
    file.metadata().ok()?.is_file().then_some(file)
}

/// Never block on what is there (a FIFO planted in the root).
fn open_flags() -> OFlags {
    OFlags::NONBLOCK | OFlags::CLOEXEC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_log_only_before_any_log_daemon() {
        assert!(before_log_daemon(false, false));
        assert!(!before_log_daemon(true, false), "journald keeps it");
        assert!(!before_log_daemon(false, true), "syslogd keeps it");
    }
}
