//! Root password: a SHA-512 crypt (`$6$`) hash in the root line of /etc/shadow, with the
//! "last change" day updated and every other field and line kept.

use base64ct::{Base64ShaCrypt, Encoding as _};

use crate::error::Error;
use crate::model::Password;
use crate::plan::{FileOp, Mode};
use crate::render::Rendered;
use crate::secret::{HIDDEN, HIDDEN_NEW};
use crate::system::System;

/// glibc's default; an explicit `rounds=` would only lengthen the line.
const ROUNDS: u32 = 5000;

/// Bytes of randomness in a salt: 12 bytes encode to the 16 characters SHA-crypt uses.
pub const SALT_BYTES: usize = 12;

/// The byte order in which SHA-512 crypt encodes its digest (Drepper's specification, step 22).
const ORDER: [usize; 64] = [
    42, 21, 0, 1, 43, 22, 23, 2, 44, 45, 24, 3, 4, 46, 25, 26, 5, 47, 48, 27, 6, 7, 49, 28, 29, 8, 50, 51,
    30, 9, 10, 52, 31, 32, 11, 53, 54, 33, 12, 13, 55, 34, 35, 14, 56, 57, 36, 15, 16, 58, 37, 38, 17, 59,
    60, 39, 18, 19, 61, 40, 41, 20, 62, 63,
];

/// `$6$<salt>$<hash>` for a password and random salt bytes.
pub fn sha512_crypt(password: &str, salt: &[u8; SALT_BYTES]) -> String {
    let mut salt_text = [0u8; 16];
    let salt_text = Base64ShaCrypt::encode(salt, &mut salt_text).expect("16 bytes hold 12 encoded");
    crypt_with(password, salt_text)
}

/// `$6$<salt_text>$<hash>` with the default rounds.
fn crypt_with(password: &str, salt_text: &str) -> String {
    let params = sha_crypt::Params::new(ROUNDS).expect("5000 rounds is in range");
    let digest = sha_crypt::sha512_crypt(password.as_bytes(), salt_text.as_bytes(), params);
    let ordered: Vec<u8> = ORDER.iter().map(|&i| digest[i]).collect();
    let mut hash = [0u8; 86];
    let hash = Base64ShaCrypt::encode(&ordered, &mut hash).expect("86 bytes hold 64 encoded");
    format!("$6${salt_text}${hash}")
}

fn no_password(path: &str, why: &str) -> Error {
    Error::failed(None, format!("cannot set the root password: {path} {why}"))
}

/// Sets root's hash: in /etc/shadow (with the last-change day), or where a system has no shadow file
/// but a BSD /etc/master.passwd, there (its third field is the uid, so no day is written).
pub fn render(
    password: &Password,
    sys: &System,
    salt: &[u8; SALT_BYTES],
    today: u64,
) -> Result<Rendered, Error> {
    let hash = sha512_crypt(password.expose(), salt);
    let mut out = Rendered::default();
    let (path, day, width) = if sys.exists("/etc/shadow")? || !sys.exists("/etc/master.passwd")? {
        ("/etc/shadow", Some(today), SHADOW_FIELDS)
    } else {
        out.ops.push(FileOp::Write {
            path: PWD_MKDB_SCRIPT.into(),
            contents: pwd_mkdb_script().into_bytes(),
            mode: Mode::Exact(0o755),
            secret: false,
        });
        out.notes.push(format!(
            "password: set in /etc/master.passwd, which FreeBSD reads only through the databases pwd_mkdb builds: {PWD_MKDB_SCRIPT} runs `pwd_mkdb -p /etc/master.passwd` at the next boot, before logins, and removes itself"
        ));
        ("/etc/master.passwd", None, MASTER_PASSWD_FIELDS)
    };
    let old = sys.read(path)?.ok_or_else(|| no_password(path, "is missing"))?;
    let entry = root_entry(&old, width).map_err(|e| no_password(path, &e.message))?;
    if std::str::from_utf8(entry.fields[1]).is_ok_and(|h| is_hash_of(password.expose(), h)) {
        // Already this password: the line (and its last-change day) stays, so applying the same
        // os.conf again (a run cut short after its commit, say) changes nothing.
        return Ok(out);
    }
    let contents = set_root_hash(&old, &entry, &hash, day);
    out.ops.push(FileOp::Write {
        path: path.into(),
        contents,
        mode: Mode::Default(0o600),
        secret: true,
    });
    Ok(out)
}

/// A one-shot rc.d script: FreeBSD's login, sshd and su read the password databases, not
/// /etc/master.passwd, so the hash written there takes effect only once `pwd_mkdb` has rebuilt them.
/// rc(8) orders it by its rcorder(8) headers after the local file systems are mounted and before
/// LOGIN.
pub const PWD_MKDB_SCRIPT: &str = "/usr/local/etc/rc.d/osconf_pwd_mkdb";

/// The script's text. rc(8) sources a script without a `.sh` suffix in a subshell (`. file` with
/// `$1` the boot argument, `faststart` at boot), so it names its own path rather than `$0` (which
/// is /etc/rc there). It removes itself only when pwd_mkdb succeeded, so a failure is retried at the
/// next boot.
pub fn pwd_mkdb_script() -> String {
    format!(
        r#"#!/bin/sh
#
# PROVIDE: osconf_pwd_mkdb
# REQUIRE: FILESYSTEMS
# BEFORE: LOGIN
# KEYWORD: nojail
#
# Written by osconf from aliyun_custom_image/os.conf: the root password it set in /etc/master.passwd
# takes effect once pwd_mkdb has rebuilt the password databases. Runs once, then removes itself.

case "$1" in
*start)
	if /usr/sbin/pwd_mkdb -p /etc/master.passwd; then
		/bin/rm -f {PWD_MKDB_SCRIPT}
	else
		echo "osconf_pwd_mkdb: pwd_mkdb failed; the new root password is not in effect" >&2
	fi
	;;
esac
"#
    )
}

/// Fields of an entry of /etc/shadow, and of FreeBSD's /etc/master.passwd.
pub const SHADOW_FIELDS: usize = 9;
const MASTER_PASSWD_FIELDS: usize = 10;

/// Root's one entry in an account file, found by [`root_entry`].
#[derive(Debug)]
pub struct RootEntry<'a> {
    /// Its line's number, from 1.
    pub line: usize,
    /// Its colon-separated fields: as many as the file's entries have.
    pub fields: Vec<&'a [u8]>,
    /// Where its line is in the file, the newline left out.
    span: std::ops::Range<usize>,
}

/// Root's entry in `text`, an account file (/etc/shadow, BSD's /etc/master.passwd) whose entries
/// have `width` colon-separated fields — the one reading of that line for the agent setting a hash
/// and for `image prepare --lock-root-password` locking one, as the file is foreign input (an
/// image's, a root's anyone may have edited). Refused ([`Error::bad`], the caller adds the path),
/// naming the line: a CR or NUL anywhere (a file edited elsewhere, or crafted: which line counts is
/// unclear), no root line, more than one, root's with another number of fields.
pub fn root_entry(text: &[u8], width: usize) -> Result<RootEntry<'_>, Error> {
    let mut root: Option<RootEntry> = None;
    let mut at = 0;
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        for (byte, name) in [(b'\r', "a carriage return (CR)"), (0, "a NUL byte")] {
            if line.contains(&byte) {
                return Err(Error::bad(format!(
                    "line {n} holds {name}: not an account file as passwd writes it"
                )));
            }
        }
        let fields: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        if fields[0] == b"root" {
            if let Some(first) = &root {
                return Err(Error::bad(format!(
                    "lines {} and {n} both are root's: which one counts is unclear",
                    first.line
                )));
            }
            if fields.len() != width {
                return Err(Error::bad(format!(
                    "line {n}: root's entry has {} colon-separated fields, not the {width} of this file's",
                    fields.len()
                )));
            }
            root = Some(RootEntry {
                line: n,
                fields,
                span: at..at + line.len(),
            });
        }
        at += line.len() + 1;
    }
    root.ok_or_else(|| Error::bad("has no root line"))
}

impl RootEntry<'_> {
    /// `text` (the file this entry was found in) with root's line made of `fields`: every other
    /// byte as it was, a missing final newline still missing.
    pub fn replaced(&self, text: &[u8], fields: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() + 128);
        out.extend_from_slice(&text[..self.span.start]);
        out.extend_from_slice(&fields.join(&b':'));
        out.extend_from_slice(&text[self.span.end..]);
        out
    }
}

/// The hash field of root's entry in a shadow file; `None` when [`root_entry`] refuses it.
pub fn root_hash(old: &[u8]) -> Option<&str> {
    let entry = root_entry(old, SHADOW_FIELDS).ok()?;
    std::str::from_utf8(entry.fields[1]).ok()
}

/// True when `hash` is the SHA-512 crypt of `password` with default rounds (what osconf writes).
pub fn is_hash_of(password: &str, hash: &str) -> bool {
    let Some(rest) = hash.strip_prefix("$6$") else {
        return false;
    };
    match rest.split_once('$') {
        Some((salt, _)) if !salt.starts_with("rounds=") && salt.len() <= 16 => {
            crypt_with(password, salt) == hash
        }
        _ => false,
    }
}

/// `old` with root's hash (`entry`, found in it) replaced, and the "last change" field with `day`
/// when given. Day 0 (a clock before 1970-01-02) is not written: it would mean "change the password
/// at next login".
fn set_root_hash(old: &[u8], entry: &RootEntry, hash: &str, day: Option<u64>) -> Vec<u8> {
    let mut fields = entry.fields.clone();
    fields[1] = hash.as_bytes();
    let day = day.filter(|&d| d > 0).map(|d| d.to_string());
    if let Some(day) = &day {
        fields[2] = day.as_bytes();
    }
    entry.replaced(old, &fields)
}

/// Hides password hashes in a shadow file's old and new text for display: unchanged hashes show as
/// [`HIDDEN`], a hash the plan writes as [`HIDDEN_NEW`], so the change is visible and nothing secret is.
/// Every second field is a hash (locked `!$6$...`, DES, ...) except the empty field and the
/// placeholders for "no password" and "locked".
pub fn mask(old: &str, new: &str) -> (String, String) {
    // A set: looking each new line up in the old text made a large shadow file quadratic.
    let old_lines: std::collections::HashSet<&str> = old.lines().collect();
    let hide = |text: &str, is_new: bool| -> String {
        text.lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split(':').collect();
                if f.len() > 1 && !matches!(f[1], "" | "*" | "!" | "!!" | "x") {
                    let changed = is_new && !old_lines.contains(l);
                    f[1] = if changed { HIDDEN_NEW } else { HIDDEN };
                }
                f.join(":") + "\n"
            })
            .collect()
    };
    (hide(old, false), hide(new, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_glibc_reference_hash() {
        // From python3 -c "import crypt; print(crypt.crypt('qwer1234', '$6$abcdefghijklmnop'))"
        // with salt bytes chosen so that they encode to that salt text.
        let mut salt = [0u8; SALT_BYTES];
        Base64ShaCrypt::decode("abcdefghijklmnop", &mut salt).unwrap();
        let got = sha512_crypt("qwer1234", &salt);
        let want = "$6$abcdefghijklmnop$lOF7E6bBvJg1qwdgdw4z5bJroodGsc8nh8amh6XcCgDsbwqdnqyQfWgmUEuCXniUruLb9E9oki925kt9C.HbO0";
        assert_eq!(got, want);
    }

    #[test]
    fn the_same_password_again_keeps_the_line() {
        let hash = "$6$abcdefghijklmnop$lOF7E6bBvJg1qwdgdw4z5bJroodGsc8nh8amh6XcCgDsbwqdnqyQfWgmUEuCXniUruLb9E9oki925kt9C.HbO0";
        assert!(is_hash_of("qwer1234", hash));
        assert!(!is_hash_of("qwer12345", hash));
        assert!(!is_hash_of("qwer1234", "$6$rounds=5000$abc$x"));
        assert_eq!(
            root_hash(format!("bin:*:1::\nroot:{hash}:19000::::::\n").as_bytes()),
            Some(hash)
        );
    }

    /// `set_root_hash` on `old`, whose entries have `width` fields.
    fn set(old: &[u8], width: usize, day: Option<u64>) -> Result<Vec<u8>, Error> {
        let entry = root_entry(old, width)?;
        Ok(set_root_hash(old, &entry, "$6$s$h", day))
    }

    #[test]
    fn only_root_line_changes() {
        let old = b"root:!:18000:0:99999:7:::\nbin:*:18000:0:99999:7:::\nroot2:x:1::::::\n";
        let got = set(old, 9, Some(20000)).unwrap();
        assert_eq!(
            got,
            b"root:$6$s$h:20000:0:99999:7:::\nbin:*:18000:0:99999:7:::\nroot2:x:1::::::\n"
        );
        // A clock before 1970-01-02 keeps the old day rather than forcing a password change.
        let got = set(old, 9, Some(0)).unwrap();
        assert!(got.starts_with(b"root:$6$s$h:18000:0:"), "{got:?}");
        let bsd = b"# $FreeBSD$\nroot:$1$x$y:0:0::0:0:Charlie &:/root:/bin/sh\n";
        let got = set(bsd, 10, None).unwrap();
        assert_eq!(
            got,
            b"# $FreeBSD$\nroot:$6$s$h:0:0::0:0:Charlie &:/root:/bin/sh\n"
        );
        let (old, new) = mask("root:$6$s$h:1::\nbin:*:1\n", "root:$6$t$i:1::\nbin:*:1\n");
        assert_eq!(old, "root:(not shown):1::\nbin:*:1\n");
        assert_eq!(new, "root:(new, not shown):1::\nbin:*:1\n");
        let old = "root:!$6$s$h:1::\nu:abDESdeshash:1\nv:!!:1\nw:x:1\nz::1\n";
        let (masked, _) = mask(old, old);
        assert_eq!(
            masked,
            "root:(not shown):1::\nu:(not shown):1\nv:!!:1\nw:x:1\nz::1\n"
        );
    }

    /// The agent wrote a newline after root's line where the file had none, and took a root line
    /// of any shape (padding it to three fields, or the first of two): it keeps every other byte
    /// now and refuses, naming the line, what `image prepare --lock-root-password` refuses.
    #[test]
    fn regression_a_missing_final_newline_is_kept_and_a_malformed_root_line_refused() {
        assert_eq!(
            set(b"bin:*:1::::::\nroot:*:1::::::", 9, Some(5)).unwrap(),
            b"bin:*:1::::::\nroot:$6$s$h:5::::::"
        );
        for (text, says) in [
            (
                &b"bin:*:1::::::\nroot:$6$a$b\n"[..],
                "line 2: root's entry has 2 colon-separated fields, not the 9",
            ),
            (
                b"root:$6$a$b:1:::::::\n",
                "line 1: root's entry has 10 colon-separated fields",
            ),
            (
                b"root:*:1::::::\nroot:*:2::::::\n",
                "lines 1 and 2 both are root's",
            ),
            (
                b"bin:*:1::::::\r\nroot:*:1::::::\n",
                "line 1 holds a carriage return",
            ),
            (b"bin:*:1::::::\n", "has no root line"),
        ] {
            let e = set(text, 9, Some(5)).unwrap_err();
            assert!(e.message.contains(says), "{}", e.message);
        }
        assert_eq!(root_hash(b"root:$6$a$b\n"), None);
        assert_eq!(root_hash(b"x:y\nroot:$6$a$b:1::::::"), Some("$6$a$b"));
    }

    /// A shadow file of 100 000 users: each new line was looked up in the whole old text, a
    /// quadratic `plan`; this test would run for many minutes if it came back.
    #[test]
    fn regression_masking_a_large_file_takes_linear_time() {
        let old: String = (0..100_000)
            .map(|i| format!("u{i}:$6$s{i}$h:1::::::\n"))
            .collect();
        let new = old.replacen("u0:$6$s0$h", "u0:$6$t$i", 1);
        let (old, new) = mask(&old, &new);
        assert!(new.starts_with("u0:(new, not shown):1") && old.starts_with("u0:(not shown):1"));
        assert_eq!(new.matches("(new, not shown)").count(), 1);
    }
}
