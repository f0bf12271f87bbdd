#!/usr/bin/env python3
"""`osconf image test` on images that boot by themselves (SeaBIOS -> syslinux on a bootable FAT32
partition 1 -> the Debian kernel), built as tests/e2e builds its `syslinux` setup:

  1. osconf installed, a generated os.conf: exit 0, every check passes, the user's image unchanged,
     and what the report says is read back independently (perl's crypt, debugfs, mtools);
  2. the same image, --os-conf given, --in-place: exit 0, the image itself configured;
  3. an image without osconf (its init powers off after booting): exit 1, os.conf not removed;
  4. qemu not on PATH: exit 3;
  5. a UEFI image (GPT, partition 1 the FAT32 EFI System Partition holding systemd-boot and no MBR
     boot code): the firmware chosen from the image (OVMF), --boots 3 --json: the first boot, a
     reboot without os.conf that rewrites nothing, a changed os.conf with the NICs' MACs swapped,
     every check passing, the JSON read back.

`run-image-test arm64` (scripts/test-aarch64, with OSCONF_E2E_BINARY_ARM64 naming the aarch64 agent)
instead makes tests/e2e's arm64 image without osconf (busybox arm64, systemd-boot on the FAT32 ESP,
partition 1 on GPT), lets `image prepare` refuse the x86_64 agent (exit 3) and take `--agent`, then
`image test --boots 3 --json` boots it on qemu-system-aarch64 (virt, AAVMF) under TCG.

Usage: tests/e2e/run-image-test [arm64]   (as root; CI=true turns skips into failures)
"""

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import assertions  # noqa: E402
import e2e  # noqa: E402
import setups  # noqa: E402

# What boots in the guest of the image without osconf instead of e2e's report: power off at once.
POWEROFF = "#!/bin/sh\nsleep 1\npoweroff\n"
# Under TCG the syslinux image reports in about 15 s; this leaves room on a loaded machine.
TIMEOUT = "240"


def prepared(setup, root, p1, kernel, with_osconf):
    """tests/e2e's root as its builder leaves it (osconf installed only `with_osconf`), powering off
    once booted (nobody reads e2e's second serial port here), and partition 1's directory."""
    p1.mkdir()
    install = setups.install_osconf
    if not with_osconf:
        setups.install_osconf = lambda *_: None
    try:
        setups.prepare_root(setup, root, p1, kernel, e2e.REPO, e2e.HERE)
    finally:
        setups.install_osconf = install
    setups.write(root, "/usr/local/sbin/e2e-report", POWEROFF, 0o755)
    (p1 / "aliyun_custom_image").mkdir(exist_ok=True)


def build(setup, cache, work, with_osconf, uefi=False):
    """A raw image of `setup` (p1 holding aliyun_custom_image/ but no os.conf) and its path; `uefi`:
    GPT, partition 1 the EFI System Partition with systemd-boot at the removable-media path and
    nothing in the MBR, instead of syslinux."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    kernel = cache.kernel()
    root, p1 = work / "root", work / "p1"
    setups.busybox_root(root)
    prepared(setup, root, p1, kernel, with_osconf)
    shutil.copy(kernel[0], p1 / "vmlinuz")
    shutil.copy(kernel[1], p1 / "initrd.img")
    if uefi:
        (p1 / "EFI/BOOT").mkdir(parents=True)
        efi = cache.package_file("systemd-boot-efi:amd64", "usr/lib/systemd/boot/efi/systemd-bootx64.efi")
        shutil.copy(efi, p1 / "EFI/BOOT/BOOTX64.EFI")
        (p1 / "loader/entries").mkdir(parents=True)
        (p1 / "loader/loader.conf").write_text("default osconf.conf\ntimeout 0\n")
        (p1 / "loader/entries/osconf.conf").write_text("title osconf\nlinux /vmlinuz\ninitrd /initrd.img\n"
                                                       "options console=ttyS0 panic=-1\n")
        # No syslinux, no MBR code: Disk.build installs them only for a self-booting setup.
        setup = dataclasses.replace(setup, table="gpt", bootloader=False)
    else:
        (p1 / "syslinux.cfg").write_text("DEFAULT linux\nTIMEOUT 0\nLABEL linux\n  KERNEL /vmlinuz\n"
                                         "  INITRD /initrd.img\n  APPEND console=ttyS0 panic=-1\n")
    disk = e2e.Disk(work / "disk.raw", setup)
    disk.build(root, p1)
    shutil.rmtree(root)
    return disk


def build_arm64(cache, work):
    """tests/e2e's arm64 image (busybox root, systemd-boot on the ESP booting the kernel with the
    console on ttyAMA0) without osconf in it."""
    setup = next(s for s in setups.SETUPS if s.name == "arm64")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    kernel = cache.kernel("arm64")
    root, p1 = work / "root", work / "p1"
    setups.busybox_root(root, cache.busybox("arm64"))
    prepared(setup, root, p1, kernel, False)
    e2e.esp(setup, cache, kernel, p1)
    (p1 / "loader/entries/e2e.conf").write_text("title e2e\nlinux /vmlinuz\ninitrd /initrd.img\n"
                                                "options console=ttyAMA0 panic=-1\n")
    disk = e2e.Disk(work / "disk.raw", setup)
    disk.build(root, p1)
    shutil.rmtree(root)
    return disk


def arm64(binary, cache, base, expect):
    """`image prepare` picks the agent by the image's architecture; `image test` boots it arm64."""
    agent = os.environ.get(setups.binary_variable("arm64"))
    if not agent:
        e2e.cannot_run(f"run-image-test arm64 needs {setups.binary_variable('arm64')} (scripts/test-aarch64)")
    disk = build_arm64(cache, base / "arm64")
    prepare = [str(binary), "image", "prepare", str(disk.path)]
    p = subprocess.run(prepare, capture_output=True, text=True)
    expect(p.returncode == 3 and "the image is aarch64" in p.stderr and "--agent FILE" in p.stderr,
           "6: prepare refuses the x86_64 agent beside the toolkit (exit 3)", p)
    p = subprocess.run(prepare + ["--agent", agent], capture_output=True, text=True)
    if not expect(p.returncode == 0 and "the image is aarch64" in p.stdout, "6: prepare --agent AARCH64", p):
        return
    work = base / "arm64/work"
    p = image_test(binary, disk, "--work", str(work), "--boots", "3", "--json")
    if expect(p.returncode == 0, "6: image test --boots 3 of the arm64 image should exit 0", p):
        expect("guest: aarch64 (/sbin/init is an aarch64 binary); firmware: uefi" in p.stderr,
               "6: an aarch64 guest under UEFI, and why", p)
        report = json.loads(p.stdout)
        expect(report["arch"] == "aarch64" and report["verdict"] == "pass", "6: aarch64, pass", p)
        for b in report["boots"]:
            e2e.log(f"arm64 boot {b['boot']}: osconf reported after {b['seconds']['osconf_reported']} s, "
                    f"the boot took {b['seconds']['wall']} s")


def image_test(binary, disk, *args, env=None):
    cmd = [str(binary), "image", "test", str(disk.path), "--timeout", TIMEOUT, "--accel", "tcg", *args]
    e2e.log(" ".join(cmd[1:]))
    started = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    e2e.log(f"exit {p.returncode} after {time.monotonic() - started:.0f} s")
    return p


def fingerprint(path: Path):
    """mtime, size and the hash of the first 66 MiB (the table and partition 1) of an image."""
    st = path.stat()
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(e2e.P2_START + e2e.MIB)).hexdigest()
    return st.st_mtime_ns, st.st_size, head


def main():
    setup = next(s for s in setups.SETUPS if s.name == "syslinux")
    only_arm64 = sys.argv[1:] == ["arm64"]
    e2e.prerequisites([next(s for s in setups.SETUPS if s.name == "arm64")] if only_arm64 else [setup])
    binary = setups.osconf_binary(e2e.REPO)
    os.environ["OSCONF_E2E_BINARY"] = str(binary)
    cache = e2e.Cache(e2e.REPO / "target/e2e-cache")
    base = e2e.REPO / "target/e2e-run/image-test"
    fails = []

    def expect(cond, what, p):
        if not cond:
            fails.append(f"{what}\n--- stdout:\n{p.stdout}--- stderr:\n{p.stderr[-4000:]}")
        return cond

    if only_arm64:
        arm64(binary, cache, base, expect)
        return finish(base, fails)

    good = build(setup, cache, base / "osconf", True)
    before = fingerprint(good.path)
    work = base / "osconf/work"
    p = image_test(binary, good, "--work", str(work), "--keep")
    if expect(p.returncode == 0, "1: image test of an image with osconf should exit 0", p):
        for key in ["boot", "os.conf", "hostname", "password", "eth0", "dns"]:
            expect(f"pass  {key}: " in p.stdout, f"1: {key} should pass", p)
        expect("fail " not in p.stdout, "1: nothing should fail", p)
        expect(fingerprint(good.path) == before, "1: the user's image must not change", p)
        expect((work / "console.log").stat().st_size > 0, "1: the console is kept in console.log", p)
        expect((work / "os.conf").stat().st_mode & 0o077 == 0, "1: the generated os.conf is private", p)
        # What the report claims, read back with other tools.
        exp = assertions.Expected.parse((work / "os.conf").read_text())
        scratch = e2e.Disk(work / "disk.raw", setup)
        shadow = scratch.root_file("/etc/shadow")
        root_hash = next(line.split(":")[1] for line in shadow.splitlines() if line.startswith("root:"))
        expect(setups.crypt(exp.password, root_hash) == root_hash, "1: perl's crypt verifies the hash", p)
        expect(scratch.root_file("/etc/hostname").strip() == exp.hostname, "1: etc/hostname", p)
        expect("os.conf" not in scratch.p1_listing(), "1: mdir shows os.conf gone", p)
        interfaces = scratch.root_file("/etc/network/interfaces")
        for nic in exp.nics.values():
            expect(nic.address.split("/")[0] in interfaces, f"1: {nic.address} in interfaces", p)
    conf = base / "vpc.conf"
    conf.write_text(setups.VPC[0])
    p = image_test(binary, good, "--os-conf", str(conf), "--in-place", "--work", str(base / "osconf/work2"))
    if expect(p.returncode == 0, "2: image test --in-place --os-conf should exit 0", p):
        expect("pass  hostname: iZe2eVpcA in etc/hostname" in p.stdout, "2: the given os.conf's host name", p)
        expect(good.root_file("/etc/hostname").strip() == "iZe2eVpcA", "2: --in-place configured DISK", p)
        expect(not (base / "osconf/work2/disk.raw").exists(), "2: no scratch copy with --in-place", p)

    # A qcow2 of the same image: booted through an overlay in the work directory, never copied whole.
    qcow = base / "qcow2/disk.qcow2"
    qcow.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(good.path), str(qcow)], check=True)
    qcow_hash = hashlib.sha256(qcow.read_bytes()).hexdigest()
    work = base / "qcow2/work"
    p = image_test(binary, types.SimpleNamespace(path=qcow), "--work", str(work))
    if expect(p.returncode == 0, "6: image test of a qcow2 should exit 0", p):
        expect("booting a qcow2 overlay on " in p.stderr, "6: an overlay, not a copy", p)
        expect(hashlib.sha256(qcow.read_bytes()).hexdigest() == qcow_hash, "6: the qcow2 must not change", p)
        expect(not (work / "disk.qcow2").exists(), "6: the overlay is removed", p)

    bad = build(setup, cache, base / "no-osconf", False)
    p = image_test(binary, bad, "--work", str(base / "no-osconf/work"))
    if expect(p.returncode == 1, "3: image test of an image without osconf should exit 1", p):
        expect("fail  os.conf: still on partition 1" in p.stdout, "3: os.conf not removed", p)
        expect("fail  boot: the guest powered off before osconf reported" in p.stdout, "3: boot", p)
        expect(not (base / "no-osconf/work/disk.raw").exists(), "3: the scratch copy is removed", p)

    empty = base / "empty-path"
    empty.mkdir(exist_ok=True)
    p = image_test(binary, bad, env={**os.environ, "PATH": str(empty)})
    expect(p.returncode == 3 and "qemu-system-x86_64 is not installed" in p.stderr, "4: no qemu: exit 3", p)

    uefi = build(setup, cache, base / "uefi", True, uefi=True)
    work = base / "uefi/work"
    p = image_test(binary, uefi, "--work", str(work), "--boots", "3", "--json")
    if expect(p.returncode == 0, "5: image test --boots 3 --json of a UEFI image should exit 0", p):
        expect("firmware: uefi (partition 1 is an EFI System Partition and the MBR holds no boot code)"
               in p.stderr, "5: UEFI chosen from the image, and why", p)
        report = json.loads(p.stdout)
        expect(report["firmware"] == "uefi" and report["verdict"] == "pass", "5: uefi, pass", p)
        boots = report["boots"]
        expect([b["step"] for b in boots] == ["first", "reboot without os.conf", "changed os.conf"],
               "5: three boots: first, a reboot without os.conf, a changed os.conf", p)
        for b in boots:
            e2e.log(f"uefi boot {b['boot']}: osconf reported after {b['seconds']['osconf_reported']} s, "
                    f"the boot took {b['seconds']['wall']} s")
            expect(all(c["verdict"] == "pass" for c in b["checks"]), f"5: boot {b['boot']}: every check passes", p)
        expect(any(c["key"] == "unchanged" for c in boots[1]["checks"]), "5: the reboot is checked unchanged", p)
        # The third boot's os.conf: a new host name and password, the same MACs, read back here.
        third = assertions.Expected.parse((work / "os.conf.3").read_text())
        first = assertions.Expected.parse((work / "os.conf").read_text())
        expect(third.hostname != first.hostname, "5: boot 3 has a new host name", p)
        expect(not (work / "disk.raw").exists(), "5: the scratch copy is removed", p)
        expect((work / "uefi-vars-x86_64.fd").exists(), "5: UEFI's variables in a scratch copy", p)

    return finish(base, fails)


def finish(base, fails):
    """The summary; the work directories (consoles, disks) are kept when something failed."""
    if fails:
        print(f"consoles and images kept in {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    for f in fails:
        print("FAIL " + f.replace("\n", "\n    "))
    print(f"image test: {'0 passed, 1 failed' if fails else '1 passed, 0 failed'}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
