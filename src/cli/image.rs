//! What the image commands (`image check|inject|prepare|test`) were asked: plain data built from the
//! command line, which the image toolkit (`image`, `imagetest`) takes as it is. Nothing here runs
//! an image tool, so the agent parses and documents these commands without carrying the toolkit.

use std::path::PathBuf;
use std::time::Duration;

/// How long the guest gets, by default, to boot and let osconf report: a systemd image under TCG on
/// a loaded machine needs a few minutes; KVM boots take seconds, and the run stops as soon as osconf
/// has reported, so only a failing image waits this long.
pub const DEFAULT_TIMEOUT_SECS: u64 = 600;

/// One image command, as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// `image check DISK`: the import requirements, text or JSON.
    Check { disk: PathBuf, json: bool },
    /// `image inject DISK OS_CONF`: write os.conf into partition 1 as ECS does.
    Inject { disk: PathBuf, conf: PathBuf },
    /// `image prepare DISK`: install osconf into the image's root partition; `agent`: `--agent`, the
    /// agent binary to put in (default: the one beside the toolkit, when it matches the image);
    /// `fixes`: what else it was asked to fix.
    Prepare {
        disk: PathBuf,
        agent: Option<PathBuf>,
        fixes: Fixes,
    },
    /// `image test DISK`: boot it under qemu and report what took effect.
    Test(Test),
}

/// What `image prepare` fixes besides installing the agent, each only when asked by its flag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fixes {
    /// `--remove-host-keys`: remove the SSH host keys baked in.
    pub remove_host_keys: bool,
    /// `--lock-root-password`: lock root's usable password in /etc/shadow.
    pub lock_root_password: bool,
}

/// `-accel`: which qemu accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// `--firmware`: how the guest's firmware starts the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS (qemu's default on a PC): runs the MBR's boot code.
    Bios,
    /// UEFI (OVMF, AAVMF): runs the boot loader on the EFI System Partition.
    Uefi,
}

impl Firmware {
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

/// The most boots `--boots` takes: each may take minutes under TCG.
pub const MAX_BOOTS: u32 = 20;

/// What `image test` was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Test {
    pub disk: PathBuf,
    pub os_conf: Option<PathBuf>,
    pub timeout: Duration,
    /// Boot the image itself instead of a scratch copy.
    pub in_place: bool,
    /// Keep the scratch copy after the report.
    pub keep: bool,
    /// Where the console log, the generated os.conf and the scratch copy go; default `DISK.osconf-test`.
    pub work: Option<PathBuf>,
    /// `None`: KVM when /dev/kvm works, else TCG.
    pub accel: Option<Accel>,
    /// Show every console line, not only osconf's.
    pub verbose: bool,
    /// `None`: chosen from the image.
    pub firmware: Option<Firmware>,
    /// How many boots of the instance's life (1..=[`MAX_BOOTS`]).
    pub boots: u32,
    /// One JSON object on stdout instead of the text report.
    pub json: bool,
}
