//! Detection over every example root: each picks the stack its distribution really enables, and a
//! root added without an entry here fails the test.

use std::path::Path;
use std::process::Command;

const EXPECTED: &[(&str, &str)] = &[
    ("alpine3", "busybox"),
    ("arch-dhcpcd", "dhcpcd"),
    ("buildroot-openrc", "openrc-network"),
    ("centos7", "sysconfig"),
    ("debian11", "ifupdown"),
    ("debian12-networkd", "networkd"),
    ("freebsd14", "freebsd"),
    ("gentoo", "netifrc"),
    ("opensuse15", "wicked"),
    ("openwrt23", "openwrt"),
    ("rocky8", "sysconfig"),
    ("rocky9", "networkmanager"),
    ("slackware15", "slackware"),
    ("ubuntu22", "netplan"),
    ("void-dhcpcd", "dhcpcd"),
    ("yocto-connman", "connman"),
];

#[test]
fn every_example_root_detects_its_stack() {
    let roots = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rootfs");
    let mut found: Vec<String> = std::fs::read_dir(&roots)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    found.sort();
    let listed: Vec<&str> = EXPECTED.iter().map(|(r, _)| *r).collect();
    assert_eq!(
        found, listed,
        "examples/rootfs and this table must list the same roots"
    );

    let mut wrong = Vec::new();
    for (root, stack) in EXPECTED {
        let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
            .args(["detect", "--root"])
            .arg(roots.join(root))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let chosen = stdout
            .lines()
            .find_map(|l| l.strip_prefix("stack: "))
            .unwrap_or("(none)");
        if !out.status.success() || chosen.split(' ').next() != Some(stack) {
            wrong.push(format!(
                "{root}: want {stack}, got {chosen} {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn an_unknown_root_lists_what_was_probed() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_osconf"))
        .args(["detect", "--root"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for stack in [
        "openwrt",
        "sysconfig",
        "networkmanager",
        "netplan",
        "ifupdown",
        "freebsd",
    ] {
        assert!(stderr.contains(stack), "{stderr}");
    }
    assert!(stderr.contains("--stack"), "{stderr}");
}

/// `detect --json` says what the text says, as one JSON object (issue 13: the flag `Survey::json`
/// was written for).
#[test]
fn detect_json_is_the_text_as_one_object() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rootfs/debian12-networkd");
    let run = |json: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_osconf"));
        c.args(["detect", "--root"]).arg(&root);
        if json {
            c.arg("--json");
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let (text, json) = (run(false), run(true));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["root"], root.display().to_string());
    assert_eq!(v["system"]["stack"]["name"], "networkd");
    assert!(text.contains("stack: networkd ("), "{text}");
    let why = v["system"]["why"].as_str().unwrap();
    assert!(text.contains(&format!("osconf: {why}\n")), "{text}\n{json}");
    assert!(text.contains(&format!("resolv.conf: {}\n", v["resolv_conf"].as_str().unwrap())));
    assert_eq!(v["os_conf"], serde_json::Value::Null);
}
