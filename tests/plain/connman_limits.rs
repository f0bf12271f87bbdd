//! What ConnMan cannot hold is refused, not half-written: the classic os.conf (a NIC without the
//! default route, static routes) applied to the Yocto ConnMan root fails naming each of them, and
//! the root is left exactly as it was, os.conf included. Exit 2: the os.conf must change (or the
//! image's stack), as for an invalid one; exit 1 would say a step failed on the way.

use std::process::Command;

use crate::common::{example_conf, example_root, fingerprint, place_conf};

#[test]
fn classic_os_conf_on_connman_is_refused_and_nothing_changes() {
    let scratch = tempfile::tempdir().unwrap();
    let root = example_root(scratch.path(), "yocto-connman");
    place_conf(&root, &example_conf("classic"));
    let before = fingerprint(&root);
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["apply", "--no-live", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for what in [
        "ConnMan, cannot hold",
        "the os.conf is valid, the stack cannot carry it",
        "eth0 does not carry the default route",
        "eth0_route 10.0.0.0/8 10.171.254.1",
        "eth0_route 172.16.0.0/12 10.171.254.1",
        "nothing was changed, os.conf kept",
    ] {
        assert!(stderr.contains(what), "no {what:?} in:\n{stderr}");
    }
    assert_eq!(fingerprint(&root), before);
}
