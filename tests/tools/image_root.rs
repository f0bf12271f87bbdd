//! `osconf image check`'s root-partition requirements with the real binary, on images whose root
//! filesystem `mkfs.ext4 -d` made from a tree: the agent (osconf installed by `osconf install
//! --root`, a vendor-style init script with and without its runlevel link, nothing), SSH host keys,
//! root's authorized_keys and password (locked, empty, a usable hash), one-partition and
//! /boot+root layouts, a root in partition 3 beside a data partition (found by its os-release, by
//! check and prepare alike), the distribution, init and stack as `osconf detect` says them, and
//! roots the reader cannot read (LUKS, an LVM signature without its label), which must be warnings.

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
pub(crate) fn check(img: &Path) -> (i32, Vec<(String, String, String)>) {
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["image", "check", "--json"])
        .arg(img)
        .output()
        .unwrap();
    let checks = checks_of(&out.stdout);
    (out.status.code().unwrap(), checks)
}

pub(crate) fn get<'a>(checks: &'a [(String, String, String)], key: &str) -> (&'a str, &'a str) {
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
        &[Part::new(40, FAT32, None), Part::new(64, EXT4, Some(root))],
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
        ("pass", "root's password in /etc/shadow is locked (*)")
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
        why.contains("/etc/ssh/ssh_host_ed25519_key, /etc/ssh/ssh_host_rsa_key;")
            || why.contains("/etc/ssh/ssh_host_rsa_key, /etc/ssh/ssh_host_ed25519_key;"),
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
        why.contains("usable password baked in (SHA-512-crypt ($6$) in /etc/shadow)"),
        "{why}"
    );

    // An empty password field; comments only in authorized_keys.
    let empty = tree(dir.path(), "empty", "");
    fs::write(empty.join("root/.ssh/authorized_keys"), "# none yet\n\n").unwrap();
    let (_, checks) = check(&boot_and_root(dir.path(), "empty", &empty));
    assert!(get(&checks, "root-password").1.contains("is empty"), "{checks:?}");
    assert_eq!(get(&checks, "root-password").0, "fail");
    assert_eq!(get(&checks, "root-authorized-keys").0, "pass");

    // A root older than os-release (CentOS 6, busybox builds) is found by its password file.
    let old = tree(dir.path(), "old", "!");
    fs::remove_file(old.join("etc/os-release")).unwrap();
    let (_, checks) = check(&boot_and_root(dir.path(), "old", &old));
    assert_eq!(get(&checks, "root").0, "pass", "{checks:?}");
    assert!(get(&checks, "root").1.contains("partition 2"), "{checks:?}");
    assert_eq!(get(&checks, "root-password").0, "pass", "{checks:?}");
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
        why.contains("/etc/init.d/os-conf reads aliyun_custom_image/os.conf, but no runlevel link"),
        "{why}"
    );
    symlink("../init.d/os-conf", vendor.join("etc/rc3.d/S99os-conf")).unwrap();
    let (code, checks) = check(&boot_and_root(dir.path(), "vendor", &vendor));
    assert_eq!(code, 0, "{checks:?}");
    assert_eq!(
        get(&checks, "agent"),
        (
            "pass",
            "a vendor-style script, not osconf: /etc/init.d/os-conf reads aliyun_custom_image/os.conf; started by /etc/rc3.d/S99os-conf"
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
        why.contains("sysinit.target.wants/osconf.service (in /var/lib/osconf/installed) is missing"),
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
    let (img, _) = build(dir.path(), "one", "dos", &[Part::new(64, EXT4, Some(&root))]);
    let (_, checks) = check(&img);
    assert!(
        get(&checks, "root").1.starts_with("partition 1 (ext4"),
        "{checks:?}"
    );
    assert_eq!(get(&checks, "custom-dir").0, "pass");

    // LUKS and LVM without a label are recognised by their magic, and named.
    let magic = |at: u64, bytes: &str| {
        format!("printf '{bytes}' | dd of=\"$0\" bs=1 seek={at} conv=notrunc status=none")
    };
    for (name, script, says) in [
        (
            "luks",
            magic(0, "LUKS\\272\\276"),
            "encrypted root: partition 2 is LUKS-encrypted: cannot check the agent",
        ),
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

/// The value of the line `key: …` that `osconf detect` prints.
fn line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no {key}: in {text}"))
}

#[test]
fn check_detects_what_osconf_detect_does_on_a_root_that_is_not_partition_2() {
    let Some(dir) = setup("check_detects_what_osconf_detect_does_on_a_root_that_is_not_partition_2") else {
        return;
    };
    // A Debian with sysvinit and ifupdown; os-release single-quoted with an ellipsis, as
    // os-release(5) allows.
    let root = tree(dir.path(), "sysv", "*");
    fs::write(
        root.join("etc/os-release"),
        "PRETTY_NAME='Debian GNU/Linux 12 (bookworm) …'\nID=debian\nVERSION_ID=\"12\"\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/inittab"),
        "id:2:initdefault:\nsi::sysinit:/etc/init.d/rcS\n",
    )
    .unwrap();
    for d in ["etc/init.d", "etc/rcS.d", "etc/rc2.d", "etc/network"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("etc/init.d/networking"), "#!/bin/sh\n").unwrap();
    symlink("../init.d/networking", root.join("etc/rcS.d/S01networking")).unwrap();
    fs::write(
        root.join("etc/network/interfaces"),
        "auto lo\niface lo inet loopback\n",
    )
    .unwrap();
    // Partition 2 is data that holds an etc/shadow of its own but no os-release: not the root.
    let data = dir.path().join("data");
    fs::create_dir_all(data.join("etc")).unwrap();
    fs::write(data.join("etc/shadow"), "root:$6$x$y:19000::::::\n").unwrap();
    let (img, offsets) = build(
        dir.path(),
        "three",
        "gpt",
        &[
            Part::new(40, FAT32, None),
            Part::new(16, EXT4, Some(&data)),
            Part::new(64, EXT4, Some(&root)),
        ],
    );
    let at = format!("{}@@{}", img.display(), offsets[0]);
    run(Command::new("mmd").args(["-i", &at, "::/aliyun_custom_image"]));
    run(Command::new("truncate").args(["-s", "6G"]).arg(&img));

    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["image", "check", "--json"])
        .arg(&img)
        .output()
        .unwrap();
    let checks = checks_of(&out.stdout);
    let (r, why) = get(&checks, "root");
    assert_eq!(r, "pass");
    assert!(
        why.starts_with("partition 3 (ext4") && why.ends_with("): Debian GNU/Linux 12 (bookworm) …"),
        "{why}"
    );
    assert_eq!(
        get(&checks, "root-password").0,
        "pass",
        "partition 2's shadow is not the root's: {checks:?}"
    );

    // The same account osconf detect gives of the tree the root partition was made from.
    let detect = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["detect", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(detect.status.success(), "{detect:?}");
    let detect = String::from_utf8_lossy(&detect.stdout);
    assert_eq!(
        line(&detect, "os"),
        "Debian GNU/Linux 12 (bookworm) … (ID=debian VERSION_ID=12)"
    );
    assert_eq!(get(&checks, "distribution"), ("pass", line(&detect, "os")));
    assert_eq!(get(&checks, "init"), ("pass", line(&detect, "init")));
    assert!(line(&detect, "init").starts_with("sysv ("), "{detect}");
    assert_eq!(get(&checks, "stack"), ("pass", line(&detect, "stack")));
    assert_eq!(
        line(&detect, "stack"),
        "ifupdown (/etc/rcS.d/S01networking starts networking and /etc/network/interfaces exists)"
    );
    assert_eq!(
        get(&checks, "configurable"),
        ("pass", "yes: started by sysv, configures ifupdown")
    );
    assert_eq!(
        line(&detect, "osconf"),
        "yes: started by sysv, configures ifupdown"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let system = &json["system"];
    assert_eq!(
        system["distribution"]["pretty_name"],
        "Debian GNU/Linux 12 (bookworm) …"
    );
    assert_eq!(system["distribution"]["version_id"], "12");
    assert_eq!(system["init"]["name"], "sysv");
    assert_eq!(system["stack"]["name"], "ifupdown");
    assert_eq!(system["configurable"], true);

    // prepare installs into that same partition 3, and leaves partition 2 as it was.
    let p2 = |img: &Path| fs::read(img).unwrap()[offsets[1] as usize..offsets[2] as usize].to_vec();
    let before = p2(&img);
    let prepared = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["image", "prepare"])
        .arg(&img)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&prepared.stdout);
    assert!(
        prepared.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&prepared.stderr)
    );
    assert!(said.contains("init sysv detected in partition 3"), "{said}");
    assert!(p2(&img) == before, "partition 2 changed");
    let (code, checks) = check(&img);
    assert_eq!(code, 0, "{checks:?}");
    assert!(
        get(&checks, "agent")
            .1
            .starts_with("osconf, installed and enabled for sysv"),
        "{checks:?}"
    );

    // A root whose stack osconf does not know: a warning, and osconf would not configure it.
    let bare = tree(dir.path(), "bare-stack", "*");
    let (_, checks) = check(&boot_and_root(dir.path(), "bare-stack", &bare));
    let (r, why) = get(&checks, "stack");
    assert_eq!(r, "warn");
    assert!(
        why.starts_with("unknown: no known network stack found under "),
        "{why}"
    );
    assert_eq!(get(&checks, "configurable").0, "warn");
}

/// openSUSE's and RHEL's BIOS layouts on GPT put a BIOS boot partition first (GRUB's core image,
/// no filesystem): ECS cannot write os.conf there, a failure saying what to do — and every root
/// check still runs on the root found after it (they stopped at partition 1 before). prepare and
/// inject refuse it with the same words.
#[test]
fn a_bios_boot_partition_1_fails_and_the_root_behind_it_is_still_checked() {
    let test = "a_bios_boot_partition_1_fails_and_the_root_behind_it_is_still_checked";
    let Some(dir) = setup(test) else {
        return;
    };
    if !have_tools(test, &["sgdisk"]) {
        return;
    }
    let root = tree(dir.path(), "bios-boot", "$6$salt$hashhashhash");
    fs::write(root.join("etc/ssh/ssh_host_ed25519_key"), "KEY\n").unwrap();
    let empty: &[&str] = &["true"];
    let (img, _) = build(
        dir.path(),
        "bios-boot",
        "gpt",
        &[
            Part::new(2, empty, None),
            Part::new(40, FAT32, None),
            Part::new(64, EXT4, Some(&root)),
        ],
    );
    // sgdisk's code EF02, as openSUSE's and RHEL's installers type it.
    run(Command::new("sgdisk").args(["-t", "1:EF02"]).arg(&img));
    let (code, checks) = check(&img);
    assert_eq!(code, 1, "{checks:?}");
    let (r, why) = get(&checks, "filesystem");
    assert_eq!(r, "fail", "{why}");
    assert!(
        why.starts_with(
            "partition 1 is a BIOS boot partition (GPT type 21686148-6449-6e6f-744e-656564454649, \
             2 MiB: GRUB's core image), which holds no ext2/3/4, FAT or UFS filesystem: ECS writes \
             os.conf on partition 1 and cannot write it there"
        ) && why.contains("sgdisk --transpose=1:N"),
        "{why}"
    );
    assert!(!checks.iter().any(|c| c.0 == "custom-dir"), "{checks:?}");
    let (r, why) = get(&checks, "root");
    assert_eq!(r, "pass", "{why}");
    assert!(
        why.contains("partition 3") && why.contains("Debian GNU/Linux 12"),
        "{why}"
    );
    assert_eq!(get(&checks, "ssh-host-keys").0, "fail", "{checks:?}");
    assert_eq!(get(&checks, "root-password").0, "fail", "{checks:?}");
    assert_eq!(get(&checks, "agent").0, "fail", "{checks:?}");
    assert_eq!(get(&checks, "distribution").0, "pass", "{checks:?}");
    // prepare and inject refuse it with the same account (exit 2), the image untouched.
    let before = fs::read(&img).unwrap();
    let conf = dir.path().join("os.conf");
    fs::write(&conf, crate::common::example_conf("vpc")).unwrap();
    for args in [vec!["prepare"], vec!["inject", conf.to_str().unwrap()]] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_osconf-image"));
        cmd.arg(args[0]).arg(&img).args(&args[1..]);
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("partition 1 is a BIOS boot partition")
                && stderr.contains("sgdisk --transpose=1:N")
                && stderr.contains("nothing was changed"),
            "{args:?}: {stderr}"
        );
        assert!(fs::read(&img).unwrap() == before, "{args:?} changed the image");
    }

    // Any other partition 1 without a filesystem (sfdisk's Linux type, zeros): said by its place.
    run(Command::new("sfdisk")
        .args(["-q", "--part-type"])
        .arg(&img)
        .args(["1", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"]));
    let (_, checks) = check(&img);
    let (r, why) = get(&checks, "filesystem");
    assert_eq!(r, "fail", "{why}");
    assert!(
        why.starts_with(
            "partition 1 (at byte 1048576, 2 MiB) holds no ext2/3/4, FAT or UFS filesystem: ECS \
             writes os.conf on partition 1"
        ),
        "{why}"
    );
    assert_eq!(get(&checks, "root").0, "pass", "{checks:?}");
}
