#![no_main]
//! A Btrfs from its superblock on, checksums made right (`osconf::harness::btrfs::btrfs`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::btrfs::btrfs(data));
