//! Integration tests that run host programs beside osconf: mkfs.ext4/mkfs.vfat/mkfs.btrfs, debugfs, mtools,
//! sfdisk and qemu-img for disk images; groff, bash, zsh and fish for the generated docs; GNU diff and
//! patch; python3 (glibc crypt, seccomp); strace (kills and faults injected at system calls); the
//! release build. Any user; a missing program is a loud
//! `*** SKIPPED ***` (a failure under `CI=true`). ARCHITECTURE.md's test table says which tests go here.

#[path = "../common/mod.rs"]
mod common;

mod cli_docs;
mod diff;
mod disk;
mod disk_ext_old;
mod disk_files;
mod disk_journal;
mod disk_xfs;
mod disk_xfs_log;
mod image;
mod image_arch;
mod image_btrfs;
mod image_fixes;
mod image_formats;
mod image_guestfs;
mod image_hostile;
mod image_overlay;
mod image_root;
mod image_thin;
mod image_write;
mod leftovers;
mod old_kernel;
mod release;
mod shadow_crypt;
