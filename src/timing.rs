//! Timing: where a run's time goes. Each step of `apply` (finding, reading and validating os.conf,
//! detection, the plan, each part of applying it) is timed on the monotonic clock as it ends, logged
//! in osconf's own log with its duration and the clock's reading (milliseconds since boot, as dmesg
//! and `systemd-analyze` count them), and kept for the status record (`osconf status`). Reading a
//! clock is all it does: no step waits for it, and it never fails a run.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// One step that ended: what it was, how long it took, and when it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    /// Its duration, in microseconds.
    pub took_us: u64,
    /// CLOCK_MONOTONIC when it ended, in microseconds (time since boot, suspend excluded).
    pub at_us: u64,
}

/// The steps of one run so far, and when the current one began.
#[derive(Debug)]
pub struct Steps {
    began: Instant,
    pub list: Vec<Step>,
}

impl Default for Steps {
    fn default() -> Steps {
        Steps::start()
    }
}

impl Steps {
    /// The first step begins now.
    pub fn start() -> Steps {
        Steps {
            began: Instant::now(),
            list: Vec::new(),
        }
    }

    /// Ends the current step as `name` (logged and kept), and begins the next one.
    pub fn lap(&mut self, name: impl Into<String>) {
        let now = Instant::now();
        let step = Step {
            name: name.into(),
            took_us: micros(now - self.began),
            at_us: monotonic_us(),
        };
        crate::log::record(&step.line());
        self.list.push(step);
        self.began = now;
    }

    /// Begins the next step now: the time since the last lap belongs to no step worth naming.
    pub fn restart(&mut self) {
        self.began = Instant::now();
    }
}

impl Step {
    /// `step: NAME: D ms (at T ms)`, as the log has it.
    pub fn line(&self) -> String {
        format!(
            "step: {}: {} ms (at {} ms)",
            self.name,
            ms(self.took_us),
            ms(self.at_us)
        )
    }
}

/// Microseconds as milliseconds with three decimals (`0.042`).
pub fn ms(us: u64) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// The steps as `osconf status` shows them: one line each, their sum, and when the first began.
pub fn text(steps: &[Step]) -> String {
    let mut out = String::new();
    let total: u64 = steps.iter().map(|s| s.took_us).sum();
    let began = steps.first().map_or(0, |s| s.at_us.saturating_sub(s.took_us));
    let _ = writeln!(
        out,
        "time:     {} ms in {} steps, from {} ms after boot",
        ms(total),
        steps.len(),
        ms(began)
    );
    let width = steps.iter().map(|s| s.name.chars().count()).max().unwrap_or(0);
    for s in steps {
        let _ = writeln!(out, "  {:width$}  {:>10} ms", s.name, ms(s.took_us));
    }
    out
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// CLOCK_MONOTONIC now, in microseconds: the clock `Instant` reads, whose value (time since boot)
/// `Instant` does not give.
fn monotonic_us() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000).saturating_add(nanos / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_are_kept_in_order_on_the_monotonic_clock() {
        let mut steps = Steps::start();
        steps.lap("read os.conf");
        steps.lap(String::from("validate"));
        let names: Vec<&str> = steps.list.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["read os.conf", "validate"]);
        assert!(steps.list[0].at_us > 0 && steps.list[0].at_us <= steps.list[1].at_us);
    }

    #[test]
    fn shown_in_milliseconds() {
        assert_eq!(ms(42), "0.042");
        assert_eq!(ms(1_234_567), "1234.567");
        let step = Step {
            name: "flush".into(),
            took_us: 2_500,
            at_us: 3_000_000,
        };
        assert_eq!(step.line(), "step: flush: 2.500 ms (at 3000.000 ms)");
        let shown = text(&[
            step.clone(),
            Step {
                name: "remove os.conf".into(),
                took_us: 7,
                ..step
            },
        ]);
        assert_eq!(
            shown,
            "time:     2.507 ms in 2 steps, from 2997.500 ms after boot\n  \
             flush                2.500 ms\n  remove os.conf       0.007 ms\n"
        );
    }
}
