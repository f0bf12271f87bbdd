//! Fuzzing entry points: each feeds arbitrary bytes to a parser and panics when an invariant breaks.
//! The cargo-fuzz targets in `fuzz/` and the seed-corpus test (`tests/plain/fuzz_seeds.rs`) call them,
//! so they build with the crate and cannot drift from its API.
//!
//! The binary never calls this module. It writes only below its own scratch directory (in /dev/shm
//! or the temporary directory: a copy of an example root whose foreign files it replaces).

pub mod btrfs;
pub mod formats;
pub mod images;
pub mod thin;
pub mod xfs_lvm;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::disk;
use crate::model::{self, Config};
use crate::plan::{self, Env};
use crate::reader;
use crate::render::{self, common::glob};
use crate::system::System;

/// os.conf bytes → reader → validator. Never a panic; every error carries its line (or concerns
/// the whole file) and is one line; no message shows the password's value; an accepted file
/// survives the round trip through the canonical form kept in last-applied.conf.
pub fn reader(data: &[u8]) {
    let result = reader::parse(data).and_then(|raw| model::validate(&raw));
    let secret = password_value(data);
    let check = |shown: String| {
        assert!(!shown.contains('\n'), "a message of several lines: {shown:?}");
        if let Some(secret) = secret {
            assert!(!shown.contains(secret), "the password shows in {shown:?}");
        }
    };
    let valid = match result {
        Err(errors) => {
            assert!(!errors.is_empty(), "an empty error list");
            for e in &errors {
                let shown = e.to_string();
                assert!(
                    e.line == 0 || shown.starts_with(&format!("line {}: ", e.line)),
                    "{shown:?}"
                );
                check(shown);
            }
            return;
        }
        Ok(valid) => valid,
    };
    valid.warnings.iter().for_each(|w| check(w.to_string()));
    let canonical = valid.config.to_conf_without_password();
    if canonical.is_empty() {
        return; // only a password: nothing is recorded
    }
    let again = reader::parse(canonical.as_bytes())
        .and_then(|raw| model::validate(&raw))
        .unwrap_or_else(|e| panic!("canonical form refused: {e:?}\n{canonical}"));
    let mut want = valid.config;
    want.password = None;
    assert_eq!(again.config, want, "the round trip changed the config");
}

/// The value of a `password=` line when it is long enough to be recognised in a message and appears
/// nowhere else in the file (a message may quote another key's value that happens to hold it).
fn password_value(data: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(data).ok()?;
    let line = text.lines().find(|l| l.trim_start().starts_with("password="))?;
    let value = line.trim_start()["password=".len()..].trim_matches(['"', '\'', ' ', '\t']);
    let alone = text.matches(value).count() == 1;
    (value.len() >= 8 && alone && value.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(value)
}

/// A glob pattern and a name, split at the first NUL: matching either way ends within
/// (pattern + 1) × (name + 1) steps.
pub fn glob(data: &[u8]) {
    let at = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (pattern, name) = (&data[..at], data.get(at + 1..).unwrap_or_default());
    for path in [false, true] {
        let (_, steps) = glob::matches_counting(pattern, name, path);
        let bound = (pattern.len() + 1) * (name.len() + 1);
        assert!(steps <= bound, "{steps} steps > {bound}");
    }
}

/// Journal bytes → the journal's reader. Never a panic; a refusal names a line that exists and is
/// one line of printable text (it goes to the console); what is accepted names only files osconf
/// manages, by clean paths, each with the temp name `durable` derives, and reads back the same
/// from what the executor would write for it.
pub fn journal(data: &[u8]) {
    use crate::exec::journal::{Journal, manages};
    let parsed = match Journal::parse(data) {
        Err(refused) => {
            let shown = refused.to_string();
            assert!(shown.chars().all(|c| !c.is_control()), "{shown:?}");
            assert!(refused.line <= data.split(|&b| b == b'\n').count(), "{shown}");
            return;
        }
        Ok(p) => p,
    };
    let j = &parsed.journal;
    for f in &j.files {
        let clean = f.path.starts_with('/') && f.path[1..].split('/').all(|c| !matches!(c, "" | "." | ".."));
        assert!(manages(&f.path) && clean, "{f:?}");
        if let Some(tmp) = &f.tmp {
            assert_eq!(
                *tmp,
                format!(".{}.osconf-new", f.path.rsplit('/').next().unwrap())
            );
        }
    }
    if parsed.whole {
        let again = Journal::parse(j.render().as_bytes()).expect("what the executor writes");
        assert_eq!(again.journal, *j);
    }
}

/// Disk image bytes → partition table → each filesystem's files, read as `image check` reads
/// them: every directory listed (a bounded walk), every file, link and path read. Never a panic;
/// what `read_file` returns is as long as the file's size and never over its bound.
pub fn disk(data: &[u8]) {
    let offsets: Vec<u64> = match disk::table::read(data) {
        Ok(Some(t)) => t.partitions.iter().take(4).map(|p| t.offset(p)).collect(),
        _ => vec![0],
    };
    for offset in offsets {
        if let Ok(v) = disk::Volume::open(data, offset) {
            read_all(&v);
        }
    }
}

/// Every file a check reads and every directory (256 entries at most) of `v`: names checked,
/// sizes as the metadata says, nothing over the bound.
pub fn read_all<R: disk::ReadAt>(v: &disk::Volume<R>) {
    for path in [
        "etc/os-release",
        "/../../etc/shadow",
        "d/rel",
        "d/etclink/ssh",
        "loop",
    ] {
        let _ = v.read_file(path);
        let _ = v.read_link(path);
    }
    let mut todo = vec![String::from("/")];
    let mut budget = 256;
    while let Some(dir) = todo.pop() {
        let Ok(Some(entries)) = v.list_dir(&dir) else {
            continue;
        };
        for e in entries {
            images::assert_name(&e.name);
            budget -= 1;
            if budget == 0 {
                return;
            }
            let path = format!("{}/{}", dir.trim_end_matches('/'), e.name);
            match e.file_type {
                disk::FileType::Dir => todo.push(path),
                _ => {
                    if let (Ok(Some(bytes)), Ok(Some(meta))) = (v.read_file(&path), v.metadata(&path)) {
                        assert_eq!(bytes.len() as u64, meta.size, "{path}");
                        assert!(meta.size <= disk::tree::MAX_FILE);
                    }
                }
            }
        }
    }
}

/// Every foreign-file fuzz target: its name, the example root it starts from, and the files of
/// that root whose bytes the fuzzer supplies (the first input byte picks one).
pub const FOREIGN: &[(&str, &str, &[&str])] = &[
    ("ifupdown", "debian11", &["/etc/network/interfaces"]),
    ("busybox", "alpine3", &["/etc/network/interfaces"]),
    ("netplan", "ubuntu22", &["/etc/netplan/00-installer-config.yaml"]),
    (
        "networkd",
        "debian12-networkd",
        &["/etc/systemd/network/all-eth.network"],
    ),
    (
        "networkmanager",
        "rocky9",
        &[
            "/etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection",
            "/etc/NetworkManager/NetworkManager.conf",
        ],
    ),
    (
        "sysconfig",
        "rocky8",
        &[
            "/etc/sysconfig/network-scripts/ifcfg-eth0",
            "/etc/sysconfig/network",
        ],
    ),
    (
        "wicked",
        "opensuse15",
        &[
            "/etc/sysconfig/network/ifcfg-eth0",
            "/etc/sysconfig/network/config",
            "/etc/udev/rules.d/70-persistent-net.rules",
        ],
    ),
    ("netifrc", "gentoo", &["/etc/conf.d/net"]),
    ("openrc-network", "buildroot-openrc", &["/etc/conf.d/network"]),
    ("dhcpcd", "void-dhcpcd", &["/etc/dhcpcd.conf"]),
    ("connman", "yocto-connman", &["/var/lib/connman/installer.config"]),
    (
        "slackware",
        "slackware15",
        &["/etc/rc.d/rc.inet1.conf", "/etc/rc.d/rc.local"],
    ),
    (
        "openwrt",
        "openwrt23",
        &["/etc/config/network", "/etc/config/dhcp", "/etc/config/system"],
    ),
    ("freebsd", "freebsd14", &["/etc/rc.conf", "/etc/master.passwd"]),
    (
        "shared",
        "centos7",
        &["/etc/hosts", "/etc/resolv.conf", "/etc/shadow", "/etc/os-release"],
    ),
];

/// A scratch copy of one example root whose foreign files take the fuzzer's bytes, planned and
/// shown for both vendor samples at each run.
pub struct Foreign {
    dir: PathBuf,
    root: PathBuf,
    files: &'static [&'static str],
    configs: Vec<Config>,
}

impl Foreign {
    /// The target named `name` in [`FOREIGN`].
    pub fn named(name: &str) -> Foreign {
        let &(_, example, files) = FOREIGN
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap_or_else(|| panic!("no foreign-file target {name}"));
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        // $OSCONF_FUZZ_DIR (scripts/fuzz removes it after each target: a fuzz process never drops
        // its target), else tmpfs where there is one: ext4 flushes a file rewritten by truncation.
        let shm = Path::new("/dev/shm");
        let base = match std::env::var_os("OSCONF_FUZZ_DIR") {
            Some(dir) => PathBuf::from(dir),
            None if shm.is_dir() => shm.to_owned(),
            None => std::env::temp_dir(),
        };
        let dir = base.join(format!("osconf-fuzz-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let root = dir.join("root");
        copy_tree(&repo.join("examples/rootfs").join(example), &root).expect("copying the example root");
        let sample = |c: &str| {
            let text = fs::read(repo.join("examples").join(c).join("os.conf")).unwrap();
            model::validate(&reader::parse(&text).unwrap()).unwrap().config
        };
        // Hashing the password costs milliseconds: only targets that fuzz the password files keep it.
        let hashes = files
            .iter()
            .any(|f| f.ends_with("shadow") || f.ends_with("master.passwd"));
        let mut configs: Vec<Config> = Vec::new();
        for c in ["classic", "vpc"] {
            let mut config = sample(c);
            if !(hashes && c == "classic") {
                config.password = None;
            }
            configs.push(config);
        }
        Foreign {
            dir,
            root,
            files,
            configs,
        }
    }

    /// The seed for one file: its selector byte, then the example's own bytes.
    pub fn seed(&self, file: usize) -> Vec<u8> {
        let path = self.root.join(self.files[file].trim_start_matches('/'));
        [vec![file as u8], fs::read(path).unwrap_or_default()].concat()
    }

    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// Writes the input (after its selector byte) into the chosen file, then detects, plans and
    /// shows. Refusing is fine (exit 1 in the binary); panicking or hanging is not.
    pub fn run(&self, data: &[u8]) {
        let Some((&pick, content)) = data.split_first() else {
            return;
        };
        let file = self.files[usize::from(pick) % self.files.len()];
        fs::write(self.root.join(file.trim_start_matches('/')), content).expect("writing the scratch root");
        let Ok(sys) = System::probe(&self.root) else {
            return;
        };
        let Ok(detection) = render::detect(&sys) else {
            return;
        };
        let env = Env {
            salt: *b"osconf-fuzz!",
            today: 20_000,
        };
        for config in &self.configs {
            let planned = plan::build(config, &sys, detection.stack, &BTreeMap::new(), None, &env);
            if let Ok(shown) = planned.map(|plan| plan::show(&plan, &sys)) {
                let shown = shown.unwrap_or_default();
                assert!(!shown.contains("qwer1234"), "plan shows the password");
            }
        }
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Copies a tree, links as links (the integration tests' copy too).
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
        } else if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}
