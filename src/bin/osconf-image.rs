//! The `osconf-image` binary: the image toolkit, apart from the agent that runs at boot. Its command
//! line is `osconf image`'s without the word `image` (`osconf image test DISK` runs
//! `osconf-image test DISK`); it exits as `osconf` does (`error::Error::exit_code`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let outcome = osconf::cli::parse_toolkit(std::env::args().skip(1)).and_then(osconf::toolkit::run);
    osconf::output::finish(outcome, osconf::cli::doc::toolkit_usage)
}
