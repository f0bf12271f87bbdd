//! Random bytes (the password salt): getrandom(2), or the host's `/dev/urandom` where the kernel has
//! no getrandom (before 3.17: CentOS 7's 3.10) or a sandbox refuses it. Reads nothing under --root:
//! only the running kernel's own device, and only when it is that device.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};

use rustix::io::Errno;
use rustix::rand::{GetRandomFlags, getrandom};

use crate::error::Error;

/// Fills `buf`, or says why it cannot.
pub fn fill(buf: &mut [u8]) -> Result<(), Error> {
    let mut done = 0;
    while done < buf.len() {
        match getrandom(&mut buf[done..], GetRandomFlags::empty()) {
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(Errno::NOSYS | Errno::PERM) => return urandom(&mut buf[done..]),
            Err(e) => return Err(Error::failed(None, format!("getrandom: {e}"))),
        }
    }
    Ok(())
}

/// The kernel's random device 1:9: a regular file or another device in its place would give a
/// salt anyone can know.
fn urandom(buf: &mut [u8]) -> Result<(), Error> {
    const PATH: &str = "/dev/urandom";
    let fail = |e: std::io::Error| Error::failed(None, format!("getrandom is missing, reading {PATH}: {e}"));
    let mut file = File::open(PATH).map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if !meta.file_type().is_char_device() || meta.rdev() != rustix::fs::makedev(1, 9) {
        return Err(Error::failed(
            None,
            format!("getrandom is missing and {PATH} is not the kernel's random device (1:9)"),
        ));
    }
    file.read_exact(buf).map_err(fail)
}

#[cfg(test)]
mod tests {
    /// Both sources fill the whole buffer, and two draws differ (64 equal bytes by chance: 2^-512).
    #[test]
    fn getrandom_and_the_urandom_fallback_fill_the_buffer() {
        let (mut a, mut b, mut c) = ([0u8; 64], [0u8; 64], [0u8; 64]);
        super::fill(&mut a).unwrap();
        super::urandom(&mut b).unwrap();
        super::urandom(&mut c).unwrap();
        assert!(a != [0; 64] && b != [0; 64] && b != c);
    }
}
