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

import concurrent.futures
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
import layouts  # noqa: E402
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
    layouts.boot_files(cache, p1, kernel[1], layouts.OPTIONS)
    if uefi:
        # No syslinux, no MBR code: Disk.build installs them only for a self-booting setup.
        setup = dataclasses.replace(setup, table="gpt", bootloader=False)
    disk = e2e.Disk(work / "disk.raw", setup)
    disk.build(root, p1)
    shutil.rmtree(root)
    return disk


def build_layout(layout, setup, cache, work):
    """The raw image of a root `layout` (layouts.py) without osconf (`image prepare` puts it in),
    partition 1 holding aliyun_custom_image/ but no os.conf, bootable under BIOS and UEFI."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    setup = dataclasses.replace(setup, name=layout.name, table="gpt", p1_mount=layout.p1_mount)
    root, p1 = work / "root", work / "p1"
    setups.busybox_root(root)
    prepared(setup, root, p1, cache.kernel(), False)
    setups.write(root, "/etc/fstab", layout.fstab)
    layouts.boot_files(cache, p1, layouts.initrd(cache, layout), f"{layouts.OPTIONS} {layout.kernel_args}")
    path = work / "disk.raw"
    layouts.build(layout, setup, root, p1, path)
    shutil.rmtree(root)
    shutil.rmtree(p1)
    return path


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


# The matrix: each root layout of layouts.py under each firmware (BIOS: chosen from the image, whose
# MBR holds gptmbr.bin; UEFI: --firmware uefi), --boots 3, the formats ECS imports rotated so that each
# is booted once (the raw one --in-place, its root then read back by the kernel).
MATRIX = [("xfs", "bios", "raw"), ("xfs", "uefi", "vmdk-stream"), ("rhel9", "bios", "qcow2"),
          ("rhel9", "uefi", "vhd-dynamic"), ("opensuse", "bios", "vhd-fixed"),
          ("opensuse", "uefi", "vmdk-sparse")]
# qemu-img convert's options for each format (a fixed VHD keeps the disk's exact size, as Azure's do).
FORMATS = {"qcow2": ["-O", "qcow2"], "vhd-dynamic": ["-O", "vpc", "-o", "subformat=dynamic"],
           "vhd-fixed": ["-O", "vpc", "-o", "subformat=fixed,force_size=on"],
           "vmdk-sparse": ["-O", "vmdk", "-o", "subformat=monolithicSparse"],
           "vmdk-stream": ["-O", "vmdk", "-o", "subformat=streamOptimized"]}


def sha256(path: Path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * e2e.MIB):
            h.update(chunk)
    return h.hexdigest()


def qemu_img_check(path: Path, fmt, what, expect):
    """`qemu-img check` passes (qcow2, VMDK); vpc has no check, so a VHD must read as one (qemu probes
    a fixed VHD, whose only footer is at its end, as raw: hence -f)."""
    if fmt.startswith("vhd"):
        p = subprocess.run(["qemu-img", "info", "-f", "vpc", "--output=json", str(path)], capture_output=True,
                           text=True)
        return expect(p.returncode == 0 and json.loads(p.stdout)["format"] == "vpc", f"{what}: qemu-img info", p)
    p = subprocess.run(["qemu-img", "check", str(path)], capture_output=True, text=True)
    return expect(p.returncode == 0 and "No errors were found" in p.stdout, f"{what}: qemu-img check clean", p)


def matrix_case(binary, base, raw, layout, firmware, fmt, expect):
    """One case of MATRIX on a copy (raw) or conversion of the layout's raw image `raw`."""
    name = f"{layout.name}-{firmware} ({fmt})"
    case = base / f"{layout.name}-{firmware}"
    shutil.rmtree(case, ignore_errors=True)
    case.mkdir(parents=True)
    if fmt == "raw":
        disk = case / "disk.raw"
        e2e.run(["cp", "--sparse=always", "--reflink=auto", str(raw), str(disk)])
    else:
        disk = case / f"disk.{fmt.split('-')[0]}"
        e2e.run(["qemu-img", "convert", *FORMATS[fmt], str(raw), str(disk)])
        if not qemu_img_check(disk, fmt, f"{name}: the converted image", expect):
            return
    before = sha256(disk)
    conf = case / "os.conf"
    conf.write_text(setups.CLASSIC[0])
    work = case / "work"
    p = image_test(binary, types.SimpleNamespace(path=disk), "--work", str(work), "--boots", "3", "--json",
                   "--os-conf", str(conf), *(["--firmware", "uefi"] if firmware == "uefi" else []),
                   *(["--in-place"] if fmt == "raw" else []))
    if not expect(p.returncode == 0, f"{name}: image test --boots 3 should exit 0", p):
        return
    why = ("firmware: uefi (--firmware uefi)" if firmware == "uefi" else
           "firmware: bios (the MBR holds boot code (partition 1 is an EFI System Partition")
    expect(why in p.stderr, f"{name}: the firmware, and why", p)
    expect((fmt == "raw") == ("overlay on " not in p.stderr), f"{name}: an overlay on a non-raw image only", p)
    report = json.loads(p.stdout)
    expect(report["firmware"] == firmware and report["verdict"] == "pass", f"{name}: {firmware}, pass", p)
    boots = report["boots"]
    expect([b["step"] for b in boots] == ["first", "reboot without os.conf", "changed os.conf"],
           f"{name}: three boots", p)
    for b in boots:
        e2e.log(f"{name} boot {b['boot']}: osconf reported after {b['seconds']['osconf_reported']} s, "
                f"the boot took {b['seconds']['wall']} s")
        expect(all(c["verdict"] == "pass" for c in b["checks"]), f"{name}: boot {b['boot']}: every check passes", p)
    for b in (boots[0], boots[2]):
        keys = {c["key"] for c in b["checks"]}
        expect({"hostname", "password", "eth0", "eth1", "dns"} <= keys, f"{name}: boot {b['boot']} checks "
               f"the host name, password, both NICs and DNS (found {sorted(keys)})", p)
    kept = next((c for c in boots[1]["checks"] if c["key"] == "unchanged"), None)
    if expect(kept is not None, f"{name}: the reboot is checked unchanged", p):
        timed = int(kept["reason"].rsplit("(", 1)[1].split()[0])
        e2e.log(f"{name}: the reboot kept {kept['found']}, {timed} with the same mtime")
        # The XFS and Btrfs readers give mtimes: a rewrite with the same bytes must show.
        expect(timed > 0, f"{name}: the reboot compared mtimes ({kept['reason']})", p)
    # Boot 3's os.conf: the two NICs' MACs swapped, a new host name.
    third = assertions.Expected.parse((work / "os.conf.3").read_text())
    first = assertions.Expected.parse(setups.CLASSIC[0])
    expect(third.hostname != first.hostname and [n.mac for n in third.nics.values()]
           == [n.mac for n in first.nics.values()][::-1], f"{name}: boot 3 has a new host name, the MACs swapped", p)
    if fmt == "raw":
        # --in-place: the image itself configured as boot 3's os.conf says, read by the kernel.
        texts = layouts.readback(layout, disk, ["/etc/hostname", "/etc/shadow"], case / "readback")
        expect(texts["/etc/hostname"].strip() == third.hostname, f"{name}: etc/hostname read back", p)
        root_hash = next(line.split(":")[1] for line in texts["/etc/shadow"].splitlines()
                         if line.startswith("root:"))
        expect(setups.crypt(third.password, root_hash) == root_hash, f"{name}: perl's crypt verifies the hash", p)
    else:
        expect(sha256(disk) == before, f"{name}: the {fmt} image must not change", p)
        qemu_img_check(disk, fmt, f"{name}: the image after the test", expect)
        expect(not any(work.glob("*.qcow2")), f"{name}: the overlay is removed", p)


def matrix(binary, cache, base, chosen, expect):
    """The cases of MATRIX in `chosen`, two guests at a time (each TCG guest takes one core)."""
    setup = next(s for s in setups.SETUPS if s.name == "syslinux")
    needed = {n for n, f, _ in MATRIX if f"{n}-{f}" in chosen}
    raws = {}
    for layout in layouts.LAYOUTS:
        if layout.name in needed:
            started = time.monotonic()
            raw = build_layout(layout, setup, cache, base / "layouts" / layout.name)
            e2e.log(f"{layout.name}: built in {time.monotonic() - started:.0f} s")
            # osconf goes into the XFS, LVM and Btrfs roots as a user puts it in: image prepare
            # (libguestfs for these roots).
            started = time.monotonic()
            p = subprocess.run([str(binary), "image", "prepare", str(raw)], capture_output=True, text=True)
            e2e.log(f"{layout.name}: image prepare exit {p.returncode} in {time.monotonic() - started:.0f} s")
            if expect(p.returncode == 0 and "installed osconf" in p.stdout,
                      f"{layout.name}: image prepare should install osconf", p):
                raws[layout.name] = raw
    cases = [(next(x for x in layouts.LAYOUTS if x.name == n), f, fmt) for n, f, fmt in MATRIX
             if f"{n}-{f}" in chosen]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for fut in [pool.submit(matrix_case, binary, base, raws[lay.name], lay, f, fmt, expect)
                    for lay, f, fmt in cases if lay.name in raws]:
            fut.result()


CASES = ["basic"] + [f"{n}-{f}" for n, f, _ in MATRIX]


def main():
    setup = next(s for s in setups.SETUPS if s.name == "syslinux")
    only_arm64 = sys.argv[1:] == ["arm64"]
    chosen = [] if only_arm64 else (sys.argv[1:] or CASES)
    if set(chosen) - set(CASES):
        print(f"usage: run-image-test [arm64 | CASE...]; the cases: {' '.join(CASES)} (default: all)")
        return 2
    e2e.prerequisites([next(s for s in setups.SETUPS if s.name == "arm64")] if only_arm64 else [setup])
    if set(chosen) - {"basic"}:
        for prog in layouts.PROGRAMS:
            if shutil.which(prog) is None:
                e2e.cannot_run(f"{prog} is not installed (.ci/packages.txt lists it)")
        if not layouts.GPT_MBR_CODE.exists():
            e2e.cannot_run(f"{layouts.GPT_MBR_CODE} is missing (syslinux-common)")
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

    matrix(binary, cache, base, chosen, expect)
    if "basic" in chosen:
        basic(binary, cache, base, setup, expect)
    return finish(base, fails)


def basic(binary, cache, base, setup, expect):
    """Cases 1 to 6 of the docstring."""
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
