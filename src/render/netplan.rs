//! `netplan`: one `/etc/netplan/50-osconf.yaml` (mode 0600, which netplan demands) describing every
//! NIC, matched by MAC and named with `set-name`; netplan renders it for networkd (or NetworkManager)
//! at boot. netplan merges all its files, so installer or cloud-init YAML that configures the same
//! NICs is disabled whole; it is never edited.

use std::fmt::Write as _;

use super::common::disable::{DISABLED_SUFFIX, disable};
use super::common::shellvars::unquote;
use super::common::{self, HEADER};
use super::networkd::{self, may_be_nic_name};
use super::networkmanager::NETWORK_MANAGER;
use super::{Input, Rendered, Stack};
use crate::model::Nic;
use crate::plan::{FileOp, Run};
use crate::system::{self, System};

pub const STACK: Stack = Stack {
    name: "netplan",
    systems: "Ubuntu 18.04 and later, other systems configured through /etc/netplan",
    detect,
    network,
    host,
    // osconf's YAML names no renderer: netplan renders it for networkd, or for NetworkManager when
    // another file says `renderer: NetworkManager` (Ubuntu desktops).
    services: &[networkd::NETWORKD, NETWORK_MANAGER],
    activate,
    network_files: &["/etc/netplan/"],
};

const DIR: &str = "/etc/netplan";
const FILE: &str = "/etc/netplan/50-osconf.yaml";

fn detect(sys: &System) -> system::Result<Option<String>> {
    if let Some(yaml) = sys.list(DIR)?.into_iter().find(|n| n.ends_with(".yaml")) {
        return Ok(Some(format!("{DIR}/{yaml} exists")));
    }
    let ubuntu = sys.os.id == "ubuntu" && sys.os.major_version().is_some_and(|v| v >= 18);
    for program in ["/usr/sbin/netplan", "/sbin/netplan"] {
        if sys.exists(program)? {
            return Ok(ubuntu.then(|| format!("{program} on Ubuntu {}", sys.os.version_id)));
        }
    }
    Ok(None)
}

fn network(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    out.ops.push(FileOp::write_private(FILE, yaml(input)));
    out.ops.extend(common::stale_own_files(input.sys, DIR, &out.ops)?);
    out.add(neutralise_foreign(input)?);
    Ok(out)
}

/// netplan renders its YAML for networkd in a systemd generator, before any unit runs: YAML osconf
/// writes at boot would reach networkd only a boot later, so netplan's generator renders it now
/// (as cloud-init-local does), into the root's /run. A networkd or NetworkManager that runs already
/// is then told as for its own stack (netplan names its NetworkManager profiles `netplan-ID`).
fn activate(input: &Input) -> Vec<Run> {
    let mut runs = vec![generate(input.sys)];
    runs.extend(start_networkd(input));
    runs.extend(common::activate::networkd(input));
    let ids: Vec<String> = common::activate::names(input)
        .iter()
        .map(|id| format!("netplan-{id}"))
        .collect();
    runs.extend(common::activate::networkmanager(input, &ids));
    runs
}

/// Where netplan keeps its generator, a small C program: `/usr/libexec/netplan/generate`, and
/// `/lib/netplan/generate` on releases before 0.103.
const GENERATORS: [&str; 2] = ["/usr/libexec/netplan/generate", "/lib/netplan/generate"];

/// netplan ≥ 1.2 renders in its own program, run at boot by `netplan-configure.service` (after
/// osconf); its generator then only checks.
const CONFIGURE: &str = "/usr/libexec/netplan/configure";

/// Why each of the runs below renders.
const WHY: &str =
    "netplan renders YAML for networkd only in its boot-time generator, which ran before osconf";

/// The run that renders the YAML, with the root's own netplan: its `configure` (≥ 1.2), else its C
/// generator run as systemd runs it, else `netplan generate`.
///
/// The generator is called the way systemd calls it, into output directories thrown away after: so
/// called it renders and no more. Run as a command during boot it would also ask systemd whether
/// the boot is under way and start networkd's units itself (`systemctl` five times), 1.3 s of a
/// TCG boot; osconf starts networkd itself when the boot would not (see [`start_networkd`]). The
/// Python `netplan generate` runs that same generator as a command after starting an interpreter:
/// 3.7–7.9 s of a TCG boot.
///
/// The programs are looked for through `System`, inside the root as a chroot would see it (a link
/// followed inside the root, a regular executable file only), because the root is the system whose
/// netplan reads the YAML; the platform layer, which runs the plan's programs and never looks at
/// the root's files, then runs the path the plan names (on `/`, that very file). A root it cannot
/// read there is left to `netplan generate`, which finds the generator itself.
fn generate(sys: &System) -> Run {
    let root = sys.root().to_string_lossy();
    let executable = |path: &str| {
        sys.stat(path, true)
            .is_ok_and(|st| st.is_some_and(|st| st.kind == system::Kind::File && st.mode & 0o111 != 0))
    };
    if executable(CONFIGURE) {
        return Run::new(CONFIGURE, &["--root-dir", &root], WHY);
    }
    match GENERATORS.into_iter().find(|path| executable(path)) {
        Some(generator) => Run {
            generator: Some("netplan".to_owned()),
            ..Run::new(generator, &["--root-dir", &root], WHY)
        },
        None => Run::new("netplan", &["generate", "--root-dir", &root], WHY),
    }
}

/// Where netplan's boot-time generator enables networkd for the boot it runs in.
const GENERATED_WANTS: &str = "/run/systemd/generator/multi-user.target.wants/systemd-networkd.service";

/// systemd-networkd started for this boot when nothing else starts it: not running, not enabled,
/// not pulled in by netplan's boot-time generator (which had no YAML for it then), not masked, and
/// no netplan file handing the NICs to NetworkManager. netplan's generator run as a command at boot
/// starts networkd's units itself; run as a generator ([`generate`]) it leaves that to osconf.
/// `--no-block`: osconf's own unit is ordered before networkd's, so waiting would never end.
fn start_networkd(input: &Input) -> Option<Run> {
    let sys = input.sys;
    let networkd = "systemd-networkd.service";
    let started_anyway = || -> system::Result<bool> {
        Ok(sys.systemd_unit_enabled(networkd)?
            || sys.systemd_unit_masked(networkd)?
            || sys.exists(GENERATED_WANTS)?
            || renders_for_network_manager(sys)?)
    };
    if input.running.is_none() || input.running_service().is_some() || started_anyway().unwrap_or(false) {
        return None;
    }
    Some(Run::new(
        "systemctl",
        &[
            "start",
            "--no-block",
            networkd,
            "systemd-networkd-wait-online.service",
        ],
        "systemd-networkd is not enabled and netplan's boot-time generator, which had no YAML for it, \
         did not start it: started for this boot, as netplan does when run during boot",
    ))
}

/// True when a netplan file other than osconf's says `renderer: NetworkManager`: netplan then
/// renders osconf's NICs for NetworkManager, not networkd.
fn renders_for_network_manager(sys: &System) -> system::Result<bool> {
    for name in sys.list(DIR)?.into_iter().filter(|n| n.ends_with(".yaml")) {
        let bytes = sys.read(&format!("{DIR}/{name}"))?.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let says = |line: &str| {
            let (key, value) = strip_comment(line).split_once(':').unwrap_or(("", ""));
            key.trim() == "renderer" && unquote(value.trim()) == "NetworkManager"
        };
        if !text.starts_with(HEADER) && text.lines().any(says) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn host(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    out.ops.extend(common::hostname_file(input, "/etc/hostname"));
    out.add(networkd::dns(
        input.config,
        input.sys,
        "the primary NIC's nameservers in 50-osconf.yaml",
    )?);
    Ok(out)
}

/// The YAML, written by hand in the block style netplan's own examples use. The default route is
/// `to: 0.0.0.0/0` rather than `to: default`, which netplan before 0.103 (Ubuntu 18.04) rejects.
/// A NIC with a MAC is matched by it and not renamed (no `set-name`): the rename's .link would
/// apply only from the next boot on, and a rename into the kernel's ethN names can race.
fn yaml(input: &Input) -> String {
    let config = input.config;
    let mut t = format!("{HEADER}network:\n  version: 2\n  ethernets:\n");
    for nic in &config.nics {
        let name = input.ifname(nic);
        let _ = writeln!(t, "    {name}:");
        if let Some(mac) = nic.mac {
            let _ = writeln!(t, "      match:\n        macaddress: \"{mac}\"");
        }
        let _ = writeln!(
            t,
            "      addresses:\n        - {}/{}",
            nic.address, nic.prefix_len
        );
        for (i, r) in nic.all_routes().enumerate() {
            if i == 0 {
                t.push_str("      routes:\n");
            }
            let _ = writeln!(t, "        - to: {}\n          via: {}", r.dest, r.via);
            if nic.is_on_link(r.via) {
                t.push_str("          on-link: true\n");
            }
        }
        let dns = config.nameservers_for(nic);
        if !dns.is_empty() {
            t.push_str("      nameservers:\n        addresses:\n");
            for server in dns {
                let _ = writeln!(t, "          - {server}");
            }
        }
    }
    t
}

/// Foreign YAML in /etc/netplan that defines one of our NICs is disabled: netplan would merge its
/// settings (DHCP, other addresses) into ours, or configure the NIC under its old name.
fn neutralise_foreign(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    for name in input.sys.list(DIR)?.into_iter().filter(|n| n.ends_with(".yaml")) {
        let path = format!("{DIR}/{name}");
        let bytes = input.sys.read(&path)?.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        if text.starts_with(HEADER) || !text.contains("ethernets") {
            continue;
        }
        let entries = ethernets(&text);
        let hits: Vec<String> = input
            .config
            .nics
            .iter()
            .filter(|nic| {
                let ifname = input.ifname(nic);
                entries
                    .as_ref()
                    .is_none_or(|e| e.iter().any(|e| e.may_be(nic, &ifname)))
            })
            .map(Nic::name)
            .collect();
        if !hits.is_empty() {
            out.ops.extend(disable(&path, &bytes));
            out.notes.push(format!(
                "{path} may configure {} (same MAC, same id, or a kernel name the NIC may have) and netplan merges every file: renamed to {name}{DISABLED_SUFFIX}",
                hits.join(", ")
            ));
        }
    }
    Ok(out)
}

/// One entry of a foreign file's `ethernets:` mapping.
#[derive(Debug, PartialEq, Eq)]
struct Ethernet {
    id: String,
    /// `match: macaddress:`, lower case.
    mac: Option<String>,
    /// `match: name:`, a glob.
    name: Option<String>,
    /// Has a `match:` mapping: the id is then only a label.
    matched: bool,
}

impl Ethernet {
    /// True when this entry may configure `nic`: the same MAC, the same id (netplan would merge the
    /// two), or, matching by name, a name the NIC may carry. A `match:` with neither (`driver:`)
    /// is taken to hold, since osconf cannot check it offline.
    fn may_be(&self, nic: &Nic, ifname: &str) -> bool {
        if self.id == ifname {
            return true;
        }
        match (&self.mac, &self.name) {
            (Some(mac), _) => nic.mac.is_some_and(|m| m.to_string() == *mac),
            (None, Some(name)) => may_be_nic_name(name, nic, ifname),
            (None, None) if self.matched => true,
            (None, None) => may_be_nic_name(&self.id, nic, ifname),
        }
    }
}

/// The `ethernets:` entries of a netplan file written in block style (none without an
/// `ethernets:` key). `None` when the file uses a form this reader does not follow (flow style):
/// it is then taken to configure every NIC.
fn ethernets(text: &str) -> Option<Vec<Ethernet>> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .map(strip_comment)
        .filter(|l| !l.trim().is_empty())
        .map(|l| (l.len() - l.trim_start().len(), l.trim()))
        .collect();
    let Some(start) = lines.iter().position(|(_, l)| *l == "ethernets:") else {
        let flow = lines.iter().any(|(_, l)| l.contains("ethernets"));
        return (!flow).then(Vec::new);
    };
    let base = lines[start].0;
    let mut entries: Vec<Ethernet> = Vec::new();
    let mut entry_indent = None;
    let mut match_indent = None;
    for &(indent, line) in lines[start + 1..].iter().take_while(|(i, _)| *i > base) {
        let (key, value) = line.split_once(':').unwrap_or((line, ""));
        let (key, value) = (unquote(key), unquote(value));
        let (key, value) = (key.as_str(), value.as_str());
        if *entry_indent.get_or_insert(indent) == indent {
            entries.push(Ethernet {
                id: key.to_owned(),
                mac: None,
                name: None,
                matched: false,
            });
            match_indent = None;
            continue;
        }
        let entry = entries.last_mut()?;
        if match_indent.is_some_and(|m| indent <= m) {
            match_indent = None;
        }
        match (key, match_indent) {
            ("match", None) if value.is_empty() => {
                match_indent = Some(indent);
                entry.matched = true;
            }
            ("match", None) => return None,
            ("macaddress", Some(_)) => entry.mac = Some(value.to_ascii_lowercase()),
            ("name", Some(_)) => entry.name = Some(value.to_owned()),
            _ => {}
        }
    }
    Some(entries)
}

/// A line without its YAML comment (`#` at the start or after a blank).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let at = (0..bytes.len()).find(|&i| bytes[i] == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()));
    at.map_or(line, |i| &line[..i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::common::testing::{MAC0, fake_root, nic, render_over};

    fn eth(id: &str, mac: Option<&str>, name: Option<&str>) -> Ethernet {
        Ethernet {
            id: id.into(),
            mac: mac.map(Into::into),
            name: name.map(Into::into),
            matched: mac.is_some() || name.is_some(),
        }
    }

    /// netplan's own renderer is run where the root holds it (as an executable regular file, a
    /// link followed inside the root): `configure` (≥ 1.2) first, else the C generator, the newer
    /// place first, run as systemd runs a generator;
    /// `netplan generate` otherwise.
    #[test]
    fn runs_netplans_own_renderer_when_the_root_has_one() {
        use std::os::unix::fs::PermissionsExt as _;
        let command = |root: &tempfile::TempDir| {
            let run = generate(&System::probe(root.path()).unwrap());
            let root = root.path().display().to_string();
            let generator = run.generator;
            (run.program, run.args.join(" ").replace(&root, "ROOT"), generator)
        };
        let executable = |root: &tempfile::TempDir, path: &str| {
            let host = root.path().join(path.trim_start_matches('/'));
            std::fs::set_permissions(host, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        let python = ("netplan".to_owned(), "generate --root-dir ROOT".to_owned(), None);
        let c = |path: &str| {
            let generator = Some("netplan".to_owned());
            (path.to_owned(), "--root-dir ROOT".to_owned(), generator)
        };

        assert_eq!(command(&fake_root(&[], &[])), python, "no generator");
        // Debian 12 and Ubuntu ≥ 20.04: the generator in libexec, the old path a link to it.
        let both = fake_root(
            &[(GENERATORS[0], "ELF")],
            &[(GENERATORS[1], "/usr/libexec/netplan/generate")],
        );
        executable(&both, GENERATORS[0]);
        assert_eq!(command(&both), c(GENERATORS[0]));
        // Ubuntu 18.04: only /lib/netplan/generate.
        let old = fake_root(&[(GENERATORS[1], "ELF")], &[]);
        executable(&old, GENERATORS[1]);
        assert_eq!(command(&old), c(GENERATORS[1]));
        // netplan ≥ 1.2: configure renders, run as a command; its generator only checks.
        let new = fake_root(&[(GENERATORS[0], "ELF"), (CONFIGURE, "ELF")], &[]);
        executable(&new, GENERATORS[0]);
        executable(&new, CONFIGURE);
        let configure = (CONFIGURE.to_owned(), "--root-dir ROOT".to_owned(), None);
        assert_eq!(command(&new), configure);
        // Not a program: not executable, a directory, a link leaving the root (resolved inside it,
        // where nothing is), a dangling link.
        let plain = fake_root(&[(GENERATORS[0], "ELF"), (CONFIGURE, "ELF")], &[]);
        assert_eq!(command(&plain), python, "mode 0644");
        let dir = fake_root(&[("/usr/libexec/netplan/generate/x", "")], &[]);
        assert_eq!(command(&dir), python, "a directory");
        let outside = fake_root(&[], &[(GENERATORS[0], "/bin/sh"), (CONFIGURE, "/bin/sh")]);
        assert_eq!(command(&outside), python, "a link out of the root");
        let dangling = fake_root(&[], &[(GENERATORS[1], "/nowhere")]);
        assert_eq!(command(&dangling), python, "a dangling link");
    }

    /// networkd is started for this boot only when nothing else starts it: a live run, with no
    /// service of the stack up, networkd neither enabled, masked, nor pulled in by netplan's
    /// generator, and no netplan file handing the NICs to NetworkManager.
    #[test]
    fn networkd_is_started_only_when_the_boot_would_not_start_it() {
        use crate::plan::{Running, StackState};
        use std::collections::BTreeMap;
        let starts = |root: &tempfile::TempDir, state: Option<StackState>| {
            let sys = System::probe(root.path()).unwrap();
            let config = crate::render::common::testing::example("classic");
            let running = state.map(|stack| Running {
                names: BTreeMap::new(),
                stack,
            });
            let input = Input {
                config: &config,
                sys: &sys,
                ifnames: &BTreeMap::new(),
                running: running.as_ref(),
            };
            start_networkd(&input).map(|r| format!("{} {}", r.program, r.args.join(" ")))
        };
        let boot = Some(StackState::NotRunning);
        let bare = fake_root(
            &[("/etc/netplan/00-installer.yaml", "network:\n  version: 2\n")],
            &[],
        );
        assert_eq!(
            starts(&bare, boot).as_deref(),
            Some("systemctl start --no-block systemd-networkd.service systemd-networkd-wait-online.service")
        );
        assert_eq!(starts(&bare, None), None, "offline");
        assert_eq!(
            starts(&bare, Some(StackState::Running("NetworkManager"))),
            None,
            "NetworkManager runs"
        );
        let wants = "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service";
        let enabled = fake_root(&[], &[(wants, "/lib/systemd/system/systemd-networkd.service")]);
        assert_eq!(starts(&enabled, boot), None, "enabled");
        let generated = fake_root(&[], &[(GENERATED_WANTS, "../systemd-networkd.service")]);
        assert_eq!(starts(&generated, boot), None, "pulled in by netplan's generator");
        let masked = fake_root(
            &[],
            &[("/etc/systemd/system/systemd-networkd.service", "/dev/null")],
        );
        assert_eq!(starts(&masked, boot), None, "masked");
        let desktop = "network:\n  version: 2\n  renderer: \"NetworkManager\" # desktop\n";
        let nm = fake_root(&[("/etc/netplan/01-network-manager-all.yaml", desktop)], &[]);
        assert_eq!(starts(&nm, boot), None, "NetworkManager renders");
        let commented = "network:\n  version: 2\n  # renderer: NetworkManager\n";
        let nm_off = fake_root(&[("/etc/netplan/01-network-manager-all.yaml", commented)], &[]);
        assert!(starts(&nm_off, boot).is_some(), "a commented-out renderer");
    }

    /// A file without `ethernets:` configures no NIC, even when a comment names the key; a
    /// `match:` osconf cannot check (driver) may be for any NIC, whatever its id.
    #[test]
    fn no_ethernets_key_and_unknown_match() {
        let renderer_only =
            "# ethernets are configured elsewhere\nnetwork:\n  version: 2\n  renderer: networkd\n";
        assert_eq!(ethernets(renderer_only), Some(vec![]));
        let by_driver =
            "network:\n  ethernets:\n    lan:\n      match:\n        driver: virtio_net\n      dhcp4: true\n";
        let entries = ethernets(by_driver).unwrap();
        assert!(entries[0].may_be(&nic(0, Some(MAC0)), "eth0"));
        let (ops, _) = render_over(
            &STACK,
            vec![nic(0, Some(MAC0))],
            &[
                ("/etc/netplan/01-renderer.yaml", renderer_only),
                ("/etc/netplan/02-driver.yaml", by_driver),
            ],
        );
        let want = [
            "write /etc/netplan/50-osconf.yaml",
            "write /etc/netplan/02-driver.yaml.osconf-disabled",
            "remove /etc/netplan/02-driver.yaml",
        ];
        assert_eq!(ops, want);
    }

    #[test]
    fn foreign_yaml_for_our_nics_disabled() {
        let (ops, notes) = render_over(
            &STACK,
            vec![nic(0, Some(MAC0))],
            &[
                (
                    "/etc/netplan/00-installer-config.yaml",
                    "network:\n  ethernets:\n    ens3:\n      dhcp4: true\n  version: 2\n",
                ),
                (
                    "/etc/netplan/01-network-manager-all.yaml",
                    "network:\n  version: 2\n  renderer: NetworkManager\n",
                ),
                (
                    "/etc/netplan/60-other.yaml",
                    "network:\n  ethernets:\n    lan:\n      match:\n        macaddress: 00:16:3e:00:00:09\n      dhcp4: true\n",
                ),
                (
                    "/etc/netplan/70-same-id.yaml",
                    "network:\n  ethernets:\n    eth0:\n      match:\n        macaddress: 00:16:3e:00:00:09\n",
                ),
            ],
        );
        let want = [
            "write /etc/netplan/50-osconf.yaml",
            "write /etc/netplan/00-installer-config.yaml.osconf-disabled",
            "remove /etc/netplan/00-installer-config.yaml",
            "write /etc/netplan/70-same-id.yaml.osconf-disabled",
            "remove /etc/netplan/70-same-id.yaml",
        ];
        assert_eq!(ops, want);
        assert_eq!(notes.len(), 2, "{notes:?}");
    }

    #[test]
    fn reads_installer_and_cloud_init_files() {
        let installer = "# This is the network config written by 'subiquity'\nnetwork:\n  ethernets:\n    ens3:\n      dhcp4: true\n  version: 2\n";
        assert_eq!(ethernets(installer), Some(vec![eth("ens3", None, None)]));
        let cloud = "network:\n    ethernets:\n        eth0:\n            dhcp4: true\n            match:\n                macaddress: 00:16:3E:01:02:03 # c\n            set-name: eth0\n        lan:\n            match: \n                name: \"en*\"\n            macaddress: 00:16:3e:99:99:99\n    version: 2\n";
        assert_eq!(
            ethernets(cloud),
            Some(vec![
                eth("eth0", Some("00:16:3e:01:02:03"), None),
                eth("lan", None, Some("en*"))
            ])
        );
        assert_eq!(
            ethernets("network: {version: 2, ethernets: {eth0: {dhcp4: true}}}\n"),
            None
        );
        assert_eq!(
            ethernets("network:\n  ethernets:\n    eth0:\n      match: {macaddress: 'x'}\n"),
            None
        );
    }
}
