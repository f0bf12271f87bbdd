#![no_main]
//! Disk bytes through the partition-table reader, GPT CRCs made right first (`osconf::harness::images::table`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::images::table(data));
