//! OpenRC: `/etc/init.d/osconf` needing `localmount` and started `before net sshd`, in the `boot`
//! runlevel (where localmount is; `sysinit` runs before any file system beyond the root is mounted),
//! linked as `rc-update add osconf boot` links it.

use super::{Init, Service, shell_run};
use crate::plan::{FileOp, Mode};
use crate::system::System;

pub const INIT: Init = Init {
    name: "openrc",
    systems: "OpenRC (Alpine, Gentoo, Artix…), started by its own init or busybox's",
    files,
    paths: &[SCRIPT, LINK],
};

const SCRIPT: &str = "/etc/init.d/osconf";
const LINK: &str = "/etc/runlevels/boot/osconf";

fn files(_sys: &System) -> Result<Service, String> {
    Ok(Service {
        ops: vec![
            FileOp::Write {
                path: SCRIPT.to_owned(),
                contents: script().into_bytes(),
                mode: Mode::Exact(0o755),
                secret: false,
            },
            FileOp::Symlink {
                path: LINK.to_owned(),
                target: SCRIPT.to_owned(),
            },
        ],
        shared: Vec::new(),
        notes: Vec::new(),
    })
}

fn script() -> String {
    format!(
        "\
#!/sbin/openrc-run
# Installed by osconf install; osconf uninstall removes it.
description=\"Configure this ECS instance from aliyun_custom_image/os.conf\"

depend() {{
    need localmount
    before net sshd
}}

# A failure is reported and the boot goes on; osconf=off on the kernel command line skips it.
start() {{
{run}    return 0
}}
",
        run = shell_run("    ")
    )
}
