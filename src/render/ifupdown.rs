//! `ifupdown`: Debian's ifupdown (`/etc/network/interfaces` plus `interfaces.d/`), on Debian <= 11,
//! Ubuntu <= 16.04 and Devuan. Also home of the interfaces(5) stanza writer and of the neutraliser that
//! the `busybox` stack shares.
//!
//! osconf owns only `/etc/network/interfaces.d/50-osconf`. In the files it does not own it never
//! deletes a line: another stanza for the same NIC is commented out, and a missing `source` line for
//! its file is added. ifupdown-ng and ifupdown2 read the same files as Debian's ifupdown but for
//! `source` lines (`reader.rs`): detection names which is installed, and the lines follow it.

mod reader;

use std::fmt::Write as _;
use std::net::IpAddr;

use super::common::dns::{self, ResolvOwner};
use super::common::{self, HEADER};
use super::{Input, Rendered, Service, Stack};
use crate::plan::{FileOp, Run};
use crate::system::{self, System};
use reader::Reader;

pub const STACK: Stack = Stack {
    name: "ifupdown",
    systems: "Debian <= 11, Ubuntu <= 16.04, Devuan, any system run by ifupdown",
    detect,
    network,
    host,
    // The trace a run of `ifup -a` leaves under inits that keep no service state: Debian's ifupdown's
    // state file, ifupdown-ng's, and ifupdown2's lock (its state lies in /var/tmp, kept across boots).
    services: &[
        Service {
            name: "networking",
            ran: Some("/run/network/ifstate"),
            per_nic: None,
        },
        Service {
            name: "networking",
            ran: Some("/run/ifstate"),
            per_nic: None,
        },
        Service {
            name: "networking",
            ran: Some("/run/network/ifstatelock"),
            per_nic: None,
        },
    ],
    activate,
    network_files: &[INTERFACES, "/etc/network/interfaces.d/"],
};

pub(super) const INTERFACES: &str = "/etc/network/interfaces";
const DIR: &str = "/etc/network/interfaces.d";
/// A name `source-directory` accepts too (only letters, digits, `_` and `-`).
const FILE: &str = "/etc/network/interfaces.d/50-osconf";

/// What a new interfaces file starts with: the loopback stanza every ifupdown system has.
pub(super) const LOOPBACK: &str = "auto lo\niface lo inet loopback\n";

fn detect(sys: &System) -> system::Result<Option<String>> {
    if !sys.exists(INTERFACES)? || sys.systemd_unit_enabled("systemd-networkd.service")? {
        return Ok(None);
    }
    let why = if sys.systemd_unit_enabled("networking.service")? {
        "networking.service is enabled".to_owned()
    } else {
        let Some(link) = sys.init_script_link("networking")? else {
            return Ok(None);
        };
        format!("{link} starts networking")
    };
    let read_by = match Reader::find(sys)? {
        (reader, Some(path)) => format!("; read by {} ({path})", reader.name()),
        (_, None) => String::new(),
    };
    Ok(Some(format!("{why} and {INTERFACES} exists{read_by}")))
}

/// True when Debian's resolvconf owns resolv.conf: it reads the servers from the stanzas'
/// `dns-nameservers`, which are inert elsewhere.
fn resolvconf(sys: &System) -> system::Result<bool> {
    Ok(dns::resolv_owner(sys)? == ResolvOwner::Resolvconf)
}

fn network(input: &Input) -> system::Result<Rendered> {
    let (config, sys) = (input.config, input.sys);
    let mut out = Rendered::default();
    let servers: &[IpAddr] = if resolvconf(sys)? {
        &config.nameservers
    } else {
        &[]
    };
    let text = format!("{HEADER}{}", stanzas(input, servers));
    out.ops.push(FileOp::write(FILE, text));
    let stale = common::stale_own_files(sys, DIR, &out.ops)?;
    out.ops.extend(stale);

    let names = superseded_names(input);
    let instead = format!("is configured in {FILE}");
    let old = sys.read_text(INTERFACES)?;
    let mut text = old.clone().unwrap_or_else(|| LOOPBACK.to_owned());
    if let Some((new, disabled)) = neutralise(&text, &names, &instead) {
        out.notes.push(disabled_note(&disabled, INTERFACES));
        text = new;
    }
    let (reader, _) = Reader::find(sys)?;
    if let Some((new, lines)) = reader::disable_unreadable(&text, reader) {
        out.notes.push(format!(
            "{INTERFACES}: commented out `{}`: {} cannot read it and would read no stanza at all",
            lines.join("`, `"),
            reader.name()
        ));
        text = new;
    }
    if !sources_file(&text, reader) {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "\n# Added by osconf: the configuration from os.conf.\nsource {FILE}\n"
        ));
        out.notes.push(format!(
            "{INTERFACES} did not read {FILE}: a `source` line was added"
        ));
    }
    if old.as_ref() != Some(&text) {
        out.ops.push(FileOp::write(INTERFACES, text));
    }
    for name in sys.list(DIR)? {
        let path = format!("{DIR}/{name}");
        let Some(other) = sys.read_text(&path)?.filter(|t| !t.starts_with(HEADER)) else {
            continue;
        };
        if let Some((new, disabled)) = neutralise(&other, &names, &instead) {
            out.notes.push(disabled_note(&disabled, &path));
            out.ops.push(FileOp::write(&path, new));
        }
    }

    out.notes.extend(by_name_note(input, "ifupdown"));
    Ok(out)
}

fn host(input: &Input) -> system::Result<Rendered> {
    let (config, sys) = (input.config, input.sys);
    let mut out = Rendered::default();
    out.ops.extend(common::hostname_file(input, "/etc/hostname"));
    match (resolvconf(sys)?, config.nics.is_empty()) {
        (true, false) if !config.nameservers.is_empty() => out.notes.push(format!(
            "DNS: /etc/resolv.conf is managed by resolvconf; servers go to dns-nameservers in {FILE}"
        )),
        (true, true) => out.add(dns::without_nic(&config.nameservers, sys)?),
        _ => out.add(dns::render(&config.nameservers, sys)?),
    }
    Ok(out)
}

/// Every NIC's stanza as both Debian's ifupdown and busybox's `ifup` read them: `address` with
/// `netmask` (busybox wants the mask apart), `gateway` only for THE default route and only when it is
/// on the subnet, every other route as `up ip route replace …` (so a second `ifup` does not fail) with
/// a matching `pre-down ip route del …` in reverse order. An off-subnet gateway first gets a device route.
/// `dns` goes to `dns-nameservers` of the primary NIC when not empty.
pub(super) fn stanzas(input: &Input, dns: &[IpAddr]) -> String {
    let config = input.config;
    let mut t = String::new();
    for nic in &config.nics {
        let name = input.ifname(nic);
        let _ = write!(
            t,
            "\nauto {name}\niface {name} inet static\n    address {}\n    netmask {}\n",
            nic.address,
            nic.netmask()
        );
        if let Some(gw) = nic.default_gateway.filter(|&gw| !nic.is_on_link(gw)) {
            let _ = writeln!(t, "    gateway {gw}");
        }
        if !dns.is_empty() && config.primary_nic() == Some(nic) {
            let list: Vec<String> = dns.iter().map(ToString::to_string).collect();
            let _ = writeln!(t, "    dns-nameservers {}", list.join(" "));
        }
        let routes = common::ip_route_args(nic, &name);
        for r in &routes {
            let _ = writeln!(t, "    up ip route replace {r}");
        }
        // `pre-down` (Debian's `down` is the same): ifupdown-ng runs `down` lines only after it has
        // flushed the NIC. `|| true`: busybox's ifdown stops at a failing command, leaving the NIC up.
        for r in routes.iter().rev() {
            let _ = writeln!(t, "    pre-down ip route del {r} || true");
        }
    }
    t
}

/// The interface names whose other stanzas osconf's replace: the names it writes and, in a live run
/// where those are the kernel's, os.conf's `ethN` too — an image's `auto eth0` can only mean an
/// os.conf NIC (os.conf lists every NIC), and for a name no NIC has `ifup -a` would fail.
pub(super) fn superseded_names(input: &Input) -> Vec<String> {
    let mut names: Vec<String> = input.config.nics.iter().map(|n| input.ifname(n)).collect();
    if input.kernel_names() {
        for nic in &input.config.nics {
            if !names.contains(&nic.name()) {
                names.push(nic.name());
            }
        }
    }
    names
}

/// ifupdown configured the NICs already: `ifdown --force` runs the new stanza's down steps
/// whatever ifupdown's state file says, then `ifup` brings each NIC up from the new stanza.
fn activate(input: &Input) -> Vec<Run> {
    common::activate::down_up(input, "networking", &["ifdown", "--force"], &["ifup"])
}

/// The note for NICs written by name offline: these stacks cannot match a MAC. (A live run writes
/// the kernel's names, found by MAC, and says so itself.)
pub(super) fn by_name_note(input: &Input, stack: &str) -> Option<String> {
    if input.kernel_names() {
        return None;
    }
    let named: Vec<String> = input
        .config
        .nics
        .iter()
        .filter_map(|n| Some(format!("{} (MAC {})", input.ifname(n), n.mac?)))
        .collect();
    (!named.is_empty()).then(|| {
        format!(
            "{stack} cannot match a NIC by MAC: {} written by name; if the kernel names a NIC otherwise, use --ifname ethN=NAME",
            named.join(", ")
        )
    })
}

pub(super) fn disabled_note(names: &[String], path: &str) -> String {
    format!(
        "commented out the existing configuration of {} in {path}: osconf's static stanza replaces it",
        names.join(", ")
    )
}

/// Words that start a new stanza in interfaces(5) (ifupdown, busybox and ifupdown-ng alike).
fn starts_stanza(word: &str) -> bool {
    matches!(
        word,
        "iface" | "mapping" | "auto" | "source" | "source-directory" | "rename" | "template"
    ) || word.starts_with("allow-")
        || word.starts_with("no-")
}

/// Comments out (never deletes) what brings one of `names` up for IPv4 in an interfaces(5) text:
/// `iface NAME inet …` stanzas with their options, and `auto` / `allow-*` lines naming it (a line
/// that also names other interfaces is kept for those on a new line). A comment saying why heads each
/// run of disabled lines. IPv6 stanzas are left alone. `None` when nothing needed disabling; else the
/// new text and the names disabled.
pub(super) fn neutralise(text: &str, names: &[String], instead: &str) -> Option<(String, Vec<String>)> {
    let mut out = String::with_capacity(text.len() + 200);
    let mut disabled: Vec<String> = Vec::new();
    let mut in_stanza = false;
    let mut stanza_name = "";
    // Set while a line continues (trailing `\`): whether that line was disabled.
    let mut continued: Option<bool> = None;
    let mut noted = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let words: Vec<&str> = body.split_whitespace().collect();
        let mut mine: Vec<&str> = Vec::new();
        let mut keep_for_others = None;
        let disable = match (continued, words.first()) {
            (Some(was), _) => was,
            (None, None) => false,
            (None, Some(w)) if w.starts_with('#') => false,
            (None, Some(&"iface")) => {
                let ours = words.get(1).filter(|n| names.iter().any(|m| m == *n));
                in_stanza = ours.is_some() && words.get(2) != Some(&"inet6");
                mine.extend(ours.filter(|_| in_stanza));
                stanza_name = mine.first().copied().unwrap_or_default();
                in_stanza
            }
            (None, Some(&w)) if w == "auto" || w.starts_with("allow-") => {
                in_stanza = false;
                let (ours, others): (Vec<&str>, Vec<&str>) =
                    words[1..].iter().partition(|n| names.iter().any(|m| m == *n));
                if !ours.is_empty() && !others.is_empty() {
                    keep_for_others = Some(format!("{w} {}\n", others.join(" ")));
                }
                mine = ours;
                !mine.is_empty()
            }
            (None, Some(&w)) if starts_stanza(w) => {
                in_stanza = false;
                false
            }
            (None, Some(_)) => in_stanza,
        };
        continued = body.ends_with('\\').then_some(disable);
        let about = if mine.is_empty() {
            stanza_name.to_owned()
        } else {
            mine.join(", ")
        };
        for name in mine {
            if !disabled.iter().any(|d| d == name) {
                disabled.push(name.to_owned());
            }
        }
        if !disable {
            noted &= words.is_empty();
            out.push_str(line);
            continue;
        }
        if !noted {
            let _ = writeln!(out, "{}{about} {instead}.", common::DISABLED);
            noted = true;
        }
        out.push_str("# ");
        out.push_str(line);
        if !line.ends_with('\n') {
            out.push('\n');
        }
        if let Some(rest) = keep_for_others {
            out.push_str(&rest);
            noted = false;
        }
    }
    (!disabled.is_empty()).then_some((out, disabled))
}

/// True when an interfaces text makes `reader` read osconf's file.
fn sources_file(text: &str, reader: Reader) -> bool {
    text.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        reader.reads(&words, FILE, DIR)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::render::common::testing::{example, fake_root, render, written};

    const NETWORKING: &str = "/etc/systemd/system/multi-user.target.wants/networking.service";
    const NETWORKD: &str = "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service";

    #[test]
    fn detects_the_enabled_networking_service_or_init_link_only() {
        let interfaces = [(INTERFACES, LOOPBACK)];
        let systemd = fake_root(
            &interfaces,
            &[(NETWORKING, "/lib/systemd/system/networking.service")],
        );
        assert!(
            detect(&System::probe(systemd.path()).unwrap())
                .unwrap()
                .unwrap()
                .contains("networking.service")
        );
        let sysv = fake_root(
            &interfaces,
            &[("/etc/rcS.d/S01networking", "../init.d/networking")],
        );
        assert!(
            detect(&System::probe(sysv.path()).unwrap())
                .unwrap()
                .unwrap()
                .contains("/etc/rcS.d/S01networking")
        );
        let openrc = fake_root(
            &interfaces,
            &[("/etc/runlevels/boot/networking", "/etc/init.d/networking")],
        );
        assert!(detect(&System::probe(openrc.path()).unwrap()).unwrap().is_some());
        // Installed but not enabled, enabled without interfaces, or networkd enabled as well: no.
        let installed = fake_root(
            &interfaces,
            &[("/etc/rcS.d/K01networking", "../init.d/networking")],
        );
        assert_eq!(detect(&System::probe(installed.path()).unwrap()).unwrap(), None);
        let no_file = fake_root(&[], &[(NETWORKING, "/lib/systemd/system/networking.service")]);
        assert_eq!(detect(&System::probe(no_file.path()).unwrap()).unwrap(), None);
        let networkd = fake_root(
            &interfaces,
            &[
                (NETWORKING, "/x/networking.service"),
                (NETWORKD, "/x/systemd-networkd.service"),
            ],
        );
        assert_eq!(detect(&System::probe(networkd.path()).unwrap()).unwrap(), None);
    }

    /// Ubuntu 16.04's `source …/*.cfg` misses 50-osconf; cloud-init's file configures eth0; resolvconf
    /// owns resolv.conf.
    #[test]
    fn sources_its_file_disables_other_files_and_gives_resolvconf_the_servers() {
        let cloud = "/etc/network/interfaces.d/50-cloud-init.cfg";
        let root = fake_root(
            &[
                (
                    INTERFACES,
                    "auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*.cfg\n",
                ),
                (cloud, "auto eth0\niface eth0 inet dhcp\n"),
            ],
            &[("/etc/resolv.conf", "../run/resolvconf/resolv.conf")],
        );
        let out = render(&STACK, &example("classic"), root.path());
        let ours = written(&out, FILE).unwrap();
        let eth1 = ours.split("iface eth1").nth(1).unwrap();
        assert!(eth1.contains("    dns-nameservers 7.7.7.7 8.8.8.8\n"), "{ours}");
        assert_eq!(ours.matches("dns-nameservers").count(), 1, "{ours}");
        assert!(
            written(&out, INTERFACES)
                .unwrap()
                .ends_with(&format!("\nsource {FILE}\n"))
        );
        assert_eq!(
            written(&out, cloud).unwrap(),
            format!(
                "# Disabled by osconf: eth0 is configured in {FILE}.\n# auto eth0\n# iface eth0 inet dhcp\n"
            )
        );
        assert!(
            out.ops.iter().all(|op| !op.path().contains("resolv")),
            "{:?}",
            out.ops
        );
    }

    /// Debian with ifupdown-ng installed: its installer's `source /etc/network/interfaces.d/*` fails
    /// ng's whole file, so it is commented out and osconf's file sourced by its path; detection says
    /// which ifup reads the files.
    #[test]
    fn ifupdown_ng_gets_a_source_line_it_can_read() {
        let glob_line = "source /etc/network/interfaces.d/*\n";
        let root = fake_root(
            &[
                (
                    INTERFACES,
                    &format!("{glob_line}auto lo\niface lo inet loopback\n"),
                ),
                ("/etc/network/ifupdown-ng.conf", ""),
            ],
            &[(NETWORKING, "/lib/systemd/system/networking.service")],
        );
        let sys = System::probe(root.path()).unwrap();
        assert!(
            detect(&sys)
                .unwrap()
                .unwrap()
                .ends_with("; read by ifupdown-ng (/etc/network/ifupdown-ng.conf)")
        );
        let out = render(&STACK, &example("classic"), root.path());
        let text = written(&out, INTERFACES).unwrap();
        assert!(text.contains(&format!("\n# {glob_line}")), "{text}");
        assert!(text.ends_with(&format!("\nsource {FILE}\n")), "{text}");
        assert_eq!(reader::disable_unreadable(text, Reader::Ng), None);
    }

    #[test]
    fn off_subnet_gateway_gets_a_device_route_before_the_default_route() {
        let mut config = example("vpc");
        let nic = &mut config.nics[0];
        nic.default_gateway = Some("10.171.0.1".parse().unwrap());
        let root = fake_root(&[], &[]);
        let sys = System::probe(root.path()).unwrap();
        let text = stanzas(
            &Input {
                config: &config,
                sys: &sys,
                ifnames: &BTreeMap::new(),
                running: None,
            },
            &[],
        );
        let want = "    netmask 255.255.255.0\n\
            \x20   up ip route replace 10.171.0.1/32 dev eth0 scope link\n\
            \x20   up ip route replace default via 10.171.0.1 dev eth0\n\
            \x20   pre-down ip route del default via 10.171.0.1 dev eth0 || true\n\
            \x20   pre-down ip route del 10.171.0.1/32 dev eth0 scope link || true\n";
        assert!(text.ends_with(want) && !text.contains("gateway"), "{text}");
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn neutralise_comments_out_stanzas_and_auto_lines() {
        let cases: &[(&str, &str)] = &[
            // Debian's installer stanza.
            (
                "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet dhcp\n",
                "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\n# Disabled by osconf: eth0 X.\n# allow-hotplug eth0\n# iface eth0 inet dhcp\n",
            ),
            // A shared auto line keeps the other names; IPv6 and other NICs stay; options follow
            // their stanza across blank lines, and the next stanza ends it.
            (
                "auto lo eth0 eth2\niface eth0 inet static\n    address 1.2.3.4\n\n    netmask 255.0.0.0\niface eth0 inet6 auto\niface eth2 inet dhcp\n",
                "# Disabled by osconf: eth0 X.\n# auto lo eth0 eth2\nauto lo eth2\n# Disabled by osconf: eth0 X.\n# iface eth0 inet static\n#     address 1.2.3.4\n\n#     netmask 255.0.0.0\niface eth0 inet6 auto\niface eth2 inet dhcp\n",
            ),
            // Continued lines go with their line; no final newline is fine.
            (
                "iface eth1 inet static \\\n  address 5.6.7.8\nmapping eth1\n  script x",
                "# Disabled by osconf: eth1 X.\n# iface eth1 inet static \\\n#   address 5.6.7.8\nmapping eth1\n  script x",
            ),
        ];
        for (input, want) in cases {
            let (got, _) = neutralise(input, &names(&["eth0", "eth1"]), "X").expect(input);
            assert_eq!(&got, want, "input:\n{input}");
            // A second pass finds nothing left to disable.
            assert_eq!(neutralise(&got, &names(&["eth0", "eth1"]), "X"), None);
        }
        let (_, disabled) = neutralise(cases[1].0, &names(&["eth1", "eth0"]), "X").unwrap();
        assert_eq!(disabled, ["eth0"]);
        assert_eq!(
            neutralise("iface eth0 inet6 auto\nauto lo\n", &names(&["eth0"]), "X"),
            None
        );
    }

    #[test]
    fn sources_file_follows_source_and_source_directory() {
        let cases = [
            ("source /etc/network/interfaces.d/*\n", true),
            ("source interfaces.d/*\n", true),
            ("  source /etc/network/interfaces.d/[0-9]*\n", true),
            ("source-directory /etc/network/interfaces.d\n", true),
            ("source-directory interfaces.d/\n", true),
            ("source /etc/network/interfaces.d/*.cfg\n", false),
            ("source /etc/network/*\n", false),
            ("# source /etc/network/interfaces.d/*\n", false),
            ("source-directory /etc/network\n", false),
            // Took 50 s with a backtracking matcher (a hung boot); this test would hang if it came back.
            (
                &*format!("source /etc/network/interfaces.d/{}x\n", "*".repeat(40)),
                false,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(sources_file(text, Reader::Ifupdown), want, "{text}");
        }
    }
}
