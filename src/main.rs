//! The `osconf` binary: parse the command line, run, report the error (if any) and exit with the code
//! its kind maps to (`error::Error::exit_code`).

use std::process::ExitCode;

use osconf::error::{Error, Kind};
use osconf::output::say;

fn main() -> ExitCode {
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
