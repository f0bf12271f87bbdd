//! runit: a core service, sourced by runit's stage 1 after the file systems are mounted and before
//! stage 2 starts the network services — `/etc/runit/core-services/06-osconf.sh` as Void Linux
//! lays them out (after 03-filesystems and 05-misc), or Debian's `/etc/runit/boot-run/` when its
//! stage 1 sources that (`/etc/runit/native.boot.run`). Sourced, so it must never `exit`. Debian's
//! stage 1 otherwise starts `/etc/rcS.d`'s scripts as sysvinit would: osconf goes there, as the
//! sysv init installs it. Not a runsv service: stage 2 starts those beside the network services,
//! in no order.

use super::{Init, Service, shell_run, sysv};
use crate::error::Error;
use crate::plan::FileOp;
use crate::system::System;

pub const INIT: Init = Init {
    name: "runit",
    systems: "runit (Void Linux core services; Debian's runit boot-run)",
    files,
    // Its core service in either directory, or sysv's files where stage 1 starts rcS.d's scripts.
    paths: &[
        PATHS[0],
        PATHS[1],
        sysv::PATHS[0],
        sysv::PATHS[1],
        sysv::PATHS[2],
        sysv::PATHS[3],
        sysv::PATHS[4],
        sysv::PATHS[5],
        sysv::PATHS[6],
    ],
};

/// In Void's directory first: it is also the one to create when neither exists.
const PATHS: [&str; 2] = [
    "/etc/runit/core-services/06-osconf.sh",
    "/etc/runit/boot-run/06-osconf.sh",
];
const STAGE_1: &str = "/etc/runit/1";
/// Debian's stage 1 sources `/etc/runit/boot-run/*.sh` instead of `/etc/rcS.d` when this exists.
const NATIVE_BOOT_RUN: &str = "/etc/runit/native.boot.run";

fn files(sys: &System) -> Result<Service, Error> {
    let emulates_sysv = sys
        .read_text(STAGE_1)?
        .is_some_and(|t| t.contains("/etc/rcS.d/S"))
        && !sys.exists(NATIVE_BOOT_RUN)?;
    let dir = |p: &'static str| p.rsplit_once('/').map_or(p, |(d, _)| d);
    let path = if sys.is_dir(dir(PATHS[0]))? {
        PATHS[0]
    } else if emulates_sysv {
        let mut service = (sysv::INIT.files)(sys)?;
        service.notes.push(format!(
            "{STAGE_1} starts /etc/rcS.d's scripts (Debian's runit without {NATIVE_BOOT_RUN}): \
             osconf is installed there as for sysvinit"
        ));
        return Ok(service);
    } else if sys.is_dir(dir(PATHS[1]))? {
        PATHS[1]
    } else {
        PATHS[0]
    };
    let text = format!(
        "# Installed by osconf install; osconf uninstall removes it.\n\
         # Sourced by runit's stage 1: runs osconf apply before the network services start. A failure\n\
         # is reported and the boot goes on; osconf=off on the kernel command line skips it.\n{}",
        shell_run("")
    );
    Ok(Service {
        ops: vec![FileOp::write(path, text)],
        shared: Vec::new(),
        notes: Vec::new(),
    })
}
