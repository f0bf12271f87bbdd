//! systemd: `osconf.service`, ordered as cloud-init-local.service and systemd's network-pre
//! documentation order such a unit (after the local file systems and udev's trigger, before
//! network-pre.target and so before any network manager), enabled by a link in
//! `sysinit.target.wants` — a unit without default dependencies that is ordered before
//! sysinit.target belongs there, as systemd's own early units do.

use super::{BINARY, COMMAND, Init, OFF_SWITCH, Service};
use crate::error::Error;
use crate::plan::FileOp;
use crate::system::System;

pub const INIT: Init = Init {
    name: "systemd",
    systems: "systemd (Debian, Ubuntu, RHEL and clones, SUSE, Arch…)",
    files,
    paths: &[UNIT, WANTS],
};

/// The administrator's unit directory: osconf installed by hand is local configuration.
const UNIT: &str = "/etc/systemd/system/osconf.service";
/// The link that enables the unit; a package enabling osconf.service (WantedBy=sysinit.target)
/// makes the same one.
pub const WANTS: &str = "/etc/systemd/system/sysinit.target.wants/osconf.service";

/// Start-up bound: the partition finder and the NIC wait are bounded at 30 s each; a run that
/// still has not finished is killed and the boot goes on without it.
const TIMEOUT_SECS: u32 = 180;

fn files(_sys: &System) -> Result<Service, Error> {
    Ok(Service {
        ops: vec![
            FileOp::write(
                UNIT,
                unit("Installed by osconf install; osconf uninstall removes it."),
            ),
            FileOp::Symlink {
                path: WANTS.to_owned(),
                target: UNIT.to_owned(),
            },
        ],
        shared: Vec::new(),
        notes: vec![format!(
            "boot with {OFF_SWITCH} on the kernel command line to skip osconf"
        )],
    })
}

/// True when some unit is enabled in /etc/systemd/system (a `*.wants` or `*.requires` directory there).
pub fn has_wants(sys: &System) -> crate::system::Result<bool> {
    Ok(!sys.systemd_wants_dirs()?.is_empty())
}

/// The unit, headed by a comment line saying who put it there (`osconf install`, or a package
/// built from `osconf generate unit`): the one text of osconf.service.
pub fn unit(origin: &str) -> String {
    format!(
        "\
# {origin}
[Unit]
Description=Configure this ECS instance from aliyun_custom_image/os.conf
Documentation=https://www.alibabacloud.com/help/en/ecs/user-guide/customize-linux-images
DefaultDependencies=no
After=systemd-remount-fs.service local-fs.target systemd-udev-trigger.service
Wants=network-pre.target
Before=network-pre.target netplan-configure.service sysinit.target sshd.service ssh.service systemd-user-sessions.service shutdown.target
Conflicts=shutdown.target
ConditionKernelCommandLine=!{OFF_SWITCH}
ConditionPathExists={BINARY}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={COMMAND}
TimeoutStartSec={TIMEOUT_SECS}
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=sysinit.target
"
    )
}
