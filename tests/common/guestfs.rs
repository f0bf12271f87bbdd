//! `osconf image prepare` on roots libguestfs writes (XFS, Btrfs, LVM), and what must hold after:
//! `image check` says the agent is installed and enabled and `aliyun_custom_image/` is on
//! partition 1, the agent's bytes and mode read back by osconf's reader, a second run has nothing
//! to do. Shared by tests/tools/image_guestfs.rs and tests/root/image_lvm.rs. And a root with the
//! host's SELinux reference policy, whose labels after prepare are read back by guestfish and
//! held to what libselinux's `matchpathcon` says.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use super::images::checks_of;
use super::real::{cannot_run, have_tools, run};

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

/// Where Debian's reference policy (`selinux-policy-default`, installed: its postinst builds the
/// file contexts) keeps its file contexts.
const POLICY: &str = "/etc/selinux/default/contexts/files";

/// Makes `root` a root with SELinux enforcing under the host's reference policy (its
/// `file_contexts` and substitutions copied in, `SELINUXTYPE=default`); false (SKIPPED, or a
/// failure under CI=true) without the policy or `matchpathcon` to check the labels against.
pub fn selinux_root(test: &str, root: &Path) -> bool {
    if !Path::new(POLICY).join("file_contexts").is_file() {
        cannot_run(
            test,
            &format!(
                "no {POLICY}/file_contexts: selinux-policy-default is not installed (.ci/packages.txt lists it)"
            ),
        );
        return false;
    }
    if !have_tools(test, &["matchpathcon"]) {
        return false;
    }
    let dst = root.join("etc/selinux/default/contexts/files");
    fs::create_dir_all(&dst).unwrap();
    for name in [
        "file_contexts",
        "file_contexts.local",
        "file_contexts.subs",
        "file_contexts.subs_dist",
    ] {
        if Path::new(POLICY).join(name).is_file() {
            fs::copy(Path::new(POLICY).join(name), dst.join(name)).unwrap();
        }
    }
    fs::write(
        root.join("etc/selinux/config"),
        "# as RHEL ships it\nSELINUX=enforcing\nSELINUXTYPE=default\n",
    )
    .unwrap();
    true
}

/// Holds the `security.selinux` label of every path `said` (prepare's report) wrote, and of the
/// directories `dirs` it made, in the root `device` of the raw image `img` — read by guestfish,
/// read-only — to the label the host's policy gives it (`matchpathcon`); returns (path, label).
pub fn labeled_as_policy_says(img: &Path, device: &str, said: &str, dirs: &[&str]) -> Vec<(String, String)> {
    let mut paths: Vec<&str> = said
        .lines()
        .filter_map(|l| l.strip_prefix("wrote ")?.split(" in ").next())
        .collect();
    paths.extend(dirs);
    assert!(!paths.is_empty(), "{said}");
    let mut script = format!(
        "add-drive {} readonly:true format:raw\nrun\nmount-ro {device} /\n",
        img.display()
    );
    for p in &paths {
        script += &format!("echo \"== {p}\"\nis-symlink {p}\nis-dir {p}\nlgetxattrs {p}\n");
    }
    let file = img.with_extension("labels.fish");
    fs::write(&file, script).unwrap();
    let fish = |settings: Option<&str>| {
        let mut cmd = Command::new("guestfish");
        cmd.arg("--file").arg(&file).env("LIBGUESTFS_BACKEND", "direct");
        if let Some(s) = settings {
            cmd.env("LIBGUESTFS_BACKEND_SETTINGS", s);
        }
        cmd.output().unwrap()
    };
    let mut out = fish(None);
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("guestfs_launch failed") {
        out = fish(Some("force_tcg"));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found = Vec::new();
    for chunk in text.split("== ").skip(1) {
        let mut lines = chunk.lines();
        let path = lines.next().unwrap().to_owned();
        let (link, dir) = (lines.next() == Some("true"), lines.next() == Some("true"));
        let rest: Vec<&str> = lines.collect();
        let label = rest
            .iter()
            .position(|l| l.trim() == "attrname: security.selinux")
            .and_then(|i| rest.get(i + 1)?.trim().strip_prefix("attrval: "))
            .map(|v| v.trim_end_matches("\\x00").to_owned())
            .unwrap_or_else(|| panic!("{path}: no security.selinux label: {chunk}"));
        let kind = match (link, dir) {
            (true, _) => "lnk_file",
            (_, true) => "dir",
            _ => "file",
        };
        let policy = run(Command::new("matchpathcon")
            .args(["-f", &format!("{POLICY}/file_contexts"), "-m", kind])
            .arg(&path));
        let policy = String::from_utf8_lossy(&policy.stdout);
        let want = policy.split_whitespace().nth(1).unwrap_or("");
        assert_eq!(
            label, want,
            "{path} ({kind}): labeled {label}, the policy says {policy}"
        );
        found.push((path, label));
    }
    assert_eq!(found.len(), paths.len(), "{text}");
    found
}
