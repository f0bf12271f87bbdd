//! `dhcpcd`: dhcpcd run as the whole network stack (Void Linux, Raspberry Pi OS before 2023,
//! appliances), configured statically in `/etc/dhcpcd.conf`: one `interface NAME` block per NIC in
//! osconf's marked block (`static ip_address=A/N`, `static routers=`, one `static routes=DEST GW`
//! line per route, `static domain_name_servers=`). With `ip_address` set dhcpcd asks no server and
//! applies the values as an infinite lease. Every other line of dhcpcd.conf is kept; an `interface`
//! block someone wrote for the same NIC is commented out.
//!
//! What dhcpcd cannot do itself: a gateway outside the subnet. It adds a host route only for a
//! default router that no other route reaches, and adds any other route through such a gateway
//! before it (`Network is unreachable`). A NIC with an on-link gateway therefore gets its routes
//! from osconf's block of `/etc/dhcpcd.exit-hook`, which dhcpcd-run-hooks sources after each
//! change (reason `STATIC` once the address is set): `ip route replace` of the device route to the
//! gateway, then the routes through it.
//!
//! dhcpcd matches interfaces by name only: offline, a udev rule names each os.conf MAC's NIC.

use std::fmt::Write as _;

use super::common::blocks::{BEGIN, END, replace_block};
use super::common::udev::{self, Assign, RULES};
use super::common::{self, DISABLED, dns};
use super::{Input, Rendered, Service, Stack, ifupdown};
use crate::model::Nic;
use crate::plan::{FileOp, Run};
use crate::system::{self, System};

pub const STACK: Stack = Stack {
    name: "dhcpcd",
    systems: "Void Linux, Raspberry Pi OS before 2023, appliances where dhcpcd alone runs the network",
    detect,
    network,
    host,
    // dhcpcd 9's pid file (dhcpcd5's was /run/dhcpcd.pid) counts while its process lives; one run
    // for one interface (`dhcpcd -B eth0`: Debian's and Arch's dhcpcd@.service, Void's dhcpcd-eth0)
    // keeps /run/dhcpcd/eth0.pid instead.
    services: &[Service {
        name: "dhcpcd",
        ran: Some("/run/dhcpcd/pid"),
        per_nic: Some("/run/dhcpcd/{}.pid"),
    }],
    activate,
    network_files: &[CONF, EXIT_HOOK],
};

const CONF: &str = "/etc/dhcpcd.conf";
const EXIT_HOOK: &str = "/etc/dhcpcd.exit-hook";

/// Where distributions put the daemon.
const PROGRAMS: &[&str] = &["/usr/sbin/dhcpcd", "/sbin/dhcpcd", "/usr/bin/dhcpcd"];

/// The program installed and its service enabled at boot, for whatever init the root has: the
/// whole service, or its instance for one interface.
fn detect(sys: &System) -> system::Result<Option<String>> {
    let mut program = None;
    for p in PROGRAMS {
        if sys.exists(p)? {
            program = Some(*p);
            break;
        }
    }
    let Some(program) = program else {
        return Ok(None);
    };
    if let Some(link) = common::service_enabled(sys, "dhcpcd")? {
        return Ok(Some(format!("{link} starts dhcpcd ({program}) at boot")));
    }
    Ok(common::instances_enabled(sys, "dhcpcd")?
        .into_iter()
        .next()
        .map(|(link, nic)| format!("{link} starts dhcpcd ({program}) for {nic} at boot")))
}

/// Where dhcpcd runs one instance per interface (and no instance for all), an os.conf NIC without
/// its own instance gets no dhcpcd at boot: a note says so and what to enable. osconf does not
/// enable it itself: which instances run is the image's choice, as is the service's.
fn instances_note(input: &Input, names: &[String]) -> system::Result<Option<String>> {
    let sys = input.sys;
    if common::service_enabled(sys, "dhcpcd")?.is_some() {
        return Ok(None);
    }
    let instances = common::instances_enabled(sys, "dhcpcd")?;
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !instances.iter().any(|(_, nic)| nic == *n))
        .collect();
    if instances.is_empty() || missing.is_empty() {
        return Ok(None);
    }
    let links: Vec<&str> = instances.iter().map(|(link, _)| link.as_str()).collect();
    let missing: Vec<&str> = missing.iter().map(|n| n.as_str()).collect();
    Ok(Some(format!(
        "dhcpcd runs one instance per interface here ({}); {} has none, so no dhcpcd configures it \
         at boot: enable dhcpcd@NAME.service (runit: link /etc/sv/dhcpcd-NAME into the runsvdir) for it",
        links.join(", "),
        missing.join(", ")
    )))
}

fn network(input: &Input) -> system::Result<Rendered> {
    let sys = input.sys;
    let mut out = Rendered::default();
    let names: Vec<String> = input.config.nics.iter().map(|n| input.ifname(n)).collect();

    let old = sys.read_text(CONF)?;
    let text = old.clone().unwrap_or_default();
    let (kept, disabled) = disable_interface_blocks(&text, &names);
    if !disabled.is_empty() {
        out.notes.push(format!(
            "{CONF}: commented out the `interface` blocks of {} so that osconf's static configuration wins",
            disabled.join(", ")
        ));
    }
    let new = replace_block(&kept, &conf_block(input));
    if old.as_deref() != Some(new.as_str()) {
        out.ops.push(FileOp::write(CONF, new));
    }
    out.add(exit_hook(input)?);
    out.notes.extend(instances_note(input, &names)?);

    out.notes.extend(ifupdown::by_name_note(input, "dhcpcd"));
    // A live run writes the kernel's names, which the next boot gives again: nothing renamed.
    if !input.kernel_names() {
        out.ops.extend(udev::rules(input, Assign::Final)?);
        out.notes.push(format!(
            "dhcpcd configures interfaces by name: {RULES} names each os.conf MAC's NIC (NAME:=), \
             so its `interface` block reaches the right NIC"
        ));
    }
    Ok(out)
}

/// dhcpcd runs already: `dhcpcd -n NAME` makes it reread dhcpcd.conf and apply the interface's
/// static values anew (its old address and routes are replaced, and the hook runs again).
fn activate(input: &Input) -> Vec<Run> {
    if input.running_service() != Some("dhcpcd") {
        return Vec::new();
    }
    common::activate::names(input)
        .iter()
        .map(|name| {
            let why = format!("dhcpcd runs already: it applies {name}'s new static values when told");
            common::activate::on_nics(Run::new("dhcpcd", &["-n", name], &why), input)
        })
        .collect()
}

fn host(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    out.ops.extend(common::hostname_file(input, "/etc/hostname"));
    let servers = &input.config.nameservers;
    // dhcpcd's resolv.conf hook writes the servers of `static domain_name_servers=`; resolv.conf is
    // written too, so that the first boot has them before dhcpcd starts.
    if input.config.nics.is_empty() {
        out.add(dns::without_nic(servers, input.sys)?);
    } else {
        out.add(dns::render(servers, input.sys)?);
    }
    Ok(out)
}

/// One `interface` block per NIC. A NIC with a gateway outside its subnet leaves its routes to
/// the exit hook (see the module's comment); its on-subnet default router stays here.
fn conf_block(input: &Input) -> String {
    let config = input.config;
    let mut t = String::new();
    for nic in &config.nics {
        let _ = writeln!(t, "interface {}", input.ifname(nic));
        let _ = writeln!(t, "static ip_address={}/{}", nic.address, nic.prefix_len);
        if let Some(gw) = nic.default_gateway.filter(|&gw| !nic.is_on_link(gw)) {
            let _ = writeln!(t, "static routers={gw}");
        }
        if common::on_link_gateways(nic).is_empty() {
            for route in &nic.routes {
                let _ = writeln!(t, "static routes={} {}", route.dest, route.via);
            }
        }
        let servers: Vec<String> = config
            .nameservers_for(nic)
            .iter()
            .map(ToString::to_string)
            .collect();
        if !servers.is_empty() {
            let _ = writeln!(t, "static domain_name_servers={}", servers.join(" "));
        }
    }
    t
}

/// osconf's block of /etc/dhcpcd.exit-hook: for each NIC with an on-link gateway, its routes once
/// dhcpcd has set the static address. An empty block removes osconf's old one; a hook file osconf
/// would leave without a line is not made.
fn exit_hook(input: &Input) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    let mut block = String::new();
    for nic in input
        .config
        .nics
        .iter()
        .filter(|n| !common::on_link_gateways(n).is_empty())
    {
        block.push_str(&hook_lines(nic, &input.ifname(nic)));
    }
    let old = input.sys.read_text(EXIT_HOOK)?;
    if old.is_none() && block.is_empty() {
        return Ok(out);
    }
    let text = old.clone().unwrap_or_default();
    let new = replace_block(&text, &block);
    if old.as_deref() != Some(new.as_str()) {
        out.ops.push(FileOp::write(EXIT_HOOK, new));
    }
    if !block.is_empty() {
        out.notes.push(format!(
            "dhcpcd cannot reach a gateway outside the subnet: the routes of such NICs go to {EXIT_HOOK}, \
             which dhcpcd runs once the address is set"
        ));
    }
    Ok(out)
}

fn hook_lines(nic: &Nic, name: &str) -> String {
    let mut t = format!("if [ \"$interface\" = \"{name}\" ] && [ \"$reason\" = STATIC ]; then\n");
    for args in common::ip_route_args(nic, name) {
        let _ = writeln!(t, "\tip route replace {args}");
    }
    t.push_str("fi\n");
    t
}

/// Comments out, outside osconf's block, the `interface NAME` blocks of these interfaces: from
/// that line to the next `interface`, `ssid` or `profile` line (which starts another block).
/// Blank lines and comments stay as they are. Returns the new text and the names disabled.
fn disable_interface_blocks(text: &str, names: &[String]) -> (String, Vec<String>) {
    let mut disabled: Vec<String> = Vec::new();
    let mut out = String::new();
    let (mut inside, mut in_own) = (false, false);
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end();
        if bare == BEGIN.trim_end() || bare == END.trim_end() {
            in_own = bare == BEGIN.trim_end();
            inside = false;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [key, rest @ ..] = &words[..]
            && !in_own
            && ["interface", "ssid", "profile"].contains(key)
        {
            let name = rest.first().copied().unwrap_or("");
            inside = *key == "interface" && names.iter().any(|n| n == name);
            if inside && !disabled.iter().any(|d| d == name) {
                disabled.push(name.to_owned());
            }
        }
        if inside && words.first().is_some_and(|w| !w.starts_with('#')) {
            out.push_str(DISABLED);
        }
        out.push_str(line);
    }
    (out, disabled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::common::testing::{detected, example, fake_root, from_text, render, written};

    #[test]
    fn detected_by_program_and_enabled_service_only() {
        let sys = |files: &[(&str, &str)], links: &[(&str, &str)]| detected(&STACK, files, links);
        let prog = ("/usr/sbin/dhcpcd", "");
        assert_eq!(sys(&[prog], &[]), None, "installed, not enabled");
        assert_eq!(
            sys(
                &[prog],
                &[("/etc/runit/runsvdir/default/dhcpcd", "/etc/sv/dhcpcd")]
            ),
            Some("/etc/runit/runsvdir/default/dhcpcd starts dhcpcd (/usr/sbin/dhcpcd) at boot".into())
        );
        let wants = "/etc/systemd/system/multi-user.target.wants/dhcpcd.service";
        assert!(sys(&[prog], &[(wants, "/lib/systemd/system/dhcpcd.service")]).is_some());
        assert!(
            sys(
                &[("/sbin/dhcpcd", "")],
                &[("/etc/runlevels/default/dhcpcd", "/etc/init.d/dhcpcd")]
            )
            .is_some()
        );
        assert_eq!(
            sys(&[], &[(wants, "/lib/systemd/system/dhcpcd.service")]),
            None,
            "no program"
        );
    }

    /// Debian and Arch enable `dhcpcd@IFACE.service`, Void's runit `dhcpcd-IFACE`: each is found,
    /// with its interface; a masked instance or template, or a link of another service, is not.
    #[test]
    fn detected_by_an_instance_for_one_interface() {
        let sys = |files: &[(&str, &str)], links: &[(&str, &str)]| detected(&STACK, files, links);
        let prog = ("/usr/sbin/dhcpcd", "");
        let wants = "/etc/systemd/system/multi-user.target.wants/dhcpcd@eth0.service";
        let unit = "/lib/systemd/system/dhcpcd@.service";
        assert_eq!(
            sys(&[prog], &[(wants, unit)]),
            Some(format!(
                "{wants} starts dhcpcd (/usr/sbin/dhcpcd) for eth0 at boot"
            ))
        );
        for masked in [
            "/etc/systemd/system/dhcpcd@eth0.service",
            "/etc/systemd/system/dhcpcd@.service",
        ] {
            assert_eq!(
                sys(&[prog], &[(wants, unit), (masked, "/dev/null")]),
                None,
                "{masked}"
            );
        }
        for link in [
            "/etc/systemd/system/multi-user.target.wants/dhcpcd@.service",
            "/etc/systemd/system/multi-user.target.wants/dhcpcd-eth0.service",
            "/etc/runit/runsvdir/default/dhcpcd-",
        ] {
            assert_eq!(sys(&[prog], &[(link, unit)]), None, "{link}");
        }
        for dir in ["/etc/runit/runsvdir/default", "/var/service"] {
            let link = format!("{dir}/dhcpcd-eth1");
            assert_eq!(
                sys(&[prog], &[(&link, "/etc/sv/dhcpcd-eth1")]),
                Some(format!(
                    "{link} starts dhcpcd (/usr/sbin/dhcpcd) for eth1 at boot"
                ))
            );
        }
    }

    /// With dhcpcd run per interface, an os.conf NIC without its instance is named in a note;
    /// with dhcpcd run for all, or every NIC's instance enabled, there is no note.
    #[test]
    fn a_nic_without_its_instance_is_noted() {
        let unit = "/usr/lib/systemd/system/dhcpcd@.service";
        let wants = "/etc/systemd/system/multi-user.target.wants";
        let note = |links: &[(&str, &str)]| {
            let root = fake_root(&[], links);
            let out = render(&STACK, &example("classic"), root.path());
            out.notes
                .into_iter()
                .find(|n| n.contains("one instance per interface"))
        };
        let eth0 = format!("{wants}/dhcpcd@eth0.service");
        let eth1 = format!("{wants}/dhcpcd@eth1.service");
        let got = note(&[(&eth0, unit)]).expect("a note");
        assert!(got.contains(&format!("({eth0}); eth1 has none")), "{got}");
        assert_eq!(note(&[(&eth0, unit), (&eth1, unit)]), None);
        let whole = format!("{wants}/dhcpcd.service");
        assert_eq!(
            note(&[(&eth0, unit), (&whole, "/usr/lib/systemd/system/dhcpcd.service")]),
            None
        );
    }

    #[test]
    fn static_blocks_replace_the_nics_own_and_keep_every_other_line() {
        let old = "# sample\nhostname\nduid\ninterface eth0\nstatic ip_address=192.168.1.5/24\n\n# wifi\ninterface wlan0\nssid home\ninterface eth1\n  nohook x\n";
        let root = fake_root(&[(CONF, old)], &[]);
        let out = render(&STACK, &example("classic"), root.path());
        let got = written(&out, CONF).unwrap();
        let want = format!(
            "# sample\nhostname\nduid\n{DISABLED}interface eth0\n{DISABLED}static ip_address=192.168.1.5/24\n\n# wifi\n\
             interface wlan0\nssid home\n{DISABLED}interface eth1\n{DISABLED}  nohook x\n\n{BEGIN}\
             interface eth0\nstatic ip_address=10.171.254.123/24\nstatic routes=10.0.0.0/8 10.171.254.1\n\
             static routes=172.16.0.0/12 10.171.254.1\n\
             interface eth1\nstatic ip_address=42.120.74.105/24\nstatic routers=42.120.74.1\n\
             static domain_name_servers=7.7.7.7 8.8.8.8\n{END}"
        );
        assert_eq!(got, want);
        assert!(written(&out, EXIT_HOOK).is_none(), "no on-link gateway, no hook");
        // Applied again, nothing changes.
        let again = fake_root(&[(CONF, got)], &[]);
        assert!(written(&render(&STACK, &example("classic"), again.path()), CONF).is_none());
    }

    #[test]
    fn on_link_gateways_go_to_the_exit_hook() {
        let conf = "eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\neth0_gateway=10.0.1.1\n\
                    eth0_route=\"0.0.0.0/0 10.0.1.1;192.168.0.0/16 10.0.1.1\"\n";
        let root = fake_root(&[(EXIT_HOOK, "# mine\n")], &[]);
        let out = render(&STACK, &from_text(conf), root.path());
        assert_eq!(
            written(&out, CONF).unwrap(),
            format!("{BEGIN}interface eth0\nstatic ip_address=10.0.0.5/24\n{END}")
        );
        assert_eq!(
            written(&out, EXIT_HOOK).unwrap(),
            format!(
                "# mine\n\n{BEGIN}if [ \"$interface\" = \"eth0\" ] && [ \"$reason\" = STATIC ]; then\n\
                 \tip route replace 10.0.1.1/32 dev eth0 scope link\n\tip route replace default via 10.0.1.1 dev eth0\n\
                 \tip route replace 192.168.0.0/16 via 10.0.1.1 dev eth0\nfi\n{END}"
            )
        );
        // The next os.conf without one takes osconf's lines out again.
        let hooked = fake_root(&[(EXIT_HOOK, written(&out, EXIT_HOOK).unwrap())], &[]);
        let out = render(&STACK, &example("vpc"), hooked.path());
        assert_eq!(written(&out, EXIT_HOOK).unwrap(), "# mine\n\n");
    }
}
