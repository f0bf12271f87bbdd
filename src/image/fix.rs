//! What `image prepare` fixes of what `image check` fails, each only when its flag asks: the SSH
//! host keys baked in removed (`--remove-host-keys`, and what makes new ones at first boot said:
//! `keygen`), root's usable password locked in /etc/shadow as `passwd -l` does
//! (`--lock-root-password`). It only plans: removals and one write, which prepare applies with the
//! agent's own ops through the same staged write and undo file. The root is read through `System`
//! and /etc/shadow is hostile input: a regular file, bounded, one root line, no CR or NUL — else
//! an error naming the file and line, and nothing is planned.

use super::keygen;
use super::root::{SSH_DIR, is_host_key, is_locked};
use crate::cli::image::Fixes;
use crate::error::Error;
use crate::plan::{FileOp, Mode};
use crate::render::common::shadow;
use crate::system::{Kind, System};

const SHADOW: &str = "/etc/shadow";

/// What the fixes asked for come to.
#[derive(Debug, Default)]
pub struct Fixed {
    /// Removals and writes in the root partition.
    pub ops: Vec<FileOp>,
    /// Said once the ops are in the image: one line per change.
    pub done: Vec<String>,
    /// Said whatever was changed: what was found as it should be, what makes new host keys, warnings.
    pub notes: Vec<String>,
}

/// The ops and lines of `fixes` on the root `sys`, `place` naming it ("partition 2").
pub fn plan(sys: &System, fixes: Fixes, place: &str) -> Result<Fixed, Error> {
    let mut fixed = Fixed::default();
    if fixes.remove_host_keys {
        host_keys(sys, place, &mut fixed)?;
    }
    if fixes.lock_root_password {
        lock_password(sys, place, &mut fixed)?;
    }
    Ok(fixed)
}

/// Removes every `ssh_host_*_key` and its `.pub` (a `.pub` without its key too), and says what
/// makes new ones at first boot — a warning that sshd will not start when nothing does.
fn host_keys(sys: &System, place: &str, fixed: &mut Fixed) -> Result<(), Error> {
    let names: Vec<String> = sys
        .list(SSH_DIR)?
        .into_iter()
        .filter(|n| is_host_key(n) || n.strip_suffix(".pub").is_some_and(is_host_key))
        .collect();
    if names.is_empty() {
        fixed.notes.push(format!(
            "no SSH host keys in {SSH_DIR} of {place}: none to remove"
        ));
        return Ok(());
    }
    for name in names {
        let path = format!("{SSH_DIR}/{name}");
        fixed.done.push(format!("removed {path} in {place}"));
        fixed.ops.push(FileOp::Remove { path });
    }
    fixed.notes.push(match keygen::maker(sys)? {
        Some(how) => format!("new SSH host keys are made at first boot: {how}"),
        None => format!(
            "warning: nothing in {place} makes new SSH host keys at boot: sshd will not start on \
             instances made from this image. {}",
            keygen::ADVICE
        ),
    });
    Ok(())
}

/// Puts `!` before root's usable hash in /etc/shadow, every other byte as it was.
fn lock_password(sys: &System, place: &str, fixed: &mut Fixed) -> Result<(), Error> {
    let at = sys.host_path(SHADOW);
    let bad = |why: String| Error::invalid(&at, why);
    match sys.stat(SHADOW, false)? {
        Some(st) if st.kind == Kind::File => {}
        Some(st) => {
            return Err(bad(format!(
                "is {}, not a regular file: --lock-root-password writes a regular file only",
                match st.kind {
                    Kind::Link => "a symbolic link",
                    Kind::Dir => "a directory",
                    _ => "a device, FIFO or socket",
                }
            )));
        }
        None => {
            return Err(bad(
                "is missing: --lock-root-password has no root line to lock".into()
            ));
        }
    }
    let text = sys
        .read(SHADOW)
        .map_err(|e| bad(e.error.to_string()))?
        .ok_or_else(|| bad("is missing".into()))?;
    match lock_root(&text).map_err(|e| e.at(Some(&at)))? {
        Lock::Locked(contents) => {
            fixed
                .done
                .push(format!("locked root's password in {SHADOW} ({place})"));
            fixed.ops.push(FileOp::Write {
                path: SHADOW.to_owned(),
                contents,
                // A replaced file keeps its mode, owner and attributes (`inject::apply`).
                mode: Mode::Default(0o640),
                secret: true,
            });
        }
        Lock::Already(why) => fixed
            .notes
            .push(format!("root's password in {SHADOW} is {why}: left as it is")),
    }
    Ok(())
}

/// What locking root's line of a shadow file comes to.
#[derive(Debug, PartialEq, Eq)]
enum Lock {
    /// The whole file with root's hash locked.
    Locked(Vec<u8>),
    /// No password can match already: why.
    Already(String),
}

/// Locks root's password in the shadow file `text` as `passwd -l` does: a `!` before the field,
/// an empty field included (passwd -l makes it `!`, which nothing matches). Root's line is read by
/// the agent's own reading of it (`shadow::root_entry`), which refuses, naming the line, what is
/// unclear.
fn lock_root(text: &[u8]) -> Result<Lock, Error> {
    let entry = shadow::root_entry(text, shadow::SHADOW_FIELDS)?;
    let shown = String::from_utf8_lossy(entry.fields[1]);
    if is_locked(&shown) {
        return Ok(Lock::Already(format!(
            "locked already ({})",
            &shown[..shown.len().min(2)]
        )));
    }
    let locked = [&b"!"[..], entry.fields[1]].concat();
    let mut fields = entry.fields.clone();
    fields[1] = locked.as_slice();
    Ok(Lock::Locked(entry.replaced(text, &fields)))
}

#[cfg(test)]
mod tests {
    use super::{Lock, lock_root};

    #[test]
    fn a_usable_hash_gets_a_bang_and_nothing_else_changes() {
        let text = b"daemon:*:19000::::::\nroot:$6$salt$hash:19000:0:99999:7:::\nbin:*:1::::::\n";
        let Ok(Lock::Locked(out)) = lock_root(text) else {
            panic!()
        };
        assert_eq!(
            out,
            b"daemon:*:19000::::::\nroot:!$6$salt$hash:19000:0:99999:7:::\nbin:*:1::::::\n"
        );
        // No final newline, root last: kept so.
        let Ok(Lock::Locked(out)) = lock_root(b"root:$y$j9T$a$b:1::::::") else {
            panic!()
        };
        assert_eq!(out, b"root:!$y$j9T$a$b:1::::::");
        // An empty field is what passwd -l turns into "!".
        assert_eq!(
            lock_root(b"root::1::::::\n"),
            Ok(Lock::Locked(b"root:!:1::::::\n".to_vec()))
        );
    }

    #[test]
    fn a_locked_password_is_said_and_left() {
        for field in ["!$6$a$b", "!!", "*", "*LK*", "x", "!"] {
            let text = format!("root:{field}:19000::::::\n");
            assert!(
                matches!(lock_root(text.as_bytes()), Ok(Lock::Already(_))),
                "{field}"
            );
        }
    }

    #[test]
    fn odd_files_are_refused_naming_the_line() {
        for (text, says) in [
            (
                &b"bin:*:1::::::\nroot:$6$a$b:1::::::\r\n"[..],
                "line 2 holds a carriage return",
            ),
            (b"root:$6$a\0$b:1::::::\n", "line 1 holds a NUL"),
            (b"bin:*:1::::::\n", "has no root line"),
            (b"", "has no root line"),
            (
                b"root:*:1::::::\nx:*:1::::::\nroot:$6$a$b:1::::::\n",
                "lines 1 and 3 both are root's",
            ),
            (
                b"root\n",
                "line 1: root's entry has 1 colon-separated fields, not the 9",
            ),
            (
                b"x:*:1::::::\nroot:$6$a$b\n",
                "line 2: root's entry has 2 colon-separated fields, not the 9",
            ),
            (b"root:$6$a$b:1:::::::\n", "has 10 colon-separated"),
        ] {
            let err = lock_root(text).unwrap_err().message;
            assert!(err.contains(says), "{err}");
        }
        // A user whose name only starts with root is not root.
        assert!(lock_root(b"rootless:$6$a$b:1::::::\n").is_err());
    }
}
