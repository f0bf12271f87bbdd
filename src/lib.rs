//! osconf: the first-boot agent for "Customized Linux" images on Alibaba Cloud ECS.
//!
//! Pipeline: `reader` (os.conf bytes → raw entries) → `model` (validated config) → `plan` (pure data,
//! built by the `render` stacks against a read-only `system` view) → `exec` (applies a plan to a root,
//! atomically, with rollback). Only `exec` and `platform` change anything.

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
pub mod toolkit;
pub mod walk;
