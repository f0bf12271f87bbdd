"""The e2e setups: which image each one builds (partition table, partition 1's filesystem and mount,
packages, network stack configuration as an installer leaves it) and the two os.conf files it boots
with. Also how the harness puts osconf and its own report into a root."""

import base64
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


def crypt(password, salt):
    """libc's crypt(3) through perl (Essential on Debian; Python's crypt module is gone in 3.13)."""
    return subprocess.run(["perl", "-e", "print crypt($ARGV[0], $ARGV[1])", password, salt], check=True,
                          capture_output=True, text=True).stdout


def b64(text):
    return base64.b64encode(text.encode()).decode()


# Two os.conf files per shape: the first boot's and the changed one written before the third boot.
# The classic shape has two NICs (the private one with routes, the public one with the default route);
# the VPC shape one NIC. Addresses are private or documentation ranges; the NICs reach nobody anyway.
CLASSIC = ("""hostname=iZe2eClassicA
password={pw}
eth0_ip_addr=10.171.254.123
eth0_mac_addr=52:54:00:e2:e0:01
eth0_netmask=255.255.255.0
eth0_gateway=10.171.254.1
eth0_route="10.0.0.0/8 10.171.254.1;172.16.0.0/12 10.171.254.1"
eth1_ip_addr=203.0.113.105
eth1_mac_addr=52:54:00:e2:e0:02
eth1_netmask=255.255.255.0
eth1_gateway=203.0.113.1
eth1_route="0.0.0.0/0 203.0.113.1"
dns_nameserver="10.171.0.7 10.171.0.8"
""".format(pw=b64("Classic-A-pw1\n")), """hostname=iZe2eClassicB
password={pw}
eth0_ip_addr=10.171.254.124
eth0_mac_addr=52:54:00:e2:e0:01
eth0_netmask=255.255.254.0
eth0_gateway=10.171.254.1
eth0_route="10.0.0.0/8 10.171.254.1;100.64.0.0/10 10.171.254.1"
eth1_ip_addr=203.0.113.106
eth1_mac_addr=52:54:00:e2:e0:02
eth1_netmask=255.255.255.128
eth1_gateway=203.0.113.1
eth1_route="0.0.0.0/0 203.0.113.1"
dns_nameserver="10.171.0.9"
""".format(pw=b64("Classic-B-pw2")))


def swap_macs(conf):
    """The os.conf with eth0's and eth1's MACs exchanged: an elastic NIC moved between instances."""
    mac = dict(line.split("=", 1) for line in conf.splitlines() if "_mac_addr=" in line)
    return conf.replace(mac["eth0_mac_addr"], "MAC0").replace(mac["eth1_mac_addr"], mac["eth0_mac_addr"]) \
        .replace("MAC0", mac["eth1_mac_addr"])


# The classic change with the MACs swapped as well: the NICs keep their MACs (and kernel names), so at
# the third boot every address and route must move to the NIC that now carries its MAC. ifupdown names
# interfaces in its stanzas, so it is the stack where a stale name would show.
CLASSIC_SWAPPED = (CLASSIC[0], swap_macs(CLASSIC[1]))

VPC = ("""hostname=iZe2eVpcA
password={pw}
eth0_ip_addr=192.168.7.23
eth0_mac_addr=52:54:00:e2:e1:01
eth0_netmask=255.255.255.0
eth0_gateway=192.168.7.253
eth0_route="0.0.0.0/0 192.168.7.253"
dns_nameserver="100.100.2.136 100.100.2.138"
""".format(pw=b64("Vpc-A-pw1")), """hostname=iZe2eVpcB
password={pw}
eth0_ip_addr=192.168.9.45
eth0_mac_addr=52:54:00:e2:e1:01
eth0_netmask=255.255.252.0
eth0_gateway=192.168.8.1
dns_nameserver="100.100.2.137"
""".format(pw=b64("Vpc-B-pw2")))


@dataclass
class Setup:
    name: str
    summary: str
    init: str  # systemd | sysv | openrc (Debian roots) | busybox | buildroot (busybox-only roots)
    table: str  # gpt | dos (sfdisk's label)
    p1_fs: str  # vfat | ext4 | ext2
    p1_mount: str  # where the image's fstab mounts partition 1
    confs: tuple
    packages: list = field(default_factory=list)
    configure: Callable = None  # writes the installer's network configuration into the root
    p1_uuid: str = ""
    # Boots by itself (SeaBIOS → syslinux on partition 1 → kernel), as an uploaded image must,
    # instead of qemu's -kernel: the recipe `osconf image test` (issue 9) needs in CI.
    bootloader: bool = False
    root_uuid: str = "0f5e2e00-0000-4000-8000-00000000e2e2"
    # Debian's name of the guest's architecture. arm64 boots under UEFI: AAVMF → systemd-boot on
    # partition 1, the EFI System Partition (bootloader=True) → kernel.
    arch: str = "amd64"
    # A line osconf's log must hold at each boot with os.conf (the tool it ran to take the files).
    log_shows: str = ""

    @property
    def debian(self):
        """A root from Debian's packages (debootstrap), not a busybox-only one."""
        return self.init in ("systemd", "sysv", "openrc")

    @property
    def macs(self):
        return [line.split("=", 1)[1] for line in self.confs[0].splitlines() if "_mac_addr=" in line]


def write(root: Path, path: str, text: str, mode=0o644):
    f = root / path.lstrip("/")
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)
    f.chmod(mode)


def enable(root: Path, *units):
    # systemctl works offline on a root (it only makes the [Install] links).
    subprocess.run(["systemctl", f"--root={root}", "enable", *units], check=True, capture_output=True)


def networkd(root: Path):
    enable(root, "systemd-networkd.service")
    # What an image builder often leaves: DHCP on every Ethernet NIC.
    write(root, "/etc/systemd/network/90-dhcp.network", "[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n")


def ifupdown(root: Path):
    write(root, "/etc/network/interfaces",
          "# The installer's file.\nsource /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n")


def netplan(root: Path):
    enable(root, "systemd-networkd.service")
    write(root, "/etc/netplan/50-cloud-init.yaml",
          "network:\n  version: 2\n  ethernets:\n    all-en:\n      match:\n        name: \"en*\"\n"
          "      dhcp4: true\n", 0o600)


def networkmanager(root: Path):
    # As RHEL 9 cloud images ship: one DHCP profile for any Ethernet NIC.
    write(root, "/etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection",
          "[connection]\nid=cloud-init eth0\nuuid=1dd9a779-d327-56e1-8454-c65e2556c12c\ntype=ethernet\n"
          "autoconnect=true\n\n[ethernet]\n\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n", 0o600)


SETUPS = [
    Setup("networkd", "systemd + networkd, FAT32 EFI System Partition on GPT at /boot/efi", "systemd", "gpt",
          "vfat", "/boot/efi", CLASSIC, [], networkd, p1_uuid="E2E0-0001"),
    Setup("ifupdown", "systemd + ifupdown, ext4 /boot on MBR; boot 3 swaps the MACs", "systemd", "dos", "ext4",
          "/boot", CLASSIC_SWAPPED,
          ["ifupdown"], ifupdown, p1_uuid="0f5e2e00-0000-4000-8000-0000000000b2"),
    Setup("netplan", "systemd + netplan over networkd (installer YAML doing DHCP), ext4 /boot on GPT",
          "systemd", "gpt", "ext4", "/boot", VPC, ["netplan.io"], netplan,
          p1_uuid="0f5e2e00-0000-4000-8000-0000000000b3",
          # netplan's C generator, not the Python `netplan generate` (seconds of a TCG boot).
          log_shows="live: run `/usr/libexec/netplan/generate --root-dir /`"),
    Setup("networkmanager", "systemd + NetworkManager (cloud DHCP keyfile), FAT32 /boot on MBR", "systemd",
          "dos", "vfat", "/boot", CLASSIC, ["network-manager"], networkmanager, p1_uuid="E2E0-0004"),
    Setup("busybox", "busybox init + busybox ifup, ext2 /boot on MBR", "busybox", "dos", "ext2", "/boot", VPC,
          p1_uuid="0f5e2e00-0000-4000-8000-0000000000b5"),
    # The three below have osconf run by inits other than systemd; each proves from the kernel log that
    # osconf ran at this boot, read os.conf where the init had mounted partition 1, and finished
    # before the first ifup (tests/e2e/guest/ifup-mark).
    Setup("sysvinit", "Debian sysvinit-core (makefile-style boot, startpar) + ifupdown, ext4 /boot on MBR; "
          "boot 3 swaps the MACs", "sysv", "dos", "ext4", "/boot", CLASSIC_SWAPPED, ["sysvinit-core", "ifupdown"],
          ifupdown, p1_uuid="0f5e2e00-0000-4000-8000-0000000000b7"),
    Setup("openrc", "Debian's OpenRC (sysvinit as PID 1, networking in sysinit) + ifupdown, FAT32 /boot on GPT",
          "openrc", "gpt", "vfat", "/boot", VPC, ["sysvinit-core", "openrc", "ifupdown"], ifupdown,
          p1_uuid="E2E0-0008"),
    Setup("buildroot", "Buildroot-style busybox init: rcS starts /etc/init.d/S??*, network from S40network, "
          "ext2 /boot on MBR", "buildroot", "dos", "ext2", "/boot", CLASSIC,
          p1_uuid="0f5e2e00-0000-4000-8000-0000000000b9"),
    Setup("syslinux", "busybox init, boots by itself: syslinux on a bootable FAT32 /boot on MBR", "busybox",
          "dos", "vfat", "/boot", VPC, p1_uuid="E2E0-0006", bootloader=True),
    Setup("arm64", "arm64 (aarch64 osconf), UEFI: AAVMF → systemd-boot on a FAT32 ESP on GPT at /boot/efi, "
          "busybox init + busybox ifup", "busybox", "gpt", "vfat", "/boot/efi", CLASSIC, p1_uuid="E2E0-00A7",
          bootloader=True, arch="arm64"),
]

INITTAB = """::sysinit:/etc/init.d/rcS
::sysinit:/sbin/ifup -a
::once:/usr/local/sbin/e2e-report
::shutdown:/bin/umount -a -r
"""

RCS = """#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -o remount,rw /
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -a
hostname -F /etc/hostname
"""


# Buildroot's skeleton (system/skeleton, package/initscripts, package/ifupdown-scripts), as a Buildroot
# image with busybox init and ifupdown-scripts boots: inittab mounts (fstab), then rcS starts the
# numbered scripts of /etc/init.d, S40network running `ifup -a`.
BUILDROOT_INITTAB = """# Startup the system
::sysinit:/bin/mount -t proc proc /proc
::sysinit:/bin/mount -o remount,rw /
::sysinit:/bin/mkdir -p /dev/pts /dev/shm
::sysinit:/bin/mount -a
::sysinit:/bin/mkdir -p /run/lock/subsys
null::sysinit:/bin/ln -sf /proc/self/fd /dev/fd
::sysinit:/bin/hostname -F /etc/hostname
# now run any rc scripts
::sysinit:/etc/init.d/rcS

::once:/usr/local/sbin/e2e-report
# Stuff to do before rebooting
::shutdown:/etc/init.d/rcK
::shutdown:/bin/umount -a -r
"""

BUILDROOT_RCS = """#!/bin/sh


# Start all init scripts in /etc/init.d
# executing them in numerical order.
#
for i in /etc/init.d/S??* ;do

     # Ignore dangling symlinks (if any).
     [ ! -f "$i" ] && continue

     case "$i" in
	*.sh)
	    # Source shell script for speed.
	    (
		trap - INT QUIT TSTP
		set start
		. $i
	    )
	    ;;
	*)
	    # No sh extension, so fork subprocess.
	    $i start
	    ;;
    esac
done
"""

BUILDROOT_RCK = BUILDROOT_RCS.replace("Start all", "Stop all").replace("S??*", "K??*").replace(
    "set start", "set stop").replace("$i start", "$i stop")

BUILDROOT_S40NETWORK = """#!/bin/sh
#
# Start the network....
#

# Debian ifupdown needs the /run/network lock directory
mkdir -p /run/network

case "$1" in
  start)
	printf "Starting network: "
	/sbin/ifup -a
	[ $? = 0 ] && echo "OK" || echo "FAIL"
	;;
  stop)
	printf "Stopping network: "
	/sbin/ifdown -a
	[ $? = 0 ] && echo "OK" || echo "FAIL"
	;;
  restart|reload)
	"$0" stop
	"$0" start
	;;
  *)
	echo "Usage: $0 {start|stop|restart}"
	exit 1
esac

exit $?
"""

BUILDROOT_FSTAB = """# <file system>	<mount pt>	<type>	<options>	<dump>	<pass>
/dev/root	/		ext2	rw,noauto	0	1
proc		/proc		proc	defaults	0	0
devpts		/dev/pts	devpts	defaults,gid=5,mode=620,ptmxmode=0666	0	0
tmpfs		/dev/shm	tmpfs	mode=0777	0	0
tmpfs		/tmp		tmpfs	mode=1777	0	0
tmpfs		/run		tmpfs	mode=0755,nosuid,nodev	0	0
sysfs		/sys		sysfs	defaults	0	0
"""


def busybox_root(root: Path, busybox=None, buildroot=False):
    """A busybox-only root: busybox-static (the machine's, or `busybox` for another architecture: the
    same Debian version, so the same applets), its applet links, an inittab and an rcS (Buildroot's
    inittab, rcS, rcK and S40network when `buildroot`)."""
    for d in ["bin", "sbin", "usr/bin", "usr/sbin", "usr/local/sbin", "etc/init.d", "etc/network", "proc",
              "sys", "dev", "run", "tmp", "var/log", "var/lib", "root", "boot", "etc/network/if-pre-up.d",
              "etc/network/if-up.d", "etc/network/if-down.d", "etc/network/if-post-down.d"]:
        (root / d).mkdir(parents=True, exist_ok=True)
    os.symlink("/run", root / "var/run")  # where busybox ifup keeps its state
    shutil.copy(busybox or shutil.which("busybox"), root / "bin/busybox")
    applets = subprocess.run([shutil.which("busybox"), "--list-full"], check=True, capture_output=True, text=True).stdout
    for path in applets.split():
        link = root / path
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink("/bin/busybox", link)
    if buildroot:
        write(root, "/etc/inittab", BUILDROOT_INITTAB)
        write(root, "/etc/init.d/rcS", BUILDROOT_RCS, 0o755)
        write(root, "/etc/init.d/rcK", BUILDROOT_RCK, 0o755)
        write(root, "/etc/init.d/S40network", BUILDROOT_S40NETWORK, 0o755)
    else:
        write(root, "/etc/inittab", INITTAB)
        write(root, "/etc/init.d/rcS", RCS, 0o755)
    write(root, "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
    write(root, "/etc/group", "root:x:0:\n")
    write(root, "/etc/shadow", "root:*:20000:0:99999:7:::\n", 0o640)
    write(root, "/etc/network/interfaces", "auto lo\niface lo inet loopback\n")


def fstab(setup: Setup):
    options = "umask=0077" if setup.p1_mount == "/boot/efi" else "defaults"
    if setup.init == "buildroot":
        return BUILDROOT_FSTAB + f"/dev/vda1 {setup.p1_mount} {setup.p1_fs} {options} 0 2\n"
    if setup.init == "busybox":
        return f"/dev/vda2 / ext4 defaults 0 1\n/dev/vda1 {setup.p1_mount} {setup.p1_fs} {options} 0 2\n"
    return (f"UUID={setup.root_uuid} / ext4 errors=remount-ro 0 1\n"
            f"UUID={setup.p1_uuid} {setup.p1_mount} {setup.p1_fs} {options} 0 2\n")


def binary_variable(arch):
    """The variable naming the osconf binary for `arch`: OSCONF_E2E_BINARY, OSCONF_E2E_BINARY_ARM64."""
    return "OSCONF_E2E_BINARY" + ("" if arch == "amd64" else "_" + arch.upper())


def osconf_binary(repo: Path, arch="amd64") -> Path:
    """The release binary for `arch` (the one binary_variable names when set), built."""
    variable = binary_variable(arch)
    if os.environ.get(variable):
        return Path(os.environ[variable])
    target = Path(os.environ.get("CARGO_TARGET_DIR", repo / "target"))
    if arch == "amd64":
        subprocess.run(["cargo", "build", "--release", "--locked", "-q"], cwd=repo, check=True)
        return target / "release/osconf"
    subprocess.run(["bash", "scripts/cargo-aarch64", "build", "--release", "--locked", "-q"], cwd=repo, check=True)
    return target / "aarch64-unknown-linux-gnu/release/osconf"


REPORT_UNIT = """# tests/e2e's report (installed by the harness, not by osconf).
[Unit]
Description=e2e report
After=multi-user.target osconf.service

[Service]
Type=simple
ExecStart=/usr/local/sbin/e2e-report

[Install]
WantedBy=multi-user.target
"""


def run(cmd):
    """Runs a command; on failure raises with its output."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd!r} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout


def install_osconf(root: Path, p1_dir: Path, binary: Path, arch="amd64"):
    # --boot-dir is a host path: partition 1's staging directory, from which the harness builds
    # partition 1, so install creates the aliyun_custom_image/ that ECS writes into. The aarch64
    # binary installs itself under qemu-user (its /proc/self/exe is the binary, as on arm64).
    runner = [] if arch == "amd64" else ["qemu-aarch64-static"]
    run(runner + [str(binary), "install", "--root", str(root), "--boot-dir", str(p1_dir)])


def prepare_root(setup: Setup, root: Path, p1_dir: Path, kernel, repo: Path, here: Path):
    """The image as its builder leaves it, then `osconf install`, then the harness's report."""
    _, _, modules, version = kernel
    shutil.copytree(modules, root / "lib/modules" / version, dirs_exist_ok=True)
    if setup.debian:
        subprocess.run(["depmod", "-b", str(root), version], check=True)
    write(root, "/etc/fstab", fstab(setup))
    (root / setup.p1_mount.lstrip("/")).mkdir(parents=True, exist_ok=True)
    write(root, "/etc/hostname", "e2e-image\n")
    write(root, "/etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    write(root, "/etc/resolv.conf", "# the image's\nnameserver 127.0.0.53\n")
    shadow = root / "etc/shadow"
    lines = shadow.read_text().splitlines()
    hashed = crypt("image-initial-pw", "$6$" + base64.b64encode(os.urandom(12), b"./").decode())
    shadow.write_text("\n".join(
        ":".join([f[0], hashed] + f[2:]) if f[0] == "root" else line
        for line, f in ((line, line.split(":")) for line in lines)) + "\n")
    if setup.configure:
        setup.configure(root)
    install_osconf(root, p1_dir, osconf_binary(repo, setup.arch), setup.arch)
    write(root, "/usr/local/sbin/e2e-report", (here / "guest/report").read_text(), 0o755)
    if setup.init != "systemd":
        # ifup (Debian's and busybox's) runs /etc/network/if-pre-up.d/* before raising each NIC.
        write(root, "/etc/network/if-pre-up.d/e2e-ifup-mark", (here / "guest/ifup-mark").read_text(), 0o755)
    if setup.init in ("sysv", "openrc"):
        # After runlevel 2's rc (sysvinit's scripts or `openrc default`) has finished.
        with open(root / "etc/inittab", "a") as f:
            f.write("\n# tests/e2e's report (installed by the harness, not by osconf)\ne2:2345:once:"
                    "/usr/local/sbin/e2e-report\n")
    if setup.init == "systemd":
        write(root, "/etc/systemd/system/e2e-report.service", REPORT_UNIT)
        enable(root, "e2e-report.service")
        # e2fsprogs' scrub reaper scans for LVM snapshots at each boot: up to a minute under TCG on a
        # loaded machine, nothing to do with osconf.
        subprocess.run(["systemctl", f"--root={root}", "mask", "e2scrub_reap.service"], check=True,
                       capture_output=True)
