//! NICs by MAC at boot, on a real kernel: a live run waits (up to `--wait`) for a NIC whose driver
//! loads late and writes the name the kernel gave it; a MAC still absent after the wait is exit 1
//! naming the MAC, with nothing changed and os.conf kept.

use std::time::{Duration, Instant};

use crate::common::real::{Netns, cannot_run, check_prerequisites};
use crate::common::{example_conf, example_root, place_conf, snapshot};

const OSCONF: &str = env!("CARGO_BIN_EXE_osconf");

#[test]
fn a_nic_that_appears_during_the_wait_is_named_as_the_kernel_names_it() {
    let test = "a_nic_that_appears_during_the_wait_is_named_as_the_kernel_names_it";
    if let Err(why) = check_prerequisites(&[]) {
        return cannot_run(test, &why);
    }
    let scratch = tempfile::tempdir().unwrap();
    let root = example_root(scratch.path(), "debian11");
    place_conf(&root, &example_conf("vpc"));
    let ns = Netns::new("late");
    // The NIC comes a second after osconf started, as a late virtio driver's would.
    let out = ns.sh(&format!(
        "mount -t tmpfs tmpfs /run
         (sleep 1; ip link add enp0s5 address 00:8c:fa:5e:14:23 type veth peer name peer0) &
         unshare -u {OSCONF} plan --live --wait 10 --root '{}' 2>&1; wait",
        root.display()
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("eth0 (MAC 00:8c:fa:5e:14:23) is enp0s5"), "{text}");
    assert!(text.contains("+iface enp0s5 inet static"), "{text}");
}

#[test]
fn a_mac_still_missing_after_the_wait_changes_nothing() {
    let test = "a_mac_still_missing_after_the_wait_changes_nothing";
    if let Err(why) = check_prerequisites(&[]) {
        return cannot_run(test, &why);
    }
    let scratch = tempfile::tempdir().unwrap();
    let root = example_root(scratch.path(), "debian11");
    place_conf(&root, &example_conf("classic"));
    let before = snapshot(&root);
    let ns = Netns::new("missing");
    ns.add_nic("ens5", "00:8c:fa:5e:14:23");
    let start = Instant::now();
    let out = ns.sh_unchecked(&format!(
        "unshare -u sh -c 'hostname before; {OSCONF} apply --wait 2 --live --root {}; echo status=$?; hostname'",
        root.display()
    ));
    let waited = start.elapsed();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("status=1\nbefore\n"), "{stdout}{stderr}");
    assert!(
        stderr.contains("no NIC with MAC 00:8c:fa:5e:14:24 (os.conf eth1) after waiting 2 s"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("00:8c:fa:5e:14:23 (os.conf eth0)"),
        "eth0 is there: {stderr}"
    );
    assert!(waited >= Duration::from_secs(2), "gave up after {waited:?}");
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    assert_eq!(snapshot(&root), before, "something changed");
    assert!(ns.ipv4_addrs("ens5").is_empty());
}
