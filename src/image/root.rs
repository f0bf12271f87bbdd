//! `image check`'s root-partition requirements, read as a `System` through `disk` (never mounted;
//! which partition is the root: `view`): an os.conf agent installed and enabled (osconf, judged by what `osconf install` records
//! in its manifest — the files each init system gets — or a vendor-style script that reads
//! `aliyun_custom_image/os.conf`), no SSH host keys, no root `authorized_keys`, no usable root
//! password; on Btrfs, whether `/etc/fstab` mounts `/` from the subvolume checked. A root
//! filesystem the reader cannot read (a thin LV, LUKS…) is a warning naming it.

use std::path::Path;

use super::{Item, Verdict, item, view};
use crate::detect::Survey;
use crate::disk::Image;
use crate::disk::btrfs::Subvolume;
use crate::error::Error;
use crate::install::{self, Before, INSTALL_MARKERS, MANIFEST, Manifest};
use crate::system::{self, Kind, System};

/// Where a vendor-style script may be: directories whose files are read, and single files.
const SCRIPT_DIRS: [&str; 6] = [
    "/etc/init.d",
    "/etc/rc.d/init.d",
    "/etc/local.d",
    "/etc/systemd/system",
    "/usr/local/bin",
    "/usr/local/sbin",
];
const SCRIPT_FILES: [&str; 2] = ["/etc/rc.local", "/etc/rc.d/rc.local"];
/// Files of a script directory read at most (each bounded by the reader).
const MAX_SCRIPTS: usize = 2000;
/// What a vendor-style script mentions.
const MARK: &[u8] = b"aliyun_custom_image";

/// The root-partition items of the image at `disk`, and what detection says of its root.
pub fn check(disk: &Path, image: &Image) -> (Vec<Item>, Option<Survey>) {
    let root = match view::root_partition(image) {
        Ok(found) => found,
        Err(why) => return (vec![why], None),
    };
    let subvolume = root.subvolume().cloned();
    let fs = match &subvolume {
        Some(sub) => format!("{}, {}", root.fs.describe(), sub.describe()),
        None => root.fs.describe(),
    };
    let place = root.place.clone();
    // Partition 1's journal is said by the check of partition 1.
    let journal = root
        .recovery()
        .filter(|_| root.n != 1 || root.is_lv())
        .map(|r| item("journal", Verdict::Warn, r.describe(&place)));
    let lv_warnings: Vec<Item> = root
        .warnings
        .iter()
        .map(|w| item("root-lv", Verdict::Warn, w.clone()))
        .collect();
    let sys = match view::system(disk, root) {
        Ok(sys) => sys,
        Err(e) => {
            let why = format!("{place} ({fs}): {e}; the root-partition checks were not made");
            return (vec![item("root", Verdict::Warn, why)], None);
        }
    };
    let name = match sys.os.pretty_name.as_str() {
        "" => "an os-release without PRETTY_NAME".to_owned(),
        pretty => pretty.to_owned(),
    };
    let mut items = vec![item("root", Verdict::Pass, format!("{place} ({fs}): {name}"))];
    items.extend(journal);
    items.extend(lv_warnings);
    if let Some(sub) = &subvolume {
        items
            .extend(subvolume_mounted(&sys, sub).unwrap_or_else(|e| {
                Some(item("root-subvolume", Verdict::Warn, format!("cannot tell: {e}")))
            }));
    }
    let survey = Survey::of(&sys);
    items.extend(detected(&survey));
    items.extend([
        or_warn("agent", agent(&sys)),
        or_warn("ssh-host-keys", host_keys(&sys)),
        or_warn("root-authorized-keys", authorized_keys(&sys)),
        or_warn("root-password", password(&sys)),
    ]);
    (items, Some(survey))
}

/// Whether the root's `/etc/fstab` mounts `/` from the Btrfs subvolume `sub` the reader took for
/// it (`subvol=` by its path, `subvolid=` by its id, neither: the default subvolume). Another one
/// is a warning naming both: the image would boot a root other than the one checked. No item when
/// fstab has no Btrfs entry for `/` (nothing to compare; systemd may find the root itself).
fn subvolume_mounted(sys: &System, sub: &Subvolume) -> system::Result<Option<Item>> {
    let Some(text) = sys.read_text("/etc/fstab")? else {
        return Ok(None);
    };
    let Some(options) = text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let root = f.len() >= 4 && !f[0].starts_with('#') && f[1] == "/";
        (root && matches!(f[2], "btrfs" | "auto")).then(|| f[3].to_owned())
    }) else {
        return Ok(None);
    };
    let option = |key: &str| options.split(',').find_map(|o| o.strip_prefix(key));
    let checked = sub.describe();
    let (named, same) = match (option("subvolid="), option("subvol=")) {
        (Some(id), _) => (format!("subvolid={id}"), id.parse() == Ok(sub.id)),
        (None, Some(path)) => (
            format!("subvol={path}"),
            sub.path.as_deref() == Some(path.trim_matches('/')),
        ),
        (None, None) => (
            "the default subvolume (no subvol= option)".to_owned(),
            sub.default,
        ),
    };
    Ok(Some(if same {
        item(
            "root-subvolume",
            Verdict::Pass,
            format!("/etc/fstab mounts / from {named}: {checked}, the one checked"),
        )
    } else {
        item(
            "root-subvolume",
            Verdict::Warn,
            format!(
                "/etc/fstab mounts / from {named}, but the root checked is {checked} (the default \
                 subvolume when it holds a root, else @, else root): the image would boot a \
                 different root than the one checked"
            ),
        )
    }))
}

/// What `osconf detect` would say of the root: its distribution, init system and network stack,
/// and whether osconf would configure it. Not knowing the init or the stack is a warning: a
/// vendor-style agent needs neither, and `--init`/`--stack` can say them.
fn detected(s: &Survey) -> Vec<Item> {
    let found = |key, r: Result<(&str, &str), &Error>| match r {
        Ok((name, why)) => item(key, Verdict::Pass, format!("{name} ({why})")),
        Err(e) => item(key, Verdict::Warn, format!("unknown: {e}")),
    };
    vec![
        item("distribution", Verdict::Pass, s.distribution()),
        found("init", s.init.as_ref().map(|(i, why)| (i.name, why.as_str()))),
        found(
            "stack",
            s.stack.as_ref().map(|d| (d.stack.name, d.evidence.as_str())),
        ),
        match s.configurable() {
            c if c.yes => item("configurable", Verdict::Pass, c.why),
            c => item("configurable", Verdict::Warn, c.why),
        },
    ]
}

/// A check that could not read what it needs is a warning saying what.
fn or_warn(key: &'static str, r: system::Result<Item>) -> Item {
    r.unwrap_or_else(|e| item(key, Verdict::Warn, format!("cannot tell: {e}")))
}

/// osconf (binary + what its install manifest lists, or a package's enabled unit), else a script
/// of the vendor's kind.
fn agent(sys: &System) -> system::Result<Item> {
    let binary = install::BINARY;
    match sys.stat(binary, true)? {
        Some(st) if st.kind == Kind::File && st.mode & 0o111 != 0 => return osconf_enabled(sys),
        Some(_) => {
            return Ok(item(
                "agent",
                Verdict::Fail,
                format!("{binary} is there but not an executable file"),
            ));
        }
        None => {}
    }
    let scripts = vendor_scripts(sys)?;
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
fn osconf_enabled(sys: &System) -> system::Result<Item> {
    let fail = |why: String| item("agent", Verdict::Fail, why);
    let Some(text) = sys.read_text(MANIFEST)? else {
        let wants = install::SYSTEMD_WANTS;
        return Ok(match sys.stat(wants, true)? {
            Some(st) if st.kind == Kind::File => item(
                "agent",
                Verdict::Pass,
                format!("osconf (a package): {wants} enables osconf.service"),
            ),
            _ => fail(format!(
                "osconf is installed but nothing starts it: no {MANIFEST} (osconf install) and no {wants} \
                 (a package); run osconf image prepare"
            )),
        });
    };
    let m = match Manifest::parse(&text) {
        Ok(m) => m,
        Err(e) => return Ok(fail(format!("{MANIFEST}: {e}"))),
    };
    let Some(init) = install::find(&m.init) else {
        return Ok(fail(format!("{MANIFEST}: unknown init {:?}", m.init)));
    };
    for (path, before) in &m.paths {
        let missing = match before {
            Before::Edited => !sys
                .read_text(path)?
                .is_some_and(|t| t.contains(INSTALL_MARKERS.begin.trim_end())),
            _ => sys.stat(path, true)?.is_none(),
        };
        if missing {
            return Ok(fail(format!(
                "osconf was installed for {} but {path} (in {MANIFEST}) is missing or no longer starts it",
                init.name
            )));
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
fn vendor_scripts(sys: &System) -> system::Result<Vec<(String, Option<String>)>> {
    let mut found = Vec::new();
    let mut candidates: Vec<String> = SCRIPT_FILES.iter().map(|f| f.to_string()).collect();
    for dir in SCRIPT_DIRS {
        for name in sys.list(dir)?.into_iter().take(MAX_SCRIPTS) {
            let path = format!("{dir}/{name}");
            if sys.stat(&path, false)?.is_some_and(|st| st.kind == Kind::File) {
                candidates.push(path);
            }
        }
    }
    for path in candidates {
        // A file that cannot be read (too large, not a regular file) is no script of this kind.
        let Ok(Some(bytes)) = sys.read(&path) else {
            continue;
        };
        if !bytes.windows(MARK.len()).any(|w| w == MARK) {
            continue;
        }
        let how = started_by(sys, &path)?;
        found.push((path, how));
    }
    Ok(found)
}

/// How the script at `path` is started: rc.local runs at boot; an init.d script by a runlevel
/// link; a unit by its enabling link — as the renderers' probes ask of a network service.
fn started_by(sys: &System, path: &str) -> system::Result<Option<String>> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if SCRIPT_FILES.contains(&path) {
        return Ok(Some(format!("{path} runs at the end of the boot")));
    }
    if path.contains("/init.d/")
        && let Some(link) = sys.init_script_link(name)?
    {
        return Ok(Some(format!("started by {link}")));
    }
    if path.starts_with("/etc/systemd/system/")
        && let Some(link) = sys.systemd_unit_link(name)?
    {
        return Ok(Some(format!("enabled by {link}")));
    }
    Ok(None)
}

/// Where sshd keeps its host keys.
pub(super) const SSH_DIR: &str = "/etc/ssh";

/// A private host key's name in [`SSH_DIR`]: `ssh_host_*_key`, or SSH 1's `ssh_host_key`.
pub(super) fn is_host_key(name: &str) -> bool {
    (name.starts_with("ssh_host_") && name.ends_with("_key")) || name == "ssh_host_key"
}

/// SSH host keys baked in: every instance made from the image would share them.
fn host_keys(sys: &System) -> system::Result<Item> {
    let keys: Vec<String> = sys
        .list(SSH_DIR)?
        .into_iter()
        .filter(|n| is_host_key(n))
        .map(|n| format!("{SSH_DIR}/{n}"))
        .collect();
    Ok(if keys.is_empty() {
        item(
            "ssh-host-keys",
            Verdict::Pass,
            "no SSH host keys (/etc/ssh/ssh_host_*_key) baked in",
        )
    } else {
        item(
            "ssh-host-keys",
            Verdict::Fail,
            format!(
                "SSH host keys baked in, which every instance would share: {}; remove them (osconf \
                 image prepare --remove-host-keys, which says what makes new ones at first boot)",
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
fn authorized_keys(sys: &System) -> system::Result<Item> {
    let home = sys
        .read("/etc/passwd")?
        .and_then(|t| root_entry(&t))
        .and_then(|f| f.get(5).cloned())
        .filter(|h| h.starts_with('/'))
        .unwrap_or_else(|| "/root".into());
    let mut found = Vec::new();
    for name in ["authorized_keys", "authorized_keys2"] {
        let path = format!("{}/.ssh/{name}", home.trim_end_matches('/'));
        if let Some(bytes) = sys.read(&path)? {
            let keys = String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .count();
            if keys > 0 {
                found.push(format!("{path} ({keys} keys)"));
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

/// A password field no password can match: `!…` (`passwd -l`), `*…`, or `x` in the shadow file
/// itself. An empty field is not: it lets anyone in.
pub(super) fn is_locked(field: &str) -> bool {
    field.starts_with('!') || field.starts_with('*') || field == "x"
}

/// root's password field: locked or absent is a pass; a usable hash or an empty field is a fail.
fn password(sys: &System) -> system::Result<Item> {
    let (file, field) = match sys.read("/etc/shadow")?.and_then(|t| root_entry(&t)) {
        Some(f) => ("/etc/shadow", f.get(1).cloned().unwrap_or_default()),
        None => match sys.read("/etc/passwd")?.and_then(|t| root_entry(&t)) {
            Some(f) if f.get(1).is_some_and(|p| p != "x") => ("/etc/passwd", f[1].clone()),
            _ => {
                return Ok(item(
                    "root-password",
                    Verdict::Warn,
                    "no root entry in /etc/shadow: cannot tell",
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
                "root's password in {file} is empty: anyone logs in as root without one; lock it (osconf image prepare --lock-root-password)"
            ),
        )
    } else if is_locked(&field) {
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
                 until os.conf sets another; lock it (osconf image prepare --lock-root-password, or passwd -l root)"
            ),
        )
    })
}
