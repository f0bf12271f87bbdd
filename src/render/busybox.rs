//! `busybox`: `/etc/network/interfaces` as busybox's `ifup` and Alpine's ifupdown-ng read it.
//!
//! Busybox's `ifup` takes no glob in `source` (1.35 fails on `interfaces.d/*`) and older ones have no
//! `source` at all, so osconf's stanzas go into /etc/network/interfaces itself, between its header line
//! and an end line, replaced as a block at each apply. Every other line of the file is kept; other
//! stanzas for the same NICs are commented out (busybox refuses an interface declared `auto` twice).

use super::common::blocks::{Markers, join_block, split_block};
use super::common::{self, HEADER, dns};
use super::ifupdown::{self, INTERFACES, LOOPBACK};
use super::{Input, Rendered, Service, Stack};
use crate::plan::{FileOp, Run};
use crate::system::{self, System};

pub const STACK: Stack = Stack {
    name: "busybox",
    systems: "Alpine (ifupdown-ng or busybox ifup), embedded systems run by busybox",
    detect,
    network,
    host,
    // ifupdown-ng's and busybox's state file (busybox's /var/run is /run on these systems).
    services: &[Service {
        name: "networking",
        ran: Some("/run/ifstate"),
        per_nic: None,
    }],
    activate,
    network_files: &[INTERFACES],
};

/// osconf's block: from [`HEADER`] to its end line.
const MARKERS: Markers = Markers {
    begin: HEADER,
    end: "# End of osconf's stanzas.\n",
};

fn detect(sys: &System) -> system::Result<Option<String>> {
    if sys.os.id == "alpine" {
        return Ok(Some("ID=alpine in os-release".into()));
    }
    if !sys.exists("/bin/busybox")? {
        return Ok(None);
    }
    // Busybox-only: `ifup` (or init itself) is busybox. /bin/busybox alone is not enough: Debian and
    // Ubuntu install it beside their own network stacks.
    for p in ["/sbin/ifup", "/usr/sbin/ifup", "/bin/ifup", "/sbin/init"] {
        if sys.link_target(p)?.is_some_and(|t| t.ends_with("busybox")) {
            return Ok(Some(format!("{p} is busybox")));
        }
    }
    Ok(None)
}

fn network(input: &Input) -> system::Result<Rendered> {
    let sys = input.sys;
    let mut out = Rendered::default();
    let old = sys.read_text(INTERFACES)?;
    let text = old.clone().unwrap_or_else(|| LOOPBACK.to_owned());
    let split = split_block(&text, MARKERS);
    let (before, after) = split.unwrap_or((&text, ""));
    let names = ifupdown::superseded_names(input);
    let instead = "is configured in osconf's stanzas of this file";
    let mut disabled = Vec::new();
    let mut neutralised = |part: &str| match ifupdown::neutralise(part, &names, instead) {
        Some((new, names)) => {
            for name in names {
                if !disabled.contains(&name) {
                    disabled.push(name);
                }
            }
            new
        }
        None => part.to_owned(),
    };
    let before = neutralised(before);
    let after = neutralised(after);
    let block = ifupdown::stanzas(input, &[]);
    let new = join_block(&before, MARKERS, &block, &after, split.is_none());
    if !disabled.is_empty() {
        out.notes.push(ifupdown::disabled_note(&disabled, INTERFACES));
    }
    if old.as_ref() != Some(&new) {
        out.ops.push(FileOp::write(INTERFACES, new));
    }
    out.notes.extend(ifupdown::by_name_note(input, "busybox ifup"));
    Ok(out)
}

/// Both ifups configured the NICs already: `ifdown -f` takes them down whatever the state file
/// says, then `ifup` reads the new stanzas.
fn activate(input: &Input) -> Vec<Run> {
    common::activate::down_up(input, "networking", &["ifdown", "-f"], &["ifup"])
}

fn host(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    out.ops.extend(common::hostname_file(input, "/etc/hostname"));
    out.add(dns::render(&input.config.nameservers, input.sys)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::common::testing::fake_root;

    #[test]
    fn detects_alpine_and_busybox_only_systems() {
        let alpine = fake_root(&[("/etc/os-release", "ID=alpine\n")], &[]);
        assert!(detect(&System::probe(alpine.path()).unwrap()).unwrap().is_some());
        let embedded = fake_root(&[("/bin/busybox", "")], &[("/sbin/ifup", "/bin/busybox")]);
        assert_eq!(
            detect(&System::probe(embedded.path()).unwrap()).unwrap().unwrap(),
            "/sbin/ifup is busybox"
        );
        // Debian or Ubuntu with busybox installed beside their own stack.
        let ubuntu = fake_root(&[("/etc/os-release", "ID=ubuntu\n"), ("/bin/busybox", "")], &[]);
        assert_eq!(detect(&System::probe(ubuntu.path()).unwrap()).unwrap(), None);
    }

    #[test]
    fn block_is_found_between_header_and_end() {
        let end = MARKERS.end;
        let text = format!("auto lo\n\n{HEADER}\nauto eth0\n{end}auto eth1\n");
        assert_eq!(split_block(&text, MARKERS), Some(("auto lo\n\n", "auto eth1\n")));
        // Without its end line a header is not a block: the text is kept whole.
        let open = format!("auto lo\n{HEADER}auto eth0\n");
        assert_eq!(split_block(&open, MARKERS), None);
    }
}
