#![no_main]
//! `DISK.osconf-undo` bytes: parsed and vetted as `image inject|prepare` do (`osconf::harness::images::undo`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::images::undo(data));
