#![no_main]
//! UFS superblock bytes (`osconf::harness::images::ufs`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::images::ufs(data));
