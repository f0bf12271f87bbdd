"""Root layouts of the images people import, built bootable for image_test.py's matrix: GPT, partition
1 a FAT32 EFI System Partition holding the kernel, an initramfs and both bootloaders (syslinux,
chained from syslinux's gptmbr.bin in the MBR, for SeaBIOS; systemd-boot at the removable-media
path for OVMF), so one image boots under either firmware; the root is tests/e2e's busybox root.

  xfs       p2 XFS v5 (/), partition 1 at /boot
  rhel9     Rocky/RHEL 9's: p2 XFS /boot, p3 an LVM2 PV of VG `rl`, LV `swap` then LV `root` XFS (/);
            partition 1 at /boot/efi; the initramfs activates rl/root with the host's `lvm`
  opensuse  openSUSE's: p2 Btrfs with the `@` subvolumes (@/home, @/var, @/.snapshots) and the root in
            @/.snapshots/1/snapshot, the default subvolume, so nothing on the kernel's command line
            names it (as openSUSE boots); partition 1 at /boot/efi

The filesystems are made by their own mkfs on loop devices over the image's bytes and filled by the
kernel through a mount, in a private mount namespace (btrfs-progs 6.2 has no `mkfs --subvol`, xfsprogs
6.1 no `mkfs -p DIR`); LVM runs with a configuration of its own that sees only its loop device and
never activates anything on the host (the LV's place is read from `lvs`, the way
tests/root/image_lvm.rs writes one).
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

import e2e

MIB = e2e.MIB
GPT_MBR_CODE = Path("/usr/lib/syslinux/mbr/gptmbr.bin")
LVM_TYPE = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
# The kernel's options in every image image_test.py boots. no_timer_check: under TCG on a loaded
# machine the kernel's IO-APIC timer check can time out and panic at boot, as it did here (cloud
# images of RHEL and Fedora carry it for the same reason).
OPTIONS = "console=ttyS0 panic=-1 no_timer_check"
PROGRAMS = ["mkfs.xfs", "mkfs.btrfs", "btrfs", "lvm", "losetup", "ldd", "qemu-img"]


@dataclass
class Layout:
    name: str
    summary: str
    p1_mount: str
    parts: list  # (MiB, sfdisk type) of the partitions after partition 1
    kernel_args: str  # what names the root on the kernel's command line
    modules: list  # beyond e2e.MODULES, in the initramfs
    fstab: str
    lvm: bool = False


LAYOUTS = [
    Layout("xfs", "GPT, p1 FAT32 ESP (/boot), p2 XFS v5 root", "/boot", [(300, "L")],
           "root=/dev/vda2 rootfstype=xfs", ["xfs"],
           "/dev/vda2 / xfs defaults 0 1\n/dev/vda1 /boot vfat defaults 0 2\n"),
    Layout("rhel9", "RHEL 9: GPT, p1 FAT32 ESP (/boot/efi), p2 XFS /boot, p3 LVM PV, VG rl, LV root XFS",
           "/boot/efi", [(300, "L"), (340, LVM_TYPE)],
           "root=/dev/mapper/rl-root rootfstype=xfs rd.lvm.lv=rl/root", ["xfs", "dm_mod"],
           "/dev/mapper/rl-root / xfs defaults 0 0\n/dev/vda2 /boot xfs defaults 0 0\n"
           "/dev/vda1 /boot/efi vfat umask=0077 0 2\n", lvm=True),
    Layout("opensuse", "openSUSE: GPT, p1 FAT32 ESP (/boot/efi), p2 Btrfs, @ subvolumes, default "
           "@/.snapshots/1/snapshot", "/boot/efi", [(256, "L")], "root=/dev/vda2 rootfstype=btrfs",
           ["btrfs"], "/dev/vda2 / btrfs defaults 0 0\n/dev/vda1 /boot/efi vfat umask=0077 0 2\n"),
]

# LVM seeing only the loop devices it is given, keeping no backups, touching no udev and no lock or
# device file of the host's (its lock directory is on the namespace's own /run).
LVM_CONF = """devices { filter = [ %s"r|.*|" ] use_devicesfile = 0 obtain_device_list_from_udev = 0 hints = "none" }
global { locking_dir = "/run/lock/lvm" use_lvmlockd = 0 }
backup { backup = 0 archive = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
"""


def boot_files(cache, p1: Path, initrd: Path, options: str):
    """Partition 1's kernel, initramfs and the two bootloaders' configuration booting them with
    `options`: syslinux.cfg (BIOS; syslinux itself goes in with the image, Disk.install_syslinux)
    and systemd-boot at the removable-media path with its entry (UEFI)."""
    kernel = cache.kernel()
    shutil.copy(kernel[0], p1 / "vmlinuz")
    shutil.copy(initrd, p1 / "initrd.img")
    (p1 / "syslinux.cfg").write_text("DEFAULT linux\nTIMEOUT 0\nLABEL linux\n  KERNEL /vmlinuz\n"
                                     f"  INITRD /initrd.img\n  APPEND {options}\n")
    (p1 / "EFI/BOOT").mkdir(parents=True, exist_ok=True)
    efi = cache.package_file("systemd-boot-efi:amd64", "usr/lib/systemd/boot/efi/systemd-bootx64.efi")
    shutil.copy(efi, p1 / "EFI/BOOT/BOOTX64.EFI")
    (p1 / "loader/entries").mkdir(parents=True, exist_ok=True)
    (p1 / "loader/loader.conf").write_text("default osconf.conf\ntimeout 0\n")
    (p1 / "loader/entries/osconf.conf").write_text("title osconf\nlinux /vmlinuz\ninitrd /initrd.img\n"
                                                   f"options {options}\n")


def initrd(cache, layout: Layout):
    """The layout's initramfs: e2e's with its filesystem's modules, and for LVM the host's `lvm`
    with every library `ldd` names and a configuration for a machine without udev."""
    files = {}
    if layout.lvm:
        lvm = Path(shutil.which("lvm"))
        files[str(lvm)] = lvm
        for line in e2e.run(["ldd", str(lvm)]).splitlines():
            lib = line.split("=>")[-1].split("(")[0].strip()
            if lib.startswith("/"):
                files[lib] = Path(lib)
        files["/etc/lvm/lvm.conf"] = LVM_CONF % '"a|.*|", '
    return cache.initrd(layout.name, layout.modules, files)


def starts(layout: Layout):
    """(start, size) in bytes of every partition, partition 1 first."""
    out, at = [(e2e.P1_START, e2e.P1_SIZE)], e2e.P1_START + e2e.P1_SIZE
    for mib, _ in layout.parts:
        out.append((at, mib * MIB))
        at += mib * MIB
    return out


def in_namespace(script: str):
    """Runs sh `script` as root in a private mount namespace with its own /run; its `loop START SIZE`
    attaches a loop device over $IMAGE's bytes [START, START+SIZE) into $dev, detached at the end
    (after $MNT is unmounted, should the script have failed with it mounted)."""
    prelude = ("set -e; mount -t tmpfs tmpfs /run; loops=; "
               "trap 'umount -q \"$MNT\" 2>/dev/null || true; for l in $loops; do losetup -d \"$l\"; done' EXIT; "
               "loop() { dev=$(losetup -f --show -o \"$1\" --sizelimit \"$2\" \"$IMAGE\"); loops=\"$dev $loops\"; }; ")
    return e2e.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", prelude + script])


def build(layout: Layout, setup, root: Path, p1: Path, path: Path):
    """The raw image at `path`: the table, partition 1 from `p1`, syslinux, and the layout's
    filesystems holding `root`."""
    parts = starts(layout)
    with open(path, "wb") as f:
        f.truncate(parts[-1][0] + parts[-1][1] + MIB)
    # Partition 1 legacy-BIOS-bootable: gptmbr.bin chains to it.
    bootable = ', attrs="LegacyBIOSBootable"'
    table = "label: gpt\n" + "".join(
        f"start={start // 512}, size={size // 512}, type={kind}{bootable if n == 0 else ''}\n"
        for n, ((start, size), kind) in enumerate(zip(parts, ["U"] + [k for _, k in layout.parts])))
    e2e.run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(path)], input=table)
    disk = e2e.Disk(path, setup)
    disk.fill_p1(p1)
    disk.install_syslinux(GPT_MBR_CODE)
    env = f"IMAGE='{path}'; TREE='{root}'; MNT='{path.parent / 'mnt'}'; mkdir -p \"$MNT\"; "
    fill = "mount \"$dev\" \"$MNT\"; cp -a \"$TREE\"/. \"$MNT\"/; umount \"$MNT\"; "
    (start, size) = parts[1]
    if layout.name == "xfs":
        in_namespace(env + f"loop {start} {size}; mkfs.xfs -q -f -m crc=1 \"$dev\"; " + fill)
    elif layout.name == "opensuse":
        # openSUSE's subvolumes (a few of them), the root in the first snapshot, made the default.
        in_namespace(env + f"loop {start} {size}; mkfs.btrfs -q -f \"$dev\"; mount \"$dev\" \"$MNT\"; "
                     "btrfs -q subvolume create \"$MNT/@\"; "
                     "for s in home var .snapshots; do btrfs -q subvolume create \"$MNT/@/$s\"; done; "
                     "mkdir \"$MNT/@/.snapshots/1\"; btrfs -q subvolume create \"$MNT/@/.snapshots/1/snapshot\"; "
                     "cp -a \"$TREE\"/. \"$MNT/@/.snapshots/1/snapshot/\"; "
                     "btrfs subvolume set-default \"$MNT/@/.snapshots/1/snapshot\"; umount \"$MNT\"")
    elif layout.name == "rhel9":
        rhel9(env, fill, parts, path)


def rhel9(env, fill, parts, path: Path):
    """/boot on XFS in partition 2; partition 3 an LVM2 PV of VG rl (LV swap, then LV root), the
    root's XFS written where `lvs` places LV root."""
    (bstart, bsize), (pstart, psize) = parts[1], parts[2]
    conf = path.parent / "lvm"
    (conf / "lock").mkdir(parents=True, exist_ok=True)
    (conf / "template").write_text(LVM_CONF % '"a|^PV$|", ')
    lvm = (f"export LVM_SYSTEM_DIR='{conf}' LVM_SUPPRESS_FD_WARNINGS=1; "
           f"loop {pstart} {psize}; pv=$dev; sed \"s|PV|$pv|\" '{conf}/template' >'{conf}/lvm.conf'; ")
    # /boot holds what the root's /boot does (the mount point of the ESP, boot/efi).
    out = in_namespace(
        env + f"loop {bstart} {bsize}; mkfs.xfs -q -f \"$dev\"; " + fill.replace('"$TREE"/.', '"$TREE"/boot/.') + lvm +
        "lvm pvcreate -q -y \"$pv\" >&2; lvm vgcreate -q rl \"$pv\" >&2; "
        "for lv in swap:8M root:304M; do "
        "lvm lvcreate -q --driverloaded n -an -Zn -L \"${lv#*:}\" -n \"${lv%:*}\" rl >&2; done; "
        "lvm pvs --noheadings --units b --nosuffix -o pe_start,vg_extent_size \"$pv\"; "
        "lvm lvs --noheadings -o seg_pe_ranges rl/root")
    pe_start, extent = (int(x) for x in out.split()[:2])
    first, last = (int(x) for x in out.split()[2].rsplit(":", 1)[1].split("-"))
    lv_start, lv_size = pstart + pe_start + first * extent, (last - first + 1) * extent
    in_namespace(env + f"loop {lv_start} {lv_size}; mkfs.xfs -q -f \"$dev\"; " + fill)
    shutil.rmtree(conf)


def readback(layout: Layout, path: Path, files, scratch: Path):
    """The texts of the root's `files` (paths inside it) as the kernel reads them: partition 2 of the
    raw image mounted read-only in a private namespace (the xfs and opensuse layouts)."""
    (start, size) = starts(layout)[1]
    scratch.mkdir(parents=True, exist_ok=True)
    copies = "".join(f"cat \"$MNT/{f.lstrip('/')}\" >'{scratch}/{n}'; " for n, f in enumerate(files))
    in_namespace(f"IMAGE='{path}'; MNT='{scratch / 'mnt'}'; mkdir -p \"$MNT\"; loop {start} {size}; "
                 f"mount -o ro \"$dev\" \"$MNT\"; {copies}umount \"$MNT\"")
    return {f: (scratch / str(n)).read_text() for n, f in enumerate(files)}
