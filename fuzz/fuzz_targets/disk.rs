#![no_main]
//! Disk image bytes: partition table, ext/FAT superblocks, directories, files and links read
//! without a panic or an unbounded allocation (`osconf::harness::disk`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::disk(data));
