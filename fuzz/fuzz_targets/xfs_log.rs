#![no_main]
//! An XFS log scanned from head to tail, its record CRCs made right (`osconf::harness::xfs_lvm::xfs_log`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::xfs_lvm::xfs_log(data));
