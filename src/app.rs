//! App: runs one command — find os.conf, read, validate, detect, plan, show or apply — and returns
//! its outcome as an `error::Error` (which `main` turns into the documented exit code). Messages go to
//! stderr prefixed `osconf:`, for serial consoles; a command's product goes to stdout.

use std::path::Path;

use crate::boot;
use crate::cli::{Command, Target};
use crate::error::Error;
use crate::exec;
use crate::model::Config;
use crate::output::{Said, say};
use crate::plan::{self, Env, Plan};
use crate::render;
use crate::root::{self, ConfFile, Root};
use crate::status;
use crate::system::System;
use crate::timing::Steps;

/// Where ECS writes os.conf, relative to the root, in the order they are tried.
const CONFIG_PATHS: [&str; 2] = ["boot/aliyun_custom_image/os.conf", "aliyun_custom_image/os.conf"];

/// Runs `command`: what it has to say on stdout, for `output::finish` to print.
pub fn run(command: Command) -> Result<Said, Error> {
    match command {
        Command::Help(text) => Ok(Said::text(text)),
        Command::Generate(what) => Ok(Said::text(crate::cli::doc::generate(what))),
        Command::Version => Ok(Said::text(crate::cli::doc::version())),
        Command::Check(file) => {
            crate::conf::load(&file)?;
            Ok(Said::text(format!("{}: valid\n", file.display())))
        }
        Command::Detect { root, json } => detect(&root, json),
        Command::Plan(target) => {
            plan_or_apply(&target, false, &mut status::Run::default(), &mut Steps::start())
        }
        Command::Apply(target) => {
            let mut steps = Steps::start();
            crate::log::start(&target.root);
            status::clean(&target.root);
            let mut run = status::Run::default();
            let outcome = plan_or_apply(&target, true, &mut run, &mut steps);
            run.timings = steps.list;
            run.finish(&target.root, outcome.as_ref().err());
            outcome
        }
        Command::Status { root, json } => status::show(&root, json),
        // The image commands are the toolkit's, a program of its own (see `programs`).
        Command::Image(_) => Err(crate::programs::exec_toolkit(std::env::args_os().skip(2))),
        Command::Install(req) => crate::install::run::install(&req).map(|()| Said::nothing()),
        Command::Uninstall(req) => crate::install::run::uninstall(&req).map(|()| Said::nothing()),
    }
}

/// os.conf found: where, how, and (found by the partition finder) what keeps its filesystem mounted
/// until the run ends. It is open: a link at os.conf or its directory was refused, and removing it
/// unlinks this very entry.
struct Source {
    conf: ConfFile,
    /// Where it came from and how it was reached, for `plan`, `detect` and the log.
    how: String,
    notes: Vec<String>,
    located: Option<boot::Located>,
}

/// Why there is no os.conf to read: nothing to do (exit 0), or it could not be reached or read.
enum Missing {
    Absent(String),
    Failed(Error),
}

/// Finds os.conf: `--config`; else on root `/` (or with `--device`) partition 1 through the
/// partition finder, mounted read-write for apply and read-only for plan; else (another root, or no
/// partition 1 here at all, as in a container) the paths under the root, resolved inside it.
fn find_config(target: &Target, root: &Root, writable: bool) -> Result<Source, Missing> {
    let plain = |conf: ConfFile, how: String| Source {
        conf,
        how,
        notes: Vec::new(),
        located: None,
    };
    if let Some(path) = &target.config {
        return match ConfFile::at(path).map_err(|e| Missing::Failed(conf_error(path, e)))? {
            Some(conf) => Ok(plain(conf, "given with --config".to_owned())),
            // Named on purpose: a typo must not pass for "nothing to do" (`check` says the same).
            None => Err(Missing::Failed(
                Error::invalid(path, "no such file (given with --config)").unchanged(),
            )),
        };
    }
    let mut fallback = None;
    if target.root == Path::new("/") || target.device.is_some() {
        let opts = boot::Options {
            device: target.device.clone(),
            wait: target.wait(),
            writable,
        };
        match boot::find(&boot::Roots::host(), &opts) {
            Ok(located) => {
                let path = located.config_file();
                let how = located.describe();
                let Some(conf) = ConfFile::at(&path).map_err(|e| Missing::Failed(conf_error(&path, e)))?
                else {
                    return Err(Missing::Absent(format!("looked at {} on {how}", path.display())));
                };
                return Ok(Source {
                    conf,
                    how,
                    notes: located.target.notes.clone(),
                    located: Some(located),
                });
            }
            Err(boot::FindError::NoPartition(why)) => fallback = Some(why),
            Err(boot::FindError::Failed(why)) => {
                let why = format!("cannot reach os.conf: {why}");
                return Err(Missing::Failed(Error::failed(None, why).unchanged()));
            }
        }
    }
    let why = fallback.map(|w| format!("; {w}")).unwrap_or_default();
    for p in CONFIG_PATHS {
        let (dir, name) = p.rsplit_once('/').expect("a directory and a name");
        let found = ConfFile::find(root, dir, name)
            .map_err(|e| Missing::Failed(conf_error(&root.host_path(p), e)))?;
        if let Some(conf) = found {
            return Ok(plain(conf, format!("found under the root{why}")));
        }
    }
    let paths: Vec<String> = CONFIG_PATHS
        .iter()
        .map(|p| target.root.join(p).display().to_string())
        .collect();
    Err(Missing::Absent(format!("looked at {}{why}", paths.join(", "))))
}

/// os.conf could not be read: not a file at all is bad input (exit 2); a link refused or an I/O
/// error is a failure (exit 1).
fn conf_error(path: &Path, e: std::io::Error) -> Error {
    let why = format!("cannot read os.conf: {e}");
    match e.kind() {
        std::io::ErrorKind::InvalidData => Error::invalid(path, why).unchanged(),
        _ => Error::failed(Some(path), why).unchanged(),
    }
}

/// A file of the target that could not be read: applying fails, nothing changed.
fn unreadable(e: root::Error) -> Error {
    Error::from(e).unchanged()
}

/// `osconf detect`: the root's distribution, init system and network stack (`detect::Survey`, as
/// `image check` says them of an image), who owns resolv.conf, and on `/` where os.conf is; as
/// text, or one JSON object.
fn detect(root: &Path, json: bool) -> Result<Said, Error> {
    let sys = System::probe(root).map_err(unreadable)?;
    let survey = crate::detect::Survey::of(&sys);
    let resolv = format!(
        "{:?}",
        render::common::dns::resolv_owner(&sys).map_err(unreadable)?
    );
    let conf = (root == Path::new("/")).then(|| {
        let opts = boot::Options {
            device: None,
            wait: std::time::Duration::ZERO,
            writable: false,
        };
        match boot::survey(&boot::Roots::host(), &opts) {
            Ok(line) => line,
            Err(boot::FindError::NoPartition(why)) => {
                format!("no partition 1 ({why}); looked for under / instead")
            }
            Err(boot::FindError::Failed(why)) => why,
        }
    });
    let root_shown = root.display().to_string();
    let text = match json {
        true => format!(
            "{{\"root\":{},\"system\":{},\"resolv_conf\":{},\"os_conf\":{}}}\n",
            crate::json::string(&root_shown),
            survey.json(),
            crate::json::string(&resolv),
            crate::json::string_or_null(conf.as_deref()),
        ),
        false => {
            let conf = conf.map(|c| format!("os.conf: {c}\n")).unwrap_or_default();
            format!(
                "root: {root_shown}\n{}resolv.conf: {resolv}\n{conf}",
                survey.text()
            )
        }
    };
    Ok(match survey.stack {
        Ok(_) => Said::text(text),
        Err(e) => Said::failing(text, e),
    })
}

/// Plans or applies os.conf; `run` is filled in for the status record, `steps` timed.
fn plan_or_apply(
    target: &Target,
    apply: bool,
    run: &mut status::Run,
    steps: &mut Steps,
) -> Result<Said, Error> {
    let root = Root::open(&target.root).map_err(|e| Error::io(&target.root, &e).unchanged())?;
    if apply {
        // One apply at a time; then a run cut short is rolled back before anything is read, so that
        // the plan is made against the configuration as it was.
        exec::lock(&root, exec::WAIT)?;
        match exec::recover(&root) {
            Ok(Some(exec::Recovered::Completed { text, files, backup })) => {
                // Its record (cut off with it): kept unless this run makes its own.
                say(&text);
                *run = status::Run {
                    result: format!("applied by a run cut short; {text}"),
                    config: Some("removed by that run".to_owned()),
                    files,
                    backup,
                    ..status::Run::default()
                };
            }
            Ok(Some(done)) => say(done.to_string()),
            Ok(None) => {}
            Err(e) => return Err(e.context(None, "rolling back an interrupted run")),
        }
        exec::clean_pwd_leftovers(&root)?.into_iter().for_each(say);
        steps.lap("lock, roll back a run cut short");
    }
    // What apply would roll back first (a plan changes nothing, so the journal is still there).
    let cut_short = match apply {
        true => None,
        false => exec::pending(&root).map_err(|e| e.context(Some(&target.root), "the journal"))?,
    };
    let source = match find_config(target, &root, apply) {
        Ok(s) => s,
        Err(Missing::Absent(looked)) => {
            match &cut_short {
                Some(what) => say(format!("no os.conf found ({looked}); but {what}")),
                None => say(format!("no os.conf found ({looked}); nothing to do")),
            }
            return Ok(Said::nothing());
        }
        Err(Missing::Failed(e)) => return Err(e),
    };
    steps.lap("find os.conf");
    let conf_path = source.conf.path.clone();
    // The finder's own account says which device and mount; a plain path says it all.
    // This run's record, replacing one of a run cut short that recovery completed.
    *run = status::Run {
        config: Some(match source.located {
            Some(_) => format!("{} ({})", conf_path.display(), source.how),
            None => conf_path.display().to_string(),
        }),
        ..status::Run::default()
    };
    let file = source
        .conf
        .file
        .try_clone()
        .map_err(|e| Error::io(&conf_path, &e).unchanged())?;
    let bytes = crate::conf::read_from(&conf_path, file)?;
    steps.lap("read os.conf");
    let config = crate::conf::validate(&conf_path, bytes.expose())?;
    drop(bytes);
    steps.lap("validate os.conf");
    // The password files are read for the plan and rewritten by apply under their lock, as passwd
    // and chpasswd do.
    let mut pwd_lock = match apply && config.password.is_some() {
        true => exec::lock_passwords(&root, exec::PWD_WAIT).map_err(|e| {
            e.context(Some(&conf_path), "cannot apply")
                .unchanged()
                .conf_kept()
        })?,
        false => None,
    };
    if pwd_lock.is_some() {
        steps.lap("lock the password files");
    }
    let found = Found {
        source,
        config,
        cut_short,
    };
    let outcome = plan_locked(target, apply, run, root, found, &mut pwd_lock, steps);
    // A lock file this run created and could not remove is said, not hidden behind "nothing was
    // changed" (the next run removes it).
    match (pwd_lock.map(exec::PwdLock::release), outcome) {
        (Some(Err(left)), Err(e)) => Err(e.leaving(left.message)),
        (Some(Err(left)), Ok(_)) => Err(Error {
            path: Some(conf_path),
            ..left
        }),
        (_, outcome) => outcome,
    }
}

/// os.conf found and valid, with what `plan` says about a run cut short.
struct Found {
    source: Source,
    config: Config,
    cut_short: Option<String>,
}

/// The rest of [`plan_or_apply`], under the password files' lock when it is taken (it goes into
/// the executor's options and comes back for the caller to release).
fn plan_locked(
    target: &Target,
    apply: bool,
    run: &mut status::Run,
    root: Root,
    found: Found,
    pwd_lock: &mut Option<exec::PwdLock>,
    steps: &mut Steps,
) -> Result<Said, Error> {
    let Found {
        mut source,
        config,
        cut_short,
    } = found;
    let conf_path = source.conf.path.clone();
    let cannot_plan = |e: Error| e.context(Some(&conf_path), "cannot plan").unchanged().conf_kept();
    let sys = System::on(root.clone()).map_err(|e| cannot_plan(e.into()))?;
    let mut plan = fresh_env()
        .and_then(|env| make_plan(&config, &sys, target, &env, steps))
        .map_err(cannot_plan)?;
    let mut notes: Vec<String> = cut_short
        .into_iter()
        .map(|what| format!("{what}; the plan below is against the files as they are now"))
        .collect();
    notes.push(format!("os.conf {}: {}", conf_path.display(), source.how));
    notes.append(&mut source.notes);
    notes.append(&mut plan.notes);
    plan.notes = notes;
    if !apply {
        let text = plan::show(&plan, &sys).map_err(|e| {
            Error::from(e)
                .context(Some(&conf_path), "cannot show the plan")
                .unchanged()
        })?;
        return Ok(Said::text(text));
    }
    plan.notes.iter().for_each(|n| say(format!("note: {n}")));
    run.planned(&plan, target.is_live());
    if let Some(located) = &mut source.located {
        let done = located.make_writable(&boot::Roots::host()).map_err(|e| {
            e.context(Some(&conf_path), "cannot apply")
                .unchanged()
                .conf_kept()
        })?;
        done.into_iter().for_each(say);
        steps.lap("make partition 1 writable");
    }
    let mut opts = exec::Options {
        live: target.is_live(),
        config_file: Some(source.conf),
        stamp: crate::clock::stamp(),
        pwd_lock: pwd_lock.take(),
    };
    let applied = exec::apply(&plan, &root, &opts);
    *pwd_lock = opts.pwd_lock.take();
    match applied {
        Ok(mut report) => {
            steps.list.append(&mut report.timings.list);
            report.steps.iter().for_each(say);
            if let Some(dir) = report.backup_dir {
                say(format!("originals backed up in {}", dir.display()));
                run.backup = Some(dir.display().to_string());
            }
            run.result = format!("applied {} with stack {}", conf_path.display(), plan.stack);
            say(&run.result);
            Ok(Said::nothing())
        }
        Err(mut e) => {
            steps.list.append(&mut e.timings);
            run.result = format!("failed {e}");
            say(&run.result);
            Err(Error::failed(Some(&conf_path), "not applied")
                .with_outcome(e.outcome())
                .conf_kept())
        }
    }
}

/// A fresh salt and today's date: what a real run plans with.
fn fresh_env() -> Result<Env, Error> {
    let mut salt = [0u8; render::common::shadow::SALT_BYTES];
    crate::random::fill(&mut salt)?;
    Ok(Env {
        salt,
        today: crate::clock::today(),
    })
}

/// Chooses the stack (`--stack` or detection) and builds the plan, with the choice in its notes. A
/// live run first asks the running system for the NICs' kernel names (waiting for late drivers up
/// to `--wait`) and whether the stack runs. Each of the three is a step of `steps`.
pub fn make_plan(
    config: &Config,
    sys: &System,
    target: &Target,
    env: &Env,
    steps: &mut Steps,
) -> Result<Plan, Error> {
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
    steps.lap("detect the stack");
    let running = match target.is_live() {
        true => {
            let names = crate::platform::wait_for_nics(&config.nics, target.wait())?;
            let nics: Vec<String> = config
                .nics
                .iter()
                .map(|n| names.get(&n.index).cloned().unwrap_or_else(|| n.name()))
                .collect();
            let running = plan::Running {
                names,
                stack: crate::platform::stack_state(stack.services, &nics),
            };
            steps.lap("find the NICs, ask whether the stack runs");
            Some(running)
        }
        false => None,
    };
    let mut plan = plan::build(config, sys, stack, &target.ifnames, running.as_ref(), env)?;
    steps.lap("plan");
    notes.append(&mut plan.notes);
    plan.notes = notes;
    Ok(plan)
}
