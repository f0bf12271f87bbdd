//! Integration tests that need nothing but the built binary, `sh` and a scratch directory: any user,
//! any machine. One binary (each links the whole library): ARCHITECTURE.md's test table says which
//! tests go here. A test here that also checks something only root can (another owner, a mount) says
//! `*** SKIPPED ***` for that part when it cannot.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod confinement;
mod connman_limits;
mod crash;
mod detect;
mod finder;
mod freebsd_pwd_mkdb;
mod fuzz_seeds;
mod golden;
mod hostile;
mod image_test;
mod install;
mod journal;
mod model_roundtrip;
mod mutations;
mod no_nic;
mod rollback;
mod secrets;
mod status;
mod validate;
