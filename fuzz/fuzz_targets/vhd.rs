#![no_main]
//! vhd image bytes through osconf's vhd reader, read as a virtual disk (`osconf::harness::formats::vhd`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::formats::vhd(data));
