#![no_main]
//! An LVM2 PV's first bytes, CRCs made right, each LV read (`osconf::harness::xfs_lvm::lvm`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| osconf::harness::xfs_lvm::lvm(data));
