//! One apply at a time on a root: an exclusive `flock` on the root directory itself, held until the
//! process ends. A lock on the directory needs no lock file, so nothing is left in an image, and two
//! paths to one root (a bind mount) still meet on the same inode. A second apply waits a few seconds,
//! then fails with a message saying why.

use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;

use crate::error::Error;
use crate::root::Root;

/// How long a second apply waits for the first.
pub const WAIT: Duration = Duration::from_secs(5);

/// Takes the lock, waiting up to `wait`.
pub fn lock(root: &Root, wait: Duration) -> Result<(), Error> {
    let start = Instant::now();
    loop {
        match flock(root.fd(), FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(()),
            Err(Errno::WOULDBLOCK) if start.elapsed() < wait => std::thread::sleep(Duration::from_millis(50)),
            Err(Errno::WOULDBLOCK) => {
                let why = format!(
                    "another osconf is applying to {} (it holds the lock on that directory); waited {} s",
                    root.path().display(),
                    wait.as_secs()
                );
                return Err(Error::failed(None, why).unchanged());
            }
            Err(e) => return Err(Error::failed(Some(root.path()), format!("locking: {e}"))),
        }
    }
}
