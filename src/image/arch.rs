//! Which CPU a program is built for, read from its ELF header (`e_machine`): the architecture of an
//! image, from the binaries of its root partition, and of an agent binary, so that `image prepare`
//! puts in the agent the image can run and `image test` boots it on the matching qemu machine.
//! Every header is foreign input: short, unknown class or byte order, or an unknown machine is an
//! error naming what was found, never a guess.

use std::io::Read as _;
use std::path::Path;

use crate::error::Error;
use crate::system::System;

/// The architectures osconf is built for (64-bit, little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The kernel's and Rust's name (`uname -m`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The architecture this toolkit runs on: KVM runs only guests of this one.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Aarch64),
            _ => None,
        }
    }
}

/// `e_machine` values named in messages (the ELF specification's `EM_*`).
const MACHINES: &[(u16, &str)] = &[
    (3, "i386"),
    (8, "mips"),
    (20, "ppc"),
    (21, "ppc64"),
    (22, "s390"),
    (40, "arm"),
    (62, "x86_64"),
    (183, "aarch64"),
    (243, "riscv"),
    (258, "loongarch"),
];

/// The bytes of the ELF header read: `e_ident` (16) and `e_type`, `e_machine`.
pub const HEAD: usize = 20;

/// The architecture an ELF file is for, from (at least) its first [`HEAD`] bytes.
pub fn of_elf(head: &[u8]) -> Result<Arch, Error> {
    if head.len() < 4 || head[..4] != *b"\x7fELF" {
        return Err(Error::failed(None, "not an ELF file"));
    }
    if head.len() < HEAD {
        return Err(Error::failed(
            None,
            format!("a truncated ELF header ({} bytes, {HEAD} needed)", head.len()),
        ));
    }
    let bits = match head[4] {
        1 => 32,
        2 => 64,
        c => return Err(Error::failed(None, format!("an ELF file of unknown class {c}"))),
    };
    let machine = match head[5] {
        1 => u16::from_le_bytes([head[18], head[19]]),
        2 => u16::from_be_bytes([head[18], head[19]]),
        d => {
            return Err(Error::failed(
                None,
                format!("an ELF file of unknown byte order {d}"),
            ));
        }
    };
    let name = MACHINES
        .iter()
        .find(|(m, _)| *m == machine)
        .map_or_else(|| format!("machine {machine}"), |(_, n)| (*n).to_owned());
    match (bits, head[5], machine) {
        (64, 1, 62) => Ok(Arch::X86_64),
        (64, 1, 183) => Ok(Arch::Aarch64),
        (b, d, _) => Err(Error::failed(
            None,
            format!(
                "a {b}-bit {} {name} ELF file: osconf is built for 64-bit x86_64 and aarch64 only",
                if d == 1 { "little-endian" } else { "big-endian" }
            ),
        )),
    }
}

/// The files whose ELF header tells a root's architecture, in the order tried: what the kernel
/// starts, the shell every init runs, then programs every distribution has.
pub const PROBES: [&str; 5] = [
    "/sbin/init",
    "/bin/sh",
    "/usr/lib/systemd/systemd",
    "/bin/busybox",
    "/usr/bin/env",
];

/// The architecture of the root `sys`, and the file it was read from: the first of [`PROBES`] that
/// is an ELF binary (links followed inside the root). An error names what each probe was.
pub fn of_root(sys: &System) -> Result<(Arch, &'static str), Error> {
    let mut seen = Vec::new();
    for path in PROBES {
        let what = match sys.read(path) {
            Ok(None) => "absent".to_owned(),
            Ok(Some(bytes)) => match of_elf(&bytes) {
                Ok(arch) => return Ok((arch, path)),
                // Another machine's ELF binary is an answer, not a reason to look further.
                Err(e) if bytes.len() >= HEAD && bytes.starts_with(b"\x7fELF") => {
                    return Err(Error::failed(None, format!("{path} is {e}")));
                }
                Err(e) => e.message,
            },
            Err(e) => e.to_string(),
        };
        seen.push(format!("{path}: {what}"));
    }
    Err(Error::failed(
        None,
        format!(
            "no ELF binary found to read the architecture from ({})",
            seen.join("; ")
        ),
    ))
}

/// The architecture of the program at `path` on this machine (an agent binary).
pub fn of_file(path: &Path) -> Result<Arch, Error> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| Error::failed(None, format!("{shown}: {e}")))?;
    let mut head = Vec::with_capacity(HEAD);
    file.take(HEAD as u64)
        .read_to_end(&mut head)
        .map_err(|e| Error::failed(None, format!("{shown}: {e}")))?;
    of_elf(&head).map_err(|e| Error::failed(None, format!("{shown} is {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF header's first 20 bytes: class, byte order, machine.
    fn header(class: u8, order: u8, machine: u16) -> Vec<u8> {
        let mut h = b"\x7fELF".to_vec();
        h.extend([class, order, 1, 0]);
        h.extend([0; 8]);
        h.extend(2u16.to_le_bytes());
        h.extend(if order == 2 {
            machine.to_be_bytes()
        } else {
            machine.to_le_bytes()
        });
        h
    }

    #[test]
    fn the_two_machines_osconf_is_built_for() {
        assert_eq!(of_elf(&header(2, 1, 62)), Ok(Arch::X86_64));
        assert_eq!(of_elf(&header(2, 1, 183)), Ok(Arch::Aarch64));
        // More than the header: a whole binary is read the same.
        let mut whole = header(2, 1, 183);
        whole.extend([0xff; 100]);
        assert_eq!(of_elf(&whole), Ok(Arch::Aarch64));
    }

    #[test]
    fn hostile_and_foreign_headers_are_named() {
        for (bytes, want) in [
            (Vec::new(), "not an ELF file"),
            (b"#!/bin/sh\n".to_vec(), "not an ELF file"),
            (b"\x7fEL".to_vec(), "not an ELF file"),
            (
                header(2, 1, 62)[..19].to_vec(),
                "a truncated ELF header (19 bytes, 20 needed)",
            ),
            (b"\x7fELF".to_vec(), "a truncated ELF header (4 bytes"),
            (header(3, 1, 62), "unknown class 3"),
            (header(0, 1, 62), "unknown class 0"),
            (header(2, 7, 62), "unknown byte order 7"),
            // x32 and arm's 32-bit binaries: the right machine number, the wrong class.
            (header(1, 1, 62), "a 32-bit little-endian x86_64 ELF file"),
            (header(1, 1, 40), "a 32-bit little-endian arm ELF file"),
            (header(1, 1, 3), "a 32-bit little-endian i386 ELF file"),
            (header(2, 2, 183), "a 64-bit big-endian aarch64 ELF file"),
            (header(2, 1, 243), "a 64-bit little-endian riscv ELF file"),
            (header(2, 1, 9999), "a 64-bit little-endian machine 9999 ELF file"),
        ] {
            let got = of_elf(&bytes).expect_err(want);
            assert!(got.message.contains(want), "{got:?} should say {want:?}");
        }
    }

    #[test]
    fn this_test_binary_is_of_the_host_architecture() {
        let exe = std::env::current_exe().unwrap();
        assert_eq!(of_file(&exe).ok(), Arch::host());
        let e = of_file(Path::new("/nonexistent/osconf")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/osconf: "), "{e}");
    }
}
