#![no_main]
//! A path and a filesystem: the path walk every way a reader walks (`osconf::harness::images::walk`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::images::walk(data));
