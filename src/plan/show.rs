//! Shows a plan to a person: a unified diff per file against what is on disk, then links, removals,
//! live actions and notes. Hashes and secret values are masked before diffing (`mask`,
//! `shadow::mask`), so no hash or password is printed, whoever's file it is.

use std::fmt::Write as _;

use super::{FileOp, LiveAction, Plan, mask};
use crate::render::common::shadow;
use crate::system::{self, System};

/// The text shown, or the file on disk that could not be read to diff against.
pub fn show(plan: &Plan, sys: &System) -> system::Result<String> {
    let mut out = String::new();
    let _ = writeln!(out, "stack: {}", plan.stack);
    for note in &plan.notes {
        let _ = writeln!(out, "note: {note}");
    }
    if plan.ops.is_empty() {
        out.push_str("files: nothing to change\n");
    }
    for op in &plan.ops {
        match op {
            FileOp::Write {
                path,
                contents,
                secret,
                ..
            } => {
                let old = match sys.link_target(path)? {
                    Some(t) => format!("(symbolic link to {}, replaced by a file)\n", t.display()),
                    None => String::from_utf8_lossy(&sys.read(path)?.unwrap_or_default()).into_owned(),
                };
                let new = String::from_utf8_lossy(contents).into_owned();
                let (old, new) = if *secret {
                    shadow::mask(&old, &new)
                } else {
                    (old, new)
                };
                let (old, new) = (mask::secrets(&old), mask::secrets(&new));
                let label = if sys.exists(path)? {
                    path.clone()
                } else {
                    "/dev/null".to_owned()
                };
                // The diff marks a missing final newline itself ("\ No newline at end of file").
                out.push_str(&super::diff::unified(&old, &new, &label, path));
            }
            FileOp::Symlink { path, target } => {
                let _ = writeln!(out, "link {path} -> {target}");
            }
            FileOp::Remove { path } => {
                let _ = writeln!(out, "remove {path}");
            }
        }
    }
    for action in &plan.live {
        let _ = writeln!(out, "live: {}", describe_live(action));
    }
    Ok(out)
}

/// A live action in a few words, naming the NIC or program (for its time in the log and status).
pub fn name_live(action: &LiveAction) -> String {
    match action {
        LiveAction::SetHostname(_) => "set the host name".to_owned(),
        LiveAction::ConfigureNic(nic) => format!("configure {}", nic.name),
        LiveAction::Run(run) => {
            // The program and its first words (verb, NIC), up to an option or a path.
            let mut words = vec![run.program.rsplit('/').next().unwrap_or(&run.program)];
            words.extend(
                run.args
                    .iter()
                    .take_while(|a| !a.starts_with(['-', '/']))
                    .take(2)
                    .map(String::as_str),
            );
            format!("run {}", words.join(" "))
        }
    }
}

pub fn describe_live(action: &LiveAction) -> String {
    match action {
        LiveAction::SetHostname(name) => format!("set the kernel host name to {name}"),
        LiveAction::ConfigureNic(nic) => {
            let who = nic
                .mac
                .map_or(nic.name.clone(), |m| format!("{} (MAC {m})", nic.name));
            let mut s = format!("configure {who}: {}/{}", nic.address, nic.prefix_len);
            for gw in &nic.on_link {
                let _ = write!(s, "; on-link {gw}");
            }
            for (dest, via) in &nic.routes {
                let _ = write!(s, "; {dest} via {via}");
            }
            s
        }
        LiveAction::Run(run) => {
            let mut argv = vec![run.program.as_str()];
            argv.extend(run.args.iter().map(String::as_str));
            let how = run
                .generator
                .as_ref()
                .map_or(String::new(), |g| format!(" as systemd runs its generator {g}"));
            format!("run `{}`{how} ({})", argv.join(" "), run.why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::common::testing::fake_root;

    #[test]
    fn a_missing_final_newline_is_marked_once() {
        let root = fake_root(&[("/etc/a", "one\n")], &[]);
        let plan = Plan {
            stack: "test".into(),
            ops: vec![FileOp::write("/etc/a", "two"), FileOp::write("/etc/b", "new")],
            ..Plan::default()
        };
        let text = show(&plan, &System::probe(root.path()).unwrap()).unwrap();
        let marks = text.matches("\\ No newline at end of file").count();
        assert_eq!(marks, 2, "{text}");
        assert!(text.contains("-one\n+two\n\\ No newline"), "{text}");
    }
}
