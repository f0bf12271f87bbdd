//! Boot integration: what `osconf install` puts into a target root so that its init system runs
//! `osconf apply` at every boot, before the network comes up, and how `osconf uninstall` takes exactly
//! that away again. One module per init system, each a pure function from the read-only `System` to
//! the files and links to add; this module turns them into a `Plan` for the executor, with a
//! manifest of what every path was before. Nothing here writes: `run` applies the plans.

mod busybox;
mod insserv;
mod manifest;
mod openrc;
pub mod run;
mod runit;
mod systemd;
mod sysv;

use crate::error::Error;
use crate::plan::{FileOp, Mode, Plan};
use crate::render::common::blocks::{Markers, replace_block_with};
use crate::render::common::glob;
use crate::system::System;
pub use manifest::{Before, MANIFEST, Manifest};
pub use systemd::{WANTS as SYSTEMD_WANTS, unit as systemd_unit};

/// Where the binary goes. /usr/sbin: an administrator's tool that packages put there too, on the
/// root file system's /usr, which every init here has mounted before it starts osconf.
pub const BINARY: &str = "/usr/sbin/osconf";
/// What the boot scripts run.
pub const COMMAND: &str = "/usr/sbin/osconf apply";
/// Copies of files that install replaced, put back by uninstall.
pub const SAVED: &str = "/var/lib/osconf/installed.orig";
/// Kernel command-line word that turns osconf off at boot, on every init.
pub const OFF_SWITCH: &str = "osconf=off";
/// osconf's block in a file it shares with the system (busybox's /etc/inittab).
pub const INSTALL_MARKERS: Markers = Markers {
    begin: "# BEGIN osconf install: runs osconf at boot; osconf uninstall removes this block\n",
    end: "# END osconf install\n",
};

/// An init system osconf can be started by.
pub struct Init {
    pub name: &'static str,
    /// The systems it serves, for `--help`.
    pub systems: &'static str,
    /// The files and links that start osconf at boot on this target (shared files it edits, such
    /// as /etc/inittab, come whole with osconf's marked block in them).
    pub files: fn(&System) -> Result<Service, Error>,
    /// Every path `files` can produce on any target, as path globs: a manifest naming anything
    /// else was not written by install and is refused ([`Init::owns`]).
    pub paths: &'static [&'static str],
}

impl Init {
    /// True for a path one of [`Init::paths`] matches.
    pub fn owns(&self, path: &str) -> bool {
        self.paths.iter().any(|p| glob::matches(p, path, true))
    }
}

/// What an init module gives: files and links, the shared files among them that carry a marked
/// block (uninstall removes the block instead of restoring the old file), and notes for the log.
#[derive(Debug, Default)]
pub struct Service {
    pub ops: Vec<FileOp>,
    pub shared: Vec<String>,
    pub notes: Vec<String>,
}

/// In detection order: see [`detect`].
pub const INITS: [&Init; 5] = [
    &systemd::INIT,
    &sysv::INIT,
    &openrc::INIT,
    &runit::INIT,
    &busybox::INIT,
];

pub fn find(name: &str) -> Option<&'static Init> {
    INITS.iter().copied().find(|i| i.name == name)
}

/// The names of [`INITS`], in order (for `--init` and its completion), taken from them.
pub const INIT_NAMES: [&str; INITS.len()] = {
    let mut names = [""; INITS.len()];
    let mut i = 0;
    while i < INITS.len() {
        names[i] = INITS[i].name;
        i += 1;
    }
    names
};

/// The init system of the target and the evidence, or an error listing what was probed. The
/// program that /sbin/init is decides first; without one (an image root built in pieces, a
/// sysvinit binary) the layout of /etc does.
pub fn detect(sys: &System) -> Result<(&'static Init, String), Error> {
    let init_link = sys
        .link_target("/sbin/init")?
        .map(|t| t.to_string_lossy().into_owned());
    let inittab = sys.read_text("/etc/inittab")?.unwrap_or_default();
    let lib_systemd = match sys.exists("/lib/systemd/systemd")? {
        true => Some("/lib/systemd/systemd"),
        false => sys
            .exists("/usr/lib/systemd/systemd")?
            .then_some("/usr/lib/systemd/systemd"),
    };
    let runit_stage = sys.exists("/etc/runit/1")?;
    let runlevels = sys.is_dir("/etc/runlevels")?;
    let wants = systemd::has_wants(sys)?;
    let rc = sys.is_dir("/etc/init.d")? && sysv::has_rc_dirs(sys)?;
    let is_link_to = |names: &[&str]| {
        init_link.as_deref().is_some_and(|t| {
            let base = t.rsplit('/').next().unwrap_or(t);
            names.contains(&base)
        })
    };
    let link = || format!("/sbin/init -> {}", init_link.as_deref().unwrap_or(""));
    let init_program = init_link.is_none() && sys.exists("/sbin/init")?;
    let initdefault = inittab.lines().any(|l| l.contains(":initdefault:"));
    // Debian's openrc keeps sysvinit's inittab and makes its rcS script run `openrc sysinit`.
    let rcs = sys.read_text("/etc/init.d/rcS")?.unwrap_or_default();
    let starts_openrc = [&inittab, &rcs].iter().any(|t| {
        t.lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("openrc"))
    });
    let found = if is_link_to(&["systemd"]) {
        Some((&systemd::INIT, link()))
    } else if is_link_to(&["runit-init", "runit"]) {
        Some((&runit::INIT, link()))
    } else if is_link_to(&["openrc-init"]) || starts_openrc {
        Some((
            &openrc::INIT,
            "/etc/inittab or /etc/init.d/rcS starts openrc".into(),
        ))
    } else if is_link_to(&["busybox"]) {
        Some((&busybox::INIT, link()))
    } else if init_program && initdefault {
        // Before the runit and systemd probes: Debian keeps the systemd (and runit) packages
        // when sysvinit-core replaces systemd-sysv as /sbin/init.
        Some((
            &sysv::INIT,
            "/sbin/init is a program (sysvinit's), /etc/inittab has an initdefault entry".into(),
        ))
    } else if runit_stage {
        Some((&runit::INIT, "/etc/runit/1 (runit's stage 1) exists".into()))
    } else if let Some(p) = lib_systemd {
        Some((&systemd::INIT, format!("{p} exists")))
    } else if initdefault {
        // Before the busybox probe: sysvinit's `si::sysinit:` looks like busybox's entries, but
        // busybox has no runlevels and so no initdefault.
        Some((
            &sysv::INIT,
            "/etc/inittab has an initdefault entry (sysvinit)".into(),
        ))
    } else if busybox::has_sysinit(&inittab) {
        Some((
            &busybox::INIT,
            "/etc/inittab has ::sysinit: entries (busybox syntax)".into(),
        ))
    } else if runlevels {
        Some((&openrc::INIT, "/etc/runlevels exists".into()))
    } else if wants {
        Some((&systemd::INIT, "units are enabled in /etc/systemd/system".into()))
    } else if rc {
        Some((&sysv::INIT, "/etc/init.d and runlevel directories exist".into()))
    } else {
        None
    };
    found
        .map(|(init, why)| (init as &'static Init, why))
        .ok_or_else(|| {
            Error::failed(
                None,
                format!(
                    "cannot tell the init system of {}: probed /sbin/init ({}), /etc/runit/1, \
                     /lib/systemd/systemd, /usr/lib/systemd/systemd, /etc/inittab (::sysinit: or \
                     initdefault entries, openrc), /etc/init.d/rcS (openrc), /etc/runlevels, \
                     /etc/systemd/system/*.wants, /etc/init.d with rc?.d; choose one with --init {}",
                    sys.root().display(),
                    init_link.map_or("no link".to_owned(), |t| format!("-> {t}")),
                    INIT_NAMES.join("|")
                ),
            )
        })
}

/// The plan that installs osconf for `init`, the binary being `binary`, and the directories it
/// will create (recorded in the manifest, for uninstall). `boot_dir` is the target path of the
/// `aliyun_custom_image` directory when it is inside the root and install creates it.
pub fn plan_install(
    sys: &System,
    init: &Init,
    binary: Vec<u8>,
    boot_dir: Option<&str>,
) -> Result<Plan, Error> {
    let previous = match sys.read_text(MANIFEST)? {
        Some(text) => Some(Manifest::parse(&text)?),
        None => None,
    };
    if let Some(prev) = &previous
        && prev.init != init.name
    {
        return Err(Error::failed(
            None,
            format!(
                "osconf is installed for {} ({MANIFEST}); run osconf uninstall first",
                prev.init
            ),
        ));
    }
    let service = (init.files)(sys)?;
    let mut ops = vec![FileOp::Write {
        path: BINARY.to_owned(),
        contents: binary,
        mode: Mode::Exact(0o755),
        secret: false,
    }];
    ops.extend(service.ops);
    let mut manifest = Manifest {
        init: init.name.to_owned(),
        ..Manifest::default()
    };
    let mut saves = Vec::new();
    for op in &ops {
        let path = op.path();
        let before = match previous.as_ref().and_then(|m| m.before(path)) {
            Some(kept) => kept.clone(),
            None if service.shared.iter().any(|s| s == path) => Before::Edited,
            None => match (sys.link_target(path)?, sys.read_own(path)?) {
                (Some(target), _) => {
                    let target = target.to_string_lossy().into_owned();
                    if target.contains('\n') {
                        return Err(Error::failed(
                            None,
                            format!("{path} is a link whose target holds a newline; refusing"),
                        ));
                    }
                    Before::Link(target)
                }
                (None, Some(bytes)) => {
                    saves.push(FileOp::Write {
                        path: saved_copy(path),
                        contents: bytes,
                        mode: Mode::Exact(0o600),
                        secret: false,
                    });
                    Before::File(sys.mode(path)?.unwrap_or(0o644))
                }
                (None, None) if sys.exists(path)? => {
                    return Err(Error::failed(
                        None,
                        format!("{path} exists and is not a file or a link; refusing to replace it"),
                    ));
                }
                (None, None) => Before::Absent,
            },
        };
        manifest.paths.push((path.to_owned(), before));
    }
    let mut dirs: Vec<String> = previous.as_ref().map(|m| m.dirs.clone()).unwrap_or_default();
    let mut new_dirs = Vec::new();
    for path in ops.iter().chain(&saves).map(FileOp::path).chain([MANIFEST]) {
        for dir in ancestors(path) {
            if !sys.exists(&dir)? && !dirs.contains(&dir) && !new_dirs.contains(&dir) {
                new_dirs.push(dir);
            }
        }
    }
    dirs.extend(new_dirs);
    manifest.dirs = dirs;
    manifest.config_dir = match (&previous, boot_dir) {
        (Some(prev), _) if prev.config_dir.is_some() => prev.config_dir.clone(),
        (_, dir) => dir.map(str::to_owned),
    };
    ops.extend(saves);
    ops.push(FileOp::write(MANIFEST, manifest.render()));
    let mut notes = service.notes;
    let mut kept = Vec::with_capacity(ops.len());
    for op in ops {
        let unchanged = changes_nothing(&op, sys)?;
        if unchanged && op.path() == BINARY {
            notes.push(format!("{BINARY} is already this osconf"));
        }
        if !unchanged {
            kept.push(op);
        }
    }
    let ops = kept;
    Ok(Plan {
        stack: format!("install for {}", init.name),
        ops,
        live: Vec::new(),
        notes,
    })
}

/// The plan that takes away what the manifest says install added, putting back what was there,
/// and the directories to remove afterwards when empty, innermost first.
pub fn plan_uninstall(sys: &System, manifest: &Manifest) -> Result<(Plan, Vec<String>), Error> {
    let init = find(&manifest.init)
        .ok_or_else(|| Error::failed(None, format!("{MANIFEST}: unknown init {:?}", manifest.init)))?;
    let mut ops = Vec::new();
    let mut copies = Vec::new();
    for (path, before) in &manifest.paths {
        if path != BINARY && !init.owns(path) {
            return Err(Error::failed(
                None,
                format!(
                    "{MANIFEST}: {path} is not a file osconf install writes for {}; refusing to touch it",
                    init.name
                ),
            ));
        }
        ops.push(match before {
            Before::Absent => FileOp::Remove { path: path.clone() },
            Before::Link(target) => FileOp::Symlink {
                path: path.clone(),
                target: target.clone(),
            },
            Before::File(mode) => {
                let copy = saved_copy(path);
                let contents = sys.read_own(&copy)?.ok_or_else(|| {
                    Error::failed(None, format!("{copy}: the original of {path} is missing"))
                })?;
                copies.push(FileOp::Remove { path: copy });
                FileOp::Write {
                    path: path.clone(),
                    contents,
                    mode: Mode::Exact(*mode),
                    secret: false,
                }
            }
            Before::Edited => {
                let text = sys.read_text(path)?.unwrap_or_default();
                FileOp::write(path, replace_block_with(&text, INSTALL_MARKERS, ""))
            }
        });
    }
    ops.extend(copies);
    ops.push(FileOp::Remove {
        path: MANIFEST.to_owned(),
    });
    let mut kept = Vec::with_capacity(ops.len());
    for op in ops {
        if !changes_nothing(&op, sys)? {
            kept.push(op);
        }
    }
    let ops = kept;
    let mut dirs = manifest.dirs.clone();
    for dir in &dirs {
        let holds_ours = manifest.paths.iter().any(|(p, _)| is_ancestor(dir, p))
            || is_ancestor(dir, MANIFEST)
            || dir == SAVED
            || is_ancestor(SAVED, dir);
        if !holds_ours {
            return Err(Error::failed(
                None,
                format!("{MANIFEST}: directory {dir} holds nothing install wrote; refusing"),
            ));
        }
    }
    dirs.extend(manifest.config_dir.iter().cloned());
    dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    let plan = Plan {
        stack: format!("uninstall for {}", init.name),
        ops,
        live: Vec::new(),
        notes: Vec::new(),
    };
    Ok((plan, dirs))
}

fn saved_copy(path: &str) -> String {
    format!("{SAVED}{path}")
}

/// `/a/b/c` → `/a`, `/a/b`, outermost first.
fn ancestors(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = path[at + 1..].find('/') {
        at += i + 1;
        out.push(path[..at].to_owned());
    }
    out
}

fn is_ancestor(dir: &str, path: &str) -> bool {
    path.starts_with(&format!("{dir}/"))
}

fn changes_nothing(op: &FileOp, sys: &System) -> crate::system::Result<bool> {
    Ok(match op {
        FileOp::Write {
            path, contents, mode, ..
        } => {
            sys.link_target(path)?.is_none()
                && sys.read_own(path)?.as_deref() == Some(contents.as_slice())
                && match mode {
                    Mode::Exact(m) => sys.mode(path)? == Some(*m),
                    Mode::Default(_) | Mode::SameAs(_) => true,
                }
        }
        FileOp::Symlink { path, target } => sys
            .link_target(path)?
            .is_some_and(|t| t.as_os_str() == target.as_str()),
        FileOp::Remove { path } => !sys.exists(path)?,
    })
}

/// The shell words, shared by the scripts, that run osconf unless the kernel command line says
/// `osconf=off`, and report a failure without failing the boot.
fn shell_run(indent: &str) -> String {
    format!(
        "{indent}case \" $(cat /proc/cmdline 2>/dev/null) \" in\n\
         {indent}*\" {OFF_SWITCH} \"*) echo \"osconf: {OFF_SWITCH} on the kernel command line; not run\" >&2 ;;\n\
         {indent}*) {COMMAND} || echo \"osconf: exit status $?; the boot goes on\" >&2 ;;\n\
         {indent}esac\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::common::testing::fake_root;

    /// Whatever a target looks like, every path an init's `files` gives is one its `paths` own,
    /// and nothing else is.
    #[test]
    fn each_init_owns_what_it_writes_and_nothing_else() {
        let inittab = (
            "/etc/inittab",
            "::sysinit:/etc/init.d/rcS\n::sysinit:/sbin/ifup -a\n",
        );
        let targets: &[&[(&str, &str)]] = &[
            &[inittab],
            &[inittab, ("/etc/rcS.d/S07networking", "")],
            &[
                inittab,
                ("/etc/rc.d/rc3.d/S10network", ""),
                ("/etc/rc.d/rc5.d/S10network", ""),
            ],
            &[inittab, ("/etc/rc3.d/S01network", "")],
            &[inittab, ("/etc/runit/boot-run/x", "")],
            &[
                inittab,
                ("/etc/runit/1", "for s in /etc/rcS.d/S*; do $s start; done\n"),
                ("/etc/rcS.d/S07networking", ""),
            ],
        ];
        for files in targets {
            let root = fake_root(files, &[]);
            let sys = System::probe(root.path()).unwrap();
            for init in INITS {
                for op in (init.files)(&sys).unwrap().ops {
                    assert!(init.owns(op.path()), "{}: {}", init.name, op.path());
                }
            }
        }
        for path in [
            "/etc/shadow",
            "/etc/rc3.d/S09osconfx",
            "/etc/rc3.d/K09osconf",
            "/etc/rc3.d/S9osconf",
            "/etc/rc1.d/S09osconf",
            "/etc/rc3.d/../../shadow",
            "/etc/runit/other/06-osconf.sh",
            "/etc/systemd/system/osconf.service/x",
            BINARY,
        ] {
            assert!(INITS.iter().all(|i| !i.owns(path)), "{path}");
        }
    }

    #[test]
    fn ancestors_outermost_first() {
        assert_eq!(ancestors("/a/b/c"), ["/a", "/a/b"]);
        assert_eq!(ancestors("/a"), Vec::<String>::new());
    }

    #[test]
    fn detection_by_sbin_init_then_layout() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (
                &[("/etc/init.d/x", "")],
                &[("/sbin/init", "/lib/systemd/systemd")],
                "systemd",
            ),
            (
                &[("/etc/inittab", "::sysinit:/etc/init.d/rcS\n")],
                &[("/sbin/init", "/bin/busybox")],
                "busybox",
            ),
            (
                &[("/etc/inittab", "::sysinit:/sbin/openrc sysinit\n")],
                &[("/sbin/init", "/bin/busybox")],
                "openrc",
            ),
            (&[], &[("/sbin/init", "runit-init")], "runit"),
            (&[("/etc/runit/1", "")], &[], "runit"),
            (
                &[("/sbin/init", "elf"), ("/etc/inittab", "id:2:initdefault:\n")],
                &[],
                "sysv",
            ),
            (&[("/etc/runlevels/boot/x", "")], &[], "openrc"),
            // Debian after `apt install sysvinit-core`: systemd's and runit's files stay.
            (
                &[
                    ("/sbin/init", "elf"),
                    ("/etc/inittab", "id:2:initdefault:\n"),
                    ("/lib/systemd/systemd", "elf"),
                    ("/etc/runit/1", ""),
                ],
                &[],
                "sysv",
            ),
            (
                &[
                    ("/etc/inittab", "id:2:initdefault:\nsi::sysinit:/etc/init.d/rcS\n"),
                    (
                        "/etc/init.d/rcS",
                        "#!/bin/sh\nset -e\nexec /sbin/openrc sysinit\n",
                    ),
                    ("/etc/rcS.d/S01x", ""),
                ],
                &[],
                "openrc",
            ),
            (
                &[("/etc/systemd/system/multi-user.target.wants/a.service", "")],
                &[],
                "systemd",
            ),
            (&[("/etc/init.d/x", ""), ("/etc/rcS.d/S01x", "")], &[], "sysv"),
        ];
        for (files, links, want) in cases {
            let root = fake_root(files, links);
            let (init, why) = detect(&System::probe(root.path()).unwrap()).unwrap();
            assert_eq!(init.name, *want, "{files:?}: {why}");
        }
        let empty = fake_root(&[("/etc/hostname", "x\n")], &[]);
        let err = detect(&System::probe(empty.path()).unwrap()).err().unwrap();
        assert!(
            err.message.contains("probed /sbin/init (no link)") && err.message.contains("--init"),
            "{err}"
        );
    }
}
