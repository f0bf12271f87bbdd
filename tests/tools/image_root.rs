//! `osconf image check`'s root-partition requirements with the real binary, on images whose root
//! filesystem `mkfs.ext4 -d` made from a tree: the agent (osconf installed by `osconf install
//! --root`, a vendor-style init script with and without its runlevel link, nothing), SSH host keys,
//! root's authorized_keys and password (locked, empty, a usable hash), one-partition and
//! /boot+root layouts, and roots the reader cannot read (xfs, LVM), which must be warnings.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::images::{Part, build, checks_of};
use crate::common::real::{have_tools, run};

const TOOLS: [&str; 5] = ["sfdisk", "mkfs.vfat", "mkfs.ext4", "dd", "truncate"];
const FAT32: &[&str] = &["mkfs.vfat", "-F", "32"];
const EXT4: &[&str] = &["mkfs.ext4", "-q", "-F", "-O", "^64bit"];

/// A root tree: os-release, root in passwd with `shadow_field` as its password, an etc/ssh.
fn tree(dir: &Path, name: &str, shadow_field: &str) -> PathBuf {
    let root = dir.join(name);
    for d in ["etc/ssh", "root/.ssh", "boot", "usr/sbin", "etc/systemd/system"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(
        root.join("etc/os-release"),
        "ID=debian\nPRETTY_NAME=\"Debian GNU/Linux 12\"\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nbin:x:1:1::/:/bin/false\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/shadow"),
        format!("root:{shadow_field}:19000:0:99999:7:::\nbin:*:19000::::::\n"),
    )
    .unwrap();
    fs::write(root.join("etc/ssh/sshd_config"), "PermitRootLogin no\n").unwrap();
    root
}

/// A scratch directory, when the tools are there (else the test says SKIPPED).
fn setup(test: &str) -> Option<tempfile::TempDir> {
    (have_tools(test, &TOOLS) && have_tools(test, &["mmd"])).then(|| tempfile::tempdir().unwrap())
}

/// `image check --json`: the exit code and each check's (result, reason) by key.
fn check(img: &Path) -> (i32, Vec<(String, String, String)>) {
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["image", "check", "--json"])
        .arg(img)
        .output()
        .unwrap();
    let checks = checks_of(&out.stdout);
    (out.status.code().unwrap(), checks)
}

fn get<'a>(checks: &'a [(String, String, String)], key: &str) -> (&'a str, &'a str) {
    let c = checks
        .iter()
        .find(|c| c.0 == key)
        .unwrap_or_else(|| panic!("no {key}: {checks:?}"));
    (&c.1, &c.2)
}

/// A 6 GiB /boot (FAT32, with aliyun_custom_image/) + root image of `root`; its path.
fn boot_and_root(dir: &Path, name: &str, root: &Path) -> PathBuf {
    let (img, offsets) = build(
        dir,
        name,
        "gpt",
        &[Part::new(40, FAT32, None), Part::new(48, EXT4, Some(root))],
    );
    let at = format!("{}@@{}", img.display(), offsets[0]);
    run(Command::new("mmd").args(["-i", &at, "::/aliyun_custom_image"]));
    run(Command::new("truncate").args(["-s", "6G"]).arg(&img));
    img
}

#[test]
fn the_root_partition_is_found_and_read() {
    let Some(dir) = setup("the_root_partition_is_found_and_read") else {
        return;
    };

    // Nothing baked in, no agent.
    let bare = tree(dir.path(), "bare", "*");
    let (code, checks) = check(&boot_and_root(dir.path(), "bare", &bare));
    assert_eq!(code, 1, "{checks:?}");
    assert_eq!(get(&checks, "root").0, "pass");
    assert!(
        get(&checks, "root").1.contains("partition 2")
            && get(&checks, "root").1.contains("Debian GNU/Linux 12"),
        "{checks:?}"
    );
    let (r, why) = get(&checks, "agent");
    assert_eq!(r, "fail");
    assert!(why.contains("no os.conf agent"), "{why}");
    assert_eq!(get(&checks, "ssh-host-keys").0, "pass");
    assert_eq!(get(&checks, "root-authorized-keys").0, "pass");
    assert_eq!(
        get(&checks, "root-password"),
        ("pass", "root's password in etc/shadow is locked (*)")
    );
    let failing: Vec<&str> = checks
        .iter()
        .filter(|c| c.1 == "fail")
        .map(|c| c.0.as_str())
        .collect();
    assert_eq!(failing, ["agent"]);

    // Keys and a password baked in: each named.
    let baked = tree(dir.path(), "baked", "$6$salt$hashhashhash");
    for k in ["ssh_host_ed25519_key", "ssh_host_rsa_key", "ssh_host_rsa_key.pub"] {
        fs::write(baked.join("etc/ssh").join(k), "KEY\n").unwrap();
    }
    fs::write(
        baked.join("root/.ssh/authorized_keys"),
        "# admins\nssh-ed25519 AAAA a\nssh-rsa AAAA b\n",
    )
    .unwrap();
    let (code, checks) = check(&boot_and_root(dir.path(), "baked", &baked));
    assert_eq!(code, 1);
    let (r, why) = get(&checks, "ssh-host-keys");
    assert_eq!(r, "fail");
    assert!(
        why.contains("etc/ssh/ssh_host_ed25519_key, etc/ssh/ssh_host_rsa_key;")
            || why.contains("etc/ssh/ssh_host_rsa_key, etc/ssh/ssh_host_ed25519_key;"),
        "{why}"
    );
    assert!(!why.contains(".pub"), "{why}");
    assert_eq!(
        get(&checks, "root-authorized-keys"),
        (
            "fail",
            "root's SSH keys are baked in, so every instance lets their holders in: /root/.ssh/authorized_keys (2 keys)"
        )
    );
    let (r, why) = get(&checks, "root-password");
    assert_eq!(r, "fail");
    assert!(
        why.contains("usable password baked in (SHA-512-crypt ($6$) in etc/shadow)"),
        "{why}"
    );

    // An empty password field; comments only in authorized_keys.
    let empty = tree(dir.path(), "empty", "");
    fs::write(empty.join("root/.ssh/authorized_keys"), "# none yet\n\n").unwrap();
    let (_, checks) = check(&boot_and_root(dir.path(), "empty", &empty));
    assert!(get(&checks, "root-password").1.contains("is empty"), "{checks:?}");
    assert_eq!(get(&checks, "root-password").0, "fail");
    assert_eq!(get(&checks, "root-authorized-keys").0, "pass");
}

#[test]
fn the_agent_osconf_or_a_vendor_script() {
    let Some(dir) = setup("the_agent_osconf_or_a_vendor_script") else {
        return;
    };
    // The vendor's sample: an init.d script reading /boot/aliyun_custom_image/os.conf.
    let vendor = tree(dir.path(), "vendor", "!");
    fs::create_dir_all(vendor.join("etc/init.d")).unwrap();
    fs::create_dir_all(vendor.join("etc/rc3.d")).unwrap();
    fs::write(
        vendor.join("etc/init.d/os-conf"),
        "#! /bin/bash\nos_conf_dir=/boot/aliyun_custom_image\nos_conf_file=${os_conf_dir}/os.conf\n",
    )
    .unwrap();
    fs::write(vendor.join("etc/init.d/other"), "#!/bin/sh\n").unwrap();
    let (_, checks) = check(&boot_and_root(dir.path(), "vendor-unlinked", &vendor));
    let (r, why) = get(&checks, "agent");
    assert_eq!(r, "warn", "{why}");
    assert!(
        why.contains("etc/init.d/os-conf reads aliyun_custom_image/os.conf, but no runlevel link"),
        "{why}"
    );
    symlink("../init.d/os-conf", vendor.join("etc/rc3.d/S99os-conf")).unwrap();
    let (code, checks) = check(&boot_and_root(dir.path(), "vendor", &vendor));
    assert_eq!(code, 0, "{checks:?}");
    assert_eq!(
        get(&checks, "agent"),
        (
            "pass",
            "a vendor-style script, not osconf: etc/init.d/os-conf reads aliyun_custom_image/os.conf; started by etc/rc3.d/S99os-conf"
        )
    );

    // osconf installed into the tree by osconf install, for systemd.
    let with = tree(dir.path(), "osconf", "!");
    let boot = dir.path().join("boot-staging");
    fs::create_dir(&boot).unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["install", "--init", "systemd", "--root"])
        .arg(&with)
        .arg("--boot-dir")
        .arg(&boot));
    let (code, checks) = check(&boot_and_root(dir.path(), "osconf", &with));
    assert_eq!(code, 0, "{checks:?}");
    let (r, why) = get(&checks, "agent");
    assert_eq!(r, "pass");
    assert!(why.starts_with("osconf, installed and enabled for systemd: /etc/systemd/system/osconf.service, /etc/systemd/system/sysinit.target.wants/osconf.service"), "{why}");
    // Its enabling link gone: found out.
    fs::remove_file(with.join("etc/systemd/system/sysinit.target.wants/osconf.service")).unwrap();
    let (code, checks) = check(&boot_and_root(dir.path(), "osconf-unlinked", &with));
    assert_eq!(code, 1);
    let (r, why) = get(&checks, "agent");
    assert_eq!(r, "fail");
    assert!(
        why.contains("sysinit.target.wants/osconf.service (in var/lib/osconf/installed) is missing"),
        "{why}"
    );
}

#[test]
fn one_partition_images_and_roots_the_reader_cannot_read() {
    let Some(dir) = setup("one_partition_images_and_roots_the_reader_cannot_read") else {
        return;
    };
    let root = tree(dir.path(), "one", "*");
    fs::create_dir(root.join("aliyun_custom_image")).unwrap();
    let (img, _) = build(dir.path(), "one", "dos", &[Part::new(48, EXT4, Some(&root))]);
    let (_, checks) = check(&img);
    assert!(
        get(&checks, "root").1.starts_with("partition 1 (ext4"),
        "{checks:?}"
    );
    assert_eq!(get(&checks, "custom-dir").0, "pass");

    // xfs and LVM are recognised by their magic, and named.
    let magic = |at: u64, bytes: &str| {
        format!("printf '{bytes}' | dd of=\"$0\" bs=1 seek={at} conv=notrunc status=none")
    };
    for (name, script, says) in [
        ("xfs", magic(0, "XFSB"), "holds xfs, which osconf cannot read"),
        (
            "lvm",
            magic(0x218, "LVM2 001"),
            "holds LVM2_member (LVM), which osconf cannot read",
        ),
    ] {
        let mkfs: &[&str] = &["sh", "-c", &script];
        let (img, _) = build(
            dir.path(),
            name,
            "gpt",
            &[Part::new(40, FAT32, None), Part::new(8, mkfs, None)],
        );
        let (code, checks) = check(&img);
        let (r, why) = get(&checks, "root");
        assert_eq!(r, "warn", "{name}: {why}");
        assert!(why.contains(says) && why.contains("partition 2"), "{name}: {why}");
        assert!(checks.iter().all(|c| c.0 != "agent"), "{name}");
        assert_eq!(code, 1, "{name}: the small size and the missing custom dir fail");
    }
}
