//! osconf: the first-boot agent for "Customized Linux" images on Alibaba Cloud ECS, and the image
//! toolkit that checks, prepares and tests such images before upload.
//!
//! The agent (`src/main.rs`, the `osconf` binary) is a pipeline: `conf` (os.conf read and validated
//! by `reader` and `model`) → `plan` (pure data, built by the `render` stacks against a read-only
//! `system` view) → `exec` (applies a plan to a root, atomically, with rollback). The toolkit
//! (`src/bin/osconf-image.rs`, through `toolkit`) adds `disk`'s file readers, `image` and
//! `imagetest`; the agent never links them (see `programs`).
//!
//! What changes the system: `exec` (files), `platform` (the running kernel's host name, NICs and
//! routes; the network services), `boot` (mounts partition 1), `install::run` (directories install
//! makes or empties), `root` (empty directories), `log` and `status` (their own files); in the
//! toolkit, `image` (writes DISK, and DISK.osconf-undo while it does) and `imagetest` (its work
//! directory, the copy it boots). Everything else only reads. ARCHITECTURE.md's table says it per
//! module.

pub mod app;
pub mod boot;
pub mod cli;
pub mod clock;
pub mod conf;
pub mod detect;
pub mod disk;
pub mod error;
pub mod exec;
#[doc(hidden)]
pub mod harness;
pub mod image;
pub mod imagetest;
#[cfg(test)]
mod import_graph;
pub mod install;
pub mod json;
pub mod log;
pub mod model;
pub mod output;
pub mod plan;
pub mod platform;
pub mod programs;
pub mod random;
pub mod reader;
pub mod render;
pub mod root;
pub mod secret;
pub mod status;
pub mod system;
pub mod timing;
pub mod toolkit;
pub mod walk;
