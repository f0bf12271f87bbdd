#![no_main]
//! dm-thin metadata, its checksums made right, each device read (`osconf::harness::thin::thin`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::thin::thin(data));
