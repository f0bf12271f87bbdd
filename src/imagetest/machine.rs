//! The one place that says how a guest is started as ECS would start it: which emulator and
//! machine for the image's architecture (x86_64: `qemu-system-x86_64`'s PC; aarch64:
//! `qemu-system-aarch64 -machine virt`), which firmware (SeaBIOS, or UEFI from Debian's `ovmf` /
//! `qemu-efi-aarch64` with its variables in a scratch copy), and qemu's arguments for all of it —
//! virtio disk, one virtio NIC per os.conf NIC with its MAC, each alone on its own hub, no
//! `-kernel` (the image's own boot loader must start it, as an uploaded image's does).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::image::arch::Arch;
use crate::model::Mac;

pub use crate::cli::image::Firmware;

/// The emulator for `arch`, found on `PATH`.
pub fn program(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "qemu-system-x86_64",
        Arch::Aarch64 => "qemu-system-aarch64",
    }
}

/// The package that has [`program`], for the exit-3 message.
pub fn program_package(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => {
            "Debian, Ubuntu: apt-get install qemu-system-x86; Fedora, RHEL: dnf install qemu-system-x86-core"
        }
        Arch::Aarch64 => {
            "Debian, Ubuntu: apt-get install qemu-system-arm; Fedora, RHEL: dnf install qemu-system-aarch64-core"
        }
    }
}

/// The firmware for the image: `asked` (`--firmware`) when given, else from the image as ECS's import
/// would take it — an EFI System Partition and no boot code in the MBR: UEFI; otherwise BIOS. arm64
/// boots UEFI only. The reason is what `image test` prints.
pub fn choose_firmware(
    arch: Arch,
    asked: Option<Firmware>,
    table: Option<&crate::disk::PartitionTable>,
    boot_code: &[u8],
) -> Result<(Firmware, String), Error> {
    if arch == Arch::Aarch64 {
        return match asked {
            Some(Firmware::Bios) => Err(Error::failed(
                None,
                "--firmware bios: an aarch64 image boots under UEFI only",
            )),
            _ => Ok((
                Firmware::Uefi,
                "an aarch64 image boots under UEFI only".to_owned(),
            )),
        };
    }
    if let Some(f) = asked {
        return Ok((f, format!("--firmware {}", f.name())));
    }
    let esp = table.and_then(|t| t.partitions.iter().find(|p| p.is_esp()));
    let code = boot_code.iter().any(|&b| b != 0);
    Ok(match (esp, code) {
        (Some(p), false) => (
            Firmware::Uefi,
            format!(
                "partition {} is an EFI System Partition and the MBR holds no boot code",
                p.number
            ),
        ),
        (Some(p), true) => (
            Firmware::Bios,
            format!(
                "the MBR holds boot code (partition {} is an EFI System Partition: --firmware uefi boots \
                 through it)",
                p.number
            ),
        ),
        (None, _) => (Firmware::Bios, "no EFI System Partition".to_owned()),
    })
}

/// Where distributions install the UEFI firmware for `arch`: (code, variables template), Debian's
/// first, then Fedora's.
fn uefi_candidates(arch: Arch) -> &'static [(&'static str, &'static str)] {
    match arch {
        Arch::X86_64 => &[
            (
                "/usr/share/OVMF/OVMF_CODE_4M.fd",
                "/usr/share/OVMF/OVMF_VARS_4M.fd",
            ),
            ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
            (
                "/usr/share/edk2/ovmf/OVMF_CODE.fd",
                "/usr/share/edk2/ovmf/OVMF_VARS.fd",
            ),
        ],
        Arch::Aarch64 => &[
            ("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"),
            (
                "/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw",
                "/usr/share/edk2/aarch64/vars-template-pflash.raw",
            ),
        ],
    }
}

/// The UEFI firmware's code and a fresh copy of its variables in `work` (the guest writes its boot
/// entries there; the installed template is never changed). Exit 3 naming the package when absent.
pub fn uefi_firmware(arch: Arch, work: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let found = uefi_candidates(arch)
        .iter()
        .find(|(code, vars)| Path::new(code).is_file() && Path::new(vars).is_file());
    let Some((code, vars)) = found else {
        let looked: Vec<&str> = uefi_candidates(arch).iter().map(|(c, _)| *c).collect();
        let (debian, fedora) = match arch {
            Arch::X86_64 => ("ovmf", "edk2-ovmf"),
            Arch::Aarch64 => ("qemu-efi-aarch64", "edk2-aarch64"),
        };
        return Err(Error::no_tool(format!(
            "the UEFI firmware for {} is not installed (looked at {}): Debian, Ubuntu: apt-get install \
             {debian}; Fedora, RHEL: dnf install {fedora}",
            arch.name(),
            looked.join(", ")
        )));
    };
    let copy = work.join(format!("uefi-vars-{}.fd", arch.name()));
    let _ = std::fs::remove_file(&copy);
    std::fs::copy(vars, &copy)
        .map_err(|e| Error::failed(Some(&copy), format!("copying the UEFI variables {vars}: {e}")))?;
    Ok((PathBuf::from(code), copy))
}

/// How the guest is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub arch: Arch,
    /// UEFI: the firmware's code (read-only) and the scratch copy of its variables; `None`: BIOS.
    pub uefi: Option<(PathBuf, PathBuf)>,
    pub disk: PathBuf,
    /// The disk's format as qemu names it (`raw`; `qcow2` for the overlay on a qcow2, VHD or VMDK).
    pub format: &'static str,
    /// One NIC each; `None`: qemu's own MAC (os.conf gave none).
    pub macs: Vec<Option<Mac>>,
    pub kvm: bool,
    pub memory_mib: u32,
}

/// `path` as a value of qemu's option syntax, where a comma is written twice.
fn option_path(path: &Path) -> String {
    path.as_os_str().to_string_lossy().replace(',', ",,")
}

/// qemu's arguments for `m`; the serial console on stdout.
pub fn args(m: &Machine) -> Vec<OsString> {
    let mut a: Vec<OsString> = ["-nodefaults", "-no-reboot", "-display", "none"]
        .map(OsString::from)
        .into();
    if m.arch == Arch::Aarch64 {
        // `pauth-impdef`: emulating the architected pointer authentication triples a kernel's
        // time under TCG; KVM runs the host's own CPU.
        let cpu = if m.kvm { "host" } else { "max,pauth-impdef=on" };
        a.extend(["-machine".into(), "virt".into(), "-cpu".into(), cpu.into()]);
    }
    a.extend([
        "-accel".into(),
        if m.kvm { "kvm" } else { "tcg" }.into(),
        "-m".into(),
        m.memory_mib.to_string().into(),
    ]);
    if let Some((code, vars)) = &m.uefi {
        a.extend([
            "-drive".into(),
            format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                option_path(code)
            )
            .into(),
            "-drive".into(),
            format!("if=pflash,format=raw,unit=1,file={}", option_path(vars)).into(),
        ]);
    }
    // ECS instances: virtio disk and NICs; the disk first in the firmware's boot order.
    a.extend([
        "-drive".into(),
        format!(
            "file={},format={},if=none,id=disk,cache=writeback",
            option_path(&m.disk),
            m.format
        )
        .into(),
        "-device".into(),
        "virtio-blk-pci,drive=disk,bootindex=0".into(),
        "-serial".into(),
        "stdio".into(),
    ]);
    for (i, mac) in m.macs.iter().enumerate() {
        let mac = mac.map(|m| format!(",mac={m}")).unwrap_or_default();
        // One hub per NIC with nothing else on it; romfile= keeps SeaBIOS from trying a network boot.
        a.extend([
            "-netdev".into(),
            format!("hubport,id=nic{i},hubid={i}").into(),
            "-device".into(),
            format!("virtio-net-pci,netdev=nic{i}{mac},romfile=").into(),
        ]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{Partition, PartitionTable, TableKind};

    fn table(kind: TableKind, types: &[&str]) -> PartitionTable {
        PartitionTable {
            kind,
            id: None,
            sector_size: 512,
            partitions: types
                .iter()
                .enumerate()
                .map(|(i, t)| Partition {
                    number: i as u32 + 1,
                    start: 2048 + i as u64 * 4096,
                    sectors: 4096,
                    type_id: (*t).to_owned(),
                    bootable: false,
                })
                .collect(),
        }
    }

    const ESP: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
    const LINUX: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4";

    #[test]
    fn uefi_for_an_esp_without_mbr_boot_code_else_bios() {
        let gpt_esp = table(TableKind::Gpt, &[ESP, LINUX]);
        let gpt_plain = table(TableKind::Gpt, &[LINUX, LINUX]);
        let mbr_ef = table(TableKind::Mbr, &["ef", "83"]);
        let (none, code) = ([0u8; 440], [0xebu8; 440]);
        let choose =
            |t: Option<&PartitionTable>, c: &[u8]| choose_firmware(Arch::X86_64, None, t, c).unwrap();
        let (f, why) = choose(Some(&gpt_esp), &none);
        assert_eq!(f, Firmware::Uefi);
        assert!(why.contains("partition 1 is an EFI System Partition"), "{why}");
        assert_eq!(choose(Some(&mbr_ef), &none).0, Firmware::Uefi);
        let (f, why) = choose(Some(&gpt_esp), &code);
        assert_eq!(f, Firmware::Bios);
        assert!(why.contains("--firmware uefi"), "{why}");
        assert_eq!(
            choose(Some(&gpt_plain), &none),
            (Firmware::Bios, "no EFI System Partition".into())
        );
        assert_eq!(choose(None, &none).0, Firmware::Bios);
        // A single set byte is boot code.
        let mut one = [0u8; 440];
        one[439] = 1;
        assert_eq!(choose(Some(&gpt_esp), &one).0, Firmware::Bios);
    }

    #[test]
    fn asked_firmware_wins_but_arm64_is_uefi_only() {
        let t = table(TableKind::Gpt, &[LINUX]);
        assert_eq!(
            choose_firmware(Arch::X86_64, Some(Firmware::Uefi), Some(&t), &[1; 440]).unwrap(),
            (Firmware::Uefi, "--firmware uefi".into())
        );
        assert_eq!(
            choose_firmware(Arch::Aarch64, None, Some(&t), &[1; 440])
                .unwrap()
                .0,
            Firmware::Uefi
        );
        let e = choose_firmware(Arch::Aarch64, Some(Firmware::Bios), None, &[]).unwrap_err();
        assert!(e.message.contains("UEFI only"), "{e}");
    }

    fn machine(arch: Arch, uefi: bool, kvm: bool) -> Vec<String> {
        let m = Machine {
            arch,
            uefi: uefi.then(|| ("/fw/CODE.fd".into(), "/w,x/VARS.fd".into())),
            disk: "/img/a,b.raw".into(),
            format: "raw",
            macs: vec![Some(Mac([2, 0, 0, 0, 0, 1])), Some(Mac([2, 0, 0, 0, 0, 2]))],
            kvm,
            memory_mib: 1024,
        };
        args(&m).iter().map(|s| s.to_string_lossy().into()).collect()
    }

    #[test]
    fn each_nic_on_its_own_hub_and_no_kernel() {
        let a = machine(Arch::X86_64, false, false);
        let joined = a.join(" ");
        assert!(joined.contains("-accel tcg -m 1024"), "{joined}");
        assert!(joined.contains("file=/img/a,,b.raw,format=raw"), "{joined}");
        assert!(joined.contains("-netdev hubport,id=nic0,hubid=0 -device virtio-net-pci,netdev=nic0,mac=02:00:00:00:00:01,romfile="));
        assert!(joined.contains(
            "-netdev hubport,id=nic1,hubid=1 -device virtio-net-pci,netdev=nic1,mac=02:00:00:00:00:02,"
        ));
        for never in ["-kernel", "user", "tap", "-nic", "pflash", "-machine"] {
            assert!(!joined.contains(never), "{never}: {joined}");
        }
        assert_eq!(a.iter().filter(|x| *x == "-netdev").count(), 2);
    }

    #[test]
    fn uefi_firmware_on_pflash_with_its_variables_writable() {
        let joined = machine(Arch::X86_64, true, true).join(" ");
        assert!(
            joined.contains(
                "-drive if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd \
             -drive if=pflash,format=raw,unit=1,file=/w,,x/VARS.fd"
            ),
            "{joined}"
        );
        assert!(joined.contains("-accel kvm"), "{joined}");
        assert!(
            joined.contains("virtio-blk-pci,drive=disk,bootindex=0"),
            "{joined}"
        );
    }

    #[test]
    fn arm64_on_the_virt_machine_with_cheap_pointer_authentication() {
        let joined = machine(Arch::Aarch64, true, false).join(" ");
        assert!(
            joined.contains("-machine virt -cpu max,pauth-impdef=on -accel tcg"),
            "{joined}"
        );
        assert!(joined.contains("unit=0,readonly=on,file=/fw/CODE.fd"), "{joined}");
        let kvm = machine(Arch::Aarch64, true, true).join(" ");
        assert!(kvm.contains("-machine virt -cpu host -accel kvm"), "{kvm}");
        assert_eq!(program(Arch::Aarch64), "qemu-system-aarch64");
    }
}
