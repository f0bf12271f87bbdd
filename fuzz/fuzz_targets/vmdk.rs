#![no_main]
//! vmdk image bytes through osconf's vmdk reader, read as a virtual disk (`osconf::harness::formats::vmdk`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::formats::vmdk(data));
