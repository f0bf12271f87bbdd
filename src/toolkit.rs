//! The image toolkit's entry: runs one `image check|inject|prepare|test` command. It sits above
//! `image` and `imagetest`, so neither needs the other to dispatch.

use crate::cli::image::Image;
use crate::error::Error;
use crate::output::print;

/// Runs one image command.
pub fn run(command: Image) -> Result<(), Error> {
    match command {
        Image::Check { disk, json } => crate::image::run_check(&disk, json),
        Image::Inject { disk, conf } => print(&crate::image::inject::run(&disk, &conf)?),
        Image::Prepare(disk) => print(&crate::image::prepare::run(&disk)?),
        Image::Test(req) => crate::imagetest::run(&req),
    }
}
