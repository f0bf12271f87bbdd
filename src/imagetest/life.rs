//! `image test --boots N`: the boots an instance lives through, each checked — 1: os.conf as given
//! (or generated); even boots: a reboot without os.conf, which must rewrite nothing; odd boots
//! after the first: a changed os.conf (new host name, password and addresses, the MACs of two NICs
//! swapped), which must take effect. The report per boot, as text or as one JSON object.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::machine::{Firmware, Machine};
use super::qemu::{self, Ended, Outcome};
use super::report::{self, Check};
use crate::cli::image::Test;
use crate::disk::Image;
use crate::error::Error;
use crate::image::Verdict;
use crate::image::arch::Arch;
use crate::json;
use crate::model::Config;
use crate::output::{Said, say};

/// What the guest is, for the report.
pub struct Guest {
    pub arch: Arch,
    pub arch_why: String,
    pub firmware: Firmware,
    pub firmware_why: String,
}

/// Which boot of the instance's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The first start: os.conf as given or generated.
    First,
    /// A reboot: no os.conf on partition 1; nothing may be rewritten.
    Reboot,
    /// A start after the user changed the instance: a new os.conf.
    Changed,
}

impl Step {
    fn of(n: u32) -> Step {
        match n {
            1 => Step::First,
            n if n % 2 == 0 => Step::Reboot,
            _ => Step::Changed,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Step::First => "first",
            Step::Reboot => "reboot without os.conf",
            Step::Changed => "changed os.conf",
        }
    }
}

/// One boot's report.
struct Boot {
    n: u32,
    step: Step,
    os_conf: Option<PathBuf>,
    checks: Vec<Check>,
    /// From qemu's start until it was stopped.
    wall: Duration,
    /// From qemu's start until osconf reported.
    reported: Option<Duration>,
}

/// Boots `machine` `req.boots` times, starting with `first` (read from `first_path`), reports, and
/// says whether everything passed.
pub fn run(
    req: &Test,
    work: &Path,
    machine: &mut Machine,
    guest: &Guest,
    first: Config,
    first_path: PathBuf,
) -> Result<Said, Error> {
    let disk = machine.disk.clone();
    // The qcow2 overlay `image test` made (not a user's image booted --in-place).
    let overlay = machine.format == "qcow2" && !req.in_place;
    let fail = |what: String| Error::failed(Some(&disk), what);
    let mut config = first;
    let mut boots: Vec<Boot> = Vec::new();
    let mut out = String::new();
    for n in 1..=req.boots {
        let step = Step::of(n);
        let os_conf = match step {
            Step::First => Some(first_path.clone()),
            Step::Reboot => None,
            Step::Changed => {
                let path = work.join(format!("os.conf.{n}"));
                let text = super::conf::changed(&super::random()?, &config);
                super::write_private(&path, text.as_bytes())
                    .map_err(|e| fail(format!("writing {}: {e}", path.display())))?;
                config = crate::conf::load(&path)?;
                Some(path)
            }
        };
        let what = match &os_conf {
            Some(p) => format!("{} ({})", step.name(), p.display()),
            None => step.name().to_owned(),
        };
        say(format!("boot {n} of {}: {what}", req.boots));
        if let Some(p) = &os_conf {
            // As ECS does before a start; into the overlay, only what changes.
            let said = if overlay {
                crate::image::inject::into_overlay(&disk, p)?
            } else {
                crate::image::inject::run(&disk, p)?
            };
            said.lines().for_each(say);
        }
        let before = (step == Step::Reboot).then(|| snapshot(&disk)).transpose()?;
        let log = work.join(match n {
            1 => "console.log".to_owned(),
            n => format!("console-{n}.log"),
        });
        let started = Instant::now();
        let ended = boot(req, work, machine, &log)?;
        let wall = started.elapsed();
        let image = Image::open(&disk).map_err(|e| fail(format!("reading the image: {e}")))?;
        let expect = match step {
            Step::Reboot => Outcome::NothingToDo,
            _ => Outcome::Applied,
        };
        let mut checks = report::check(&config, expect, &ended, &disk, &image);
        if let Some(before) = before {
            checks.push(report::unchanged(&before, &snapshot(&disk)?));
        }
        let reported = match &ended {
            Ended::Reported(_, _, at) => Some(*at),
            _ => None,
        };
        let stop = reported.is_none();
        if !req.json {
            out += &format!(
                "boot {n}: {what}, {}\n{}",
                timing(wall, reported),
                report::text(&checks)
            );
        }
        boots.push(Boot {
            n,
            step,
            os_conf,
            checks,
            wall,
            reported,
        });
        if stop && n < req.boots {
            say(format!(
                "osconf did not report at boot {n}: boots {}–{} are not made",
                n + 1,
                req.boots
            ));
            break;
        }
    }
    let failed = boots
        .iter()
        .flat_map(|b| &b.checks)
        .filter(|c| c.item.verdict == Verdict::Fail)
        .count();
    let total: usize = boots.iter().map(|b| b.checks.len()).sum();
    if req.json {
        out = json(&req.disk, guest, machine.kvm, req.boots, &boots);
    }
    Ok(match failed {
        0 => Said::text(out),
        n => Said::failing(
            out,
            fail(format!(
                "{n} of {total} checks failed over {} boot(s); the consoles are in {}",
                boots.len(),
                work.display()
            )),
        ),
    })
}

/// What a reboot must leave as it was, read from the image (see `report::snapshot`).
fn snapshot(disk: &Path) -> Result<Vec<report::Kept>, Error> {
    let fail = |what: String| Error::failed(Some(disk), what);
    let image = Image::open(disk).map_err(|e| fail(format!("reading the image: {e}")))?;
    report::snapshot(disk, &image)
}

/// One boot, followed on the console (`log`) until osconf reported and `qemu::GRACE` passed; under TCG again when KVM failed before the guest
/// printed anything and no accelerator was asked for.
fn boot(req: &Test, work: &Path, machine: &mut Machine, log: &Path) -> Result<Ended, Error> {
    let verbose = req.verbose;
    // The kernel log repeats osconf's lines with a time stamp: each is shown once.
    let mut last = String::new();
    let mut show = |line: &str| {
        let msg = line.find("osconf: ").map_or(line, |at| &line[at..]);
        if (verbose || line.contains("osconf")) && msg != last {
            say(format!("guest| {line}"));
        }
        msg.clone_into(&mut last);
    };
    loop {
        say(format!(
            "booting under {} ({}), {} NIC(s) each alone on its hub, console in {}",
            super::machine::program(machine.arch),
            if machine.kvm { "KVM" } else { "TCG" },
            machine.macs.len(),
            log.display()
        ));
        let messages = work.join("qemu.log");
        match qemu::boot(machine, log, &messages, req.timeout, qemu::GRACE, &mut show) {
            Ok(e) => return Ok(e),
            Err(qemu::BootError::NotInstalled) => return Err(super::not_installed(machine.arch)),
            Err(qemu::BootError::Kvm(why)) if req.accel.is_none() => {
                say(format!(
                    "KVM failed before the guest printed anything ({why}); again under TCG"
                ));
                machine.kvm = false;
            }
            Err(qemu::BootError::Kvm(why) | qemu::BootError::Failed(why)) => {
                return Err(Error::failed(Some(&machine.disk), why));
            }
        }
    }
}

/// `osconf reported after 12.3 s, the boot took 14.0 s`.
fn timing(wall: Duration, reported: Option<Duration>) -> String {
    let wall = report::seconds(wall);
    match reported {
        Some(at) => format!(
            "osconf reported after {}, the boot took {wall}",
            report::seconds(at)
        ),
        None => format!("osconf did not report; the boot took {wall}"),
    }
}

/// A duration as a JSON number of seconds with one decimal, in integers (see `report::seconds`).
fn json_seconds(d: Duration) -> String {
    let tenths = d.as_millis() / 100;
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// The report as one JSON object: `{"image", "arch", "arch_why", "firmware", "firmware_why",
/// "accel", "boots_asked", "verdict", "boots": [{"boot", "step", "os_conf", "seconds": {"wall",
/// "osconf_reported"}, "checks": [{"key", "expected", "found", "verdict", "reason"}]}]}`.
fn json(disk: &Path, guest: &Guest, kvm: bool, asked: u32, boots: &[Boot]) -> String {
    let failed = boots
        .iter()
        .flat_map(|b| &b.checks)
        .any(|c| c.item.verdict == Verdict::Fail);
    let mut out = format!(
        "{{\"image\":{},\"arch\":{},\"arch_why\":{},\"firmware\":{},\"firmware_why\":{},\"accel\":{},\
         \"boots_asked\":{asked},\"verdict\":{},\"boots\":[",
        json::string(&disk.to_string_lossy()),
        json::string(guest.arch.name()),
        json::string(&guest.arch_why),
        json::string(guest.firmware.name()),
        json::string(&guest.firmware_why),
        json::string(if kvm { "kvm" } else { "tcg" }),
        json::string(if failed || boots.len() < asked as usize {
            "fail"
        } else {
            "pass"
        }),
    );
    for (i, b) in boots.iter().enumerate() {
        let checks: Vec<String> = b
            .checks
            .iter()
            .map(|c| {
                format!(
                    "{{\"key\":{},\"expected\":{},\"found\":{},\"verdict\":{},\"reason\":{}}}",
                    json::string(c.item.key),
                    json::string(&c.expected),
                    json::string(&c.found),
                    json::string(c.item.verdict.name()),
                    json::string(&c.item.reason)
                )
            })
            .collect();
        let _ = write!(
            out,
            "{}{{\"boot\":{},\"step\":{},\"os_conf\":{},\"seconds\":{{\"wall\":{},\"osconf_reported\":{}}},\
             \"checks\":[{}]}}",
            if i == 0 { "" } else { "," },
            b.n,
            json::string(b.step.name()),
            b.os_conf
                .as_ref()
                .map_or("null".to_owned(), |p| json::string(&p.to_string_lossy())),
            json_seconds(b.wall),
            b.reported.map_or("null".to_owned(), json_seconds),
            checks.join(",")
        );
    }
    out.push_str("]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Item;

    #[test]
    fn an_instance_lives_first_then_reboots_and_changes_in_turn() {
        let steps: Vec<Step> = (1..=5).map(Step::of).collect();
        assert_eq!(
            steps,
            [
                Step::First,
                Step::Reboot,
                Step::Changed,
                Step::Reboot,
                Step::Changed
            ]
        );
    }

    #[test]
    fn the_json_report_has_every_boot_and_check_with_expected_and_found() {
        let check = |key, verdict, expected: &str, found: &str| Check {
            item: Item {
                key,
                verdict,
                reason: format!("why \"{key}\"\n"),
            },
            expected: expected.to_owned(),
            found: found.to_owned(),
        };
        let boots = [
            Boot {
                n: 1,
                step: Step::First,
                os_conf: Some("/w/os.conf".into()),
                checks: vec![
                    check("boot", Verdict::Pass, "applied", "applied"),
                    check("hostname", Verdict::Pass, "h1", "h1"),
                ],
                wall: Duration::from_millis(14_260),
                reported: Some(Duration::from_millis(12_340)),
            },
            Boot {
                n: 2,
                step: Step::Reboot,
                os_conf: None,
                checks: vec![check(
                    "unchanged",
                    Verdict::Fail,
                    "nothing rewritten",
                    "etc/hostname",
                )],
                wall: Duration::from_millis(9_000),
                reported: None,
            },
        ];
        let guest = Guest {
            arch: Arch::Aarch64,
            arch_why: "/sbin/init is an aarch64 binary".into(),
            firmware: Firmware::Uefi,
            firmware_why: "an aarch64 image boots under UEFI only".into(),
        };
        let text = json(Path::new("/i/d\".raw"), &guest, false, 3, &boots);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["image"], "/i/d\".raw");
        assert_eq!(v["arch"], "aarch64");
        assert_eq!(v["firmware"], "uefi");
        assert_eq!(v["accel"], "tcg");
        assert_eq!(v["boots_asked"], 3);
        assert_eq!(v["verdict"], "fail");
        let b = v["boots"].as_array().unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0]["boot"], 1);
        assert_eq!(b[0]["step"], "first");
        assert_eq!(b[0]["os_conf"], "/w/os.conf");
        assert_eq!(b[0]["seconds"]["wall"], 14.2);
        assert_eq!(b[0]["seconds"]["osconf_reported"], 12.3);
        assert_eq!(b[0]["checks"][1]["key"], "hostname");
        assert_eq!(b[0]["checks"][1]["expected"], "h1");
        assert_eq!(b[0]["checks"][1]["found"], "h1");
        assert_eq!(b[0]["checks"][1]["verdict"], "pass");
        assert_eq!(b[0]["checks"][1]["reason"], "why \"hostname\"\n");
        assert!(b[1]["os_conf"].is_null() && b[1]["seconds"]["osconf_reported"].is_null());
        assert_eq!(b[1]["checks"][0]["verdict"], "fail");
        // Every boot made and passed: pass.
        let ok = json(Path::new("d"), &guest, true, 1, &boots[..1]);
        let v: serde_json::Value = serde_json::from_str(&ok).unwrap();
        assert_eq!(
            (v["verdict"].as_str(), v["accel"].as_str()),
            (Some("pass"), Some("kvm"))
        );
    }
}
