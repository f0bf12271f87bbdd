#![no_main]
//! An XFS from its superblock on, the rest zeros, v5 CRCs made right (`osconf::harness::xfs_lvm::xfs`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::xfs_lvm::xfs(data));
