#![no_main]
//! OpenRC's network service's foreign file (conf.d/network), planned and shown for both vendor samples (`osconf::harness::Foreign`).
use std::sync::LazyLock;

static TARGET: LazyLock<osconf::harness::Foreign> = LazyLock::new(|| osconf::harness::Foreign::named("openrc-network"));

libfuzzer_sys::fuzz_target!(|data: &[u8]| TARGET.run(data));
