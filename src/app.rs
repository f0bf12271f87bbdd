//! App: runs one command — find os.conf, read, validate, detect, plan, show or apply — and turns the
//! outcome into the documented exit codes. Messages go to stderr prefixed `osconf:`, for serial consoles.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::cli::{Command, Target};
use crate::error::{EXIT_FAILED, EXIT_INVALID, EXIT_OK};
use crate::exec;
use crate::model::{self, Config};
use crate::plan::{self, Env, Plan};
use crate::reader;
use crate::render;
use crate::system::System;

/// Where ECS writes os.conf, relative to the root, in the order they are tried.
const CONFIG_PATHS: [&str; 2] = ["boot/aliyun_custom_image/os.conf", "aliyun_custom_image/os.conf"];

fn say(msg: impl std::fmt::Display) {
    eprintln!("osconf: {msg}");
}

pub fn run(command: Command) -> u8 {
    match command {
        Command::Help(text) => {
            print!("{text}");
            EXIT_OK
        }
        Command::Generate(what) => {
            print!("{}", crate::cli::doc::generate(what));
            EXIT_OK
        }
        Command::Version => {
            print!("{}", crate::cli::doc::version());
            EXIT_OK
        }
        Command::Check(file) => match load(&file) {
            Ok(_) => {
                println!("{}: valid", file.display());
                EXIT_OK
            }
            Err(code) => code,
        },
        Command::Detect(root) => detect(&root),
        Command::Plan(target) => plan_or_apply(&target, false),
        Command::Apply(target) => plan_or_apply(&target, true),
    }
}

/// Reads and validates os.conf, printing every problem; `Err` carries the exit code.
fn load(path: &Path) -> Result<Config, u8> {
    let file = open_regular(path).map_err(|e| {
        say(format!("{}: {e}; nothing was changed", path.display()));
        EXIT_INVALID
    })?;
    let validated = reader::read(file).and_then(|raw| model::validate(&raw));
    match validated {
        Ok(v) => {
            v.warnings
                .iter()
                .for_each(|w| say(format!("{}: warning: {w}", path.display())));
            Ok(v.config)
        }
        Err(errors) => {
            errors
                .iter()
                .for_each(|e| say(format!("{}: {e}", path.display())));
            say(format!(
                "{} is invalid ({} errors); nothing was changed",
                path.display(),
                errors.len()
            ));
            Err(EXIT_INVALID)
        }
    }
}

/// Opens os.conf without blocking (a FIFO planted there must not hang the boot) and only if it is a
/// regular file.
fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

fn find_config(target: &Target) -> Option<PathBuf> {
    match &target.config {
        Some(path) => path.exists().then(|| path.clone()),
        None => CONFIG_PATHS
            .iter()
            .map(|p| target.root.join(p))
            .find(|p| p.exists()),
    }
}

fn detect(root: &Path) -> u8 {
    let sys = System::probe(root);
    let os = &sys.os;
    println!("root: {}", root.display());
    println!(
        "os: ID={} ID_LIKE={} VERSION_ID={} ({})",
        os.id,
        os.id_like.join(","),
        os.version_id,
        os.pretty_name
    );
    println!("resolv.conf: {:?}", render::common::dns::resolv_owner(&sys));
    match render::detect(&sys) {
        Ok(d) => {
            println!("stack: {} ({})", d.stack.name, d.evidence);
            for (name, why) in d.also_matched {
                println!("also matched: {name} ({why})");
            }
            EXIT_OK
        }
        Err(e) => {
            say(e);
            EXIT_FAILED
        }
    }
}

fn plan_or_apply(target: &Target, apply: bool) -> u8 {
    let Some(conf_path) = find_config(target) else {
        let looked: Vec<String> = match &target.config {
            Some(path) => vec![path.display().to_string()],
            None => CONFIG_PATHS
                .iter()
                .map(|p| target.root.join(p).display().to_string())
                .collect(),
        };
        say(format!(
            "no os.conf found (looked at {}); nothing to do",
            looked.join(", ")
        ));
        return EXIT_OK;
    };
    let config = match load(&conf_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let sys = System::probe(&target.root);
    let plan = match fresh_env().and_then(|env| make_plan(&config, &sys, target, &env)) {
        Ok(p) => p,
        Err(e) => {
            say(format!(
                "cannot plan: {e}; nothing was changed, {} kept",
                conf_path.display()
            ));
            return EXIT_FAILED;
        }
    };
    if !apply {
        let _ = std::io::stdout().write_all(plan::show(&plan, &sys).as_bytes());
        return EXIT_OK;
    }
    plan.notes.iter().for_each(|n| say(format!("note: {n}")));
    let live = target.live.unwrap_or(target.root == Path::new("/"));
    let opts = exec::Options {
        live,
        config_file: Some(conf_path.clone()),
        stamp: crate::clock::stamp(),
    };
    match exec::apply(&plan, &target.root, &opts) {
        Ok(report) => {
            report.steps.iter().for_each(say);
            if let Some(dir) = report.backup_dir {
                say(format!("originals backed up in {}", dir.display()));
            }
            say(format!(
                "applied {} with stack {}",
                conf_path.display(),
                plan.stack
            ));
            EXIT_OK
        }
        Err(e) => {
            say(format!("failed {e}"));
            say(format!(
                "every change was rolled back; {} kept",
                conf_path.display()
            ));
            EXIT_FAILED
        }
    }
}

/// A fresh salt and today's date: what a real run plans with.
fn fresh_env() -> Result<Env, String> {
    let mut salt = [0u8; render::common::shadow::SALT_BYTES];
    rustix::rand::getrandom(&mut salt, rustix::rand::GetRandomFlags::empty())
        .map_err(|e| format!("getrandom: {e}"))?;
    Ok(Env {
        salt,
        today: crate::clock::today(),
    })
}

/// Chooses the stack (`--stack` or detection) and builds the plan, with the choice in its notes.
pub fn make_plan(config: &Config, sys: &System, target: &Target, env: &Env) -> Result<Plan, String> {
    let (stack, mut notes) = match &target.stack {
        Some(name) => {
            let stack = render::find(name)?;
            (stack, vec![format!("stack {name} chosen with --stack")])
        }
        None => {
            let d = render::detect(sys)?;
            let mut notes = vec![format!("stack {} detected: {}", d.stack.name, d.evidence)];
            notes.extend(
                d.also_matched
                    .iter()
                    .map(|(n, why)| format!("also matched {n} ({why}); not used")),
            );
            (d.stack, notes)
        }
    };
    let mut plan = plan::build(config, sys, stack, &target.ifnames, env)?;
    notes.append(&mut plan.notes);
    plan.notes = notes;
    Ok(plan)
}
