//! The root password hash is checked by an implementation other than ours: glibc's (libxcrypt's)
//! crypt(3), called from Python through ctypes. A hash that glibc does not reproduce would lock root out.

use std::io::Write as _;
use std::process::{Command, Stdio};

use osconf::render::common::shadow::{SALT_BYTES, sha512_crypt};

/// Reads `password\thash` lines; prints `ok` or `BAD <hash>` for each, per crypt(3).
const VERIFY: &str = r#"
import ctypes, ctypes.util, sys
lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
lib.crypt.restype = ctypes.c_char_p
lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
for line in sys.stdin.buffer.read().split(b"\n"):
    if not line:
        continue
    password, hashed = line.split(b"\t")
    print("ok" if lib.crypt(password, hashed) == hashed else "BAD " + hashed.decode())
"#;

/// Runs VERIFY over `password\thash` lines; one verdict per line.
fn verify(input: &str) -> Vec<String> {
    let mut child = Command::new("python3")
        .args(["-c", VERIFY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 crypt check failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn sha512_crypt_verifies_with_glibc_crypt() {
    if Command::new("python3")
        .arg("-c")
        .arg("import ctypes")
        .output()
        .is_err()
    {
        return crate::common::real::cannot_run(
            "sha512_crypt_verifies_with_glibc_crypt",
            "python3 is not installed",
        );
    }
    let passwords = [
        "qwer1234",
        "a",
        "pässwörd with spaces",
        "x:y$z\\`$(id)`",
        &"long".repeat(40),
    ];
    let mut input = String::new();
    for (i, password) in passwords.iter().enumerate() {
        let mut salt = [0u8; SALT_BYTES];
        rustix::rand::getrandom(&mut salt, rustix::rand::GetRandomFlags::empty()).unwrap();
        salt[0] = i as u8; // salts differ even if the random source were stuck
        let hash = sha512_crypt(password, &salt);
        assert!(
            hash.starts_with("$6$") && (password.len() < 4 || !hash.contains(password)),
            "{hash}"
        );
        input.push_str(&format!("{password}\t{hash}\n"));
    }
    // A wrong password must not verify, or the check above proves nothing.
    let wrong = sha512_crypt("qwer1234", &[7; SALT_BYTES]);
    input.push_str(&format!("qwer12345\t{wrong}\n"));

    let lines = verify(&input);
    assert_eq!(lines.len(), passwords.len() + 1);
    assert!(lines[..passwords.len()].iter().all(|l| l == "ok"), "{lines:?}");
    assert!(
        lines[passwords.len()].starts_with("BAD"),
        "a wrong password verified: {lines:?}"
    );
}

#[test]
fn applied_shadow_verifies_against_decoded_password() {
    if Command::new("python3")
        .arg("-c")
        .arg("import ctypes")
        .output()
        .is_err()
    {
        let why = "python3 is not installed";
        return crate::common::real::cannot_run("applied_shadow_verifies_against_decoded_password", why);
    }
    let scratch = tempfile::tempdir().unwrap();
    let root = crate::common::example_root(scratch.path(), "centos7");
    crate::common::osconf_apply(&root, &crate::common::example_conf("vpc"));
    let shadow = std::fs::read_to_string(root.join("etc/shadow")).unwrap();
    let hash = shadow
        .lines()
        .find_map(|l| l.strip_prefix("root:"))
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    // examples/vpc/os.conf has password=cXdlcjEyMzQK: "qwer1234" and a newline, which is stripped.
    let input = format!("qwer1234\t{hash}\nqwer123\t{hash}\n");
    let lines = verify(&input);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "ok", "the decoded password does not verify");
    assert!(lines[1].starts_with("BAD"), "a wrong password verified");
}
