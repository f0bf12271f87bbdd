//! The `osconf` binary: parse the command line, run, report the error (if any) and exit with the code
//! its kind maps to (`error::Error::exit_code`).

use std::process::ExitCode;

fn main() -> ExitCode {
    // The release binary aborts on a panic (Cargo.toml: 135 KB less unwinding code), so no
    // destructor runs then: the mounts osconf made or made writable are undone here, and the exit
    // code is 101, as an unwinding panic's. The message is std's own.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        osconf::boot::mount::undo_after_panic();
        std::process::exit(101);
    }));
    // SIGTERM (systemd's stop timeout) and SIGINT end the process as kill -9 would, but first the
    // mounts are undone, as after a panic; the journal covers the files at the next run.
    on_signal(SIGTERM);
    on_signal(SIGINT);
    let outcome = osconf::cli::parse(std::env::args().skip(1)).and_then(osconf::app::run);
    osconf::output::finish(outcome, osconf::cli::doc::usage)
}

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

// From the C library std links already: rustix offers no signal handlers outside its `runtime`
// feature, which is meant for C library implementations.
unsafe extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(status: i32) -> !;
}

fn on_signal(signum: i32) {
    // SAFETY: `undone` does only what a signal handler may (system calls, no allocation).
    unsafe {
        signal(signum, undone);
    }
}

/// Undoes osconf's mounts and exits 128 + the signal, as a shell reports a process it killed.
extern "C" fn undone(signum: i32) {
    osconf::boot::mount::undo_on_signal();
    // SAFETY: _exit is async-signal-safe and ends the process without running any handler.
    unsafe { _exit(128 + signum) }
}
