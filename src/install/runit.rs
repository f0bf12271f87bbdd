//! runit: a core service, sourced by runit's stage 1 after the file systems are mounted and before
//! stage 2 starts the network services — `/etc/runit/core-services/06-osconf.sh` as Void Linux
//! lays them out (after 03-filesystems and 05-misc), or Debian's `/etc/runit/boot-run/` when the
//! target has that directory instead. Sourced, so it must never `exit`.

use super::{Init, Service, shell_run};
use crate::plan::FileOp;
use crate::system::System;

pub const INIT: Init = Init {
    name: "runit",
    systems: "runit (Void Linux core services; Debian's runit boot-run)",
    files,
    owns: |p| DIRS.iter().any(|d| p.strip_prefix(d) == Some(NAME)),
};

/// Void's directory first: it is also the one to create when neither exists.
const DIRS: [&str; 2] = ["/etc/runit/core-services/", "/etc/runit/boot-run/"];
const NAME: &str = "06-osconf.sh";

fn files(sys: &System) -> Result<Service, String> {
    let mut dir = DIRS[0];
    for d in DIRS {
        if sys.is_dir(d)? {
            dir = d;
            break;
        }
    }
    let text = format!(
        "# Installed by osconf install; osconf uninstall removes it.\n\
         # Sourced by runit's stage 1: runs osconf apply before the network services start. A failure\n\
         # is reported and the boot goes on; osconf=off on the kernel command line skips it.\n{}",
        shell_run("")
    );
    Ok(Service {
        ops: vec![FileOp::write(&format!("{dir}{NAME}"), text)],
        shared: Vec::new(),
        notes: Vec::new(),
    })
}
