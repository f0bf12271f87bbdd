//! Secrets never shown, never left readable: the real binary's `plan` masks Wi-Fi, 802.1X and
//! keyfile secrets in files it would change, a disabled copy keeps its original's mode and owner,
//! and an invalid base64 password is reported without any part of it.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::{Command, Output};

use crate::common::{example_conf, example_root, osconf_apply, osconf_in as osconf, place_conf};

fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What `plan` shows for the vpc sample's os.conf under `root`, checking it succeeds.
fn plan_vpc(root: &Path) -> String {
    place_conf(root, &example_conf("vpc"));
    let plan = osconf(&["plan"], root);
    assert_eq!(plan.status.code(), Some(0), "{}", both(&plan));
    both(&plan)
}

const NETPLAN_WIFI: &str = "network:
  version: 2
  ethernets:
    ens3:
      dhcp4: true
      auth:
        key-management: 802.1x
        method: peap
        identity: alice
        password: \"s3cret-8021x\"
  wifis:
    wlan0:
      access-points:
        \"home\": {password: \"s3cret-wifi\"}
        \"work\":
          password: s3cret-psk
";

#[test]
fn plan_masks_netplan_secrets_and_the_disabled_copy_keeps_mode_and_owner() {
    let scratch = tempfile::tempdir().unwrap();
    let root = example_root(scratch.path(), "ubuntu22");
    let yaml = root.join("etc/netplan/00-installer-config.yaml");
    fs::write(&yaml, NETPLAN_WIFI).unwrap();
    fs::set_permissions(&yaml, fs::Permissions::from_mode(0o600)).unwrap();
    // Another owner needs root; without it the mode is still checked.
    let owner = rustix::process::geteuid().is_root().then_some((1234, 5678));
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&yaml, Some(uid), Some(gid)).unwrap();
    }
    let shown = plan_vpc(&root);
    assert!(
        shown.contains("00-installer-config.yaml.osconf-disabled"),
        "{shown}"
    );
    for secret in ["s3cret-8021x", "s3cret-wifi", "s3cret-psk"] {
        assert!(!shown.contains(secret), "plan shows {secret:?}:\n{shown}");
    }
    assert!(shown.contains("+        password: (not shown)"), "{shown}");

    osconf_apply(&root, &example_conf("vpc"));
    let copy = fs::metadata(root.join("etc/netplan/00-installer-config.yaml.osconf-disabled")).unwrap();
    assert_eq!(
        copy.mode() & 0o7777,
        0o600,
        "the disabled copy is readable by others"
    );
    if let Some((uid, gid)) = owner {
        assert_eq!((copy.uid(), copy.gid()), (uid, gid));
    } else {
        crate::common::real::cannot_run(
            "plan_masks_netplan_secrets_and_the_disabled_copy_keeps_mode_and_owner (owner part)",
            "chown to another user needs root",
        );
    }
}

#[test]
fn plan_masks_a_networkmanager_profile_it_turns_off() {
    let scratch = tempfile::tempdir().unwrap();
    let root = example_root(scratch.path(), "rocky9");
    // A Wi-Fi-style profile for eth0's MAC: osconf turns its autoconnect off, and the diff's
    // context around that line holds its secrets.
    let profile = root.join("etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection");
    let text = "[802-1x]\npassword=s3cret-nm\n[wifi-security]\npsk=s3cret-nm-psk\n[connection]\nid=home\ntype=ethernet\n[ethernet]\nmac-address=00:8C:FA:5E:14:23\n";
    fs::write(&profile, text).unwrap();
    let shown = plan_vpc(&root);
    assert!(
        shown.contains("+autoconnect=false"),
        "the profile is not changed:\n{shown}"
    );
    assert!(!shown.contains("s3cret-nm"), "{shown}");
    assert!(shown.contains(" psk=(not shown)"), "{shown}");
}

#[test]
fn regression_invalid_base64_password_error_quotes_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("os.conf");
    // The base64 error would have said which symbol ('!', code 33) broke it and at which offset.
    fs::write(&conf, "hostname=web1\npassword=cXdlcjEyMzQK!\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .arg("check")
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.contains("password")).unwrap();
    assert!(line.ends_with("line 2: password: not valid base64"), "{stderr}");
    for leak in ["33", "12", "!", "symbol", "offset", "cXdl"] {
        assert!(!stderr.contains(leak), "{leak:?} in {stderr}");
    }
}
