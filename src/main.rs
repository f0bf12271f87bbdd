//! The `osconf` binary: parse the command line, run, exit with the documented code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = match osconf::cli::parse(std::env::args().skip(1)) {
        Ok(command) => osconf::app::run(command),
        Err(e) => {
            eprintln!("osconf: {e}\n\n{}", osconf::cli::doc::usage());
            osconf::error::EXIT_INVALID
        }
    };
    ExitCode::from(code)
}
