#![no_main]
//! qcow2 image bytes through osconf's qcow2 reader, read as a virtual disk (`osconf::harness::formats::qcow2`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::formats::qcow2(data));
