#![no_main]
//! os.conf bytes through the reader and the validator (`osconf::harness::reader`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::reader(data));
