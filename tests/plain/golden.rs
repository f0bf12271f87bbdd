//! Golden trees: each `tests/cases/<name>/` applies an os.conf to a scratch copy of an example root and
//! compares the whole resulting tree with `expected/`. `OSCONF_BLESS=1` rewrites `expected/` for a
//! person to review with `git diff`.
//!
//! A case directory holds `case.conf` (in os.conf syntax, read with osconf's own reader):
//! `rootfs=<examples/rootfs name>`, `conf=<examples name, e.g. classic>` or an `os.conf` beside it,
//! and optionally `stack=`, `ifname="eth0=ens3 …"`, `reapply=<examples name>` (a second os.conf
//! applied after the first, for re-apply cases).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use osconf::cli::Target;
use osconf::exec::{self, Options};
use osconf::plan::Env;
use osconf::system::System;

use crate::common::{copy_tree, example_root, repo, snapshot};

/// Fixed inputs, so that the shadow hash and backup directory are the same at every run.
fn test_env() -> Env {
    Env {
        salt: *b"osconf-tests",
        today: 20_000,
    }
}

fn case_settings(dir: &Path) -> BTreeMap<String, String> {
    let text = fs::read(dir.join("case.conf")).expect("case.conf");
    let raw = osconf::reader::parse(&text).expect("case.conf parses");
    raw.entries
        .into_iter()
        .map(|e| (e.key, e.value.to_string()))
        .collect()
}

fn apply_conf(root: &Path, conf: &Path, settings: &BTreeMap<String, String>, stamp: &str) {
    let raw = osconf::reader::parse(&fs::read(conf).unwrap()).unwrap();
    let config = osconf::model::validate(&raw)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .config;
    let mut target = Target {
        root: root.to_owned(),
        stack: settings.get("stack").cloned(),
        ..Target::default()
    };
    for pair in settings
        .get("ifname")
        .map(String::as_str)
        .unwrap_or("")
        .split_whitespace()
    {
        let (eth, name) = pair.split_once('=').unwrap();
        target
            .ifnames
            .insert(eth.trim_start_matches("eth").parse().unwrap(), name.to_owned());
    }
    let handle = osconf::root::Root::open(root).unwrap();
    let sys = System::on(handle.clone()).unwrap();
    let plan = osconf::app::make_plan(
        &config,
        &sys,
        &target,
        &test_env(),
        &mut osconf::timing::Steps::start(),
    )
    .unwrap();
    let opts = Options {
        live: false,
        config_file: None,
        stamp: stamp.to_owned(),
        pwd_lock: None,
    };
    exec::apply(&plan, &handle, &opts).unwrap();
}

fn conf_path(case: &Path, name: Option<&String>) -> PathBuf {
    match name {
        Some(n) => repo().join("examples").join(n).join("os.conf"),
        None => case.join("os.conf"),
    }
}

fn run_case(case: &Path) -> Result<(), String> {
    let settings = case_settings(case);
    let scratch = tempfile::tempdir().unwrap();
    let root = example_root(scratch.path(), &settings["rootfs"]);
    apply_conf(
        &root,
        &conf_path(case, settings.get("conf")),
        &settings,
        "19700101T000000Z",
    );
    if let Some(second) = settings.get("reapply") {
        apply_conf(
            &root,
            &conf_path(case, Some(second)),
            &settings,
            "19700102T000000Z",
        );
    }
    let expected = case.join("expected");
    if std::env::var_os("OSCONF_BLESS").is_some() {
        let _ = fs::remove_dir_all(&expected);
        copy_tree(&root, &expected).unwrap();
        return Ok(());
    }
    let (got, want) = (snapshot(&root), snapshot(&expected));
    if got == want {
        return Ok(());
    }
    let diff = osconf::plan::diff::unified(&want, &got, "expected", "got");
    Err(format!(
        "{}: tree differs from expected/ (- expected, + got):\n{diff}",
        case.display()
    ))
}

#[test]
fn golden_trees() {
    let mut cases: Vec<PathBuf> = fs::read_dir(repo().join("tests/cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no golden cases found");
    let failures: Vec<String> = cases.iter().filter_map(|c| run_case(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
