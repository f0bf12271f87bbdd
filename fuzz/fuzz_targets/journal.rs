#![no_main]
//! Journal bytes (a root's `var/lib/osconf/journal`) through its reader (`osconf::harness::journal`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::journal(data));
