//! Failure injection for tests, compiled only with the `test-hooks` feature (never in a release
//! build): `OSCONF_TEST_CRASH_AFTER=N` ends the process at once after the N-th step, as a power cut
//! or `kill -9` would; `OSCONF_TEST_STOP_AT=STEP` stops it (SIGSTOP) after the step so named, for a
//! test to change the world meanwhile and let it go on (SIGCONT); `OSCONF_TEST_PANIC_AFTER=N` panics
//! after the N-th step (the panic hook must still undo osconf's mounts); `OSCONF_TEST_FAIL_FSYNC=1`
//! makes every directory fsync fail with EIO.
//! Without the feature these are empty functions the compiler removes.

use std::io;
use std::os::fd::AsFd;

/// Exit code of a run stopped at a crash point.
pub const CRASHED: i32 = 99;

#[cfg(feature = "test-hooks")]
static STEPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Marks the end of one step of an apply.
pub fn crash_point(step: &str) {
    #[cfg(feature = "test-hooks")]
    {
        let n = STEPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let at = |var: &str| std::env::var(var).ok().and_then(|v| v.parse::<usize>().ok());
        if at("OSCONF_TEST_CRASH_AFTER") == Some(n) {
            eprintln!("osconf: test crash after step {n} ({step})");
            std::process::exit(CRASHED);
        }
        if at("OSCONF_TEST_PANIC_AFTER") == Some(n) {
            panic!("test panic after step {n} ({step})");
        }
        if std::env::var_os("OSCONF_TEST_STOP_AT").is_some_and(|s| s == step) {
            use rustix::process::{Signal, getpid, kill_process};
            let _ = kill_process(getpid(), Signal::STOP);
        }
    }
    let _ = step;
}

/// An injected failure of a directory's fsync.
pub fn fsync_fault(fd: impl AsFd) -> io::Result<()> {
    let _ = fd;
    #[cfg(feature = "test-hooks")]
    if std::env::var_os("OSCONF_TEST_FAIL_FSYNC").is_some() {
        return Err(io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error()));
    }
    Ok(())
}
