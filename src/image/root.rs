//! `image check`'s root-partition requirements, read through `disk` (never mounted): the root
//! partition is the first holding `etc/os-release` (partition 1 itself on one-partition images);
//! in it, an os.conf agent installed and enabled (osconf, judged by what `osconf install` records
//! in its manifest — the files each init system gets — or a vendor-style script that reads
//! `aliyun_custom_image/os.conf`), no SSH host keys, no root `authorized_keys`, no usable root
//! password. A root filesystem the reader cannot read (xfs, btrfs, LVM…) is a warning naming it.

use std::fs::File;
use std::io;

use super::{Item, Verdict, item};
use crate::disk::{FileType, Image, Volume};
use crate::install::{self, Before, INSTALL_MARKERS, MANIFEST, Manifest};

/// Where a vendor-style script may be: directories whose files are read, and single files.
const SCRIPT_DIRS: [&str; 6] = [
    "etc/init.d",
    "etc/rc.d/init.d",
    "etc/local.d",
    "etc/systemd/system",
    "usr/local/bin",
    "usr/local/sbin",
];
const SCRIPT_FILES: [&str; 2] = ["etc/rc.local", "etc/rc.d/rc.local"];
/// Runlevel directories whose `S??NAME` links start an init.d script.
const RC_DIRS: [&str; 9] = [
    "etc/rcS.d",
    "etc/rc2.d",
    "etc/rc3.d",
    "etc/rc4.d",
    "etc/rc5.d",
    "etc/rc.d/rc3.d",
    "etc/rc.d/rc5.d",
    "etc/runlevels/default",
    "etc/runlevels/boot",
];
/// Files of a script directory read at most (each bounded by the reader).
const MAX_SCRIPTS: usize = 2000;
/// What a vendor-style script mentions.
const MARK: &[u8] = b"aliyun_custom_image";

/// The root partition: its number and filesystem; else why none was found.
pub fn find(image: &Image) -> Result<(u32, Volume<File>), Item> {
    let mut unread = Vec::new();
    let numbers: Vec<u32> = image
        .table
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|p| !p.is_extended())
        .map(|p| p.number)
        .collect();
    for n in numbers {
        match image.partition(n) {
            Ok(v) => match v.symlink_metadata("etc/os-release") {
                Ok(Some(_)) => return Ok((n, v)),
                Ok(None) => {}
                Err(e) => unread.push(format!("partition {n} ({}): {e}", v.fs.kind.name())),
            },
            Err(e) => unread.push(e.to_string()),
        }
    }
    Err(if unread.is_empty() {
        item(
            "root",
            Verdict::Fail,
            "no partition holds etc/os-release: no root filesystem found",
        )
    } else {
        item(
            "root",
            Verdict::Warn,
            format!(
                "no readable partition holds etc/os-release; not read: {}; the root-partition checks \
                 (agent, SSH keys, root password) were not made",
                unread.join("; ")
            ),
        )
    })
}

/// The root-partition items.
pub fn check(image: &Image) -> Vec<Item> {
    let (n, v) = match find(image) {
        Ok(found) => found,
        Err(why) => return vec![why],
    };
    let release = v.read_file("etc/os-release").ok().flatten().unwrap_or_default();
    let id = String::from_utf8_lossy(&release)
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|s| s.trim_matches('"').to_owned())
        .unwrap_or_else(|| "etc/os-release".into());
    vec![
        item(
            "root",
            Verdict::Pass,
            format!("partition {n} ({}): {id}", v.fs.describe()),
        ),
        or_warn("agent", agent(&v)),
        or_warn("ssh-host-keys", host_keys(&v)),
        or_warn("root-authorized-keys", authorized_keys(&v)),
        or_warn("root-password", password(&v)),
    ]
}

/// A check that could not read what it needs is a warning saying what.
fn or_warn(key: &'static str, r: io::Result<Item>) -> Item {
    r.unwrap_or_else(|e| item(key, Verdict::Warn, format!("cannot tell: {e}")))
}

/// osconf (binary + what its install manifest lists, or a package's enabled unit), else a script
/// of the vendor's kind.
fn agent(v: &Volume<File>) -> io::Result<Item> {
    let binary = install::BINARY.trim_start_matches('/');
    match v.metadata(binary)? {
        Some(m) if m.file_type == FileType::File && m.mode & 0o111 != 0 => return osconf_enabled(v),
        Some(_) => {
            return Ok(item(
                "agent",
                Verdict::Fail,
                format!("{binary} is there but not an executable file"),
            ));
        }
        None => {}
    }
    let scripts = vendor_scripts(v)?;
    let Some((path, enabled)) = scripts
        .iter()
        .find(|(_, e)| e.is_some())
        .or(scripts.first())
        .cloned()
    else {
        return Ok(item(
            "agent",
            Verdict::Fail,
            format!(
                "no os.conf agent: neither osconf ({binary}) nor a script reading aliyun_custom_image/os.conf \
                 in {}, {} (osconf image prepare installs osconf)",
                SCRIPT_DIRS.join(", "),
                SCRIPT_FILES.join(", ")
            ),
        ));
    };
    Ok(match enabled {
        Some(how) => item(
            "agent",
            Verdict::Pass,
            format!("a vendor-style script, not osconf: {path} reads aliyun_custom_image/os.conf; {how}"),
        ),
        None => item(
            "agent",
            Verdict::Warn,
            format!(
                "a vendor-style script, not osconf: {path} reads aliyun_custom_image/os.conf, but no runlevel link or enabled unit starts it"
            ),
        ),
    })
}

/// osconf's binary is there: enabled as its install manifest says (every path it lists present,
/// osconf's block in shared files), or as a package enables the unit.
fn osconf_enabled(v: &Volume<File>) -> io::Result<Item> {
    let manifest = MANIFEST.trim_start_matches('/');
    let Some(text) = v.read_file(manifest)? else {
        let wants = install::SYSTEMD_WANTS.trim_start_matches('/');
        return Ok(match v.metadata(wants)? {
            Some(m) if m.file_type == FileType::File => item(
                "agent",
                Verdict::Pass,
                format!("osconf (a package): {wants} enables osconf.service"),
            ),
            _ => item(
                "agent",
                Verdict::Fail,
                format!(
                    "osconf is installed but nothing starts it: no {manifest} (osconf install) and no {wants} \
                     (a package); run osconf image prepare"
                ),
            ),
        });
    };
    let m = Manifest::parse(&String::from_utf8_lossy(&text)).map_err(io::Error::other)?;
    let init = install::find(&m.init)
        .ok_or_else(|| io::Error::other(format!("{manifest}: unknown init {:?}", m.init)))?;
    for (path, before) in &m.paths {
        let rel = path.trim_start_matches('/');
        let missing = match before {
            Before::Edited => !v
                .read_file(rel)?
                .is_some_and(|t| String::from_utf8_lossy(&t).contains(INSTALL_MARKERS.begin.trim_end())),
            _ => v.metadata(rel)?.is_none(),
        };
        if missing {
            return Ok(item(
                "agent",
                Verdict::Fail,
                format!(
                    "osconf was installed for {} but {path} (in {manifest}) is missing or no longer starts it",
                    init.name
                ),
            ));
        }
    }
    let paths: Vec<&str> = m
        .paths
        .iter()
        .map(|(p, _)| p.as_str())
        .filter(|p| *p != install::BINARY)
        .collect();
    Ok(item(
        "agent",
        Verdict::Pass,
        format!(
            "osconf, installed and enabled for {}: {}",
            init.name,
            paths.join(", ")
        ),
    ))
}

/// Files that mention aliyun_custom_image, each with how it is started when that is known.
fn vendor_scripts(v: &Volume<File>) -> io::Result<Vec<(String, Option<String>)>> {
    let mut found = Vec::new();
    let mut candidates: Vec<String> = SCRIPT_FILES.iter().map(|f| f.to_string()).collect();
    for dir in SCRIPT_DIRS {
        if let Some(entries) = v.list_dir(dir)? {
            candidates.extend(
                entries
                    .into_iter()
                    .filter(|e| e.file_type == FileType::File)
                    .take(MAX_SCRIPTS)
                    .map(|e| format!("{dir}/{}", e.name)),
            );
        }
    }
    for path in candidates {
        let Ok(Some(bytes)) = v.read_file(&path) else {
            continue;
        };
        if !bytes.windows(MARK.len()).any(|w| w == MARK) {
            continue;
        }
        let how = started_by(v, &path)?;
        found.push((path, how));
    }
    Ok(found)
}

/// How the script at `path` is started: rc.local runs at boot; an init.d script by a runlevel
/// link `S??NAME`; a unit by a link in a `.wants` directory.
fn started_by(v: &Volume<File>, path: &str) -> io::Result<Option<String>> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if SCRIPT_FILES.contains(&path) {
        return Ok(Some(format!("{path} runs at the end of the boot")));
    }
    if path.contains("/init.d/") {
        for dir in RC_DIRS {
            for e in v.list_dir(dir)?.unwrap_or_default() {
                let linked = e.name == name
                    || e.name.strip_prefix('S').is_some_and(|r| {
                        r.len() > 2 && r.as_bytes()[..2].iter().all(u8::is_ascii_digit) && &r[2..] == name
                    });
                if linked {
                    return Ok(Some(format!("started by {dir}/{}", e.name)));
                }
            }
        }
    }
    if path.starts_with("etc/systemd/system/") {
        for e in v.list_dir("etc/systemd/system")?.unwrap_or_default() {
            if e.file_type == FileType::Dir && e.name.ends_with(".wants") {
                let link = format!("etc/systemd/system/{}/{name}", e.name);
                if v.symlink_metadata(&link)?.is_some() {
                    return Ok(Some(format!("enabled by {link}")));
                }
            }
        }
    }
    Ok(None)
}

/// SSH host keys baked in: every instance made from the image would share them.
fn host_keys(v: &Volume<File>) -> io::Result<Item> {
    let keys: Vec<String> = v
        .list_dir("etc/ssh")?
        .unwrap_or_default()
        .into_iter()
        .filter(|e| (e.name.starts_with("ssh_host_") && e.name.ends_with("_key")) || e.name == "ssh_host_key")
        .map(|e| format!("etc/ssh/{}", e.name))
        .collect();
    Ok(if keys.is_empty() {
        item(
            "ssh-host-keys",
            Verdict::Pass,
            "no SSH host keys (etc/ssh/ssh_host_*_key) baked in",
        )
    } else {
        item(
            "ssh-host-keys",
            Verdict::Fail,
            format!(
                "SSH host keys baked in, which every instance would share: {}; remove them (sshd or \
                 ssh-keygen -A makes new ones at first boot)",
                keys.join(", ")
            ),
        )
    })
}

/// root's entry of a colon-separated account file (passwd, shadow).
fn root_entry(text: &[u8]) -> Option<Vec<String>> {
    String::from_utf8_lossy(text)
        .lines()
        .map(|l| l.split(':').map(str::to_owned).collect::<Vec<_>>())
        .find(|f| f.first().is_some_and(|n| n == "root"))
}

/// root's authorized_keys, in root's home as etc/passwd gives it (else /root).
fn authorized_keys(v: &Volume<File>) -> io::Result<Item> {
    let home = v
        .read_file("etc/passwd")?
        .and_then(|t| root_entry(&t))
        .and_then(|f| f.get(5).cloned())
        .filter(|h| h.starts_with('/'))
        .unwrap_or_else(|| "/root".into());
    let mut found = Vec::new();
    for name in ["authorized_keys", "authorized_keys2"] {
        let path = format!(
            "{}/.ssh/{name}",
            home.trim_start_matches('/').trim_end_matches('/')
        );
        if let Some(bytes) = v.read_file(&path)? {
            let keys = String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .count();
            if keys > 0 {
                found.push(format!("/{path} ({keys} keys)"));
            }
        }
    }
    Ok(if found.is_empty() {
        item(
            "root-authorized-keys",
            Verdict::Pass,
            format!("no authorized_keys for root in {home}/.ssh"),
        )
    } else {
        item(
            "root-authorized-keys",
            Verdict::Fail,
            format!(
                "root's SSH keys are baked in, so every instance lets their holders in: {}",
                found.join(", ")
            ),
        )
    })
}

/// root's password field: locked or absent is a pass; a usable hash or an empty field is a fail.
fn password(v: &Volume<File>) -> io::Result<Item> {
    let (file, field) = match v.read_file("etc/shadow")?.and_then(|t| root_entry(&t)) {
        Some(f) => ("etc/shadow", f.get(1).cloned().unwrap_or_default()),
        None => match v.read_file("etc/passwd")?.and_then(|t| root_entry(&t)) {
            Some(f) if f.get(1).is_some_and(|p| p != "x") => ("etc/passwd", f[1].clone()),
            _ => {
                return Ok(item(
                    "root-password",
                    Verdict::Warn,
                    "no root entry in etc/shadow: cannot tell",
                ));
            }
        },
    };
    let key = "root-password";
    Ok(if field.is_empty() {
        item(
            key,
            Verdict::Fail,
            format!(
                "root's password in {file} is empty: anyone logs in as root without one; lock it (usermod -p '*' root)"
            ),
        )
    } else if field.starts_with('!') || field.starts_with('*') || field == "x" {
        item(
            key,
            Verdict::Pass,
            format!(
                "root's password in {file} is locked ({})",
                &field[..field.len().min(2)]
            ),
        )
    } else {
        let scheme = match field.split('$').nth(1) {
            Some("1") => "MD5-crypt ($1$)",
            Some("5") => "SHA-256-crypt ($5$)",
            Some("6") => "SHA-512-crypt ($6$)",
            Some("y") => "yescrypt ($y$)",
            Some("2a" | "2b" | "2y") => "bcrypt ($2$)",
            _ if field.len() == 13 => "DES crypt",
            _ => "a hash",
        };
        item(
            key,
            Verdict::Fail,
            format!(
                "root has a usable password baked in ({scheme} in {file}): every instance accepts it \
                 until os.conf sets another; lock it (passwd -l root, or usermod -p '*' root)"
            ),
        )
    })
}
