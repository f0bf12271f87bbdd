//! What reading one image may cost, and the window it is read through. A command opens an image
//! once ([`super::Image`]); every partition and every lookup of that command shares one [`Work`]:
//! a budget of steps (path components, reads) and bytes, so that an image made to be slow — a
//! directory linked to its own ancestor, a huge directory walked again and again through `y/../y`
//! links — fails in bounded time with "image damaged" rather than running for minutes. A
//! filesystem is read through a [`Window`] on its partition: nothing past the partition's end (the
//! next partition, the end of the device) is ever read, and every byte read is paid for.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{ReadAt, corrupt};

/// Steps one command may take over an image: a path component walked, a read made. A real image's
/// `image prepare` takes some 10^5 (a /etc of thousands of files), each step a few microseconds.
pub const MAX_STEPS: u64 = 1 << 20;
/// Bytes one command may read from an image (a file read is at most 64 MiB, a directory 32 MiB).
pub const MAX_BYTES: u64 = 1 << 30;

/// The work done so far over one image, shared (cloning shares it), and the first damage seen.
#[derive(Debug, Clone, Default)]
pub struct Work(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    steps: AtomicU64,
    bytes: AtomicU64,
    damage: Mutex<Option<String>>,
}

impl Work {
    pub fn new() -> Work {
        Work::default()
    }

    /// Pays for `steps` steps and `bytes` bytes; past the budget, an error (`InvalidData`), and
    /// every later payment fails too.
    pub(crate) fn pay(&self, steps: u64, bytes: u64) -> io::Result<()> {
        let s = self
            .0
            .steps
            .fetch_add(steps, Ordering::Relaxed)
            .saturating_add(steps);
        let b = self
            .0
            .bytes
            .fetch_add(bytes, Ordering::Relaxed)
            .saturating_add(bytes);
        if s > MAX_STEPS || b > MAX_BYTES {
            return Err(corrupt(format!(
                "reading it takes more than {MAX_STEPS} steps or {} GiB (directories or links made \
                 to loop or to be slow?)",
                MAX_BYTES >> 30
            )));
        }
        Ok(())
    }

    /// Remembers `e` when it says the image is damaged (the first such error is kept).
    pub(crate) fn note(&self, e: &io::Error) {
        if e.kind() == io::ErrorKind::InvalidData {
            let mut d = self.0.damage.lock().unwrap_or_else(|p| p.into_inner());
            d.get_or_insert_with(|| e.to_string());
        }
    }

    /// The first damage a reader found in the image, if any: a command that went on past it (a
    /// check that turned it into a warning) still owes the user "image damaged".
    pub fn damage(&self) -> Option<String> {
        self.0.damage.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// (steps, bytes) paid so far.
    pub fn spent(&self) -> (u64, u64) {
        (
            self.0.steps.load(Ordering::Relaxed),
            self.0.bytes.load(Ordering::Relaxed),
        )
    }
}

/// `len` bytes of `r` from `start`, seen as a device of their own: reads past `len` end there, and
/// each read is paid to `work`.
#[derive(Debug)]
pub struct Window<R> {
    r: R,
    start: u64,
    len: u64,
    work: Work,
}

impl<R: ReadAt> Window<R> {
    /// The bytes `[start, start + len)` of `r`; an error when they do not lie inside it.
    pub fn new(r: R, start: u64, len: u64, work: Work) -> io::Result<Window<R>> {
        let size = r.size()?;
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(corrupt(format!(
                "bytes {start}+{len} lie beyond the end of the device ({size} bytes)"
            )));
        }
        Ok(Window { r, start, len, work })
    }

    /// From `start` to the end of `r`.
    pub fn rest(r: R, start: u64, work: Work) -> io::Result<Window<R>> {
        let size = r.size()?;
        let len = size.checked_sub(start).ok_or_else(|| {
            corrupt(format!(
                "byte {start} lies beyond the end of the device ({size} bytes)"
            ))
        })?;
        Window::new(r, start, len, work)
    }

    pub fn work(&self) -> &Work {
        &self.work
    }

    /// The same bytes, bounded alike, paying nothing to this window's work: for a device read
    /// only through another window that pays (an LVM PV under its LVs' windows), so that each
    /// byte read is paid once.
    pub fn unpaid(&self) -> Window<R>
    where
        R: Clone,
    {
        Window {
            r: self.r.clone(),
            start: self.start,
            len: self.len,
            work: Work::new(),
        }
    }
}

impl<R: ReadAt> ReadAt for Window<R> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(offset)) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.work.pay(1, n as u64)?;
        // offset < len and start + len fits: no overflow.
        self.r.read_at(&mut buf[..n], self.start + offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_reads_inside_its_bytes_only_and_pays() {
        let data: Vec<u8> = (0..100).collect();
        let work = Work::new();
        let w = Window::new(&data, 10, 20, work.clone()).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(w.read_at(&mut buf, 16).unwrap(), 4);
        assert_eq!(&buf[..4], &[26, 27, 28, 29]);
        assert_eq!(w.read_at(&mut buf, 20).unwrap(), 0);
        assert_eq!(w.read_at(&mut buf, u64::MAX).unwrap(), 0);
        assert_eq!(w.size().unwrap(), 20);
        assert_eq!(work.spent(), (1, 4));
        assert!(Window::new(&data, 90, 20, Work::new()).is_err());
        assert!(Window::new(&data, u64::MAX, 2, Work::new()).is_err());
        assert!(Window::rest(&data, 101, Work::new()).is_err());
    }

    #[test]
    fn past_the_budget_every_payment_fails() {
        let work = Work::new();
        work.pay(MAX_STEPS, 0).unwrap();
        let e = work.pay(1, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(work.pay(0, 0).is_err());
        let work = Work::new();
        assert!(work.pay(0, MAX_BYTES + 1).is_err());
    }
}
