#![no_main]
//! The netifrc foreign files, planned and shown for both vendor samples (`osconf::harness::Foreign`).
use std::sync::LazyLock;

static TARGET: LazyLock<osconf::harness::Foreign> = LazyLock::new(|| osconf::harness::Foreign::named("netifrc"));

libfuzzer_sys::fuzz_target!(|data: &[u8]| TARGET.run(data));
