#!/usr/bin/env python3
"""End-to-end tests: build disk images from Debian's packages with osconf installed, boot them under
qemu and assert from the serial console that os.conf took effect (boot 1), that a boot without
os.conf changes nothing (boot 2), and that a changed os.conf written into partition 1 takes effect
(boot 3).

Usage: tests/e2e/run [--jobs N] [--keep] [--list] [SETUP...]     (as root; CI=true turns skips into failures)

Images are built in userspace only (the host kernel cannot mount vfat and `losetup -P` makes no
partition nodes here): sfdisk writes the table, mkfs.ext4 -d / mkfs.vfat --offset build the
filesystems inside the disk file, mtools and debugfs read and write partition 1. The guest boots the
Debian kernel directly (-kernel/-initrd) with a small busybox initramfs, qemu TCG (KVM guests hang on
these machines), every NIC on its own isolated hub (-netdev hubport: no traffic leaves qemu).
The arm64 setup boots under UEFI instead (qemu-system-aarch64 -machine virt, AAVMF, systemd-boot on
the ESP), with arm64 packages fetched through scripts/aarch64-toolchain's private APT state.
"""

import argparse
import concurrent.futures
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import assertions  # noqa: E402
import setups  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ["systemd-sysv", "udev", "iproute2", "kmod"]
# Modules the guest needs before its root is mounted, and for its NICs and partition 1.
MODULES = ["virtio_pci", "virtio_blk", "virtio_net", "ext4", "crc32c_generic", "vfat", "nls_cp437",
           "nls_ascii", "nls_utf8"]
# Kept beside them for the roots image_test.py lays out (XFS, Btrfs, LVM's device mapper), packed
# only into the initramfs of a layout that needs them (Cache.initrd).
ROOT_MODULES = ["xfs", "btrfs", "dm_mod"]
MIB = 1024 * 1024
P1_START, P1_SIZE = 1 * MIB, 64 * MIB
P2_START, P2_SIZE = P1_START + P1_SIZE, 1536 * MIB
BOOT_TIMEOUT = 420
PROGRAMS = ["qemu-system-x86_64", "debootstrap", "sfdisk", "mkfs.ext4", "debugfs", "mkfs.vfat", "mcopy",
            "mdir", "cpio", "modinfo", "chroot", "unshare", "apt-get", "dpkg-deb", "busybox", "perl", "syslinux"]
MBR_CODE = Path("/usr/lib/syslinux/mbr/mbr.bin")
# What an arm64 setup needs beyond PROGRAMS: qemu-system-arm, qemu-user-static (osconf install runs
# the aarch64 binary), qemu-efi-aarch64's UEFI firmware.
ARM64_PROGRAMS = ["qemu-system-aarch64", "qemu-aarch64-static", "python3"]
AAVMF_CODE, AAVMF_VARS = Path("/usr/share/AAVMF/AAVMF_CODE.fd"), Path("/usr/share/AAVMF/AAVMF_VARS.fd")


def log(msg):
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, **kw):
    """Runs a command; on failure raises with its output (the message a test failure shows)."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd!r} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout


def cannot_run(why):
    """The loud skip of tests/common/real.rs; a failure under CI=true."""
    if os.environ.get("CI") == "true":
        print(f"e2e: cannot run under CI=true: {why}")
        print("0 passed, 1 failed")
        sys.exit(1)
    print(f"\n*** SKIPPED e2e: {why} (set up the machine as .ci/run does, or run as root) ***\n")
    sys.exit(0)


def prerequisites(chosen):
    if os.geteuid() != 0:
        cannot_run("needs root (debootstrap, chroot, image files owned by root)")
    arm64 = any(s.arch == "arm64" for s in chosen)
    for p in PROGRAMS + (ARM64_PROGRAMS if arm64 else []):
        if shutil.which(p) is None and not Path("/usr/sbin", p).exists():
            cannot_run(f"{p} is not installed (.ci/packages.txt lists it)")
    if arm64 and not AAVMF_CODE.exists():
        cannot_run(f"{AAVMF_CODE} is missing (qemu-efi-aarch64, .ci/packages.txt lists it)")


def apt(arch):
    """The apt command prefix for a Debian architecture's packages: the machine's own apt for amd64,
    scripts/aarch64-toolchain's private APT state (APT::Architectures amd64, arm64) for arm64."""
    return [] if arch == "amd64" else ["bash", str(REPO / "scripts/aarch64-toolchain"), "apt"]


class Cache:
    """Downloads and built roots, kept under target/e2e-cache across runs and shared within one."""

    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.locks = {}
        self.guard = threading.Lock()

    def lock(self, key):
        with self.guard:
            return self.locks.setdefault(key, threading.Lock())

    def kernel(self, arch="amd64"):
        """(vmlinuz, initrd, modules dir, kernel version) from the linux-image-ARCH package."""
        with self.lock(f"kernel-{arch}"):
            # bump when build_initrd changes what it keeps
            kdir = self.root / ("kernel-4" if arch == "amd64" else f"kernel-4-{arch}")
            done = kdir / "done"
            if not done.exists():
                shutil.rmtree(kdir, ignore_errors=True)
                (kdir / "deb").mkdir(parents=True)
                dep = run(apt(arch) + ["apt-cache", "depends", f"linux-image-{arch}:{arch}"])
                pkg = next(line.split(":", 1)[1].strip() for line in dep.splitlines()
                           if line.strip().startswith("Depends: linux-image-"))
                log(f"downloading {pkg}")
                run(apt(arch) + ["apt-get", "download", pkg], cwd=kdir / "deb")
                deb = next((kdir / "deb").glob("*.deb"))
                run(["dpkg-deb", "-x", str(deb), str(kdir / "x")])
                deb.unlink()
                build_initrd(kdir, self.busybox(arch))
                done.touch()
            version = (kdir / "version").read_text().strip()
            return kdir / "vmlinuz", kdir / "initrd.img", kdir / "modules", version

    def initrd(self, name, modules, files=None):
        """An initramfs of the amd64 kernel's, loading MODULES and `modules` (with what they depend
        on) and holding `files` (pack_initrd's), built once as initrd-NAME-HASH.img (HASH: of what
        goes in but the host's files)."""
        kdir = self.kernel()[2].parent
        files = files or {}
        what = repr((modules, sorted(files.items()), (HERE / "guest/init").read_text()))
        with self.lock(f"initrd-{name}"):
            out = kdir / f"initrd-{name}-{hashlib.sha256(what.encode()).hexdigest()[:12]}.img"
            if not out.exists():
                mods = kdir / "modules"
                builtin = module_paths(Path(line) for line in (mods / "modules.builtin").read_text().split())
                order = load_order(module_paths(mods), builtin, MODULES + modules)
                pack_initrd(out.with_suffix(".new"), mods, self.busybox("amd64"), order, files)
                out.with_suffix(".new").rename(out)
            return out

    def busybox(self, arch):
        """busybox-static for ARCH: the machine's own for amd64, else its Debian package's binary."""
        if arch == "amd64":
            return Path(shutil.which("busybox"))
        return self.package_file(f"busybox-static:{arch}", "bin/busybox")

    def package_file(self, package, path):
        """The file at `path` in the Debian package `package` (NAME:ARCH), downloaded once."""
        name, arch = package.split(":")
        with self.lock(package):
            pdir = self.root / "packages" / f"{name}-{arch}"
            kept = pdir / Path(path).name
            if not kept.exists():
                shutil.rmtree(pdir, ignore_errors=True)
                pdir.mkdir(parents=True)
                run(apt(arch) + ["apt-get", "download", package], cwd=pdir)
                deb = next(pdir.glob("*.deb"))
                run(["dpkg-deb", "-x", str(deb), str(pdir / "x")])
                shutil.copy(pdir / "x" / path, kept)
                deb.unlink()
                shutil.rmtree(pdir / "x")
            return kept

    def root_fs(self, packages):
        """A directory holding debootstrap minbase + BASE_PACKAGES + `packages` (copy it before use)."""
        base = self.debootstrapped()
        if not packages:
            return base
        key = hashlib.sha256(" ".join(sorted(packages)).encode()).hexdigest()[:12]
        with self.lock(key):
            target = self.root / "roots" / key
            if not (target / ".e2e-done").exists():
                shutil.rmtree(target, ignore_errors=True)
                log(f"installing {' '.join(packages)} into a copy of the base root")
                run(["cp", "-a", str(base), str(target)])
                chroot_apt(target, packages)
                (target / ".e2e-done").touch()
            return target

    def debootstrapped(self):
        key = hashlib.sha256(f"{SUITE} {MIRROR} {BASE_PACKAGES}".encode()).hexdigest()[:12]
        with self.lock("base"):
            target = self.root / "roots" / f"base-{key}"
            if not (target / ".e2e-done").exists():
                shutil.rmtree(target, ignore_errors=True)
                target.parent.mkdir(parents=True, exist_ok=True)
                log("debootstrap minbase (about 40 s)")
                run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE,
                     str(target), MIRROR])
                run(["chroot", str(target), "apt-get", "clean"])
                (target / ".e2e-done").touch()
            return target


def chroot_apt(root: Path, packages):
    """apt-get install inside the root, with /proc mounted in a private mount namespace (it goes away
    with the command) and services kept from starting."""
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    script = (f"mount -t proc proc '{root}/proc' && "
              f"DEBIAN_FRONTEND=noninteractive chroot '{root}' sh -ec 'apt-get update -q && "
              f"apt-get install -y -q --no-install-recommends {' '.join(packages)} && apt-get clean'")
    try:
        run(["unshare", "--mount", "--propagation", "private", "sh", "-ec", script])
    finally:
        policy.unlink()
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)


def module_paths(paths):
    """Module name → path, of a tree's *.ko files or of the paths given."""
    paths = paths.rglob("*.ko") if isinstance(paths, Path) else paths
    return {p.name[:-3].replace("-", "_"): p for p in paths}


def load_order(found, builtin, names):
    """The modules `names` need, dependencies (from .modinfo) first, those built into the kernel
    left out; `found`: name → path of the .ko files."""
    order = []

    def visit(name):
        if name in order or (name in builtin and name not in found):
            return
        deps = run(["modinfo", "-F", "depends", str(found[name])]).strip()
        for d in filter(None, deps.split(",")):
            visit(d.replace("-", "_"))
        order.append(name)

    for m in names:
        visit(m)
    return order


def build_initrd(kdir: Path, busybox: Path):
    """vmlinuz, the modules MODULES and ROOT_MODULES need and an initramfs of busybox-static, the
    modules of MODULES and tests/e2e/guest/init."""
    x = kdir / "x"
    vmlinuz = next((x / "boot").glob("vmlinuz-*"))
    version = vmlinuz.name[len("vmlinuz-"):]
    shutil.copy(vmlinuz, kdir / "vmlinuz")
    (kdir / "version").write_text(version + "\n")
    found = module_paths(x / "lib/modules" / version)
    builtin = module_paths(Path(line) for line in
                           (x / "lib/modules" / version / "modules.builtin").read_text().split())
    mods = kdir / "modules"
    mods.mkdir()
    for m in load_order(found, builtin, MODULES + ROOT_MODULES):
        rel = found[m].relative_to(x / "lib/modules" / version)
        (mods / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(found[m], mods / rel)
    # modprobe and depmod in the guest need to know what is built in.
    for f in ["modules.order", "modules.builtin", "modules.builtin.modinfo"]:
        shutil.copy(x / "lib/modules" / version / f, mods / f)
    shutil.rmtree(x)
    pack_initrd(kdir / "initrd.img", mods, busybox, load_order(module_paths(mods), builtin, MODULES))


def pack_initrd(out: Path, mods: Path, busybox: Path, order, files=None):
    """A newc cpio of busybox, the modules `order` (loaded in that order), `files` (its path → a
    host file to copy or a text) and tests/e2e/guest/init."""
    ird = out.parent / (out.name + ".d")
    shutil.rmtree(ird, ignore_errors=True)
    for d in ["bin", "lib/modules"]:
        (ird / d).mkdir(parents=True)
    shutil.copy(busybox, ird / "bin/busybox")
    os.symlink("busybox", ird / "bin/sh")
    found = module_paths(mods)
    for m in order:
        shutil.copy(found[m], ird / "lib/modules" / f"{m}.ko")
    (ird / "modules").write_text("\n".join(order) + "\n")
    for path, what in (files or {}).items():
        dest = ird / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(what, Path):
            shutil.copy(what, dest)
        else:
            dest.write_text(what)
    shutil.copy(HERE / "guest/init", ird / "init")
    (ird / "init").chmod(0o755)
    listing = run(["find", ".", "-mindepth", "1"], cwd=ird)
    with open(out, "wb") as f:
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], input=listing.encode(), stdout=f,
                       cwd=ird, check=True)
    shutil.rmtree(ird)


class Disk:
    """A raw disk image: partition 1 (os.conf's) and partition 2 (the root), built and read in place."""

    def __init__(self, path: Path, setup):
        self.path, self.setup = path, setup

    def build(self, root: Path, p1_dir: Path):
        s = self.setup
        self.path.unlink(missing_ok=True)
        with open(self.path, "wb") as f:
            f.truncate(P2_START + P2_SIZE + MIB)
        p1_type = {("gpt", "vfat"): "U", ("gpt", "ext4"): "L", ("gpt", "ext2"): "L",
                   ("dos", "vfat"): "c", ("dos", "ext4"): "83", ("dos", "ext2"): "83"}[(s.table, s.p1_fs)]
        layout = (f"label: {s.table}\n"
                  f"start={P1_START // 512}, size={P1_SIZE // 512}, type={p1_type}"
                  f"{', bootable' if s.table == 'dos' else ''}\n"
                  f"start={P2_START // 512}, size={P2_SIZE // 512}, type={'L' if s.table == 'gpt' else '83'}\n")
        run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(self.path)], input=layout)
        self.fill_p1(p1_dir)
        if s.bootloader and s.arch == "amd64":
            self.install_syslinux(MBR_CODE)
        run(["mkfs.ext4", "-q", "-F", "-U", s.root_uuid, "-L", "root", "-d", str(root),
             "-E", f"offset={P2_START}", str(self.path), f"{P2_SIZE // 1024}k"])

    def fill_p1(self, p1_dir: Path):
        """Partition 1 (P1_START, P1_SIZE) made with its files, the table already written."""
        s = self.setup
        if s.p1_fs == "vfat":
            run(["mkfs.vfat", "-F", "32", "-S", "512", "-s", "1", "-n", "OSCONF-P1", "-i", s.p1_uuid.replace("-", ""),
                 "--offset", str(P1_START // 512), str(self.path), str(P1_SIZE // 1024)])
            for sub in sorted(p1_dir.rglob("*")):
                dest = "::/" + str(sub.relative_to(p1_dir))
                if sub.is_dir():
                    run(["mmd", "-i", self.p1_image(), dest])
                else:
                    run(["mcopy", "-i", self.p1_image(), str(sub), dest])
        else:
            # Alibaba's import notes want partition 1 without ext4's 64bit feature.
            run([f"mkfs.{s.p1_fs}", "-q", "-F", "-U", s.p1_uuid, "-L", "osconf-p1", "-d", str(p1_dir)]
                + (["-O", "^64bit"] if s.p1_fs == "ext4" else [])
                + ["-E", f"offset={P1_START}", str(self.path), f"{P1_SIZE // 1024}k"])

    def install_syslinux(self, mbr_code: Path):
        """syslinux writes its boot sector and ldlinux.sys into partition 1 through mtools (no
        mount); SeaBIOS runs the MBR code, which chains to the partition marked bootable (MBR) or
        legacy-BIOS-bootable (GPT, syslinux's gptmbr.bin)."""
        run(["syslinux", "--install", "--offset", str(P1_START), str(self.path)])
        with open(self.path, "r+b") as f:
            f.write(mbr_code.read_bytes()[:440])

    def p1_image(self):
        return f"{self.path}@@{P1_START}"

    def ext(self, start):
        return f"{self.path}?offset={start}"

    def p1_listing(self):
        """Names in partition 1's aliyun_custom_image/, read from the image."""
        if self.setup.p1_fs == "vfat":
            out = run(["mdir", "-b", "-i", self.p1_image(), "::/aliyun_custom_image"])
            return sorted(Path(line.strip()).name for line in out.splitlines() if line.strip())
        out = run(["debugfs", "-R", "ls -p /aliyun_custom_image", self.ext(P1_START)])
        names = [line.split("/")[5] for line in out.splitlines() if line.count("/") >= 6]
        return sorted(n for n in names if n not in (".", ".."))

    def write_os_conf(self, text: str, scratch: Path):
        """Writes os.conf into partition 1 as ECS does before a start."""
        src = scratch / "os.conf"
        src.write_text(text)
        if self.setup.p1_fs == "vfat":
            run(["mcopy", "-o", "-i", self.p1_image(), str(src), "::/aliyun_custom_image/os.conf"])
        else:
            cmds = scratch / "debugfs.cmd"
            cmds.write_text(f"cd /aliyun_custom_image\nrm os.conf\nwrite {src} os.conf\n")
            run(["debugfs", "-w", "-f", str(cmds), self.ext(P1_START)])

    def root_file(self, path: str):
        return run(["debugfs", "-R", f"cat {path}", self.ext(P2_START)])


def boot(setup, disk: Disk, kernel, work: Path, n: int, password: str):
    """Boots the image once; returns (report sections, wall seconds). Raises on a timeout."""
    console, report = work / f"console-{n}.log", work / f"report-{n}.log"
    for f in (console, report):
        f.unlink(missing_ok=True)
    append = f"panic=-1 e2e.password={password} e2e.p1={setup.p1_mount or '-'}"
    if setup.arch == "arm64":
        cmd = arm64_command(disk, work, f"console=ttyAMA0 {append}", console, report)
    else:
        cmd = x86_64_command(setup, disk, kernel, work, f"console=ttyS0 {append}", console, report)
    for i, mac in enumerate(setup.macs):
        # One hub per NIC with nothing else on it: the guest's packets reach no one.
        cmd += ["-netdev", f"hubport,id=nic{i},hubid={i}",
                "-device", f"virtio-net-pci,netdev=nic{i},mac={mac},addr={hex(3 + i)},romfile="]
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=BOOT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise assertions.Failed(f"boot {n} did not power off within {BOOT_TIMEOUT} s\n"
                                + tail(console) + tail(report)) from None
    wall = time.monotonic() - start
    if p.returncode != 0:
        raise assertions.Failed(f"qemu exited {p.returncode}: {p.stderr}\n{tail(console)}")
    if setup.arch == "arm64":
        # The UEFI path, as the console shows it: the firmware started the disk's boot option
        # (systemd-boot at the removable-media path), which gave the kernel's EFI stub the initramfs.
        text = console.read_text(errors="replace") if console.exists() else ""
        for line in ["BdsDxe: starting Boot", "EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID",
                     "efi: EFI v"]:
            if line not in text:
                raise assertions.Failed(f"boot {n}: not booted through UEFI and systemd-boot (no {line!r} "
                                        f"on the console)\n" + tail(console))
    sections = assertions.sections(report.read_text(errors="replace") if report.exists() else "")
    if "end" not in sections:
        raise assertions.Failed(f"boot {n}: the guest powered off without a complete report\n"
                                + tail(console) + tail(report))
    return sections, wall


def x86_64_command(setup, disk: Disk, kernel, work: Path, append, console: Path, report: Path):
    """qemu for an amd64 setup: SeaBIOS → syslinux on partition 1 (bootloader), else -kernel."""
    vmlinuz, initrd, _, _ = kernel
    cmd = ["qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "1", "-nodefaults", "-no-reboot",
           "-display", "none"]
    if setup.bootloader:
        cfg = work / "syslinux.cfg"
        cfg.write_text(f"DEFAULT linux\nTIMEOUT 0\nLABEL linux\n  KERNEL /vmlinuz\n  INITRD /initrd.img\n"
                       f"  APPEND {append}\n")
        run(["mcopy", "-o", "-i", disk.p1_image(), str(cfg), "::/syslinux.cfg"])
    else:
        cmd += ["-kernel", str(vmlinuz), "-initrd", str(initrd), "-append", append]
    return cmd + [
           "-drive", f"file={disk.path},format=raw,if=none,id=disk",
           "-device", "virtio-blk-pci,drive=disk,addr=0x10",
           "-serial", f"file:{console}", "-serial", f"file:{report}"]


def arm64_command(disk: Disk, work: Path, append, console: Path, report: Path):
    """qemu for an arm64 setup: UEFI firmware (AAVMF, a fresh copy of its variables each boot) boots
    systemd-boot from partition 1, the ESP, whose entry (written here) boots the kernel with `append`.
    The virt machine's UART is the console; the report's ttyS1 is the second of two PCI 16550s.
    `pauth-impdef`: emulating the architected pointer authentication triples the kernel's time."""
    entry = work / "e2e.conf"
    entry.write_text(f"title e2e\nlinux /vmlinuz\ninitrd /initrd.img\noptions {append}\n")
    run(["mcopy", "-o", "-i", disk.p1_image(), str(entry), "::/loader/entries/e2e.conf"])
    variables = work / "AAVMF_VARS.fd"
    shutil.copy(AAVMF_VARS, variables)
    return ["qemu-system-aarch64", "-machine", "virt", "-cpu", "max,pauth-impdef=on", "-accel", "tcg",
            "-m", "1024", "-smp", "1", "-nodefaults", "-no-reboot", "-display", "none",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={AAVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
            "-drive", f"file={disk.path},format=raw,if=none,id=disk",
            "-device", "virtio-blk-pci,drive=disk,addr=0x10,bootindex=0",
            "-serial", f"file:{console}",
            "-chardev", "null,id=ttyS0", "-device", "pci-serial,chardev=ttyS0,addr=0x8",
            "-chardev", f"file,id=ttyS1,path={report}", "-device", "pci-serial,chardev=ttyS1,addr=0x9"]


def esp(setup, cache: Cache, kernel, p1_dir: Path):
    """What a self-booting setup's partition 1 holds to boot: the kernel and initramfs, and for arm64
    systemd-boot at the removable-media path UEFI tries (EFI/BOOT/BOOTAA64.EFI) with its loader.conf
    (arm64_command writes the entry at each boot)."""
    shutil.copy(kernel[0], p1_dir / "vmlinuz")
    shutil.copy(kernel[1], p1_dir / "initrd.img")
    if setup.arch == "arm64":
        (p1_dir / "EFI/BOOT").mkdir(parents=True)
        efi = cache.package_file("systemd-boot-efi:arm64", "usr/lib/systemd/boot/efi/systemd-bootaa64.efi")
        shutil.copy(efi, p1_dir / "EFI/BOOT/BOOTAA64.EFI")
        (p1_dir / "loader/entries").mkdir(parents=True)
        (p1_dir / "loader/loader.conf").write_text("default e2e.conf\ntimeout 0\n")


def tail(path: Path, lines=40):
    if not path.exists():
        return f"({path.name}: none)\n"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return f"--- last lines of {path}:\n" + "\n".join(text) + "\n"


def run_setup(setup, cache: Cache, work_root: Path, keep: bool):
    """Builds and boots one setup three times; returns (failures, timing rows)."""
    work = work_root / setup.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    kernel = cache.kernel(setup.arch)
    root = work / "root"
    if not setup.debian:
        setups.busybox_root(root, cache.busybox(setup.arch), buildroot=setup.init == "buildroot")
    else:
        run(["cp", "-a", str(cache.root_fs(setup.packages)), str(root)])
        (root / ".e2e-done").unlink(missing_ok=True)
    p1_dir = work / "p1"
    p1_dir.mkdir()
    setups.prepare_root(setup, root, p1_dir, kernel, REPO, HERE)
    first, second = setup.confs
    (p1_dir / "aliyun_custom_image").mkdir(exist_ok=True)
    (p1_dir / "aliyun_custom_image/os.conf").write_text(first)
    if setup.bootloader:
        esp(setup, cache, kernel, p1_dir)
    disk = Disk(work / "disk.raw", setup)
    disk.build(root, p1_dir)
    shutil.rmtree(root)
    failures, timings = [], []
    previous = None
    for n, conf in [(1, first), (2, None), (3, second)]:
        if conf is None:
            expected = assertions.Expected.parse(first)
        else:
            expected = assertions.Expected.parse(conf)
            if n > 1:
                disk.write_os_conf(conf, work)
        log(f"{setup.name}: boot {n}")
        try:
            sections, wall = boot(setup, disk, kernel, work, n, expected.password)
        except assertions.Failed as e:
            failures.append(f"{setup.name} boot {n}: {e}")
            break
        got = assertions.check(setup, sections, expected, disk, n, previous)
        failures += [f"{setup.name} boot {n}: {f}" for f in got]
        timings.append(assertions.timing_row(setup.name, n, conf is not None, sections, wall))
        previous = sections
        log(f"{setup.name}: boot {n} {'FAILED' if got else 'ok'} ({wall:.0f} s)")
    if not keep:
        disk.path.unlink(missing_ok=True)
    return failures, timings


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("setups", nargs="*", help="setups to run (default: all)")
    ap.add_argument("--jobs", type=int, default=2, help="setups booted at once (default 2)")
    ap.add_argument("--keep", action="store_true", help="keep the disk images")
    ap.add_argument("--list", action="store_true", help="list the setups")
    ap.add_argument("--osconf", help="the osconf binary to install (default: cargo build --release)")
    ap.add_argument("--cache", default=str(REPO / "target/e2e-cache"))
    ap.add_argument("--work", default=str(REPO / "target/e2e-run"))
    args = ap.parse_args()
    if args.list:
        for s in setups.SETUPS:
            print(f"{s.name:12} {s.summary}")
        return 0
    chosen = [s for s in setups.SETUPS if not args.setups or s.name in args.setups]
    unknown = set(args.setups) - {s.name for s in setups.SETUPS}
    if unknown:
        print(f"e2e: unknown setup(s): {' '.join(sorted(unknown))}; --list shows them")
        return 2
    prerequisites(chosen)
    if args.osconf:
        os.environ["OSCONF_E2E_BINARY"] = str(Path(args.osconf).resolve())
    for arch in sorted({s.arch for s in chosen}):
        binary = setups.osconf_binary(REPO, arch)
        # built once, before the setups run in threads
        os.environ[setups.binary_variable(arch)] = str(binary)
        log(f"osconf binary {binary} ({binary.stat().st_size} bytes)")
    cache, work = Cache(Path(args.cache)), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_setup, s, cache, work, args.keep): s for s in chosen}
        for fut in concurrent.futures.as_completed(futures):
            s = futures[fut]
            try:
                results[s.name] = fut.result()
            except Exception:
                results[s.name] = ([f"{s.name}: harness error\n{traceback.format_exc()}"], [])
    passed = failed = 0
    rows = []
    for s in chosen:
        fails, timing = results[s.name]
        rows += timing
        if fails:
            failed += 1
            print(f"\nFAIL {s.name} ({s.summary})")
            for f in fails:
                print("  " + f.replace("\n", "\n    "))
        else:
            passed += 1
            print(f"ok   {s.name} ({s.summary})")
    print("\n" + assertions.timing_table(rows))
    (work / "timings.txt").write_text(assertions.timing_table(rows) + "\n")
    print(f"\ne2e: {len(chosen)} setups in {time.monotonic() - started:.0f} s; logs in {work}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
