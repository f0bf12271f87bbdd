//! An os.conf without NICs leaves the network configuration alone: on every example root, applying
//! the classic sample and then an os.conf with only a host name and a name server (with the real
//! binary) changes nothing but the files that hold the host name and DNS, and removes nothing.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{copy_tree, entries, example_conf, osconf_apply, repo};

const NO_NIC: &str = "hostname=web1\ndns_nameserver=\"1.1.1.1\"\n";

/// The host name and name servers of examples/classic/os.conf, which the second apply replaces.
const CLASSIC_HOST_AND_DNS: [&str; 3] = ["iZ23r29djmjZ", "7.7.7.7", "8.8.8.8"];

/// What went wrong on one example root, if anything.
fn check(rootfs: &Path, scratch: &Path) -> Vec<String> {
    let name = rootfs.file_name().unwrap().to_string_lossy().into_owned();
    let root = scratch.join(&name);
    copy_tree(rootfs, &root).unwrap();
    // ConnMan holds one NIC with its default route and no other route: the VPC sample there.
    let sample = if name.contains("connman") {
        "vpc"
    } else {
        "classic"
    };
    osconf_apply(&root, &example_conf(sample));
    let before = entries(&root);
    osconf_apply(&root, NO_NIC);
    let after = entries(&root);

    let ours = |path: &str| path.starts_with("var/lib/osconf/");
    let mut problems = Vec::new();
    for path in before.keys().filter(|p| !ours(p) && !after.contains_key(*p)) {
        problems.push(format!("{name}: {path} was removed"));
    }
    let changed: Vec<(&String, &String)> = after
        .iter()
        .filter(|(path, body)| !ours(path) && !path.ends_with('/') && before.get(*path) != Some(body))
        .collect();
    for (path, body) in &changed {
        if !body.contains("web1") && !body.contains("1.1.1.1") {
            problems.push(format!(
                "{name}: {path} changed but holds neither the host name nor the name server:{body}"
            ));
        }
        // A line that went was about the old host name or name servers, nothing else.
        let old = before.get(*path).map(String::as_str).unwrap_or_default();
        for line in old.lines().filter(|l| !body.lines().any(|n| n == *l)) {
            if !CLASSIC_HOST_AND_DNS.iter().any(|v| line.contains(v)) {
                problems.push(format!("{name}: {path} lost the line `{line}`"));
            }
        }
    }
    for (what, needle) in [("host name", "web1"), ("name server", "1.1.1.1")] {
        if !changed.iter().any(|(_, body)| body.contains(needle)) {
            problems.push(format!("{name}: the {what} {needle} was written nowhere"));
        }
    }
    problems
}

#[test]
fn no_nic_os_conf_leaves_network_configuration_alone() {
    let scratch = tempfile::tempdir().unwrap();
    let mut roots: Vec<PathBuf> = fs::read_dir(repo().join("examples/rootfs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    roots.sort();
    assert!(roots.len() >= 11, "example roots missing: {roots:?}");
    let problems: Vec<String> = roots.iter().flat_map(|r| check(r, scratch.path())).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
