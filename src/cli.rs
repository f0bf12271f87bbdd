//! Command line: parses arguments into a `Command`. The commands, flags and exit codes are a contract
//! that image builders script against: extend them, never rename or drop one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lexopt::prelude::*;

pub const USAGE: &str = "\
osconf — configure a Customized Linux ECS instance from aliyun_custom_image/os.conf

Usage:
  osconf apply  [--root DIR] [--config FILE] [--stack NAME] [--ifname ethN=NAME]... [--live | --no-live]
  osconf plan   [--root DIR] [--config FILE] [--stack NAME] [--ifname ethN=NAME]...
  osconf check  FILE
  osconf detect [--root DIR]
  osconf COMMAND --help

Exit status: 0 applied (or no os.conf found), 1 applying failed and was rolled back,
2 os.conf (or the command line) is invalid and nothing was changed.
";

const APPLY_HELP: &str = "\
osconf apply — configure the system from os.conf, then remove os.conf

  --root DIR          the target's root directory (default /)
  --config FILE       os.conf to read (default: <root>/boot/aliyun_custom_image/os.conf,
                      then <root>/aliyun_custom_image/os.conf)
  --stack NAME        network stack to write for, instead of detecting it
  --ifname ethN=NAME  write NAME where os.conf says ethN (repeatable)
  --live, --no-live   also configure the running kernel (default: only when the root is /)

Every file replaced is backed up under <root>/var/lib/osconf/backup/<UTC time>/. On any failure all
steps are undone and os.conf is kept. Exit 0 applied or no os.conf, 1 failed and rolled back,
2 os.conf invalid (nothing changed).
";

const PLAN_HELP: &str = "\
osconf plan — show what apply would do (a diff per file, then live actions); change nothing

  Takes the same options as apply (--live and --no-live are accepted and ignored).
  The password never appears: changed /etc/shadow lines are shown masked.
";

const CHECK_HELP: &str = "\
osconf check FILE — validate an os.conf; print every error with its line and key

  Exit 0 when valid, 2 when not.
";

const DETECT_HELP: &str = "\
osconf detect [--root DIR] — print the distribution and the network stack osconf would use
";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub root: PathBuf,
    pub config: Option<PathBuf>,
    pub stack: Option<String>,
    pub ifnames: BTreeMap<u32, String>,
    pub live: Option<bool>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Apply(Target),
    Plan(Target),
    Check(PathBuf),
    Detect(PathBuf),
    /// Print this text and exit 0.
    Help(&'static str),
    Version,
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    parse_inner(args).map_err(|e| e.to_string())
}

fn parse_inner(args: impl IntoIterator<Item = String>) -> Result<Command, lexopt::Error> {
    let mut p = lexopt::Parser::from_args(args);
    let command = match p.next()? {
        Some(Value(v)) => v.string()?,
        Some(Long("help") | Short('h')) | None => return Ok(Command::Help(USAGE)),
        Some(Long("version") | Short('V')) => return Ok(Command::Version),
        Some(arg) => return Err(arg.unexpected()),
    };
    let help = match command.as_str() {
        "apply" => APPLY_HELP,
        "plan" => PLAN_HELP,
        "check" => CHECK_HELP,
        "detect" => DETECT_HELP,
        other => return Err(format!("unknown command {other:?}; see osconf --help").into()),
    };
    let mut t = Target {
        root: PathBuf::from("/"),
        ..Target::default()
    };
    let mut file = None;
    while let Some(arg) = p.next()? {
        match arg {
            Long("help") | Short('h') => return Ok(Command::Help(help)),
            Long("root") if command != "check" => t.root = p.value()?.into(),
            Long("config") if matches!(command.as_str(), "apply" | "plan") => {
                t.config = Some(p.value()?.into())
            }
            Long("stack") if matches!(command.as_str(), "apply" | "plan") => {
                let name = p.value()?.string()?;
                crate::app::find_stack(&name).map_err(|e| format!("--stack: {e}"))?;
                t.stack = Some(name)
            }
            Long("ifname") if matches!(command.as_str(), "apply" | "plan") => {
                let (index, name) = ifname(&p.value()?.string()?)?;
                t.ifnames.insert(index, name);
            }
            Long("live") if matches!(command.as_str(), "apply" | "plan") => t.live = Some(true),
            Long("no-live") if matches!(command.as_str(), "apply" | "plan") => t.live = Some(false),
            Value(v) if command == "check" && file.is_none() => file = Some(PathBuf::from(v)),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(match command.as_str() {
        "apply" => Command::Apply(t),
        "plan" => Command::Plan(t),
        "check" => Command::Check(file.ok_or("check needs the os.conf FILE to validate")?),
        _ => Command::Detect(t.root),
    })
}

/// `ethN=NAME`, NAME a valid kernel interface name.
fn ifname(v: &str) -> Result<(u32, String), lexopt::Error> {
    let bad = || lexopt::Error::from(format!("--ifname {v:?}: expected ethN=NAME"));
    let (eth, name) = v.split_once('=').ok_or_else(bad)?;
    let index = eth
        .strip_prefix("eth")
        .and_then(crate::model::nic_index)
        .ok_or_else(bad)?;
    let valid = !name.is_empty()
        && name.len() < 16
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name != "."
        && name != "..";
    if !valid {
        return Err(format!("--ifname {v:?}: {name:?} is not a valid interface name").into());
    }
    Ok((index, name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Command, String> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn commands_and_flags() {
        let Command::Apply(t) =
            parse_str("apply --root /mnt --config /c --stack sysconfig --no-live --ifname eth1=ens5")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(t.root, PathBuf::from("/mnt"));
        assert_eq!(t.config, Some(PathBuf::from("/c")));
        assert_eq!(t.stack.as_deref(), Some("sysconfig"));
        assert_eq!(t.live, Some(false));
        assert_eq!(t.ifnames.get(&1).map(String::as_str), Some("ens5"));
        assert_eq!(parse_str("check f").unwrap(), Command::Check("f".into()));
        assert_eq!(parse_str("detect --root r").unwrap(), Command::Detect("r".into()));
        assert_eq!(parse_str("plan --help").unwrap(), Command::Help(PLAN_HELP));
        assert_eq!(parse_str("").unwrap(), Command::Help(USAGE));
    }

    #[test]
    fn misuse_is_an_error() {
        for bad in [
            "frobnicate",
            "check",
            "check a b",
            "detect --config x",
            "apply --ifname eth0",
            "apply --ifname eth0=a/b",
            "apply --ifname eth01=a",
            "apply --ifname eth+1=a",
            "apply --ifname eth=a",
            "apply --root",
            "plan --stack nosuchstack",
        ] {
            assert!(parse_str(bad).is_err(), "{bad}");
        }
    }
}
