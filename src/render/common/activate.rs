//! Activation steps the stacks share: what makes a network service that runs already take osconf's
//! new files (`networkctl`, `nmcli`, `ifdown`/`ifup`). Pure: the steps are plan data that the
//! platform layer runs; nothing here runs anything. At boot no service runs yet and these return
//! nothing: the service reads the files when it starts, right after osconf.

use crate::plan::{Run, live_nic};
use crate::render::Input;

/// For stacks with nothing to do beyond writing the files.
pub fn none(_: &Input) -> Vec<Run> {
    Vec::new()
}

/// The interface names of os.conf's NICs, as written.
pub fn names(input: &Input) -> Vec<String> {
    input.config.nics.iter().map(|n| input.ifname(n)).collect()
}

/// `run` changes the addresses and routes of os.conf's NICs: the platform records them first.
pub fn on_nics(mut run: Run, input: &Input) -> Run {
    run.nics = input.config.nics.iter().map(|n| live_nic(input, n)).collect();
    run
}

/// systemd-networkd, when it runs: `networkctl reload` rereads the .network files, but applies a
/// changed one only to links it configures anew, which `networkctl reconfigure` asks for.
pub fn networkd(input: &Input) -> Vec<Run> {
    if input.running_service() != Some("systemd-networkd") {
        return Vec::new();
    }
    let names = names(input);
    let mut reconfigure = vec!["reconfigure"];
    reconfigure.extend(names.iter().map(String::as_str));
    vec![
        Run::new(
            "networkctl",
            &["reload"],
            "systemd-networkd runs already: it rereads its .network files only when told",
        ),
        on_nics(
            Run::new(
                "networkctl",
                &reconfigure,
                "a reloaded .network file applies only to a link networkd configures again",
            ),
            input,
        ),
    ]
}

/// NetworkManager, when it runs: `nmcli connection reload` rereads the profiles on disk, then
/// `nmcli connection up` activates each NIC's profile (`ids`, in os.conf's order) in place of the
/// one it had.
pub fn networkmanager(input: &Input, ids: &[String]) -> Vec<Run> {
    if input.running_service() != Some("NetworkManager") {
        return Vec::new();
    }
    let mut runs = vec![Run::new(
        "nmcli",
        &["connection", "reload"],
        "NetworkManager runs already: it rereads changed profiles only when told",
    )];
    for id in ids {
        runs.push(on_nics(
            Run::new(
                "nmcli",
                &["connection", "up", "id", id],
                "a reloaded profile applies only once activated again",
            ),
            input,
        ));
    }
    runs
}

/// Script stacks that configure a NIC once (ifupdown, busybox ifup, initscripts), when they ran
/// already: every NIC down with the new files (`down` plus the name), then up again. All go down
/// before any comes up, so that an address or route moving between two NICs is never on both.
pub fn down_up(input: &Input, service: &str, down: &[&str], up: &[&str]) -> Vec<Run> {
    if input.running_service() != Some(service) {
        return Vec::new();
    }
    let names = names(input);
    let step = |argv: &[&str], name: &str, why: &str| {
        let mut args: Vec<&str> = argv[1..].to_vec();
        args.push(name);
        on_nics(Run::new(argv[0], &args, why), input)
    };
    let downs = names.iter().map(|n| {
        step(
            down,
            n,
            &format!("{service} configured {n} already: it takes the old addresses and routes off"),
        )
    });
    let ups = names
        .iter()
        .map(|n| step(up, n, &format!("{service} configures {n} from the new files")));
    downs.chain(ups).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Running, StackState};
    use crate::render::common::testing::{example, fake_root};
    use crate::system::System;
    use std::collections::BTreeMap;

    fn argv(runs: &[Run]) -> Vec<String> {
        runs.iter()
            .map(|r| format!("{} {}", r.program, r.args.join(" ")))
            .collect()
    }

    #[test]
    fn steps_only_when_the_service_runs() {
        let config = example("classic");
        let root = fake_root(&[], &[]);
        let sys = System::probe(root.path()).unwrap();
        let names: BTreeMap<u32, String> = [(0, "ens5".into()), (1, "ens6".into())].into();
        let with = |stack| Running {
            names: names.clone(),
            stack,
        };
        let running = with(StackState::Running("networking"));
        let input = Input {
            config: &config,
            sys: &sys,
            ifnames: &names,
            running: Some(&running),
        };
        let runs = down_up(&input, "networking", &["ifdown", "--force"], &["ifup"]);
        assert_eq!(
            argv(&runs),
            [
                "ifdown --force ens5",
                "ifdown --force ens6",
                "ifup ens5",
                "ifup ens6"
            ]
        );
        assert!(runs.iter().all(|r| r.nics.len() == 2 && r.nics[0].name == "ens5"));
        assert!(networkd(&input).is_empty(), "another service runs");
        for stack in [StackState::NotRunning, StackState::Unknown] {
            let boot = with(stack);
            let input = Input {
                running: Some(&boot),
                ..input
            };
            assert!(down_up(&input, "networking", &["ifdown"], &["ifup"]).is_empty());
        }
    }
}
