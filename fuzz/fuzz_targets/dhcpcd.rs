#![no_main]
//! The dhcpcd foreign file (dhcpcd.conf), planned and shown for both vendor samples (`osconf::harness::Foreign`).
use std::sync::LazyLock;

static TARGET: LazyLock<osconf::harness::Foreign> = LazyLock::new(|| osconf::harness::Foreign::named("dhcpcd"));

libfuzzer_sys::fuzz_target!(|data: &[u8]| TARGET.run(data));
