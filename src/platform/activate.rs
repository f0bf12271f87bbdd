//! Stack activation on the running system: whether the stack's service runs now, and running the
//! stack's own tool (`networkctl`, `nmcli`, `ifup`, `netplan generate`) that a plan's
//! `LiveAction::Run` names. Never called unless `--live` is in force; runs nothing but the plan's
//! programs, each bounded in time.

use std::fs;
use std::io::{self, Read as _};
use std::os::unix::fs::DirBuilderExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::process::{Pid, PidfdFlags, pidfd_open};
use rustix::time::Timespec;

use super::Previous;
use crate::plan::{LiveAction, Run, StackState};
use crate::render::Service;
use crate::system::UNIT_DIRS;

/// The longest a stack's tool may take (NetworkManager's `connection up` waits for the link): a
/// hung tool must not hang the boot.
const TIMEOUT: Duration = Duration::from_secs(90);

/// Whether one of `services` runs now, or (for a service that runs per interface) its instance for
/// one of `nics`, the kernel names of os.conf's NICs. A stack without services leaves nothing to ask.
pub fn stack_state(services: &'static [Service], nics: &[String]) -> StackState {
    if services.is_empty() {
        return StackState::Unknown;
    }
    let probes = probes(services, nics);
    // Under systemd (PID 1 made /run/systemd/system, as sd_booted(3) checks) the unit is active;
    // under OpenRC the service is in /run/openrc/started; under other inits the service's trace
    // file exists.
    let running = match Path::new("/run/systemd/system").is_dir() {
        true => systemd_active(&probes),
        false => probes.iter().find(|p| runs(p)),
    };
    running.map_or(StackState::NotRunning, |p| StackState::Running(p.service))
}

/// One thing to ask about a stack's service: the whole service, or its instance for one NIC.
#[derive(Debug, PartialEq)]
struct Probe {
    /// The service it stands for (`Service::name`).
    service: &'static str,
    /// The systemd unit without `.service`, and the OpenRC service: `dhcpcd`, `dhcpcd@eth0`.
    unit: String,
    ran: Option<String>,
}

/// The probes of `services`, in order, each service's instances right after it. An interface name
/// that a unit name cannot hold as it is (systemd allows letters, digits and `:_.-` besides the
/// escapes) gets no instance probe: asked unescaped, systemctl would refuse the whole call.
fn probes(services: &'static [Service], nics: &[String]) -> Vec<Probe> {
    let plain = |n: &&String| {
        n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_.-".contains(&b))
    };
    let mut out = Vec::new();
    for s in services {
        out.push(Probe {
            service: s.name,
            unit: s.name.to_owned(),
            ran: s.ran.map(str::to_owned),
        });
        for (pattern, nic) in s
            .per_nic
            .iter()
            .flat_map(|p| nics.iter().filter(plain).map(move |n| (p, n)))
        {
            out.push(Probe {
                service: s.name,
                unit: format!("{}@{nic}", s.name),
                ran: Some(pattern.replace("{}", nic)),
            });
        }
    }
    out
}

/// The first of `probes` whose unit is active, asked of PID 1 by one `systemctl is-active A B …`
/// for all of them. Unit states live in PID 1 and are read over D-Bus, whose client is systemctl: a
/// D-Bus library would cost more than the whole binary's size budget allows. One process, not one
/// per unit: under qemu TCG each systemctl costs a second and more of the boot.
fn systemd_active(probes: &[Probe]) -> Option<&Probe> {
    let units: Vec<String> = probes.iter().map(|p| format!("{}.service", p.unit)).collect();
    if units.iter().all(|u| never_started(Path::new("/run/systemd"), u)) {
        return None;
    }
    // Its exit status says only whether any is active (0) or none (3); which one is in the output.
    let out = Command::new("systemctl")
        .arg("is-active")
        .args(&units)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    first_active(probes, &out.stdout)
}

/// True when PID 1 shows that `unit` is neither active nor reloading without being asked: no
/// `units/invocation:UNIT` link under `run` (`/run/systemd`). systemd (252's src/core/unit.c) makes
/// that link when the unit's first process is forked (`unit_prepare_exec`) and removes it when the
/// unit turns inactive or failed (`unit_notify`) or is freed; it survives a daemon-reload. So it is
/// there while the unit is activating, active, reloading or deactivating, and a service without
/// it runs nothing now — the case at every boot, where osconf runs before the stack's services, so
/// no systemctl is started at all. Only where this cannot be read is systemctl asked: a systemd
/// older than 232 keeps no `units/` directory, and the link carries the unit's own name, which an
/// alias (a unit file that is a link to another name, or a mask) is not. (A oneshot service with
/// no command to run turns active with no link: no stack's service is one.)
fn never_started(run: &Path, unit: &str) -> bool {
    let units = run.join("units");
    if !units.is_dir() || aliased(unit) {
        return false;
    }
    match std::fs::symlink_metadata(units.join(format!("invocation:{unit}"))) {
        Ok(_) => false,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// True when a unit file of that name, in a directory systemd loads units from, is a link to a
/// file of another name (an alias, or /dev/null for a masked unit).
fn aliased(unit: &str) -> bool {
    UNIT_DIRS.iter().any(|dir| {
        std::fs::read_link(Path::new(dir).join(unit))
            .is_ok_and(|target| target.file_name() != Some(std::ffi::OsStr::new(unit)))
    })
}

/// Reads `systemctl is-active`'s output, one state per unit in the order asked (`inactive` for a
/// unit that does not exist): the first unit whose state is one `is-active` counts as running,
/// `active` or `reloading` (activating, deactivating, failed, inactive are not). A line missing (an
/// error on the bus) is a unit not running, as `is-active`'s failure always meant.
fn first_active<'a>(probes: &'a [Probe], stdout: &[u8]) -> Option<&'a Probe> {
    let text = String::from_utf8_lossy(stdout);
    probes
        .iter()
        .zip(text.lines())
        .find(|(_, state)| matches!(state.trim(), "active" | "reloading"))
        .map(|(probe, _)| probe)
}

/// Under OpenRC the service is started; under other inits its trace file exists.
fn runs(probe: &Probe) -> bool {
    let openrc = Path::new("/run/openrc/started");
    if openrc.is_dir() {
        return openrc.join(&probe.unit).exists();
    }
    probe.ran.as_deref().is_some_and(ran)
}

/// The trace file exists and, when it holds a pid (a pid file), that process lives.
fn ran(file: &str) -> bool {
    match std::fs::read_to_string(file) {
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(pid) => Path::new("/proc").join(pid.to_string()).exists(),
            Err(_) => true,
        },
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// Records the addresses and routes of the NICs the tool changes, as a `ConfigureNic` would.
pub fn snapshot(run: &Run) -> io::Result<Previous> {
    let nics = run
        .nics
        .iter()
        .map(|nic| super::snapshot(&LiveAction::ConfigureNic(nic.clone())))
        .collect::<io::Result<Vec<_>>>()?;
    Ok(Previous::Nics(nics))
}

/// `child`'s exit status once it exits, or `None` at `deadline`. On a pidfd (Linux ≥ 5.3) osconf
/// wakes the moment the child exits: the boot waits for no poll interval, and the child, on a
/// single slow CPU, loses none to osconf's wakeups. Without one, it looks every 20 ms.
fn exit_by(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let pidfd = pidfd_open(Pid::from_child(child), PidfdFlags::empty()).ok();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let Some(left) = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
        else {
            return Ok(None);
        };
        match (&pidfd, Timespec::try_from(left)) {
            (Some(fd), Ok(timeout)) => {
                let mut fds = [PollFd::new(fd, PollFlags::IN)];
                match poll(&mut fds, Some(&timeout)) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            _ => std::thread::sleep(Duration::from_millis(20).min(left)),
        }
    }
}

/// What a pipe holds now, without waiting: a daemon the tool started may keep the pipe open after
/// the tool exited. (No reader thread: threads would cost the binary more than the message is worth.)
fn unread(pipe: std::process::ChildStderr) -> String {
    let mut pipe = pipe;
    let mut bytes = Vec::new();
    let nonblocking = rustix::fs::fcntl_setfl(&pipe, rustix::fs::OFlags::NONBLOCK);
    if nonblocking.is_ok() {
        let _ = (&mut pipe).take(64 * 1024).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs the tool; a failure carries the command and what the tool printed on stderr (what fits in
/// the pipe: a tool that writes more blocks, and is stopped at the time bound).
pub fn run(run: &Run) -> io::Result<()> {
    let shown = format!("{} {}", run.program, run.args.join(" "));
    let mut command = Command::new(&run.program);
    command.args(&run.args);
    let Some(generator) = &run.generator else {
        return wait(&mut command, &shown);
    };
    let dir = format!("{GENERATOR_DIRS}/{}-generator.{}", generator, std::process::id());
    let dirs = generator_dirs(&dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{shown}: output directories in {dir}: {e}")))?;
    command
        .arg0(format!("/usr/lib/systemd/system-generators/{generator}"))
        .args(dirs);
    let result = wait(&mut command, &shown);
    let _ = fs::remove_dir_all(&dir);
    result
}

/// Where a generator's output directories go: osconf's own runtime directory on the running system
/// (never the root's, whose paths the platform does not resolve).
const GENERATOR_DIRS: &str = "/run/osconf";

/// A generator's three output directories, fresh: `dir` loses what a run cut short left in it.
fn generator_dirs(dir: &str) -> io::Result<[String; 3]> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let dirs = ["normal", "early", "late"].map(|d| format!("{dir}/{d}"));
    for d in &dirs {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(d)?;
    }
    Ok(dirs)
}

/// Starts `command` and waits for it within the time bound.
fn wait(command: &mut Command, shown: &str) -> io::Result<()> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{shown}: {e}")))?;
    let Some(status) = exit_by(&mut child, Instant::now() + TIMEOUT)? else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other(format!(
            "{shown}: still running after {} s; stopped",
            TIMEOUT.as_secs()
        )));
    };
    if status.success() {
        return Ok(());
    }
    let said = child.stderr.take().map(unread).unwrap_or_default();
    Err(io::Error::other(format!("{shown}: {status}: {}", said.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: &[Service] = &[
        Service {
            name: "systemd-networkd",
            ran: None,
            per_nic: None,
        },
        Service {
            name: "dhcpcd",
            ran: Some("/run/dhcpcd/pid"),
            per_nic: Some("/run/dhcpcd/{}.pid"),
        },
    ];

    /// A child that exits gives its status; one still running at the deadline gives none (and is
    /// stopped by the caller).
    #[test]
    fn exit_by_gives_the_status_or_none_at_the_deadline() {
        let mut quick = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let status = exit_by(&mut quick, Instant::now() + Duration::from_secs(60)).unwrap();
        assert_eq!(status.and_then(|s| s.code()), Some(3));
        let mut slow = Command::new("sleep").arg("60").spawn().unwrap();
        let status = exit_by(&mut slow, Instant::now() + Duration::from_millis(50)).unwrap();
        assert!(status.is_none());
        slow.kill().unwrap();
        slow.wait().unwrap();
    }

    /// The unit of the line that says `active` or `reloading` is the one that runs, whichever
    /// place it has; every other state, and lines missing, mean not running. An instance counts as
    /// its service.
    #[test]
    fn is_active_output_names_the_running_unit() {
        let probes = probes(SERVICES, &["eth0".into(), "eth1".into()]);
        let units: Vec<&str> = probes.iter().map(|p| p.unit.as_str()).collect();
        assert_eq!(
            units,
            ["systemd-networkd", "dhcpcd", "dhcpcd@eth0", "dhcpcd@eth1"]
        );
        let name = |out: &str| first_active(&probes, out.as_bytes()).map(|p| p.service);
        assert_eq!(name("active\ninactive\n"), Some("systemd-networkd"));
        assert_eq!(name("inactive\nactive\n"), Some("dhcpcd"));
        assert_eq!(name("failed\ninactive\ninactive\nreloading\n"), Some("dhcpcd"));
        for none in [
            "inactive\ninactive\n",
            "activating\ndeactivating\n",
            "failed\n",
            "",
        ] {
            assert_eq!(name(none), None, "{none:?}");
        }
    }

    /// No invocation link: not started, without asking; a link, or no `units/` directory (an old
    /// systemd), leaves it to systemctl.
    #[test]
    fn a_unit_without_an_invocation_link_never_started() {
        let run = tempfile::tempdir().unwrap();
        let unit = "osconf-test-nonexistent.service";
        assert!(!never_started(run.path(), unit), "no units/ directory");
        std::fs::create_dir(run.path().join("units")).unwrap();
        assert!(never_started(run.path(), unit));
        let link = run.path().join(format!("units/invocation:{unit}"));
        std::os::unix::fs::symlink("0123456789abcdef0123456789abcdef", &link).unwrap();
        assert!(!never_started(run.path(), unit));
    }

    /// An instance's trace file is its pattern with the interface; a name systemd would refuse in a
    /// unit gets no instance probe.
    #[test]
    fn instances_have_their_own_trace_file_and_plain_names_only() {
        let probes = probes(&SERVICES[1..], &["eth0".into(), "a b".into(), "br-lan.5".into()]);
        let got: Vec<(&str, Option<&str>)> = probes
            .iter()
            .map(|p| (p.unit.as_str(), p.ran.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("dhcpcd", Some("/run/dhcpcd/pid")),
                ("dhcpcd@eth0", Some("/run/dhcpcd/eth0.pid")),
                ("dhcpcd@br-lan.5", Some("/run/dhcpcd/br-lan.5.pid")),
            ]
        );
    }
}
