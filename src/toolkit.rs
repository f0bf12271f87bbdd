//! The image toolkit's entry (`osconf-image`, which `osconf image …` runs): one `image
//! check|inject|prepare|test` command, its help or its version. It sits above `image` and
//! `imagetest`, so neither dispatches to the other, and nothing in the agent calls it.

use crate::cli::Command;
use crate::cli::image::Image;
use crate::error::Error;
use crate::output::Said;

/// Runs what `cli::parse_toolkit` made of the toolkit's command line: what it has to say on stdout,
/// for `output::finish` to print.
pub fn run(command: Command) -> Result<Said, Error> {
    match command {
        Command::Image(Image::Check { disk, json }) => crate::image::run_check(&disk, json),
        Command::Image(Image::Inject { disk, conf }) => {
            crate::image::inject::run(&disk, &conf).map(Said::text)
        }
        Command::Image(Image::Prepare { disk, agent, fixes }) => {
            crate::image::prepare::run(&disk, agent.as_deref(), fixes).map(Said::text)
        }
        Command::Image(Image::Test(req)) => crate::imagetest::run(&req),
        Command::Help(text) => Ok(Said::text(text)),
        Command::Version => Ok(Said::text(crate::cli::doc::version())),
        other => Err(Error::usage(format!("{other:?} is not an image command"))),
    }
}
