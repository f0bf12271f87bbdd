//! The `osconf` binary: parse the command line, run, report the error (if any) and exit with the code
//! its kind maps to (`error::Error::exit_code`).

use std::process::ExitCode;

use osconf::error::{Error, Kind};
use osconf::output::say;

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
    let outcome = osconf::cli::parse(std::env::args().skip(1))
        .map_err(Error::usage)
        .and_then(osconf::app::run);
    let Err(e) = outcome else {
        return ExitCode::SUCCESS;
    };
    match e.kind {
        Kind::ClosedPipe => {}
        Kind::Usage => say(format_args!("{e}\n\n{}", osconf::cli::doc::usage())),
        Kind::Invalid | Kind::Failed | Kind::NoTool => say(&e),
    }
    ExitCode::from(e.exit_code())
}
