#![no_main]
//! An ext journal (jbd2) replayed: scan, revoke and replay passes, checksums, escapes
//! (`osconf::harness::images::ext_journal`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::images::ext_journal(data));
