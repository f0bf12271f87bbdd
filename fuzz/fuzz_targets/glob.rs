#![no_main]
//! Glob pattern NUL name: matching stays within its step bound (`osconf::harness::glob`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::glob(data));
