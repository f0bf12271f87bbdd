//! Secrets by type: a value that may hold the root password (os.conf's bytes, its base64 text, the
//! decoded password) lives in a [`Secret`], whose `Debug` and `Display` never show it and whose memory
//! is overwritten with zeros when it is dropped, so neither a log line nor freed memory keeps it.
//!
//! It must never hand out the value except through [`Secret::expose`], and never grow in place (a
//! reallocation would leave a copy behind that no one wipes).

use std::fmt;

/// A buffer that can be overwritten with zeros, spare capacity included.
pub trait Wipe {
    fn wipe(&mut self);
}

/// Zeros written with volatile stores, so the compiler cannot drop them as dead writes to memory
/// about to be freed.
fn zero(bytes: &mut Vec<u8>) {
    let len = bytes.len();
    for b in bytes.iter_mut() {
        // SAFETY: `b` is a valid, aligned, exclusive reference to a byte of the vector.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    for b in bytes.spare_capacity_mut() {
        // SAFETY: as above, for the allocated but unused tail; writing a byte makes it initialised.
        unsafe { std::ptr::write_volatile(b.as_mut_ptr(), 0) };
    }
    debug_assert_eq!(bytes.len(), len);
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

impl Wipe for Vec<u8> {
    fn wipe(&mut self) {
        zero(self);
    }
}

impl Wipe for String {
    fn wipe(&mut self) {
        // SAFETY: only zero bytes are written, which is valid UTF-8 for every length.
        zero(unsafe { self.as_mut_vec() });
    }
}

/// What a secret shows wherever it is formatted or displayed: the one spelling of a masked value
/// (os.conf's password, a hash in `plan`'s diff, a Wi-Fi key in a file `plan` shows).
pub const HIDDEN: &str = "(not shown)";

/// A masked value the plan changes (a new password hash), so that `plan`'s diff still shows that
/// it changes.
pub const HIDDEN_NEW: &str = "(new, not shown)";

/// A value that may hold a secret: masked when formatted, zeroed when dropped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T: Wipe>(T);

impl<T: Wipe> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value itself, for the one place that needs it (decoding, hashing).
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Overwrites the value with zeros now (dropping does the same).
    pub fn wipe(&mut self) {
        self.0.wipe();
    }
}

impl Secret<Vec<u8>> {
    /// The bytes, to fill in place: a slice, so the buffer cannot grow.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Keeps the first `len` bytes; the rest stays in the buffer's capacity, wiped with it.
    pub fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }
}

impl<T: Wipe> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.wipe();
    }
}

impl<T: Wipe> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HIDDEN)
    }
}

impl<T: Wipe> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HIDDEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_when_formatted_and_zeroed_when_wiped() {
        let mut s = Secret::new(String::from("qwer1234"));
        assert_eq!(format!("{s} {s:?}"), "(not shown) (not shown)");
        s.wipe();
        assert_eq!(s.expose().as_bytes(), [0; 8]);
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(b"abc");
        let mut b = Secret::new(v);
        b.wipe();
        assert_eq!(b.expose(), &[0, 0, 0]);
        // SAFETY (test): the spare capacity was initialised by `wipe`.
        let tail = unsafe { std::slice::from_raw_parts(b.expose().as_ptr(), 16) };
        assert_eq!(tail, [0; 16]);
    }
}
