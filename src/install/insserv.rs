//! What insserv writes for osconf into Debian's makefile-style boot order: `/etc/init.d/.depend.boot`
//! (or `.depend.start` for runlevels 2–5), read by `startpar -M` when `/lib/init/rc` boots with
//! `CONCURRENCY=makefile`. startpar starts only the targets that file names, in its dependency
//! order, so a start link alone never runs osconf there.
//!
//! osconf does not run insserv: on an image tree (`--root`) the root's own insserv would have to
//! run in a chroot — code from a hostile image executed as root on the builder, and only where the
//! image's architecture runs — and the host's insserv with `-p` still writes its `.depend.*` files
//! into the host's `/etc/init.d`. Instead osconf adds, in its marked block, exactly the lines
//! insserv would add for its LSB header (`osconf: <$local_fs's scripts>`, `networking: osconf`
//! for each network script listed, osconf among the targets): startpar reads repeated `TARGETS =`
//! and dependency lines cumulatively and skips `#` lines, uninstall removes the block byte for
//! byte, and the next insserv run (any `update-rc.d`) regenerates the file from the header alone,
//! with the same order (tests/real_install.rs holds both to that).

use crate::error::Error;
use crate::system::System;

/// The file for the boot (runlevel S) and for the multi-user runlevels.
pub const DEPEND_BOOT: &str = "/etc/init.d/.depend.boot";
pub const DEPEND_START: &str = "/etc/init.d/.depend.start";
const DEPEND_STOP: &str = "/etc/init.d/.depend.stop";
/// `/lib/init/rc` boots one script after the other, in link order, when this exists.
const LEGACY: &str = "/etc/init.d/.legacy-bootordering";
/// Where insserv's facilities are defined.
const CONF: &str = "/etc/insserv.conf";
const CONF_DIR: &str = "/etc/insserv.conf.d";
/// What Debian's insserv.conf gives `$local_fs`, for a root without the file.
const LOCAL_FS_DEFAULT: [&str; 4] = ["mountall", "mountall-bootclean", "mountoverflowtmp", "umountfs"];
/// The most targets whose headers are read: a Debian system lists a few dozen.
const MAX_TARGETS: usize = 1024;

/// True when `/lib/init/rc` would boot this root makefile-style: the test it makes itself (the
/// three `.depend.*` files not empty, no `.legacy-bootordering`).
pub fn makefile_boot(sys: &System) -> crate::system::Result<bool> {
    for f in [DEPEND_BOOT, DEPEND_START, DEPEND_STOP] {
        if sys.read(f)?.is_none_or(|b| b.is_empty()) {
            return Ok(false);
        }
    }
    Ok(!sys.exists(LEGACY)?)
}

/// The lines of osconf's block in `depend` (a `.depend.*` file's text without that block): osconf
/// as a target after the scripts providing `$local_fs`, and each of `network` (script names)
/// listed there after osconf. `None` when insserv already lists osconf (it ran since install).
pub fn block(sys: &System, depend: &str, network: &[&str]) -> Result<Option<String>, Error> {
    let targets = targets(depend);
    if targets.contains(&"osconf") {
        return Ok(None);
    }
    if targets.len() > MAX_TARGETS {
        return Err(Error::failed(
            None,
            format!("{DEPEND_BOOT}: more than {MAX_TARGETS} targets; refusing to read their headers"),
        ));
    }
    let local_fs = local_fs(sys)?;
    let mut after = Vec::new();
    // A target is a script's file name: one with a slash is none.
    for t in targets.iter().filter(|t| !t.contains('/')) {
        let script = sys.read_text(&format!("/etc/init.d/{t}"))?.unwrap_or_default();
        if provides(&script).iter().any(|p| local_fs.iter().any(|l| l == p)) {
            after.push(*t);
        }
    }
    let mut out = format!("TARGETS = osconf\nosconf: {}\n", after.join(" "));
    for t in targets.iter().filter(|t| network.contains(t)) {
        out.push_str(&format!("{t}: osconf\n"));
    }
    Ok(Some(out))
}

/// The names of every `TARGETS =` line, in order, without repeats (startpar's reading).
fn targets(depend: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for line in depend.lines() {
        if let Some(rest) = line.trim_start().strip_prefix("TARGETS =") {
            for t in rest.split_whitespace() {
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
    }
    out
}

/// The names insserv's configuration gives the `$local_fs` facility (`+name`: optional, as every
/// Debian entry is); Debian's own list when no file defines it.
pub fn local_fs(sys: &System) -> Result<Vec<String>, Error> {
    let mut files = vec![CONF.to_owned()];
    files.extend(sys.list(CONF_DIR)?.into_iter().map(|n| format!("{CONF_DIR}/{n}")));
    let mut names = Vec::new();
    for f in files {
        let text = sys.read_text(&f)?.unwrap_or_default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() == Some("$local_fs") {
                names.extend(words.map(|w| w.trim_start_matches('+').to_owned()));
            }
        }
    }
    if names.is_empty() {
        names = LOCAL_FS_DEFAULT.map(str::to_owned).to_vec();
    }
    Ok(names)
}

/// The names of an init script's LSB `# Provides:` line.
fn provides(script: &str) -> Vec<&str> {
    script
        .lines()
        .skip_while(|l| l.trim_end() != "### BEGIN INIT INFO")
        .take_while(|l| l.trim_end() != "### END INIT INFO")
        .find_map(|l| l.strip_prefix("# Provides:"))
        .map(|rest| rest.split_whitespace().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::common::testing::fake_root;

    /// Debian 12's .depend.boot after debootstrap with sysvinit-core (insserv wrote it).
    const BOOKWORM: &str = "\
TARGETS = hwclock.sh mountkernfs.sh mountall.sh mountall-bootclean.sh networking urandom mountnfs.sh
INTERACTIVE = checkroot.sh checkfs.sh
mountall-bootclean.sh: mountall.sh
networking: mountkernfs.sh mountall.sh mountall-bootclean.sh urandom
";

    fn header(provides: &str) -> String {
        format!("#!/bin/sh\n### BEGIN INIT INFO\n# Provides:          {provides}\n### END INIT INFO\n")
    }

    #[test]
    fn osconf_after_local_fs_before_the_network_scripts_listed() {
        let mountall = header("mountall");
        let clean = header("mountall-bootclean");
        let root = fake_root(
            &[
                (
                    "/etc/insserv.conf",
                    "$local_fs\t+mountall +mountall-bootclean +umountfs\n$network +networking\n",
                ),
                ("/etc/init.d/mountall.sh", &mountall),
                ("/etc/init.d/mountall-bootclean.sh", &clean),
                ("/etc/init.d/networking", &header("networking ifupdown")),
            ],
            &[],
        );
        let sys = System::probe(root.path()).unwrap();
        let got = block(&sys, BOOKWORM, &["networking", "network"])
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            "TARGETS = osconf\nosconf: mountall.sh mountall-bootclean.sh\nnetworking: osconf\n"
        );
        // insserv ran since (an update-rc.d): osconf is listed, nothing to add.
        let listed = format!("{BOOKWORM}TARGETS = osconf\n");
        assert_eq!(block(&sys, &listed, &["networking"]).unwrap(), None);
    }

    #[test]
    fn local_fs_defaults_to_debians_and_headers_outside_the_block_are_ignored() {
        let fake = "#!/bin/sh\n# Provides: mountall\n";
        let root = fake_root(&[("/etc/init.d/mountall.sh", fake)], &[]);
        let sys = System::probe(root.path()).unwrap();
        assert_eq!(local_fs(&sys).unwrap(), LOCAL_FS_DEFAULT);
        let got = block(&sys, "TARGETS = mountall.sh\n", &[]).unwrap().unwrap();
        assert_eq!(got, "TARGETS = osconf\nosconf: \n");
    }

    #[test]
    fn makefile_boot_as_lib_init_rc_tests_it() {
        let full = [
            (DEPEND_BOOT, "TARGETS = a\n"),
            (DEPEND_START, "TARGETS = b\n"),
            (DEPEND_STOP, "TARGETS = c\n"),
        ];
        let yes = fake_root(&full, &[]);
        assert!(makefile_boot(&System::probe(yes.path()).unwrap()).unwrap());
        let legacy = fake_root(&[full[0], full[1], full[2], (LEGACY, "")], &[]);
        assert!(!makefile_boot(&System::probe(legacy.path()).unwrap()).unwrap());
        let empty = fake_root(&[full[0], full[1], (DEPEND_STOP, "")], &[]);
        assert!(!makefile_boot(&System::probe(empty.path()).unwrap()).unwrap());
    }
}
