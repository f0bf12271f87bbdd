#![no_main]
//! The connman foreign file (another provisioning file for the NIC), planned and shown for both vendor samples (`osconf::harness::Foreign`).
use std::sync::LazyLock;

static TARGET: LazyLock<osconf::harness::Foreign> = LazyLock::new(|| osconf::harness::Foreign::named("connman"));

libfuzzer_sys::fuzz_target!(|data: &[u8]| TARGET.run(data));
