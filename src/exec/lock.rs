//! One apply at a time on a root: an exclusive `flock` on the root directory itself, held until the
//! process ends. A lock on the directory needs no lock file, so nothing is left in an image, and two
//! paths to one root (a bind mount) still meet on the same inode. A second apply waits a few seconds,
//! then fails with a message saying why.

use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;

use crate::root::Root;

/// How long a second apply waits for the first.
pub const WAIT: Duration = Duration::from_secs(5);

/// Takes the lock, waiting up to `wait`.
pub fn lock(root: &Root, wait: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        match flock(root.fd(), FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(()),
            Err(Errno::WOULDBLOCK) if start.elapsed() < wait => std::thread::sleep(Duration::from_millis(50)),
            Err(Errno::WOULDBLOCK) => {
                return Err(format!(
                    "another osconf is applying to {} (it holds the lock on that directory); waited {} s; nothing was changed",
                    root.path().display(),
                    wait.as_secs()
                ));
            }
            Err(e) => return Err(format!("locking {}: {e}", root.path().display())),
        }
    }
}
