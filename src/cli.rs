//! Command line: parses arguments into a `Command`, driven by the one definition in `defs` (which
//! also feeds `--help`, the man page and the completions). The commands, flags and exit codes are a
//! contract that image builders script against: extend them, never rename or drop one.

pub mod complete;
pub mod defs;
pub mod doc;
pub mod image;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use lexopt::prelude::*;

use crate::error::Error;
use defs::{CommandDef, Flag};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub root: PathBuf,
    pub config: Option<PathBuf>,
    pub stack: Option<String>,
    pub ifnames: BTreeMap<u32, String>,
    pub live: Option<bool>,
    /// `--wait SECS`: the bound on waiting for devices at boot; `None` means [`DEFAULT_WAIT_SECS`].
    pub wait: Option<u64>,
    /// `--device`: where os.conf lives instead of partition 1.
    pub device: Option<crate::boot::DeviceSpec>,
}

/// How long a live run waits for a NIC, and the finder for a device (drivers load late at boot),
/// unless `--wait` says otherwise.
pub const DEFAULT_WAIT_SECS: u64 = 30;

impl Target {
    /// True when this run changes the running system: `--live`, or by default when the root is `/`.
    pub fn is_live(&self) -> bool {
        self.live.unwrap_or(self.root == std::path::Path::new("/"))
    }

    /// The bound on waiting for a device.
    pub fn wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.wait.unwrap_or(DEFAULT_WAIT_SECS))
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Apply(Target),
    Plan(Target),
    Check(PathBuf),
    Detect {
        root: PathBuf,
        json: bool,
    },
    Install(crate::install::run::Request),
    Uninstall(crate::install::run::Request),
    Status {
        root: PathBuf,
        json: bool,
    },
    /// `image check|inject|prepare|test`: the image toolkit's commands.
    Image(image::Image),
    /// Print a generated document (man page, completion script).
    Generate(doc::Generated),
    /// Print this text and exit 0.
    Help(String),
    Version,
}

/// What the command line gave a command, in order, each flag one of the command's own.
#[derive(Debug, Default)]
pub struct Matches {
    /// The flag, whether its `--no-…` form was given, and its value.
    given: Vec<(&'static Flag, bool, Option<OsString>)>,
    operands: Vec<OsString>,
}

impl Matches {
    /// Every value given to `flag`, in order.
    fn values<'a>(&'a self, flag: &Flag) -> impl Iterator<Item = &'a OsStr> + use<'a> {
        let long = flag.long;
        self.given
            .iter()
            .filter(move |(f, _, _)| f.long == long)
            .filter_map(|(_, _, v)| v.as_deref())
    }

    fn last(&self, flag: &Flag) -> Option<&OsStr> {
        self.values(flag).last()
    }

    /// `Some(true)` when `--flag` was given last, `Some(false)` when `--no-flag` was.
    fn switch(&self, flag: &Flag) -> Option<bool> {
        self.given
            .iter()
            .rfind(|(f, _, _)| f.long == flag.long)
            .map(|(_, negated, _)| !negated)
    }

    fn operand(&self, i: usize) -> &OsStr {
        &self.operands[i]
    }
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, Error> {
    parse_inner(args)
}

/// lexopt's account of a word it could not take (an unknown flag, a missing value).
impl From<lexopt::Error> for Error {
    fn from(e: lexopt::Error) -> Error {
        Error::usage(e.to_string())
    }
}

/// The toolkit's command line (`osconf-image ARGS`): `osconf image ARGS`, and `--version`.
pub fn parse_toolkit(args: impl IntoIterator<Item = String>) -> Result<Command, Error> {
    let mut args = args.into_iter().peekable();
    if args.next_if(|a| a == "--version" || a == "-V").is_some() && args.peek().is_none() {
        return Ok(Command::Version);
    }
    let group = defs::GROUPS[0].name;
    parse(std::iter::once(group.to_owned()).chain(args))
}

fn parse_inner(args: impl IntoIterator<Item = String>) -> Result<Command, Error> {
    let mut p = lexopt::Parser::from_args(args);
    let name = match p.next()? {
        Some(Value(v)) => v.string()?,
        Some(Long("help") | Short('h')) | None => return Ok(Command::Help(doc::help())),
        Some(Long("version") | Short('V')) => return Ok(Command::Version),
        Some(arg) => return Err(arg.unexpected().into()),
    };
    // A group's command is known at its second word; flags may come before it (`image --json check
    // DISK`), checked against the command once it is known.
    let group = defs::GROUPS.iter().find(|g| g.name == name);
    let mut def = match group {
        Some(_) => None,
        None => Some(
            defs::COMMANDS
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| Error::usage(format!("unknown command {name:?}; see osconf --help")))?,
        ),
    };
    let mut m = Matches::default();
    while let Some(arg) = p.next()? {
        let arg = match (arg, def, group) {
            (Value(v), None, Some(g)) => {
                let found = action(g, &v)?;
                let foreign = m
                    .given
                    .iter()
                    .find(|(f, _, _)| !found.all_flags().any(|g| g.long == f.long));
                if let Some((f, _, _)) = foreign {
                    return Err(Error::usage(format!(
                        "{}: --{} is not an option of {0}",
                        found.name, f.long
                    )));
                }
                def = Some(found);
                continue;
            }
            (Value(v), Some(d), _) if m.operands.len() < d.operands.len() => {
                m.operands.push(v);
                continue;
            }
            (other, _, _) => other,
        };
        // Before a group's action: the flags of any of its commands.
        let flags: Vec<&'static Flag> = match (def, group) {
            (Some(d), _) => d.all_flags().collect(),
            (None, Some(g)) => g.commands().flat_map(CommandDef::all_flags).collect(),
            (None, None) => Vec::new(),
        };
        let (flag, negated) = match &arg {
            Long(l) => match find_flag(&flags, l) {
                Some(found) => found,
                None => return Err(arg.unexpected().into()),
            },
            Short(c) => match flags.iter().find(|f| f.short == Some(*c)) {
                Some(f) => (*f, false),
                None => return Err(arg.unexpected().into()),
            },
            Value(_) => return Err(arg.unexpected().into()),
        };
        if flag.long == defs::HELP.long {
            return Ok(Command::Help(match (def, group) {
                (Some(d), _) => doc::command_help(d),
                (None, g) => doc::group_help(g.expect("a group before its action")),
            }));
        }
        let value = match flag.value {
            Some(_) => Some(p.value()?),
            None => None,
        };
        m.given.push((flag, negated, value));
    }
    let Some(def) = def else {
        let g = group.expect("a command or a group");
        return Err(Error::usage(format!(
            "{} needs an action: {}",
            g.name,
            actions(g)
        )));
    };
    if let Some(missing) = def.operands.get(m.operands.len()).filter(|o| !o.optional) {
        return Err(Error::usage(format!(
            "{} needs {} ({})",
            def.name, missing.name, missing.help
        )));
    }
    (def.build)(&m)
}

/// The command of group `g` that `word` names.
fn action(g: &defs::Group, word: &OsStr) -> Result<&'static CommandDef, Error> {
    g.commands().find(|c| word == c.action()).ok_or_else(|| {
        Error::usage(format!(
            "{}: unknown action {word:?}; known: {}",
            g.name,
            actions(g)
        ))
    })
}

/// `check, inject, prepare, test`.
fn actions(g: &defs::Group) -> String {
    g.commands().map(|c| c.action()).collect::<Vec<_>>().join(", ")
}

/// The flag among `flags` called `--long` (or `--no-long`), and whether it was the negated form.
fn find_flag(flags: &[&'static Flag], long: &str) -> Option<(&'static Flag, bool)> {
    flags.iter().find_map(|f| {
        if f.long == long {
            Some((*f, false))
        } else {
            (f.negated == Some(long)).then_some((*f, true))
        }
    })
}

fn utf8<'a>(flag: &Flag, v: &'a OsStr) -> Result<&'a str, Error> {
    v.to_str()
        .ok_or_else(|| Error::usage(format!("--{} {v:?}: not valid UTF-8", flag.long)))
}

/// The value of `flag`, one of `words` (as typed, what it means); `None` when the flag is absent.
fn one_of<T: Copy>(m: &Matches, flag: &Flag, words: &[(&str, T)]) -> Result<Option<T>, Error> {
    let Some(v) = m.last(flag) else {
        return Ok(None);
    };
    let v = utf8(flag, v)?;
    match words.iter().find(|(w, _)| *w == v) {
        Some((_, t)) => Ok(Some(*t)),
        None => {
            let known: Vec<&str> = words.iter().map(|(w, _)| *w).collect();
            Err(Error::usage(format!(
                "--{} {v:?}: expected {}",
                flag.long,
                known.join(" or ")
            )))
        }
    }
}

fn target(m: &Matches) -> Result<Target, Error> {
    let mut t = Target {
        root: m
            .last(&defs::ROOT)
            .map_or_else(|| PathBuf::from("/"), PathBuf::from),
        config: m.last(&defs::CONFIG).map(PathBuf::from),
        live: m.switch(&defs::LIVE),
        ..Target::default()
    };
    for name in m.values(&defs::STACK) {
        let name = utf8(&defs::STACK, name)?;
        crate::render::find(name).map_err(|e| Error::usage(format!("--stack: {e}")))?;
        t.stack = Some(name.to_owned());
    }
    if let Some(v) = m.last(&defs::DEVICE) {
        let spec = crate::boot::DeviceSpec::parse(utf8(&defs::DEVICE, v)?);
        t.device = Some(spec.map_err(|e| Error::usage(format!("--device {e}")))?);
    }
    if let Some(v) = m.last(&defs::WAIT) {
        let v = utf8(&defs::WAIT, v)?;
        let secs = v
            .parse()
            .map_err(|_| Error::usage(format!("--wait {v:?}: expected whole seconds")))?;
        t.wait = Some(secs);
    }
    for v in m.values(&defs::IFNAME) {
        let (index, name) = ifname(utf8(&defs::IFNAME, v)?)?;
        t.ifnames.insert(index, name);
    }
    Ok(t)
}

fn apply(m: &Matches) -> Result<Command, Error> {
    target(m).map(Command::Apply)
}

fn plan(m: &Matches) -> Result<Command, Error> {
    target(m).map(Command::Plan)
}

fn check(m: &Matches) -> Result<Command, Error> {
    Ok(Command::Check(m.operand(0).into()))
}

/// DISK, the operand every image command starts with.
fn disk(m: &Matches) -> PathBuf {
    m.operand(0).into()
}

fn image_check(m: &Matches) -> Result<Command, Error> {
    let json = m.switch(&defs::JSON).unwrap_or(false);
    Ok(Command::Image(image::Image::Check { disk: disk(m), json }))
}

fn image_inject(m: &Matches) -> Result<Command, Error> {
    let conf = m.operand(1).into();
    Ok(Command::Image(image::Image::Inject { disk: disk(m), conf }))
}

fn image_prepare(m: &Matches) -> Result<Command, Error> {
    Ok(Command::Image(image::Image::Prepare {
        disk: disk(m),
        agent: m.last(&defs::AGENT).map(PathBuf::from),
        fixes: image::Fixes {
            remove_host_keys: m.switch(&defs::REMOVE_HOST_KEYS).is_some(),
            lock_root_password: m.switch(&defs::LOCK_ROOT_PASSWORD).is_some(),
        },
    }))
}

fn image_test(m: &Matches) -> Result<Command, Error> {
    let timeout = match m.last(&defs::TIMEOUT) {
        Some(v) => {
            let v = utf8(&defs::TIMEOUT, v)?;
            match v.parse::<u64>() {
                Ok(s) if s > 0 => s,
                _ => {
                    return Err(Error::usage(format!(
                        "--timeout {v:?}: expected whole seconds, at least 1"
                    )));
                }
            }
        }
        None => image::DEFAULT_TIMEOUT_SECS,
    };
    let accel = one_of(
        m,
        &defs::ACCEL,
        &[("kvm", image::Accel::Kvm), ("tcg", image::Accel::Tcg)],
    )?;
    let firmware = one_of(
        m,
        &defs::FIRMWARE,
        &[("bios", image::Firmware::Bios), ("uefi", image::Firmware::Uefi)],
    )?;
    let boots = match m.last(&defs::BOOTS) {
        None => 1,
        Some(v) => {
            let v = utf8(&defs::BOOTS, v)?;
            match v.parse::<u32>() {
                Ok(n) if (1..=image::MAX_BOOTS).contains(&n) => n,
                _ => {
                    return Err(Error::usage(format!(
                        "--boots {v:?}: expected a whole number from 1 to {}",
                        image::MAX_BOOTS
                    )));
                }
            }
        }
    };
    Ok(Command::Image(image::Image::Test(image::Test {
        disk: disk(m),
        os_conf: m.last(&defs::OS_CONF).map(PathBuf::from),
        timeout: std::time::Duration::from_secs(timeout),
        in_place: m.switch(&defs::IN_PLACE).is_some(),
        keep: m.switch(&defs::KEEP).is_some(),
        work: m.last(&defs::WORK).map(PathBuf::from),
        accel,
        verbose: m.switch(&defs::VERBOSE).is_some(),
        firmware,
        boots,
        json: m.switch(&defs::JSON).is_some(),
    })))
}

fn detect(m: &Matches) -> Result<Command, Error> {
    Ok(Command::Detect {
        root: target(m)?.root,
        json: m.switch(&defs::JSON).unwrap_or(false),
    })
}

/// What install and uninstall were asked, `--init` checked against the known inits.
fn install_request(m: &Matches) -> Result<crate::install::run::Request, Error> {
    let mut init = None;
    if let Some(name) = m.last(&defs::INIT) {
        let name = utf8(&defs::INIT, name)?;
        if crate::install::find(name).is_none() {
            let known = crate::install::INIT_NAMES.join(", ");
            return Err(Error::usage(format!(
                "--init: unknown init {name:?}; known: {known}"
            )));
        }
        init = Some(name.to_owned());
    }
    Ok(crate::install::run::Request {
        root: target(m)?.root,
        init,
        boot_dir: m.last(&defs::BOOT_DIR).map(PathBuf::from),
    })
}

fn install(m: &Matches) -> Result<Command, Error> {
    install_request(m).map(Command::Install)
}

fn uninstall(m: &Matches) -> Result<Command, Error> {
    install_request(m).map(Command::Uninstall)
}

fn status(m: &Matches) -> Result<Command, Error> {
    Ok(Command::Status {
        root: target(m)?.root,
        json: m.switch(&defs::JSON).unwrap_or(false),
    })
}

fn generate(m: &Matches) -> Result<Command, Error> {
    let kind = m.operand(0);
    doc::Generated::ALL
        .into_iter()
        .zip(defs::GENERATED)
        .find(|(_, name)| OsStr::new(name) == kind)
        .map(|(g, _)| Command::Generate(g))
        .ok_or_else(|| {
            let known = defs::GENERATED.join(", ");
            Error::usage(format!("generate {kind:?}: expected one of {known}"))
        })
}

/// `ethN=NAME`, NAME a valid kernel interface name.
fn ifname(v: &str) -> Result<(u32, String), Error> {
    let bad = || Error::usage(format!("--ifname {v:?}: expected ethN=NAME"));
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
        return Err(Error::usage(format!(
            "--ifname {v:?}: {name:?} is not a valid interface name"
        )));
    }
    Ok((index, name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Command, Error> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn commands_and_flags() {
        let Command::Apply(t) = parse_str(
            "apply --root /mnt --config /c --stack sysconfig --no-live --ifname eth1=ens5 --wait 5",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(t.root, PathBuf::from("/mnt"));
        assert_eq!(t.config, Some(PathBuf::from("/c")));
        assert_eq!(t.stack.as_deref(), Some("sysconfig"));
        assert_eq!(t.live, Some(false));
        assert_eq!(t.ifnames.get(&1).map(String::as_str), Some("ens5"));
        assert_eq!(t.wait(), std::time::Duration::from_secs(5));
        assert!(!t.is_live());
        let Command::Plan(t) = parse_str("plan --device LABEL=BOOT").unwrap() else {
            panic!()
        };
        assert_eq!(t.device, Some(crate::boot::DeviceSpec::Label("BOOT".into())));
        assert_eq!(parse_str("check f").unwrap(), Command::Check("f".into()));
        let detect = |json| Command::Detect {
            root: "r".into(),
            json,
        };
        assert_eq!(parse_str("detect --root r").unwrap(), detect(false));
        assert_eq!(parse_str("detect --root r --json").unwrap(), detect(true));
        assert_eq!(
            parse_str("plan --help").unwrap(),
            Command::Help(doc::command_help(&defs::COMMANDS[1]))
        );
        assert_eq!(parse_str("").unwrap(), Command::Help(doc::help()));
        assert_eq!(
            parse_str("generate complete-zsh").unwrap(),
            Command::Generate(doc::Generated::Zsh)
        );
    }

    #[test]
    fn image_test_flags() {
        let Command::Image(image::Image::Test(r)) = parse_str(
            "image test d.raw --os-conf c --timeout 90 --in-place --keep --work w --accel tcg --verbose",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(r.disk, PathBuf::from("d.raw"));
        assert_eq!(r.os_conf, Some(PathBuf::from("c")));
        assert_eq!(r.timeout, std::time::Duration::from_secs(90));
        assert!(r.in_place && r.keep && r.verbose);
        assert_eq!(r.work, Some(PathBuf::from("w")));
        assert_eq!(r.accel, Some(image::Accel::Tcg));
        let Command::Image(image::Image::Test(r)) = parse_str("image test d.raw").unwrap() else {
            panic!()
        };
        assert_eq!(r.timeout.as_secs(), image::DEFAULT_TIMEOUT_SECS);
        assert!(!r.in_place && !r.keep && !r.verbose && r.accel.is_none() && r.os_conf.is_none());
        assert!(r.firmware.is_none() && r.boots == 1 && !r.json);
        let Command::Image(image::Image::Test(r)) =
            parse_str("image test d.raw --firmware uefi --boots 3 --json").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (r.firmware, r.boots, r.json),
            (Some(image::Firmware::Uefi), 3, true)
        );
    }

    /// Each image command is a definition of its own; a group's flags may come before its action,
    /// as they could when `image` was one command.
    #[test]
    fn image_commands_and_the_group() {
        use image::Image;
        for (args, expected) in [
            (
                "image check d",
                Image::Check {
                    disk: "d".into(),
                    json: false,
                },
            ),
            (
                "image check --json d",
                Image::Check {
                    disk: "d".into(),
                    json: true,
                },
            ),
            (
                "image --json check d",
                Image::Check {
                    disk: "d".into(),
                    json: true,
                },
            ),
            (
                "image inject d c",
                Image::Inject {
                    disk: "d".into(),
                    conf: "c".into(),
                },
            ),
            (
                "image prepare d",
                Image::Prepare {
                    disk: "d".into(),
                    agent: None,
                    fixes: image::Fixes::default(),
                },
            ),
            (
                "image prepare d --agent /b/osconf",
                Image::Prepare {
                    disk: "d".into(),
                    agent: Some("/b/osconf".into()),
                    fixes: image::Fixes::default(),
                },
            ),
            (
                "image prepare d --lock-root-password",
                Image::Prepare {
                    disk: "d".into(),
                    agent: None,
                    fixes: image::Fixes {
                        remove_host_keys: false,
                        lock_root_password: true,
                    },
                },
            ),
            (
                "image prepare --remove-host-keys d --lock-root-password",
                Image::Prepare {
                    disk: "d".into(),
                    agent: None,
                    fixes: image::Fixes {
                        remove_host_keys: true,
                        lock_root_password: true,
                    },
                },
            ),
        ] {
            assert_eq!(parse_str(args).unwrap(), Command::Image(expected), "{args}");
        }
        let Command::Image(Image::Test(r)) = parse_str("image --verbose --timeout 5 test d").unwrap() else {
            panic!()
        };
        assert!(r.verbose && r.timeout.as_secs() == 5);
        let test = defs::COMMANDS.iter().find(|c| c.name == "image test").unwrap();
        assert_eq!(
            parse_str("image test --help").unwrap(),
            Command::Help(doc::command_help(test))
        );
        let group = &defs::GROUPS[0];
        assert_eq!(
            parse_str("image --help").unwrap(),
            Command::Help(doc::group_help(group))
        );
        for (bad, why) in [
            ("image", "image needs an action: check, inject, prepare, test"),
            (
                "image frob d",
                "unknown action \"frob\"; known: check, inject, prepare, test",
            ),
            (
                "image --firmware uefi check d",
                "image check: --firmware is not an option of image check",
            ),
            ("image inject d", "image inject needs OS_CONF"),
            ("image check d c", "unexpected argument"),
            ("image prepare d --json", "--json"),
        ] {
            let e = parse_str(bad).unwrap_err();
            assert!(e.message.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_last_of_a_flag_and_its_negation_wins() {
        for (args, live) in [
            ("apply", None),
            ("apply --live", Some(true)),
            ("apply --live --no-live", Some(false)),
            ("apply --no-live --live", Some(true)),
            ("plan --root=/x --no-live", Some(false)),
        ] {
            let (Command::Apply(t) | Command::Plan(t)) = parse_str(args).unwrap() else {
                panic!("{args}")
            };
            assert_eq!(t.live, live, "{args}");
        }
    }

    #[test]
    fn install_flags() {
        let Command::Install(r) = parse_str("install --root /mnt --init openrc --boot-dir /b").unwrap()
        else {
            panic!()
        };
        assert_eq!(r.root, PathBuf::from("/mnt"));
        assert_eq!(r.init.as_deref(), Some("openrc"));
        assert_eq!(r.boot_dir, Some(PathBuf::from("/b")));
        let Command::Uninstall(r) = parse_str("uninstall").unwrap() else {
            panic!()
        };
        assert_eq!((r.root, r.init), (PathBuf::from("/"), None));
        assert_eq!(
            parse_str("status --root r --json").unwrap(),
            Command::Status {
                root: "r".into(),
                json: true
            }
        );
    }

    #[test]
    fn misuse_is_an_error() {
        for bad in [
            "frobnicate",
            "check",
            "check a b",
            "detect --config x",
            "detect --live",
            "apply --ifname eth0",
            "apply --ifname eth0=a/b",
            "apply --ifname eth01=a",
            "apply --ifname eth+1=a",
            "apply --ifname eth=a",
            "apply --root",
            "apply --device vda1",
            "apply --device UUID=",
            "detect --device /dev/vda1",
            "apply --no-root",
            "apply -x",
            "plan --stack nosuchstack",
            "plan --stack nosuchstack --stack sysconfig",
            "generate",
            "generate html",
            "install --init upstart",
            "uninstall --boot-dir /b",
            "apply --wait",
            "apply --wait -1",
            "apply --wait 1.5",
            "check --wait 1 f",
            "status --init systemd",
            "install --json",
            "image check d --timeout 5",
            "image check d --verbose",
            "image test d --timeout 0",
            "image test d --firmware efi",
            "image test d --boots 0",
            "image test d --boots 21",
            "image test d --boots two",
            "image check d --boots 2",
            "image inject d c --agent a",
            "image test d --accel hvf",
            "image frob d",
        ] {
            assert!(parse_str(bad).is_err(), "{bad}");
        }
    }
}
