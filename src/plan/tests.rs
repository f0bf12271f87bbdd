//! Planning for a live run: the names written (kernel names found by MAC, or offline ethN and
//! `--ifname`) and, per stack, the steps that make the files take effect.

use std::collections::BTreeMap;

use super::*;
use crate::render::common::testing::{example, fake_root, sample_for};
use crate::render::{self, STACKS};
use crate::system::System;

fn env() -> Env {
    Env {
        salt: *b"osconf-tests",
        today: 20_000,
    }
}

/// The classic sample without its password (nothing to hash in an empty root).
fn classic() -> crate::model::Config {
    let mut config = example("classic");
    config.password = None;
    config
}

fn kernel_names() -> BTreeMap<u32, String> {
    [(0, "ens5".to_owned()), (1, "ens6".to_owned())].into()
}

fn plan_for(stack: &str, ifnames: &BTreeMap<u32, String>, running: Option<&Running>) -> Plan {
    let root = fake_root(&[], &[]);
    let stack = render::find(stack).unwrap();
    let mut config = sample_for(stack, root.path());
    config.password = None;
    build(
        &config,
        &System::probe(root.path()).unwrap(),
        stack,
        ifnames,
        running,
        &env(),
    )
    .unwrap()
}

/// `program args…` of each `Run`, and `configure NAME` for each NIC osconf configures itself.
fn network_steps(plan: &Plan) -> Vec<String> {
    plan.live
        .iter()
        .filter_map(|a| match a {
            LiveAction::SetHostname(_) => None,
            LiveAction::ConfigureNic(nic) => Some(format!("configure {}", nic.name)),
            LiveAction::Run(run) => Some(format!("{} {}", run.program, run.args.join(" "))),
        })
        .collect()
}

fn written<'a>(plan: &'a Plan, path: &str) -> &'a str {
    plan.ops
        .iter()
        .find_map(|op| match op {
            FileOp::Write {
                path: p, contents, ..
            } if p == path => std::str::from_utf8(contents).ok(),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{path} not written: {:?}", plan.ops))
}

#[test]
fn a_live_run_writes_the_kernel_names_and_an_offline_one_says_it_cannot() {
    const FILE: &str = "/etc/network/interfaces.d/50-osconf";
    let asked: BTreeMap<u32, String> = [(0, "foo0".to_owned())].into();
    let running = Running {
        names: kernel_names(),
        stack: StackState::NotRunning,
    };
    let live = plan_for("ifupdown", &asked, Some(&running));
    let text = written(&live, FILE);
    assert!(
        text.contains("iface ens5 inet static\n    address 10.171.254.123\n"),
        "{text}"
    );
    assert!(
        text.contains("iface ens6 inet static\n    address 42.120.74.105\n"),
        "{text}"
    );
    assert!(!text.contains("eth0") && !text.contains("foo0"), "{text}");
    let notes = live.notes.join("\n");
    assert!(
        notes.contains(
            "--ifname eth0=foo0 not used: the kernel calls the NIC with MAC 00:8c:fa:5e:14:23 ens5"
        ),
        "{notes}"
    );
    assert!(
        notes.contains("eth0 (MAC 00:8c:fa:5e:14:23) is ens5, eth1 (MAC 00:8c:fa:5e:14:24) is ens6"),
        "{notes}"
    );
    assert!(!notes.contains("cannot match a NIC by MAC"), "{notes}");

    let offline = plan_for("ifupdown", &asked, None);
    let text = written(&offline, FILE);
    assert!(
        text.contains("iface foo0 inet static") && text.contains("iface eth1 inet static"),
        "{text}"
    );
    let notes = offline.notes.join("\n");
    assert!(
        notes.contains("offline (a --root other than / without --live)"),
        "{notes}"
    );
    assert!(
        network_steps(&offline).is_empty(),
        "offline plans no network step"
    );
}

/// A live run never renames: no .link, no netplan set-name, no udev rule; offline, the stacks that
/// configure by name only still get their udev rule.
#[test]
fn a_live_run_renames_nothing() {
    let running = Running {
        names: kernel_names(),
        stack: StackState::NotRunning,
    };
    for stack in STACKS {
        let plan = plan_for(stack.name, &BTreeMap::new(), Some(&running));
        for op in &plan.ops {
            let path = op.path();
            assert!(
                !path.ends_with(".link") && !path.contains("udev/rules.d"),
                "{}: {path}",
                stack.name
            );
            if let FileOp::Write { contents, .. } = op {
                assert!(
                    !String::from_utf8_lossy(contents).contains("set-name"),
                    "{}: {path}",
                    stack.name
                );
            }
        }
    }
    let udev = "/etc/udev/rules.d/70-osconf-net.rules";
    for name in ["wicked", "slackware"] {
        let offline = plan_for(name, &BTreeMap::new(), None);
        assert!(written(&offline, udev).contains("NAME"), "{name}");
    }
}

#[test]
fn each_stack_takes_the_files_its_own_way() {
    let n = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let networkctl = ["networkctl reload", "networkctl reconfigure ens5 ens6"];
    let configure = n(&["configure ens5", "configure ens6"]);
    // NetworkManager's profiles of the two NICs, by the ids the stack gives them.
    let nmcli = |eth0: &str, eth1: &str| {
        let up = |id: &str| format!("nmcli connection up id {id}");
        vec!["nmcli connection reload".to_owned(), up(eth0), up(eth1)]
    };
    let down_up = |down: &str| {
        n(&[
            &format!("{down} ens5"),
            &format!("{down} ens6"),
            "ifup ens5",
            "ifup ens6",
        ])
    };
    let root = fake_root(&[], &[]);
    let generate = format!("netplan generate --root-dir {}", root.path().display());
    let cases: Vec<(&str, StackState, Vec<String>)> = vec![
        (
            "networkd",
            StackState::Running("systemd-networkd"),
            n(&networkctl),
        ),
        // At boot, on a root where nothing enables networkd, it is started for this boot.
        (
            "netplan",
            StackState::NotRunning,
            vec![
                generate.clone(),
                "systemctl start --no-block systemd-networkd.service systemd-networkd-wait-online.service"
                    .to_owned(),
            ],
        ),
        (
            "netplan",
            StackState::Running("systemd-networkd"),
            [vec![generate.clone()], n(&networkctl)].concat(),
        ),
        (
            "netplan",
            StackState::Running("NetworkManager"),
            [vec![generate], nmcli("netplan-ens5", "netplan-ens6")].concat(),
        ),
        (
            "networkmanager",
            StackState::Running("NetworkManager"),
            nmcli("osconf-eth0", "osconf-eth1"),
        ),
        (
            "sysconfig",
            StackState::Running("NetworkManager"),
            nmcli("System ens5", "System ens6"),
        ),
        ("sysconfig", StackState::Running("network"), down_up("ifdown")),
        (
            "ifupdown",
            StackState::Running("networking"),
            down_up("ifdown --force"),
        ),
        ("busybox", StackState::Running("networking"), down_up("ifdown -f")),
        (
            "wicked",
            StackState::Running("wicked"),
            n(&["wicked ifreload ens5 ens6"]),
        ),
        (
            "netifrc",
            StackState::Running("net.lo"),
            n(&["rc-service net.ens5 restart", "rc-service net.ens6 restart"]),
        ),
        (
            "openrc-network",
            StackState::Running("network"),
            n(&["rc-service network restart"]),
        ),
        (
            "dhcpcd",
            StackState::Running("dhcpcd"),
            n(&["dhcpcd -n ens5", "dhcpcd -n ens6"]),
        ),
        ("slackware", StackState::Unknown, configure.clone()),
        ("openwrt", StackState::Unknown, configure.clone()),
        ("freebsd", StackState::Unknown, configure),
    ];
    for (name, state, want) in cases {
        let running = Running {
            names: kernel_names(),
            stack: state,
        };
        let stack = render::find(name).unwrap();
        let sys = System::probe(root.path()).unwrap();
        let plan = build(&classic(), &sys, stack, &BTreeMap::new(), Some(&running), &env()).unwrap();
        assert_eq!(network_steps(&plan), want, "{name} {state:?}");
        let runs_on_nics = plan.live.iter().all(|a| match a {
            // Rendering, reloading and starting a daemon that is not up yet touch no NIC now.
            LiveAction::Run(r)
                if ["netplan", "systemctl"].contains(&r.program.as_str())
                    || r.args.last().is_some_and(|a| a == "reload") =>
            {
                r.nics.is_empty()
            }
            LiveAction::Run(r) => r.nics.len() == 2,
            _ => true,
        });
        assert!(
            runs_on_nics,
            "{name}: a step that changes NICs must record them first"
        );
    }
}

/// At boot no service runs yet: every stack that has one reads the files itself and osconf sets no
/// address (which would give, with NetworkManager, two default routes); the stacks without one are
/// exactly those osconf configures itself.
#[test]
fn at_boot_osconf_leaves_the_addresses_to_the_stack() {
    for stack in STACKS {
        let state = if stack.services.is_empty() {
            StackState::Unknown
        } else {
            StackState::NotRunning
        };
        let running = Running {
            names: kernel_names(),
            stack: state,
        };
        let plan = plan_for(stack.name, &BTreeMap::new(), Some(&running));
        let steps = network_steps(&plan);
        let configures = steps.iter().filter(|s| s.starts_with("configure ")).count();
        match state {
            StackState::Unknown => assert_eq!(configures, 2, "{}: {steps:?}", stack.name),
            _ => {
                // netplan's render, and networkd started: nothing enables it on this root.
                let want: &[&str] = if stack.name == "netplan" {
                    &["netplan", "systemctl"]
                } else {
                    &[]
                };
                let programs: Vec<&str> = steps.iter().map(|s| s.split(' ').next().unwrap()).collect();
                assert_eq!(programs, want, "{}", stack.name);
            }
        }
        let note = format!("{:?}", plan.notes);
        assert!(
            note.contains("runs") || note.contains("run yet") || note.contains("no trace"),
            "{note}"
        );
    }
}

/// Nothing in the network changed (an os.conf with only a host name): no network step at all.
#[test]
fn no_network_step_without_a_network_change() {
    let root = fake_root(&[], &[]);
    let config = crate::render::common::testing::from_text("hostname=h1\n");
    let running = Running {
        names: BTreeMap::new(),
        stack: StackState::Running("systemd-networkd"),
    };
    let stack = render::find("networkd").unwrap();
    let plan = build(
        &config,
        &System::probe(root.path()).unwrap(),
        stack,
        &BTreeMap::new(),
        Some(&running),
        &env(),
    )
    .unwrap();
    assert!(network_steps(&plan).is_empty(), "{:?}", plan.live);
}

/// Issue 13 §3: a write op (os.conf in `image inject`, /etc/shadow in a plan) never shows what it
/// writes in `Debug`, so no log or panic message of a plan holds a password or a hash.
#[test]
fn debug_of_a_write_never_shows_its_contents() {
    let op = FileOp::Write {
        path: "/aliyun_custom_image/os.conf".into(),
        contents: b"password=cXdlcjEyMzQ=\n".to_vec(),
        mode: Mode::Exact(0o600),
        secret: true,
    };
    let shown = format!("{op:?} {:?}", [&op]);
    assert!(
        !shown.contains("cXdlcjEyMzQ") && !shown.contains("112, 97"),
        "{shown}"
    );
    assert!(shown.contains("22 bytes") && shown.contains("os.conf"), "{shown}");
}
