//! `osconf image prepare` on roots libguestfs writes (XFS, Btrfs, LVM), and what must hold after:
//! `image check` says the agent is installed and enabled and `aliyun_custom_image/` is on
//! partition 1, the agent's bytes and mode read back by osconf's reader, a second run has nothing
//! to do. Shared by tests/tools/image_guestfs.rs and tests/root/image_lvm.rs.

use std::path::Path;
use std::process::{Command, Output};

use super::images::checks_of;
use super::real::have_tools;

/// What the libguestfs path runs (guestfish), and what the tests read the result with.
pub const TOOLS: [&str; 2] = ["guestfish", "qemu-img"];

/// True when guestfish is installed (else SKIPPED, or a failure under CI=true).
pub fn ready(test: &str) -> bool {
    have_tools(test, &TOOLS)
}

/// `osconf image prepare IMG ARGS`, the agent beside the toolkit (the test build's own).
pub fn prepare(img: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["image", "prepare"])
        .arg(img)
        .args(args)
        .output()
        .unwrap()
}

/// Prepares `img` (with the fix flags `args`) and holds it to what a prepared image is: exit 0 and a report naming
/// libguestfs, `image check`'s agent and custom-dir pass (and `root_says` in its root line), the
/// agent's bytes and 0755 at `agent_at` of the root read natively (`read(path) -> (bytes, mode)`);
/// then a second run has nothing to do and leaves the file as it was. Returns the first report.
pub fn prepared(
    img: &Path,
    args: &[&str],
    root_says: &str,
    agent_at: &str,
    read: impl Fn(&str) -> (Vec<u8>, u32),
) -> String {
    let out = prepare(img, args);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}{err}");
    assert!(said.contains("written through libguestfs"), "{said}");
    let json = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["image", "check", "--json"])
        .arg(img)
        .output()
        .unwrap();
    let checks = checks_of(&json.stdout);
    let get = |key: &str| {
        checks
            .iter()
            .find(|c| c.0 == key)
            .unwrap_or_else(|| panic!("no {key}: {checks:?}"))
            .clone()
    };
    let agent = get("agent");
    assert_eq!(agent.1, "pass", "{agent:?}");
    assert!(agent.2.contains("installed and enabled for systemd"), "{agent:?}");
    assert_eq!(get("custom-dir").1, "pass", "{checks:?}");
    assert!(get("root").2.contains(root_says), "{checks:?}");
    if args.contains(&"--remove-host-keys") {
        assert_eq!(get("ssh-host-keys").1, "pass", "{checks:?}");
    }
    if args.contains(&"--lock-root-password") {
        assert_eq!(get("root-password").1, "pass", "{checks:?}");
    }
    let (bytes, mode) = read(agent_at);
    assert!(
        bytes == std::fs::read(env!("CARGO_BIN_EXE_osconf")).unwrap(),
        "the agent's bytes differ"
    );
    assert_eq!(mode & 0o7777, 0o755);
    let before = std::fs::read(img).unwrap();
    let again = prepare(img, args);
    let said_again = String::from_utf8_lossy(&again.stdout);
    assert_eq!(again.status.code(), Some(0), "{said_again}");
    assert!(said_again.contains("nothing to do"), "{said_again}");
    assert!(
        std::fs::read(img).unwrap() == before,
        "a run with nothing to do changed the image"
    );
    said
}
