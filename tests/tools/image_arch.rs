//! Images whose root is built for another CPU (the root's `/sbin/init` an aarch64 ELF), made by the
//! real tools: `image prepare` puts in only an agent built for the image's architecture (`--agent`,
//! else exit 3 naming how to get one, the image untouched), and `image test` boots such an image
//! only as arm64 boots — UEFI, no KVM on this x86_64 host — refusing the rest before any boot.

use std::fs;
use std::path::Path;

use crate::common::images::{Part, build};
use crate::common::real::{have_tools, run};
use crate::image_write::{init_tree, osconf};

/// The first 64 bytes of a 64-bit little-endian ELF executable for `machine` (62 x86_64, 183
/// aarch64), then `body`.
pub(crate) fn elf(machine: u16, body: &[u8]) -> Vec<u8> {
    let mut h = b"\x7fELF\x02\x01\x01\x00".to_vec();
    h.resize(16, 0);
    h.extend(2u16.to_le_bytes());
    h.extend(machine.to_le_bytes());
    h.resize(64, 0);
    h.extend(body);
    h
}

/// A GPT image: a FAT32 partition 1, a sysvinit root on ext4 whose `/sbin/init` is for aarch64.
fn arm64_image(dir: &Path) -> std::path::PathBuf {
    let tree = init_tree(dir, "arm64-root", "sysv");
    fs::write(tree.join("sbin/init"), elf(183, b"an arm64 init")).unwrap();
    let fat32: &[&str] = &["mkfs.vfat", "-F", "32"];
    let ext4: &[&str] = &["mkfs.ext4", "-q", "-F", "-O", "^64bit"];
    let parts = [Part::new(40, fat32, None), Part::new(64, ext4, Some(&tree))];
    build(dir, "arm64", "gpt", &parts).0
}

#[test]
fn prepare_puts_in_only_an_agent_built_for_the_images_architecture() {
    let test = "prepare_puts_in_only_an_agent_built_for_the_images_architecture";
    let tools = ["sfdisk", "mkfs.vfat", "mkfs.ext4", "mcopy", "debugfs", "truncate"];
    if !have_tools(test, &tools) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = arm64_image(dir.path());
    let before = fs::read(&img).unwrap();
    let prepare = |agent: Option<&Path>| {
        let mut args: Vec<&std::ffi::OsStr> = vec!["image".as_ref(), "prepare".as_ref(), img.as_os_str()];
        if let Some(a) = agent {
            args.extend(["--agent".as_ref(), a.as_os_str()]);
        }
        osconf(&args)
    };

    // The agent beside the toolkit is x86_64: exit 3, saying how to get an aarch64 one.
    let out = prepare(None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    for says in [
        "the image is aarch64 (/sbin/init is)",
        "is built for x86_64",
        "--agent FILE",
        "scripts/cargo-aarch64",
        "nothing was changed",
    ] {
        assert!(err.contains(says), "{says}: {err}");
    }
    assert!(fs::read(&img).unwrap() == before, "the image changed");

    // --agent for another machine, or not an ELF file at all: exit 2, unchanged.
    let x86 = dir.path().join("osconf-x86_64");
    fs::write(&x86, elf(62, b"")).unwrap();
    let script = dir.path().join("osconf.sh");
    fs::write(&script, "#!/bin/sh\n").unwrap();
    for (agent, says) in [
        (
            &x86,
            "--agent is built for x86_64, but the image is aarch64 (/sbin/init is)",
        ),
        (&script, "--agent: "),
    ] {
        let out = prepare(Some(agent));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(says) && err.contains("nothing was changed"), "{err}");
        assert!(fs::read(&img).unwrap() == before, "the image changed");
    }

    // An aarch64 agent goes in, byte for byte.
    let arm = dir.path().join("osconf-aarch64");
    let agent = elf(183, b"the aarch64 agent");
    fs::write(&arm, &agent).unwrap();
    let out = prepare(Some(&arm));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        said.contains("the image is aarch64 (/sbin/init is); agent ") && said.contains("is built for it"),
        "{said}"
    );
    let offset = 41 << 20;
    let root_at = format!("{}?offset={offset}", img.display());
    let got =
        run(std::process::Command::new("debugfs").args(["-R", "cat /usr/sbin/osconf", &root_at])).stdout;
    assert!(got == agent, "/usr/sbin/osconf is not the --agent file");
}

#[test]
fn image_test_refuses_bios_and_kvm_for_an_arm64_image_before_booting() {
    let test = "image_test_refuses_bios_and_kvm_for_an_arm64_image_before_booting";
    let tools = [
        "sfdisk",
        "mkfs.vfat",
        "mkfs.ext4",
        "mcopy",
        "truncate",
        "qemu-system-aarch64",
    ];
    if !have_tools(test, &tools) || std::env::consts::ARCH != "x86_64" {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = arm64_image(dir.path());
    let before = fs::read(&img).unwrap();
    for (flags, says) in [
        (
            ["--firmware", "bios"],
            "--firmware bios: an aarch64 image boots under UEFI only",
        ),
        (
            ["--accel", "kvm"],
            "--accel kvm: the image is aarch64, which KVM does not run on this x86_64 machine",
        ),
    ] {
        let work = dir.path().join("work");
        let mut args: Vec<&std::ffi::OsStr> = vec!["image".as_ref(), "test".as_ref(), img.as_os_str()];
        args.extend(flags.iter().map(std::ffi::OsStr::new));
        args.extend(["--work".as_ref(), work.as_os_str()]);
        let out = osconf(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(says), "{flags:?}: {err}");
        assert!(!work.exists(), "{flags:?}: nothing is made before the refusal");
    }
    assert!(fs::read(&img).unwrap() == before, "the image changed");
}
