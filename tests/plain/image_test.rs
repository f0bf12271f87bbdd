//! `osconf image test`'s contract where no boot is needed: exit 3 and a clear message when qemu is
//! not installed, before anything is copied or written. The boots themselves (a passing and a failing
//! image) are in tests/e2e/image_test.py, run by scripts/test-all.

use std::process::Command;

#[test]
fn without_qemu_it_says_so_and_exits_3_having_done_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.raw");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let empty = dir.path().join("bin");
    std::fs::create_dir(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["image", "test"])
        .arg(&disk)
        .env("PATH", &empty)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("qemu-system-x86_64 is not installed"), "{stderr}");
    assert!(stderr.contains("apt-get install qemu-system-x86"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "no work directory was made: {left:?}");
}
