//! `osconf image prepare`'s fixes, with the real binary on ext images made by the real tools
//! (sfdisk, mkfs.ext4 -d; owners and an SELinux label set by debugfs, as a root built elsewhere
//! has them): `--remove-host-keys` and `--lock-root-password` change exactly what they say and
//! only when asked, `image check` then passes those items; what makes new host keys at first boot
//! (RHEL's sshd-keygen@, cloud-init, nothing on a plain Debian); a hostile /etc/shadow refused;
//! a write cut half-way; an ext4 partition 1 with the 64bit feature reported with commands that,
//! run, clear it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::images::{Part, build, checks_of};
use crate::common::real::{have_tools, run};
use crate::image_arch::elf;
use crate::image_write::{init_tree, osconf};

const TOOLS: [&str; 6] = ["sfdisk", "mkfs.ext4", "debugfs", "e2fsck", "truncate", "cmp"];
const EXT4: &[&str] = &["mkfs.ext4", "-q", "-F", "-O", "^64bit"];
const SHADOW: &str =
    "daemon:*:19000:0:99999:7:::\nroot:$6$salt$hashhashhash:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n";
/// The host keys a RHEL 9 root has after sshd first ran, each key and its .pub.
const KEYS: [&str; 6] = [
    "ssh_host_ecdsa_key",
    "ssh_host_ecdsa_key.pub",
    "ssh_host_ed25519_key",
    "ssh_host_ed25519_key.pub",
    "ssh_host_rsa_key",
    "ssh_host_rsa_key.pub",
];
const LABEL: &str = "system_u:object_r:shadow_t:s0";

/// RHEL 9's units (openssh-server 8.7p1): sshd wants sshd-keygen.target, which wants the template.
const RHEL_UNITS: [(&str, &str); 3] = [
    (
        "sshd.service",
        "[Unit]\nDescription=OpenSSH server daemon\nAfter=network.target sshd-keygen.target\n\
         Wants=sshd-keygen.target\n\n[Service]\nType=notify\nEnvironmentFile=-/etc/sysconfig/sshd\n\
         ExecStart=/usr/sbin/sshd -D $OPTIONS\n\n[Install]\nWantedBy=multi-user.target\n",
    ),
    (
        "sshd-keygen.target",
        "[Unit]\nWants=sshd-keygen@rsa.service\nWants=sshd-keygen@ecdsa.service\n\
         Wants=sshd-keygen@ed25519.service\nPartOf=sshd.service\n",
    ),
    (
        "sshd-keygen@.service",
        "[Unit]\nDescription=OpenSSH %i Server Key Generation\n\
         ConditionFileNotEmpty=|!/etc/ssh/ssh_host_%i_key\n\n[Service]\nType=oneshot\n\
         EnvironmentFile=-/etc/sysconfig/sshd\nExecStart=/usr/libexec/openssh/sshd-keygen %i\n\n\
         [Install]\nWantedBy=sshd-keygen.target\n",
    ),
];

/// Debian 12's ssh.service (openssh-server 1:9.2p1-2+deb12u10): it checks the config, makes no key.
const DEBIAN_SSH: &str = "[Unit]\nDescription=OpenBSD Secure Shell server\n\
    After=network.target auditd.service\nConditionPathExists=!/etc/ssh/sshd_not_to_be_run\n\n\
    [Service]\nEnvironmentFile=-/etc/default/ssh\nExecStartPre=/usr/sbin/sshd -t\n\
    ExecStart=/usr/sbin/sshd -D $SSHD_OPTS\nExecReload=/usr/sbin/sshd -t\nType=notify\n\n\
    [Install]\nWantedBy=multi-user.target\nAlias=sshd.service\n";

/// A systemd root with host keys, sshd_config and a usable root hash; `units` go to
/// usr/lib/systemd/system, `links` are (link, target) inside it.
fn tree(dir: &Path, name: &str, units: &[(&str, &str)], links: &[(&str, &str)]) -> PathBuf {
    let root = init_tree(dir, name, "systemd");
    fs::create_dir_all(root.join("etc/ssh")).unwrap();
    for k in KEYS {
        fs::write(root.join("etc/ssh").join(k), format!("{k} of {name}\n")).unwrap();
    }
    fs::write(root.join("etc/ssh/sshd_config"), "PermitRootLogin no\n").unwrap();
    fs::write(root.join("etc/shadow"), SHADOW).unwrap();
    fs::create_dir_all(root.join("usr/lib/systemd/system")).unwrap();
    for (unit, text) in units {
        fs::write(root.join("usr/lib/systemd/system").join(unit), text).unwrap();
    }
    for (link, target) in links {
        let at = root.join(link);
        fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, at).unwrap();
    }
    root
}

/// A GPT image whose one partition is that root (ext4, 24 MiB), shadow given group 42 (Debian's
/// shadow) and mode 0640 and an SELinux label by debugfs, as no unprivileged mkfs can.
fn image(dir: &Path, name: &str, root: &Path) -> PathBuf {
    let (img, _) = build(dir, name, "gpt", &[Part::new(24, EXT4, Some(root))]);
    let label = dir.join("label");
    fs::write(&label, LABEL).unwrap();
    debugfs_w(
        &img,
        &format!(
            "sif /etc/shadow gid 42\nsif /etc/shadow mode 0100640\nea_set -f {} /etc/shadow security.selinux\n",
            label.display()
        ),
    );
    img
}

fn at(img: &Path) -> String {
    format!("{}?offset={}", img.display(), 1 << 20)
}

/// Runs debugfs's `script` writable on the image's partition.
fn debugfs_w(img: &Path, script: &str) {
    let cmds = img.with_extension("cmds");
    fs::write(&cmds, script).unwrap();
    run(Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&cmds)
        .arg(at(img)));
}

/// debugfs's `request` on the image's partition, read-only: its stdout.
fn debugfs(img: &Path, request: &str) -> String {
    String::from_utf8_lossy(&run(Command::new("debugfs").args(["-R", request, &at(img)])).stdout).into_owned()
}

/// A tiny x86_64 ELF as the agent: these roots' architecture is not read, so any is taken.
fn agent(dir: &Path) -> PathBuf {
    let p = dir.join("agent");
    fs::write(&p, elf(62, b"the agent")).unwrap();
    p
}

fn prepare(img: &Path, agent: &Path, flags: &[&str]) -> Output {
    let mut args = vec!["image".as_ref(), "prepare".as_ref(), img.as_os_str()];
    args.extend(["--agent".as_ref(), agent.as_os_str()]);
    args.extend(flags.iter().map(std::ffi::OsStr::new));
    osconf(&args)
}

fn said(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `image check --json`'s verdict on `key` (the image grown past 5 GiB first).
fn verdict(img: &Path, key: &str) -> (String, String) {
    run(Command::new("truncate").args(["-s", "6G"]).arg(img));
    let out = osconf(&[
        "image".as_ref(),
        "check".as_ref(),
        "--json".as_ref(),
        img.as_os_str(),
    ]);
    let checks = checks_of(&out.stdout);
    let c = checks
        .iter()
        .find(|c| c.0 == key)
        .unwrap_or_else(|| panic!("{key}: {checks:?}"));
    (c.1.clone(), c.2.clone())
}

fn same(a: &Path, b: &Path) -> bool {
    Command::new("cmp")
        .arg("-s")
        .arg(a)
        .arg(b)
        .status()
        .unwrap()
        .success()
}

fn copy(img: &Path, to: &Path) {
    run(Command::new("cp").arg("--sparse=always").arg(img).arg(to));
}

#[test]
fn prepare_removes_host_keys_and_locks_root_only_when_asked() {
    let test = "prepare_removes_host_keys_and_locks_root_only_when_asked";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path());
    let root = tree(
        dir.path(),
        "rhel",
        &RHEL_UNITS,
        &[(
            "etc/systemd/system/multi-user.target.wants/sshd.service",
            "/usr/lib/systemd/system/sshd.service",
        )],
    );
    let img = image(dir.path(), "rhel", &root);

    // Unasked: the agent goes in, the keys and the password stay, check still fails them.
    let out = said(&prepare(&img, &agent, &[]), "plain prepare");
    assert!(!out.contains("removed") && !out.contains("locked"), "{out}");
    for k in KEYS {
        assert_eq!(
            debugfs(&img, &format!("cat /etc/ssh/{k}")),
            format!("{k} of rhel\n")
        );
    }
    assert_eq!(debugfs(&img, "cat /etc/shadow"), SHADOW);
    assert_eq!(verdict(&img, "ssh-host-keys").0, "fail");
    assert_eq!(verdict(&img, "root-password").0, "fail");

    // Asked, on an image where osconf is installed already: both fixes are still done.
    let out = said(
        &prepare(&img, &agent, &["--remove-host-keys", "--lock-root-password"]),
        "prepare with both fixes",
    );
    for k in KEYS {
        assert!(
            out.contains(&format!("removed /etc/ssh/{k} in partition 1\n")),
            "{k}: {out}"
        );
    }
    for line in [
        "osconf is installed for systemd in partition 1 already\n",
        "locked root's password in /etc/shadow (partition 1)\n",
        "new SSH host keys are made at first boot: sshd.service wants sshd-keygen.target wants \
         sshd-keygen@rsa.service (/usr/lib/systemd/system/sshd-keygen@.service) runs \
         ExecStart=/usr/libexec/openssh/sshd-keygen %i\n",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    let ls = debugfs(&img, "ls -l /etc/ssh");
    for k in KEYS {
        assert!(!ls.contains(k), "{k}: {ls}");
    }
    assert_eq!(debugfs(&img, "cat /etc/ssh/sshd_config"), "PermitRootLogin no\n");
    // One "!" before root's hash, every other byte the same; owner, mode and label kept.
    assert_eq!(
        debugfs(&img, "cat /etc/shadow"),
        SHADOW.replace("root:$6$", "root:!$6$")
    );
    let stat = debugfs(&img, "stat /etc/shadow");
    assert!(
        stat.contains("Mode:  0640") && stat.contains("Group:    42"),
        "{stat}"
    );
    let attrs = debugfs(&img, "ea_list /etc/shadow");
    assert!(
        attrs.contains(&format!("security.selinux (29) = \"{LABEL}\"")),
        "{attrs}"
    );
    let part = dir.path().join("p1");
    run(Command::new("dd")
        .arg(format!("if={}", img.display()))
        .arg(format!("of={}", part.display()))
        .args(["skip=1", "count=24", "bs=1M", "status=none"]));
    let fsck = Command::new("e2fsck").arg("-fn").arg(&part).output().unwrap();
    assert_eq!(
        fsck.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    assert_eq!(verdict(&img, "ssh-host-keys").0, "pass");
    assert_eq!(verdict(&img, "root-password").0, "pass");
    assert_eq!(verdict(&img, "agent").0, "pass");

    // Again: nothing left to fix, said so, the image as it was.
    let before = dir.path().join("before.img");
    copy(&img, &before);
    let out = said(
        &prepare(&img, &agent, &["--lock-root-password", "--remove-host-keys"]),
        "again",
    );
    for line in [
        "no SSH host keys in /etc/ssh of partition 1: none to remove\n",
        "root's password in /etc/shadow is locked already (!$): left as it is\n",
        "nothing to do\n",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert!(
        same(&img, &before),
        "a prepare with nothing to fix changed the image"
    );
}

#[test]
fn prepare_says_what_makes_new_host_keys_or_warns_that_nothing_does() {
    let test = "prepare_says_what_makes_new_host_keys_or_warns_that_nothing_does";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path());
    let ssh_on = (
        "etc/systemd/system/multi-user.target.wants/ssh.service",
        "/usr/lib/systemd/system/ssh.service",
    );
    let ci_on = (
        "etc/systemd/system/cloud-init.target.wants/cloud-init.service",
        "/usr/lib/systemd/system/cloud-init.service",
    );
    let ci = (
        "cloud-init.service",
        "[Service]\nType=oneshot\nExecStart=/usr/bin/cloud-init init\n",
    );
    let warning = "warning: nothing in partition 1 makes new SSH host keys at boot: sshd will not \
                   start on instances made from this image. Keep the keys out and add what makes \
                   them before sshd starts";
    for (name, units, links, says) in [
        // Debian's openssh-server alone: its unit makes no keys (its postinst did, once).
        ("debian", vec![("ssh.service", DEBIAN_SSH)], vec![ssh_on], warning),
        // A Debian cloud image: cloud-init's ssh module does.
        (
            "debian-cloud",
            vec![("ssh.service", DEBIAN_SSH), ci],
            vec![ssh_on, ci_on],
            "new SSH host keys are made at first boot: cloud-init (enabled: \
             /etc/systemd/system/cloud-init.target.wants/cloud-init.service) runs its ssh module",
        ),
        // Nothing of sshd at all.
        ("bare", vec![], vec![], warning),
    ] {
        let root = tree(dir.path(), name, &units, &links);
        if name == "debian-cloud" {
            fs::create_dir_all(root.join("etc/cloud")).unwrap();
            fs::write(
                root.join("etc/cloud/cloud.cfg"),
                "cloud_init_modules:\n - seed_random\n - bootcmd\n - ssh\n",
            )
            .unwrap();
        }
        let img = image(dir.path(), name, &root);
        let out = said(&prepare(&img, &agent, &["--remove-host-keys"]), name);
        assert!(out.contains(says), "{name}: {out}");
        assert!(
            out.contains("removed /etc/ssh/ssh_host_rsa_key in partition 1\n"),
            "{name}: {out}"
        );
        // The password was not asked for.
        assert_eq!(debugfs(&img, "cat /etc/shadow"), SHADOW, "{name}");
        fs::remove_file(&img).unwrap();
    }
}

#[test]
fn prepare_refuses_a_hostile_shadow_and_changes_nothing() {
    let test = "prepare_refuses_a_hostile_shadow_and_changes_nothing";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path());
    let root = tree(dir.path(), "hostile", &[], &[]);
    let big = dir.path().join("big");
    fs::write(
        &big,
        format!("root:$6$a$b:1::::::\n{}", "x:*:1::::::\n".repeat(400_000)),
    )
    .unwrap();
    let cr = dir.path().join("cr");
    fs::write(&cr, "bin:*:1::::::\nroot:$6$a$b:1::::::\r\n").unwrap();
    let two = dir.path().join("two");
    fs::write(&two, "root:*:1::::::\nroot:$6$a$b:1::::::\n").unwrap();
    let none = dir.path().join("none");
    fs::write(&none, "bin:*:1::::::\n").unwrap();
    let outside = dir.path().join("outside");
    fs::write(&outside, SHADOW).unwrap();
    let put = |f: &Path| format!("rm /etc/shadow\nwrite {} /etc/shadow\n", f.display());
    for (case, script, says) in [
        (
            "link",
            "rm /etc/shadow\nsymlink /etc/shadow /etc/passwd\n".to_owned(),
            "is a symbolic link, not a regular file",
        ),
        (
            "fifo",
            "rm /etc/shadow\ncd /etc\nmknod shadow p\n".into(),
            "is a device, FIFO or socket, not a regular file",
        ),
        (
            "dir",
            "rm /etc/shadow\nmkdir /etc/shadow\n".into(),
            "is a directory, not a regular file",
        ),
        ("missing", "rm /etc/shadow\n".into(), "is missing"),
        ("big", put(&big), "4800020 bytes, more than the 4194304 read"),
        ("cr", put(&cr), "line 2 holds a carriage return (CR)"),
        ("two", put(&two), "lines 1 and 2 both are root's"),
        ("none", put(&none), "has no root line"),
    ] {
        let img = image(dir.path(), &format!("hostile-{case}"), &root);
        debugfs_w(&img, &script);
        let before = dir.path().join("before.img");
        copy(&img, &before);
        let out = prepare(&img, &agent, &["--lock-root-password", "--remove-host-keys"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case}: {err}");
        assert!(
            err.contains("/etc/shadow") && err.contains(says) && err.contains("nothing was changed"),
            "{case}: {err}"
        );
        assert!(same(&img, &before), "{case}: the image changed");
        fs::remove_file(&img).unwrap();
    }
    assert_eq!(fs::read_to_string(&outside).unwrap(), SHADOW);
}

#[test]
fn a_fix_cut_half_way_leaves_the_image_as_it_was() {
    let test = "a_fix_cut_half_way_leaves_the_image_as_it_was";
    if !have_tools(test, &TOOLS) || !have_tools(test, &["sh", "head"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path());
    let root = tree(dir.path(), "cut", &[], &[]);
    let img = image(dir.path(), "cut", &root);
    said(&prepare(&img, &agent, &[]), "plain prepare");
    let before = dir.path().join("before.img");
    copy(&img, &before);
    // A debugfs that runs only the first lines of the write (the key removals, not the shadow's
    // write): what a crash or a bug of the tool half-way would leave in the staged copy.
    let real = run(Command::new("sh").args(["-c", "command -v debugfs"])).stdout;
    let real = String::from_utf8(real).unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let fake = bin.join("debugfs");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\nif [ \"$1\" = -w ]; then head -n 3 \"$3\" > \"$3.half\"; exec {} -w -f \"$3.half\" \"$4\"; fi\nexec {} \"$@\"\n",
            real.trim(),
            real.trim()
        ),
    )
    .unwrap();
    fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(env!("CARGO_BIN_EXE_osconf-image"))
        .args(["prepare"])
        .arg(&img)
        .arg("--agent")
        .arg(&agent)
        .args(["--remove-host-keys", "--lock-root-password"])
        .env("PATH", path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("did not come out as written") && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(same(&img, &before), "a cut fix changed the image");
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("osconf-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_64bit_partition_1_is_reported_with_commands_that_clear_it() {
    let test = "a_64bit_partition_1_is_reported_with_commands_that_clear_it";
    if !have_tools(test, &TOOLS) || !have_tools(test, &["resize2fs", "sh"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path());
    let root = tree(dir.path(), "wide", &[], &[]);
    let uuid = "0f2ab1f4-1111-2222-3333-444455556666";
    let mkfs: &[&str] = &[
        "mkfs.ext4",
        "-q",
        "-F",
        "-O",
        "64bit",
        "-L",
        "my root",
        "-U",
        uuid,
    ];
    let (img, _) = build(dir.path(), "wide", "gpt", &[Part::new(24, mkfs, Some(&root))]);
    let (v, why) = verdict(&img, "ext4-64bit");
    assert_eq!(v, "fail", "{why}");
    let disk = img.display();
    let cmds = format!("e2fsck -fp '{disk}?offset=1048576' && resize2fs -s '{disk}?offset=1048576'");
    assert!(why.contains(&cmds), "{why}");
    assert!(
        why.contains(&format!(
            "mkfs.ext4 -O ^64bit -L 'my root' -U {uuid} on partition 1"
        )),
        "{why}"
    );
    // prepare says it too, and rewrites no filesystem.
    let out = said(&prepare(&img, &agent, &[]), "prepare");
    assert!(
        out.contains(&format!(
            "warning: partition 1: {why} (prepare rewrites no filesystem)\n"
        )),
        "{out}"
    );
    assert!(debugfs(&img, "features").contains("64bit"));
    // The commands given do what they say: the feature is gone, the files are there.
    run(Command::new("sh").args(["-c", &cmds]));
    assert_eq!(verdict(&img, "ext4-64bit").0, "pass");
    assert_eq!(debugfs(&img, "cat /etc/shadow"), SHADOW);
    assert_eq!(verdict(&img, "agent").0, "pass");
}
