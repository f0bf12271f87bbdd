//! Exit codes: the one place that says which outcome exits with which code (a contract image builders
//! script against).

/// Applied, or no os.conf found.
pub const EXIT_OK: u8 = 0;
/// Applying failed and every change was rolled back.
pub const EXIT_FAILED: u8 = 1;
/// os.conf or the command line is invalid; nothing was changed.
pub const EXIT_INVALID: u8 = 2;
