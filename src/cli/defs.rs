//! The one definition of the command line: every command, operand and flag with its help. The parser,
//! `--help`, the man page, the README's reference and the shell completions are all derived from these
//! tables, so adding a flag here is the whole job. Names are a contract: add, never rename or drop.

use super::{Command, Matches};
use crate::error::Error;

/// How a shell completes a flag's value or an operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Complete {
    Dir,
    File,
    /// The names of `render::STACKS`.
    Stack,
    Words(&'static [&'static str]),
    /// Anything goes; the shell offers nothing.
    Free,
}

/// The value a flag takes: its name in the docs (`DIR`) and how to complete it.
#[derive(Debug)]
pub struct Value {
    pub name: &'static str,
    pub complete: Complete,
}

#[derive(Debug)]
pub struct Flag {
    pub long: &'static str,
    pub short: Option<char>,
    /// A `--no-…` form that undoes the flag; the last of the two given wins.
    pub negated: Option<&'static str>,
    pub value: Option<Value>,
    /// May be given more than once (each value counts).
    pub repeat: bool,
    /// One sentence, lower case, no final period.
    pub help: &'static str,
}

impl Flag {
    /// A flag without a value, given once, with no short or `--no-…` form.
    const fn switch(long: &'static str, help: &'static str) -> Flag {
        Flag {
            long,
            short: None,
            negated: None,
            value: None,
            repeat: false,
            help,
        }
    }

    /// A flag taking one value, named `name` in the docs and completed as `complete`.
    const fn with_value(
        long: &'static str,
        name: &'static str,
        complete: Complete,
        help: &'static str,
    ) -> Flag {
        Flag {
            value: Some(Value { name, complete }),
            ..Flag::switch(long, help)
        }
    }
}

#[derive(Debug)]
pub struct Operand {
    pub name: &'static str,
    pub help: &'static str,
    pub complete: Complete,
    /// May be left out (only last ones are); the command's build says when it is needed.
    pub optional: bool,
}

#[derive(Debug)]
pub struct CommandDef {
    pub name: &'static str,
    /// One line, lower case: what the command does.
    pub summary: &'static str,
    /// Operands, in order (the optional ones last).
    pub operands: &'static [Operand],
    /// The flags it takes besides `--help`, in the order help lists them.
    pub flags: &'static [&'static Flag],
    /// Paragraphs after the options (separated by blank lines).
    pub about: &'static str,
    /// Turns what the command line gave (already checked against this definition) into a `Command`.
    pub build: fn(&Matches) -> Result<Command, Error>,
}

impl CommandDef {
    /// The group of a two-word command (`image` for `image check`).
    pub fn group(&self) -> Option<&'static str> {
        self.name.split_once(' ').map(|(g, _)| g)
    }

    /// The word after the group (`check`), or the name itself.
    pub fn action(&self) -> &'static str {
        self.name.split_once(' ').map_or(self.name, |(_, a)| a)
    }

    /// Every flag it accepts, `--help` last.
    pub fn all_flags(&self) -> impl Iterator<Item = &'static Flag> + use<> {
        self.flags.iter().copied().chain([&HELP])
    }
}

pub const NAME: &str = "osconf";
/// The man page's section: an administration command, run as root (scripts/package and the
/// packages' metadata in Cargo.toml install it there; tests/tools/cli_docs.rs checks they agree).
pub const MAN_SECTION: u8 = 8;
pub const SUMMARY: &str = "configure a Customized Linux ECS instance from aliyun_custom_image/os.conf";

/// For the man page's DESCRIPTION.
pub const DESCRIPTION: &str = "\
At each start after a change, Alibaba Cloud ECS writes aliyun_custom_image/os.conf on the first \
partition of a Customized Linux image. osconf reads it (it is never executed), sets the root password, \
the host name, DNS, the NICs' addresses, MACs and routes and the default gateway for the network stack \
the image really uses, atomically and with rollback, and removes os.conf so the work runs once.

Without --config, on root /, os.conf is aliyun_custom_image/os.conf on partition 1 of the disk \
holding / (or /boot, when that is on another disk; through LVM and LUKS): through its mount when it \
has one (autofs is triggered), else mounted by osconf on /run/osconf/p1.PID (read-only for plan) and \
unmounted when done; a read-only mount is made writable for the removal and read-only again after. \
--device names another device. With another root, or where there is no partition 1 (a container), \
os.conf is looked for at <root>/boot/aliyun_custom_image/os.conf, then \
<root>/aliyun_custom_image/os.conf.";

/// Exit codes and what each means; part of the contract.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (
        crate::error::EXIT_OK,
        "applied and os.conf removed, or no os.conf found (one line says so)",
    ),
    (
        crate::error::EXIT_FAILED,
        "applying failed: every change rolled back, os.conf kept, the failing step named",
    ),
    (
        crate::error::EXIT_INVALID,
        "os.conf (or the command line) invalid: every error listed with line and key, nothing changed, \
         os.conf kept; also a valid os.conf the image's network stack cannot carry (ConnMan: static \
         routes, a NIC without the default route), each key named",
    ),
    (
        crate::error::EXIT_NO_TOOL,
        "a program the command runs is not installed (image test: qemu-system-x86_64, or \
         qemu-system-aarch64 for an arm64 image, the UEFI firmware when it boots UEFI, and qemu-io for a \
         qcow2, VHD or VMDK; image inject and prepare: mtools or debugfs, and qemu-img for a qcow2, \
         dynamic VHD or VMDK; image prepare: guestfish for an XFS, Btrfs or LVM root (or its appliance \
         did not start), thin_check for a root on a thin LV, and an agent built for the image's architecture); nothing was changed",
    ),
];

/// Files osconf reads or writes, for the man page.
pub const FILES: &[(&str, &str)] = &[
    (
        "<root>/boot/aliyun_custom_image/os.conf",
        "where ECS writes os.conf; removed after a successful apply",
    ),
    (
        "<root>/aliyun_custom_image/os.conf",
        "looked at when the first partition is the root itself",
    ),
    (
        "/run/osconf/p1.PID",
        "where osconf mounts partition 1 while it runs, when nothing else has mounted it",
    ),
    (
        "<root>/var/lib/osconf/backup/<UTC time>/",
        "the originals of every file an apply replaced or removed",
    ),
    (
        "<root>/var/lib/osconf/last-applied.conf",
        "what was applied, without the password",
    ),
    (
        "<root>/var/lib/osconf/last-run",
        "the last run of apply that found an os.conf, for osconf status",
    ),
    (
        "<root>/var/log/osconf.log",
        "one line per step of each apply run (then osconf.log.1)",
    ),
    (
        "<root>/var/lib/osconf/installed",
        "what osconf install added and what each path was before, for osconf uninstall",
    ),
];

pub static HELP: Flag = Flag {
    short: Some('h'),
    ..Flag::switch("help", "print this help and exit")
};

pub static VERSION: Flag = Flag {
    short: Some('V'),
    ..Flag::switch(
        "version",
        "print the version, the git commit and the target, and exit",
    )
};

/// Flags given before any command.
pub static GLOBAL_FLAGS: &[&Flag] = &[&HELP, &VERSION];

pub static ROOT: Flag = Flag::with_value(
    "root",
    "DIR",
    Complete::Dir,
    "the target's root directory (default /)",
);

pub static CONFIG: Flag = Flag::with_value(
    "config",
    "FILE",
    Complete::File,
    "os.conf to read, which must exist (exit 2 if not; default with root /: aliyun_custom_image/os.conf \
     on partition 1 of the disk holding / or /boot; with another root: \
     <root>/boot/aliyun_custom_image/os.conf, then <root>/aliyun_custom_image/os.conf)",
);

pub static DEVICE: Flag = Flag::with_value(
    "device",
    "DEV",
    Complete::File,
    "take os.conf from this device instead of partition 1: a path, UUID=… or LABEL=… (as blkid \
     shows them)",
);

pub static STACK: Flag = Flag::with_value(
    "stack",
    "NAME",
    Complete::Stack,
    "network stack to write for, instead of detecting it",
);

pub static IFNAME: Flag = Flag {
    repeat: true,
    ..Flag::with_value(
        "ifname",
        "ethN=NAME",
        Complete::Free,
        "write NAME where os.conf says ethN (repeatable; offline only: a live run writes the name \
         the kernel gave the NIC with ethN's MAC)",
    )
};

pub static LIVE: Flag = Flag {
    negated: Some("no-live"),
    ..Flag::switch(
        "live",
        "also configure the running system (default: only when the root is /): name NICs as the \
         kernel does, found by MAC, and make the network stack take the new files",
    )
};

pub static WAIT: Flag = Flag::with_value(
    "wait",
    "SECS",
    Complete::Free,
    "how long to wait for a device that is not there yet: partition 1 or --device, a NIC with \
     an os.conf MAC in a live run (default 30)",
);

pub static INIT: Flag = Flag::with_value(
    "init",
    "NAME",
    Complete::Words(&crate::install::INIT_NAMES),
    "the init system: systemd, sysv, openrc, runit or busybox (default: detected)",
);

pub static BOOT_DIR: Flag = Flag::with_value(
    "boot-dir",
    "DIR",
    Complete::Dir,
    "the first partition's mount point, where aliyun_custom_image/ is created (default: on /, \
     partition 1 found as apply finds it; else <root>/boot)",
);

pub static JSON: Flag = Flag::switch("json", "print one JSON object instead of text");

pub static OS_CONF: Flag = Flag::with_value(
    "os-conf",
    "FILE",
    Complete::File,
    "the os.conf to inject (default: a generated one, kept in the work directory)",
);

pub static TIMEOUT: Flag = Flag::with_value(
    "timeout",
    "SECS",
    Complete::Free,
    "stop the guest when osconf has not reported after this long (default 600)",
);

pub static IN_PLACE: Flag = Flag::switch(
    "in-place",
    "boot DISK itself, which the boot changes, instead of a scratch copy",
);

pub static KEEP: Flag = Flag::switch(
    "keep",
    "keep the booted scratch copy (disk.raw in the work directory)",
);

pub static WORK: Flag = Flag::with_value(
    "work",
    "DIR",
    Complete::Dir,
    "where the console log, the generated os.conf and the scratch copy go (default \
     DISK.osconf-test beside the image)",
);

pub static ACCEL: Flag = Flag::with_value(
    "accel",
    "NAME",
    Complete::Words(&["kvm", "tcg"]),
    "qemu's accelerator, kvm or tcg (default: kvm when /dev/kvm works, else tcg)",
);

pub static FIRMWARE: Flag = Flag::with_value(
    "firmware",
    "NAME",
    Complete::Words(&["bios", "uefi"]),
    "the guest's firmware, bios (SeaBIOS) or uefi (OVMF; AAVMF on arm64, which boots UEFI only) \
     (default: uefi when the image has an EFI System Partition and no boot code in its MBR)",
);

pub static BOOTS: Flag = Flag::with_value(
    "boots",
    "N",
    Complete::Free,
    "boot N times as an instance lives (default 1): 1 with os.conf, 2 a reboot without one (nothing \
     may be rewritten), 3 a changed os.conf (new addresses, host name, password; two NICs' MACs \
     swapped), then again without and changed (at most 20)",
);

pub static AGENT: Flag = Flag::with_value(
    "agent",
    "FILE",
    Complete::File,
    "the osconf agent binary to put in (default: the one beside osconf-image, when it is built for \
     the image's architecture)",
);

pub static REMOVE_HOST_KEYS: Flag = Flag::switch(
    "remove-host-keys",
    "remove the SSH host keys baked into the root (etc/ssh/ssh_host_*_key and .pub), one line per \
     file, and say what makes new ones at first boot (a warning when nothing does)",
);

pub static LOCK_ROOT_PASSWORD: Flag = Flag::switch(
    "lock-root-password",
    "lock root's usable password in etc/shadow as passwd -l does (a leading !, the rest of the file \
     unchanged); a password locked already is left as it is",
);

pub static VERBOSE: Flag = Flag::switch(
    "verbose",
    "show every line of the guest's console, not only osconf's",
);

/// The disk image every image command works on.
const DISK: Operand = Operand {
    name: "DISK",
    help: "the disk image file: raw, qcow2, VHD or VMDK (told by its bytes)",
    complete: Complete::File,
    optional: false,
};

/// Commands named by two words (`image check`): the first word, what the group is for, and the
/// paragraphs of `osconf image --help`.
#[derive(Debug)]
pub struct Group {
    pub name: &'static str,
    pub summary: &'static str,
    pub about: &'static str,
}

pub static GROUPS: &[Group] = &[Group {
    name: "image",
    summary: "work on a disk image before uploading it: check, inject, prepare, test",
    about: "check, inject and prepare read and write the image file itself: nothing is mounted and no \
            root is needed; test boots a scratch copy under qemu.

The image commands are a program apart from the agent that runs at boot: osconf image ARGS runs \
            osconf-image ARGS (the toolkit, found beside osconf or in PATH; exit 3 naming what to \
            install when it is in neither). The packages and the tarball ship both; osconf install \
            and image prepare put only the agent into an image.",
}];

impl Group {
    /// Its commands, in the order help lists them.
    pub fn commands(&self) -> impl Iterator<Item = &'static CommandDef> + Clone + use<'_> {
        COMMANDS.iter().filter(|c| c.group() == Some(self.name))
    }
}

/// What `generate` can print; the order of `doc::Generated`.
pub const GENERATED: &[&str] = &["man", "complete-bash", "complete-zsh", "complete-fish", "unit"];

/// How inject and prepare write an image: said in the help of both.
macro_rules! staged_write {
    () => {
        "Inject and prepare edit a copy of the partition with mtools (FAT) or debugfs (ext), read it \
         back, then write only the bytes that changed, their old contents first saved to \
         DISK.osconf-undo: a failure leaves the image as it was, and an undo file left by a crash is \
         put back by the next inject or prepare. A qcow2, dynamic VHD or VMDK image keeps its \
         format: qemu-img converts it to a sparse raw copy beside it, that copy is written as above, \
         and qemu-img converts it back with the image's options (qcow2 compat, cluster size, \
         compression, backing file; VHD and VMDK subformat) into a new file that qemu-img check \
         passes before it replaces the image (a crash before that leaves the image as it was). No \
         mount and no root needed. Exit 0 written, 1 failed (nothing changed), 2 bad os.conf or \
         image, 3 mtools, debugfs or (for those formats) qemu-img not installed."
    };
}

/// The commands, in the order help lists them.
pub static COMMANDS: &[CommandDef] = &[
    CommandDef {
        name: "apply",
        summary: "configure the system from os.conf, then remove os.conf",
        operands: &[],
        flags: &[&ROOT, &CONFIG, &DEVICE, &STACK, &IFNAME, &LIVE, &WAIT],
        about: "Every file replaced is backed up under <root>/var/lib/osconf/backup/<UTC time>/. On any \
                failure all steps are undone and os.conf is kept. Exit 0 applied or no os.conf, 1 failed \
                and rolled back, 2 os.conf invalid (nothing changed).",
        build: super::apply,
    },
    CommandDef {
        name: "plan",
        summary: "show what apply would do (a diff per file, then live actions); change nothing",
        operands: &[],
        flags: &[&ROOT, &CONFIG, &DEVICE, &STACK, &IFNAME, &LIVE, &WAIT],
        about: "Takes the same options as apply. --live (the default when the root is /) names NICs as \
                the running kernel does and shows the steps that make the network stack take the files, \
                as apply would. The password never appears: changed /etc/shadow lines are shown masked.",
        build: super::plan,
    },
    CommandDef {
        name: "check",
        summary: "validate an os.conf; print every error with its line and key",
        operands: &[Operand {
            name: "FILE",
            help: "the os.conf to validate",
            complete: Complete::File,
            optional: false,
        }],
        flags: &[],
        about: "Exit 0 when valid, 2 when not.",
        build: super::check,
    },
    CommandDef {
        name: "detect",
        summary: "print the distribution and the network stack osconf would use",
        operands: &[],
        flags: &[&ROOT, &JSON],
        about: "With --json: one object, {\"root\", \"system\": {distribution, init, stack,                 configurable, why} as image check --json gives it, \"resolv_conf\", \"os_conf\"}.",
        build: super::detect,
    },
    CommandDef {
        name: "install",
        summary: "make the target's init system run osconf apply at every boot, before the network",
        operands: &[],
        flags: &[&ROOT, &INIT, &BOOT_DIR],
        about: "Copies this binary to <root>/usr/sbin/osconf, adds and enables the service (systemd: \
                osconf.service in sysinit.target.wants; sysv: /etc/init.d/osconf with rcS.d or rc2-5.d \
                links, and insserv's .depend.boot lines where Debian boots makefile-style; openrc: the \
                boot runlevel, sysinit on Debian's OpenRC; runit: a core service, on Debian the sysv \
                script that its stage 1 runs; busybox: a sysinit entry in /etc/inittab, or \
                /etc/init.d/S39osconf where Buildroot's rcS starts S40network), creates aliyun_custom_image/ on the first partition, and records in \
                <root>/var/lib/osconf/installed what each path was before. The init is detected from \
                /sbin/init and the layout of /etc when --init is not given. osconf=off on the kernel \
                command line skips osconf at boot; a failing osconf never stops the boot. Exit 0 \
                installed, 1 failed and rolled back.",
        build: super::install,
    },
    CommandDef {
        name: "uninstall",
        summary: "take away exactly what install added, putting back what it replaced",
        operands: &[],
        flags: &[&ROOT, &INIT],
        about: "Reads <root>/var/lib/osconf/installed: files install added are removed, files and links \
                it replaced are put back, osconf's block is taken out of a shared file, directories it \
                created are removed when empty. With --init, refuses unless osconf was installed for \
                that init. Exit 0 uninstalled or not installed, 1 failed and rolled back.",
        build: super::uninstall,
    },
    CommandDef {
        name: "status",
        summary: "show the last run of apply that found an os.conf: when, the result, what changed",
        operands: &[],
        flags: &[&ROOT, &JSON],
        about: "Shows the time (UTC), the exit code and result, where os.conf was, the stack, the files \
                written, linked or removed and the live actions (undone when the run failed), and where the \
                backup is; never the password or the root hash. A run that succeeded is kept in \
                <root>/var/lib/osconf/last-run; a failed run changes nothing in its root, so on / (at boot) \
                it is kept in /run/osconf/last-run and the newer of the two is shown. Each run's steps are \
                in <root>/var/log/osconf.log (moved to osconf.log.1 past 256 KiB) and, at boot before any \
                log daemon, in the kernel log (dmesg). With --json: one object, {\"recorded\":false} \
                when nothing is recorded.",
        build: super::status,
    },
    CommandDef {
        name: "image check",
        summary: "check a disk image against the Customized Linux import requirements",
        operands: &[DISK],
        flags: &[&JSON],
        about: "Reads the partition table (MBR or GPT) and partition 1's filesystem without mounting \
                anything and prints each requirement as pass, fail or warn with the reason: virtual \
                size larger than 5 GiB, partition 1 FAT32, ext2/3/4 or UFS, ext4 without the 64bit \
                feature, writable (ext: no read-only feature and no read-only compatible feature newer \
                than Linux 3.10), aliyun_custom_image/ at its root (a warning on UFS, whose directories \
                are not read); then in the root partition (the first holding etc/os-release; partition \
                1 itself on one-partition images): an os.conf agent installed and enabled (osconf: its \
                binary and what its install manifest lists, or a package's \
                sysinit.target.wants/osconf.service; else a vendor-style script reading \
                aliyun_custom_image/os.conf, with its runlevel link or enabled unit), no SSH host keys \
                (etc/ssh/ssh_host_*_key), no root authorized_keys, no usable root password in \
                etc/shadow (locked * or ! passes; an empty field or a hash fails, named). Roots on ext, \
                FAT, Btrfs and XFS are read (Btrfs: the default subvolume, else @, else root), also \
                inside LVM2 logical volumes (linear, striped); a root filesystem it cannot read (a \
                thin LV, an encrypted LUKS partition) is a warning naming it. Everything is \
                read from the image file itself: nothing is mounted. Raw, qcow2 (v2, v3, compressed \
                clusters, a backing file beside it), VHD (fixed, dynamic) and VMDK \
                (monolithicSparse, streamOptimized) are read by osconf itself, told apart by their \
                bytes; other formats (VHDX, VDI) are refused by name. Exit 0 when nothing fails \
                (warnings may remain), 1 when a requirement fails, 2 when the file cannot be read.",
        build: super::image_check,
    },
    CommandDef {
        name: "image inject",
        summary: "write an os.conf into partition 1 of a disk image, as ECS does before a start",
        operands: &[
            DISK,
            Operand {
                name: "OS_CONF",
                help: "the os.conf to write",
                complete: Complete::File,
                optional: false,
            },
        ],
        flags: &[],
        about: concat!(
            "Writes OS_CONF into aliyun_custom_image/ on partition 1 (created when missing); OS_CONF \
                is validated first (invalid: exit 2, the image untouched). ",
            staged_write!()
        ),
        build: super::image_inject,
    },
    CommandDef {
        name: "image prepare",
        summary: "install osconf into a disk image, to run at every boot",
        operands: &[DISK],
        flags: &[&AGENT, &REMOVE_HOST_KEYS, &LOCK_ROOT_PASSWORD],
        about: concat!(
            "Installs osconf (--agent, else the agent found beside osconf-image, not the toolkit; it \
                must be built for the image's architecture, read from the ELF header of the root's \
                /sbin/init or /bin/sh: an aarch64 image takes an aarch64 agent, which \
                scripts/cargo-aarch64 builds) into the image's \
                root partition (the first holding etc/os-release; it must be ext): the files osconf \
                install --root writes, for the init system detected \
                there, manifest included; and creates aliyun_custom_image/ on partition 1 (in the root \
                on one-partition images). Fixes what image check fails, each only when asked: \
                --remove-host-keys, --lock-root-password (a line per change; they are done even when \
                osconf is installed already). An ext4 partition 1 with the 64bit feature is reported \
                with the commands that convert it; no filesystem is rewritten. ",
            staged_write!()
        ),
        build: super::image_prepare,
    },
    CommandDef {
        name: "image test",
        summary: "boot a raw disk image under qemu as ECS would and report what osconf configured",
        operands: &[DISK],
        flags: &[
            &OS_CONF, &TIMEOUT, &IN_PLACE, &KEEP, &WORK, &ACCEL, &VERBOSE, &FIRMWARE, &BOOTS, &JSON,
        ],
        about: "Boots the image under qemu as ECS would start it — qemu-system-x86_64, or \
                qemu-system-aarch64 -machine virt for an image whose root's binaries are aarch64 (read \
                from their ELF headers); SeaBIOS or UEFI (--firmware; by default UEFI when the image has \
                an EFI System Partition and no MBR boot code; UEFI's variables in a scratch copy): \
                os.conf (--os-conf, or a \
                generated one: a random root password, a host name, one or two NICs with fresh locally \
                administered MACs and private addresses) written into aliyun_custom_image/ on partition \
                1, virtio disk, one virtio NIC per os.conf NIC with its MAC, each alone on its own hub \
                (it reaches no network), no -kernel: the image's own boot loader must start it. It \
                follows the serial console (osconf's lines, every line with --verbose; all of it in \
                console.log in the work directory), stops the guest once osconf has reported or at \
                --timeout, then reads the image and reports each setting as pass or fail: osconf's \
                report, os.conf removed from partition 1, the host name, each NIC's address, gateway \
                and routes and the name servers in the network files, root's hash in etc/shadow against \
                os.conf's password. --boots N repeats an instance's life, each boot checked: a reboot \
                without os.conf must rewrite nothing (the same files, no new backup), a changed os.conf \
                must take effect. --json prints one object: per boot, per setting, expected, found, \
                verdict, and the boot's timings. It boots a scratch copy (a reflink, else a sparse copy) in the work \
                directory, removed after unless --keep; DISK itself is never changed unless --in-place. \
                Exit 0 when everything took effect, 1 when something did not, 2 for a bad os.conf or \
                image, 3 when qemu or the UEFI firmware is not installed.",
        build: super::image_test,
    },
    CommandDef {
        name: "generate",
        summary: "print the man page, a shell completion script or the systemd unit, for packagers",
        operands: &[Operand {
            name: "KIND",
            help: "man, complete-bash, complete-zsh, complete-fish or unit",
            complete: Complete::Words(GENERATED),
            optional: false,
        }],
        flags: &[],
        about: "For packagers: osconf generate man > osconf.8; complete-bash goes to \
                /usr/share/bash-completion/completions/osconf, complete-zsh to _osconf in a directory \
                of $fpath, complete-fish to /usr/share/fish/vendor_completions.d/osconf.fish; unit is \
                osconf.service as osconf install writes it (only its first comment differs), for \
                /usr/lib/systemd/system/.",
        build: super::generate,
    },
];
