//! Plan: pure data saying what applying os.conf will do — file writes, removals, links and live
//! actions — built from the model and the detected system. Building a plan never touches the system.

mod build;
pub mod diff;
mod mask;
mod show;

pub use build::{Env, LAST_APPLIED, build, live_nic};
pub use show::{describe_live, name_live, show};

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::model::{Ipv4Net, Mac};

/// Permissions a written file gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Used for a new file; a replaced file keeps its own mode.
    Default(u32),
    /// Always this mode: the consumer refuses other modes (NetworkManager keyfiles, netplan YAML).
    Exact(u32),
    /// The mode, owner and attributes of this other file as it is before the run (a disabled copy
    /// keeps its original's: a 0600 file may hold secrets); 0600 if it is not a regular file.
    SameAs(String),
}

/// One change to a file in the target root. Paths are absolute within the target (`/etc/hosts`).
/// Its `Debug` never shows what a file holds (/etc/shadow's hashes, os.conf's password).
#[derive(Clone, PartialEq, Eq)]
pub enum FileOp {
    Write {
        path: String,
        contents: Vec<u8>,
        mode: Mode,
        /// The file holds password hashes (`/etc/shadow`, `/etc/master.passwd`): `plan` masks them.
        /// Secret values in any other file are masked by key (`mask`).
        secret: bool,
    },
    Symlink {
        path: String,
        target: String,
    },
    Remove {
        path: String,
    },
}

impl std::fmt::Debug for FileOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileOp::Write {
                path,
                contents,
                mode,
                secret,
            } => f
                .debug_struct("Write")
                .field("path", path)
                .field("contents", &format_args!("{} bytes", contents.len()))
                .field("mode", mode)
                .field("secret", secret)
                .finish(),
            FileOp::Symlink { path, target } => f
                .debug_struct("Symlink")
                .field("path", path)
                .field("target", target)
                .finish(),
            FileOp::Remove { path } => f.debug_struct("Remove").field("path", path).finish(),
        }
    }
}

impl FileOp {
    pub fn path(&self) -> &str {
        match self {
            FileOp::Write { path, .. } | FileOp::Symlink { path, .. } | FileOp::Remove { path } => path,
        }
    }

    /// A world-readable text file, the common case.
    pub fn write(path: &str, contents: impl Into<Vec<u8>>) -> FileOp {
        FileOp::Write {
            path: path.to_owned(),
            contents: contents.into(),
            mode: Mode::Default(0o644),
            secret: false,
        }
    }

    /// A file readable only by root, whatever it was before.
    pub fn write_private(path: &str, contents: impl Into<Vec<u8>>) -> FileOp {
        FileOp::Write {
            path: path.to_owned(),
            contents: contents.into(),
            mode: Mode::Exact(0o600),
            secret: false,
        }
    }
}

/// A change to the running kernel, done only with `--live`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveAction {
    SetHostname(String),
    /// Give the NIC with this MAC (or, without one, this name) its address and routes now.
    ConfigureNic(LiveNic),
    /// Run the network stack's own tool so that it takes the new files now.
    Run(Run),
}

/// A program a stack provides (`networkctl`, `nmcli`, `ifup`…), run with these arguments; never
/// anything taken from os.conf but validated addresses and interface names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub program: String,
    pub args: Vec<String>,
    /// Why osconf runs it, for `plan` and the log.
    pub why: String,
    /// The NICs whose addresses and routes the tool changes: recorded before it runs and put back
    /// if the apply fails later.
    pub nics: Vec<LiveNic>,
    /// `Some(NAME)`: run the way systemd runs its generator NAME (systemd.generator(7)), not as a
    /// command: argv[0] is `/usr/lib/systemd/system-generators/NAME` and three output directories
    /// follow the arguments, made fresh by the platform in its own `/run/osconf` and removed after
    /// (what the generator would add to the boot's transaction is not wanted). netplan's generator,
    /// called so, renders its YAML and nothing more; called as a command during boot it also starts
    /// five `systemctl`s, seconds of a boot under emulation.
    pub generator: Option<String>,
}

impl Run {
    pub fn new(program: &str, args: &[&str], why: &str) -> Run {
        Run {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            why: why.to_owned(),
            nics: Vec::new(),
            generator: None,
        }
    }
}

/// What a live run learnt from the running system before planning; an offline run has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// The kernel name of each os.conf NIC that has a MAC, found by that MAC, by os.conf's N.
    pub names: BTreeMap<u32, String>,
    pub stack: StackState,
}

/// Whether the chosen stack's service runs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackState {
    /// This service runs already (osconf started by hand, or after it): it is told to take the new
    /// files its own way.
    Running(&'static str),
    /// None of its services runs yet — at boot osconf runs before them — so they read the new files
    /// when they start; osconf configures no address itself, which would make two of each.
    NotRunning,
    /// The stack leaves no trace osconf can ask (rc scripts without state): osconf configures the
    /// NICs itself.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveNic {
    pub name: String,
    pub mac: Option<Mac>,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// Gateways outside the subnet, reached by a device route first.
    pub on_link: Vec<Ipv4Addr>,
    /// `(destination, gateway)`, the default route as `0.0.0.0/0`.
    pub routes: Vec<(Ipv4Net, Ipv4Addr)>,
}

/// Everything `apply` will do, in order.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub stack: String,
    pub ops: Vec<FileOp>,
    pub live: Vec<LiveAction>,
    /// Choices a person should know about: what was detected, what was neutralised, what cannot be said.
    pub notes: Vec<String>,
}

#[cfg(test)]
mod tests;
