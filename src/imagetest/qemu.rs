//! Booting an image under qemu the way ECS starts an instance (the machine, firmware and arguments:
//! `machine`) and following its serial console until osconf has reported.
//!
//! qemu is run, not linked: a PC emulator is no library, and image builders have it (or install it)
//! already. It must never reach a network: each NIC sits alone on its own `-netdev hubport` hub
//! (no user-mode networking, no tap), so the guest's packets go nowhere.

use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::machine::{self, Machine};

/// After osconf's last line, how long the console is still followed (the status record, the log)
/// before the guest is stopped, if it has not powered off by then — whether or not the image is
/// booted again. What a stop leaves unflushed is what a power cut leaves, and the next boot's apply
/// completes it: every file osconf writes was flushed before its rename, a journal whose files are
/// all in their new state is rolled forward, and the lock file of `/etc/.pwd.lock` is known as
/// osconf's and removed (`exec/pwlock.rs`). The report reads the root on the host, an XFS log or
/// an ext journal that needs recovery replayed into the view it reads (`disk/xfs/replay.rs`,
/// `disk/ext/recover.rs`): what osconf flushed is seen though the guest never wrote it in place.
/// (It was 10 s while the XFS reader did not replay the log: stopped 2 s after osconf's "applied",
/// an XFS root held the new files' inodes in its log only.)
pub const GRACE: Duration = Duration::from_secs(2);
/// How long qemu gets to exit after SIGTERM before SIGKILL.
const TERM_WAIT: Duration = Duration::from_secs(10);

/// True when `/dev/kvm` opens read-write and answers with the stable API version (12), so that
/// `-accel kvm` can start; otherwise the guest runs under TCG.
pub fn kvm_works() -> bool {
    let Ok(kvm) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    else {
        return false;
    };
    // SAFETY: KVM_GET_API_VERSION takes no argument and returns an int.
    unsafe { rustix::ioctl::ioctl(&kvm, ApiVersion) }.is_ok_and(|v| v == 12)
}

/// `KVM_GET_API_VERSION` (`_IO(0xAE, 0x00)`), whose result is the return value.
struct ApiVersion;

// SAFETY: no argument is passed, nothing in userspace is written; the output is the return value.
unsafe impl rustix::ioctl::Ioctl for ApiVersion {
    type Output = i32;
    const IS_MUTATING: bool = false;
    fn opcode(&self) -> rustix::ioctl::Opcode {
        rustix::ioctl::opcode::none(0xAE, 0x00)
    }
    fn as_ptr(&mut self) -> *mut core::ffi::c_void {
        std::ptr::null_mut()
    }
    unsafe fn output_from_ptr(
        out: rustix::ioctl::IoctlOutput,
        _: *mut core::ffi::c_void,
    ) -> rustix::io::Result<i32> {
        Ok(out)
    }
}

/// How osconf's run ended, read from one console line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// No os.conf found: nothing done.
    NothingToDo,
    /// Invalid os.conf, or applying failed and was rolled back.
    Failed,
}

/// osconf's last line of a run, as it reaches the console (its stderr, or the kernel log's copy
/// with a time stamp, or journald's with the unit's name): `applied … with stack …`, `no os.conf
/// found …; nothing to do`, or a failure ending in what became of the system (`error::Outcome`:
/// nothing changed) or in `os.conf kept` (see `app::plan_or_apply` and `main`).
pub fn outcome(line: &str) -> Option<Outcome> {
    let at = line.find("osconf: ")?;
    let msg = line[at + "osconf: ".len()..].trim_end();
    if msg.starts_with("applied ") && msg.contains(" with stack ") {
        Some(Outcome::Applied)
    } else if msg.starts_with("no os.conf found") && msg.ends_with("nothing to do") {
        Some(Outcome::NothingToDo)
    } else if msg.ends_with(&crate::error::Outcome::Unchanged.to_string()) || msg.ends_with("os.conf kept") {
        Some(Outcome::Failed)
    } else {
        None
    }
}

/// How the boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// osconf reported (its line), after this long; the guest was then stopped.
    Reported(Outcome, String, Duration),
    /// The guest powered off (or qemu exited) before osconf reported.
    Exited(String),
    /// osconf did not report within this; `silent` when the console showed nothing at all.
    TimedOut { after: Duration, silent: bool },
}

/// Why the boot could not be followed.
#[derive(Debug)]
pub enum BootError {
    NotInstalled,
    /// KVM stopped the guest before it printed anything (an emulation failure, as nested KVM
    /// gives in a boot loader's real-mode code): nothing ran, so TCG can start again.
    Kvm(String),
    Failed(String),
}

/// How often the console and qemu's messages are looked at.
const POLL: Duration = Duration::from_millis(100);

/// Boots `m` until osconf has reported (then, `grace` later, the guest is stopped), the guest powered off, or
/// `timeout` passed. qemu writes the console to `log` and its own messages to `messages`; both
/// are followed as they grow, each new console line handed to `show`. (Files, not pipes: the copy
/// is kept by construction, and following two files needs no thread.)
pub fn boot(
    m: &Machine,
    log: &Path,
    messages: &Path,
    timeout: Duration,
    grace: Duration,
    show: &mut dyn FnMut(&str),
) -> Result<Ended, BootError> {
    let create = |p: &Path| {
        std::fs::File::create(p).map_err(|e| BootError::Failed(format!("creating {}: {e}", p.display())))
    };
    let (console_file, messages_file) = (create(log)?, create(messages)?);
    let program = machine::program(m.arch);
    let mut child = Command::new(program)
        .args(machine::args(m))
        .stdin(Stdio::null())
        .stdout(
            console_file
                .try_clone()
                .map_err(|e| BootError::Failed(e.to_string()))?,
        )
        .stderr(
            messages_file
                .try_clone()
                .map_err(|e| BootError::Failed(e.to_string()))?,
        )
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BootError::NotInstalled,
            _ => BootError::Failed(format!("starting {program}: {e}")),
        })?;
    let started = Instant::now();
    let (mut console, mut qemu) = (Tail::open(log)?, Tail::open(messages)?);
    let (mut lines, mut errors) = (0usize, Vec::new());
    let mut reported: Option<(Outcome, String, Duration)> = None;
    let mut deadline = started + timeout;
    let ended = loop {
        // Read after asking whether qemu is gone, so that its last lines are not missed.
        let exited = child.try_wait().ok().flatten();
        for line in console.lines() {
            lines += 1;
            show(&line);
            if reported.is_none()
                && let Some(o) = outcome(&line)
            {
                reported = Some((o, line, started.elapsed()));
                deadline = Instant::now() + grace;
            }
        }
        for line in qemu.lines() {
            let kvm_failed = line.contains("KVM internal error");
            // The hubs are meant to reach nothing: that warning is no news.
            if !line.contains("is not connected to host network") {
                errors.push(line);
            }
            if kvm_failed && m.kvm && lines == 0 {
                stop(&mut child);
                return Err(BootError::Kvm(line_of(&errors, "KVM")));
            }
        }
        let timed_out = Instant::now() >= deadline;
        if exited.is_some() || timed_out {
            break match reported.take() {
                Some((o, line, at)) => Ended::Reported(o, line, at),
                None if exited.is_some() => Ended::Exited(String::new()),
                None => Ended::TimedOut {
                    after: timeout,
                    silent: lines == 0,
                },
            };
        }
        std::thread::sleep(POLL);
    };
    let status = stop(&mut child);
    let Ended::Exited(_) = ended else {
        return Ok(ended);
    };
    let exited = match status {
        Some(s) if s.success() => "the guest powered off".to_owned(),
        Some(s) => format!("{program} exited ({s})"),
        None => format!("{program} could not be waited for"),
    };
    let errors = errors.join("; ");
    // qemu refusing its arguments or the image: no boot at all.
    if lines == 0 && status.is_some_and(|s| !s.success()) {
        return Err(BootError::Failed(format!("{exited}: {errors}")));
    }
    Ok(Ended::Exited(match errors.as_str() {
        "" => exited,
        e => format!("{exited}: {e}"),
    }))
}

/// The first of qemu's lines that mentions `what`.
fn line_of(errors: &[String], what: &str) -> String {
    errors
        .iter()
        .find(|l| l.contains(what))
        .cloned()
        .unwrap_or_default()
}

/// A file another process appends to, read line by line as it grows.
struct Tail {
    file: std::fs::File,
    partial: Vec<u8>,
}

impl Tail {
    fn open(path: &Path) -> Result<Tail, BootError> {
        let file =
            std::fs::File::open(path).map_err(|e| BootError::Failed(format!("{}: {e}", path.display())))?;
        Ok(Tail {
            file,
            partial: Vec::new(),
        })
    }

    /// The complete lines written since the last call, control characters but tabs dropped.
    fn lines(&mut self) -> Vec<String> {
        let _ = self.file.read_to_end(&mut self.partial);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let done: Vec<u8> = self.partial.drain(..=end).collect();
        done[..end]
            .split(|&b| b == b'\n')
            .map(|l| {
                String::from_utf8_lossy(l)
                    .chars()
                    .filter(|c| !c.is_control() || *c == '\t')
                    .collect()
            })
            .collect()
    }
}

/// Ends qemu: SIGTERM (it closes the disk image cleanly), SIGKILL if it is still there after
/// [`TERM_WAIT`]. The guest's data that count were flushed by osconf before it reported.
fn stop(child: &mut Child) -> Option<std::process::ExitStatus> {
    if let Ok(Some(s)) = child.try_wait() {
        return Some(s);
    }
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let until = Instant::now() + TERM_WAIT;
    while Instant::now() < until {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    child.wait().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn the_end_of_a_run_in_every_form_it_reaches_the_console() {
        for (line, want) in [
            (
                "osconf: applied /boot/aliyun_custom_image/os.conf with stack busybox",
                Some(Outcome::Applied),
            ),
            (
                "[    5.2] osconf: applied /boot/aliyun_custom_image/os.conf with stack ifupdown",
                Some(Outcome::Applied),
            ),
            (
                "[  OK  ] osconf[212]: osconf: applied /b/os.conf with stack networkd\r",
                Some(Outcome::Applied),
            ),
            (
                "osconf: no os.conf found (looked at /boot/aliyun_custom_image/os.conf on partition 1); nothing to do",
                Some(Outcome::NothingToDo),
            ),
            (
                "osconf: /boot/aliyun_custom_image/os.conf: invalid (2 errors); nothing was changed",
                Some(Outcome::Failed),
            ),
            (
                "osconf: /boot/aliyun_custom_image/os.conf: not applied; every change was rolled back; os.conf kept",
                Some(Outcome::Failed),
            ),
            (
                "osconf: /b/os.conf: cannot plan: no NIC has MAC 02:00:00:00:00:01; nothing was changed, os.conf kept",
                Some(Outcome::Failed),
            ),
            ("osconf: writing /etc/hostname", None),
            (
                "osconf: note: stack busybox detected: /sbin/ifup is busybox",
                None,
            ),
            (
                "osconf: /b/os.conf: line 3: eth0_netmask: \"1.2.3\" is not a netmask",
                None,
            ),
            ("Welcome to Debian; nothing to do", None),
        ] {
            assert_eq!(outcome(line), want, "{line}");
        }
    }

    #[test]
    fn a_growing_file_is_read_in_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let mut f = std::fs::File::create(&path).unwrap();
        let mut tail = Tail::open(&path).unwrap();
        assert!(tail.lines().is_empty());
        f.write_all(b"one\r\n\x1b[0mtw").unwrap();
        assert_eq!(tail.lines(), ["one"]);
        f.write_all(b"o\n\nthree\n").unwrap();
        assert_eq!(tail.lines(), ["[0mtwo", "", "three"]);
    }
}
