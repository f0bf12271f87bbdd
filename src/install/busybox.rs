//! busybox init: a `::sysinit:` entry in `/etc/inittab`, in osconf's marked block, inserted before
//! the first entry that starts the network (ifup, udhcpc, a network script) — or, when no entry
//! does, after the last sysinit entry, once the file systems are mounted. busybox init runs sysinit
//! entries one after the other and goes on whatever their exit status. Buildroot's layout instead:
//! its `/etc/init.d/rcS` starts `/etc/init.d/S??*` in name order (the network from `S40network`),
//! after inittab mounted the file systems; there osconf is one of them, `S39osconf`, numbered just
//! below the network script as a Buildroot package would install it.

use super::{COMMAND, INSTALL_MARKERS, Init, OFF_SWITCH, Service, shell_run, sysv};
use crate::error::Error;
use crate::plan::{FileOp, Mode};
use crate::render::common::blocks::{replace_block_with, split_block};
use crate::system::System;

pub const INIT: Init = Init {
    name: "busybox",
    systems: "busybox init reading /etc/inittab (embedded and minimal images)",
    files,
    paths: &[INITTAB, "/etc/init.d/S[0-9][0-9]osconf", "/etc/init.d/S00Aosconf"],
};

const INITTAB: &str = "/etc/inittab";
/// Buildroot's rcS, which starts the numbered scripts of /etc/init.d.
const RCS: &str = "/etc/init.d/rcS";
/// Words in an entry's command that mean it brings the network up.
const NETWORK_WORDS: [&str; 5] = ["ifup", "udhcpc", "dhcp", "network", "ifconfig"];

/// True for a busybox-style inittab (`::sysinit:…` or `tty1::sysinit:…`: no runlevels field).
pub fn has_sysinit(inittab: &str) -> bool {
    inittab
        .lines()
        .filter_map(entry)
        .any(|(action, _)| action == "sysinit")
}

/// `(action, command)` of an inittab entry `id::action:command` (busybox ignores the runlevels).
fn entry(line: &str) -> Option<(&str, &str)> {
    if line.trim_start().starts_with('#') {
        return None;
    }
    let mut fields = line.splitn(4, ':');
    let (_id, _runlevels, action, command) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
    Some((action, command))
}

fn the_entry() -> String {
    format!(
        "::sysinit:/bin/sh -c 'grep -qw {OFF_SWITCH} /proc/cmdline || {COMMAND} || \
         echo \"osconf: exit status $?; the boot goes on\" >&2'\n"
    )
}

fn files(sys: &System) -> Result<Service, Error> {
    if sys.read_text(RCS)?.is_some_and(|t| {
        t.lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("/etc/init.d/S??"))
    }) {
        return Ok(numbered_script(sys)?);
    }
    let text = sys.read_text(INITTAB)?.ok_or_else(|| {
        Error::failed(
            None,
            format!(
                "{INITTAB} is missing: busybox init then uses its built-in table, which osconf \
                 cannot extend; write one (e.g. ::sysinit:/etc/init.d/rcS) and install again"
            ),
        )
    })?;
    let (new, note) = if split_block(&text, INSTALL_MARKERS).is_some() {
        let new = replace_block_with(&text, INSTALL_MARKERS, &the_entry());
        (
            new,
            "osconf's block in /etc/inittab replaced where it was".to_owned(),
        )
    } else {
        insert(&text)
    };
    Ok(Service {
        ops: vec![FileOp::write(INITTAB, new)],
        shared: vec![INITTAB.to_owned()],
        notes: vec![note],
    })
}

/// Buildroot's way: `/etc/init.d/SNNosconf`, started by rcS with `start` just before the network.
fn numbered_script(sys: &System) -> crate::system::Result<Service> {
    let (link, why) = sysv::start_link(&sys.list("/etc/init.d")?);
    let path = format!("/etc/init.d/{link}");
    let text = format!(
        "#!/bin/sh\n\
         # Installed by osconf install; osconf uninstall removes it. {RCS} starts it with `start`\n\
         # before the network; a failure is reported and the boot goes on; osconf=off on the kernel\n\
         # command line skips it.\n\
         case \"$1\" in\n\
         start)\n{run};;\n\
         esac\n\
         exit 0\n",
        run = shell_run("    ")
    );
    Ok(Service {
        notes: vec![format!(
            "{path}: {RCS} starts /etc/init.d/S??* in order (Buildroot): {why}"
        )],
        ops: vec![FileOp::Write {
            path,
            contents: text.into_bytes(),
            mode: Mode::Exact(0o755),
            secret: false,
        }],
        shared: Vec::new(),
    })
}

/// `text` with osconf's block inserted at its place, and where that is.
fn insert(text: &str) -> (String, String) {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let network = lines
        .iter()
        .position(|l| entry(l).is_some_and(|(_, cmd)| NETWORK_WORDS.iter().any(|w| cmd.contains(w))));
    let last_sysinit = lines
        .iter()
        .rposition(|l| entry(l).is_some_and(|(action, _)| action == "sysinit"));
    let (at, note) = match (network, last_sysinit) {
        (Some(i), _) => (
            i,
            format!("before {:?}, which starts the network", lines[i].trim_end()),
        ),
        (None, Some(i)) => (
            i + 1,
            format!(
                "after the last sysinit entry {:?}; no entry starts the network",
                lines[i].trim_end()
            ),
        ),
        (None, None) => (0, "at the top: no sysinit entry found".to_owned()),
    };
    let mut out: String = lines[..at].concat();
    if !out.is_empty() && !out.ends_with('\n') {
        // A last line without its newline: the block must start on a line of its own.
        out.push('\n');
    }
    out.push_str(INSTALL_MARKERS.begin);
    out.push_str(&the_entry());
    out.push_str(INSTALL_MARKERS.end);
    out.push_str(&lines[at..].concat());
    (out, format!("/etc/inittab: osconf's entry {note}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INITTAB_NET: &str =
        "::sysinit:/bin/mount -a\n::sysinit:/sbin/ifup -a\n::respawn:/sbin/getty 115200 ttyS0\n";

    #[test]
    fn inserted_before_the_network_and_removed_byte_for_byte() {
        let (new, note) = insert(INITTAB_NET);
        let lines: Vec<&str> = new.lines().collect();
        assert_eq!(lines[0], "::sysinit:/bin/mount -a");
        assert!(
            lines[2].starts_with("::sysinit:/bin/sh -c 'grep -qw osconf=off"),
            "{new}"
        );
        assert_eq!(lines[4], "::sysinit:/sbin/ifup -a");
        assert!(note.contains("ifup"), "{note}");
        assert_eq!(replace_block_with(&new, INSTALL_MARKERS, ""), INITTAB_NET);
    }

    /// Buildroot's rcS, as its skeleton ships it (the loop, shortened).
    const BUILDROOT_RCS: &str = "#!/bin/sh\n# Start all init scripts in /etc/init.d\n\
        for i in /etc/init.d/S??* ;do\n     [ ! -f \"$i\" ] && continue\n     $i start\ndone\n";

    #[test]
    fn buildroot_numbered_script_just_below_the_network() {
        use crate::render::common::testing::fake_root;
        let root = fake_root(
            &[
                (
                    "/etc/inittab",
                    "::sysinit:/bin/mount -a\n::sysinit:/etc/init.d/rcS\n",
                ),
                ("/etc/init.d/rcS", BUILDROOT_RCS),
                ("/etc/init.d/S01syslogd", ""),
                ("/etc/init.d/S40network", ""),
            ],
            &[],
        );
        let service = files(&System::probe(root.path()).unwrap()).unwrap();
        assert_eq!(service.ops.len(), 1);
        let FileOp::Write {
            path, contents, mode, ..
        } = &service.ops[0]
        else {
            panic!()
        };
        assert_eq!(path, "/etc/init.d/S39osconf");
        assert!(INIT.owns(path));
        assert_eq!(*mode, Mode::Exact(0o755));
        let text = String::from_utf8_lossy(contents);
        assert!(
            text.contains("start)\n    case") && text.contains(COMMAND),
            "{text}"
        );
        assert!(service.shared.is_empty());
    }

    #[test]
    fn without_a_network_entry_after_the_last_sysinit() {
        let text = "::sysinit:/etc/init.d/rcS\n::askfirst:-/bin/sh\n";
        let (new, _) = insert(text);
        assert!(
            new.starts_with("::sysinit:/etc/init.d/rcS\n# BEGIN osconf install"),
            "{new}"
        );
        assert!(has_sysinit(text));
    }
}
