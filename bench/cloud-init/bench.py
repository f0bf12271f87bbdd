#!/usr/bin/env python3
"""osconf beside cloud-init at boot, in the same Debian 12 image under the same qemu (run by
bench/cloud-init.sh, as root). One image — tests/e2e's netplan setup (netplan.io over
systemd-networkd, the installer's DHCP YAML) with Debian's cloud-init installed and osconf installed
by `osconf install --root` — copied twice:

  cloud-init  booted with `osconf=off` and a NoCloud seed (a second disk, FAT labelled CIDATA:
              meta-data, user-data, network-config) saying what os.conf says: the host name, root's
              password, the NIC by its MAC with its address, default route and DNS servers.
              Booted twice: the instance's first boot, then its next (same instance id).
  osconf      booted with `cloud-init=disabled` (cloud-init's own switch) and os.conf on partition 1;
              then again without os.conf.

Every boot is checked (untimed): host name, the NIC's only address, the one default route, DNS,
root's password (perl's crypt in the guest); cloud-init's units ran only in its boots, osconf's
only in its own. Figures, from the guest's systemd: each unit's `systemd-analyze blame` time (from
leaving inactive to active), `systemd-analyze time`, and when the address and the default route
were first in the kernel (bench/cloud-init/guest/netup, waiting on rtnetlink events). The guest's
NIC is alone on its own qemu hub: nothing leaves qemu.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests/e2e"))
import assertions  # noqa: E402
import e2e  # noqa: E402
import setups  # noqa: E402

CONF = setups.VPC[0]
EXPECTED = assertions.Expected.parse(CONF)
NIC = EXPECTED.nics[0]
SETUP = setups.Setup(
    "cloud-init", "netplan over networkd, Debian's cloud-init and osconf, ext4 /boot on GPT", "systemd",
    "gpt", "ext4", "/boot", (CONF, CONF), ["netplan.io", "cloud-init"], setups.netplan,
    p1_uuid="0f5e2e00-0000-4000-8000-0000000000c1")
CLOUD_INIT_UNITS = ["cloud-init-local.service", "cloud-init.service"]
LATER_UNITS = ["cloud-config.service", "cloud-final.service"]

# The NoCloud seed: os.conf's settings as cloud-init takes them.
META_DATA = f"instance-id: bench-ci-0001\nlocal-hostname: {EXPECTED.hostname}\n"
USER_DATA = f"""#cloud-config
hostname: {EXPECTED.hostname}
# The image has no locales (debootstrap minbase): without this cc_locale fails cloud-config.service.
locale: false
chpasswd:
  expire: false
  users:
    - {{name: root, password: "{EXPECTED.password}", type: text}}
"""
NETWORK_CONFIG = f"""version: 2
ethernets:
  eth0:
    match:
      macaddress: "{NIC.mac}"
    addresses: [{NIC.address}]
    routes:
      - {{to: 0.0.0.0/0, via: {EXPECTED.default[0]}}}
    nameservers:
      addresses: [{", ".join(EXPECTED.nameservers)}]
"""

NETUP_UNIT = """# bench/cloud-init's network watch (installed by the bench, not by osconf).
[Unit]
Description=bench: when the network is configured
DefaultDependencies=no
After=systemd-udevd.service

[Service]
Type=simple
ExecStart=/usr/local/sbin/bench-netup

[Install]
WantedBy=sysinit.target
"""


# The floor: what any oneshot unit at osconf's place costs (systemd forks, connects the output to the
# journal, execs, waits), measured with a static program that does nothing, started right after
# osconf.service and before the network, in every boot.
FLOOR_UNIT = """# bench/cloud-init's floor (installed by the bench, not by osconf).
[Unit]
Description=bench: a oneshot unit that does nothing, at osconf's place in the boot
DefaultDependencies=no
After=osconf.service local-fs.target
Before=network-pre.target sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/bench-floor
StandardOutput=journal+console

[Install]
WantedBy=sysinit.target
"""


def install_floor(root, work):
    """FLOOR_UNIT and its program, a static one that does nothing (gcc -static), into `root`."""
    src, out = work / "floor.c", root / "usr/local/sbin/bench-floor"
    src.write_text("int main(void) { return 0; }\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    e2e.run(["gcc", "-static", "-O2", "-o", str(out), str(src)])
    setups.write(root, "/etc/systemd/system/bench-floor.service", FLOOR_UNIT)
    setups.enable(root, "bench-floor.service")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def build(cache, work):
    """The image (tests/e2e's build, with bench's report and network watch), before any boot."""
    kernel = cache.kernel()
    root = work / "root"
    shutil.rmtree(root, ignore_errors=True)
    cached = cache.root_fs(SETUP.packages)
    version = e2e.run(["dpkg-query", f"--admindir={cached}/var/lib/dpkg", "-W", "-f", "${Version}", "cloud-init"])
    e2e.run(["cp", "-a", str(cached), str(root)])
    (root / ".e2e-done").unlink(missing_ok=True)
    p1 = work / "p1"
    shutil.rmtree(p1, ignore_errors=True)
    p1.mkdir()
    # tests/e2e's image preparation; `here` is bench/cloud-init, so its guest/report is the report.
    setups.prepare_root(SETUP, root, p1, kernel, REPO, HERE)
    setups.write(root, "/usr/local/sbin/bench-netup", (HERE / "guest/netup").read_text(), 0o755)
    setups.write(root, "/etc/systemd/system/bench-netup.service", NETUP_UNIT)
    setups.enable(root, "bench-netup.service")
    install_floor(root, work)
    (p1 / "aliyun_custom_image").mkdir(exist_ok=True)
    disk = e2e.Disk(work / "image.raw", SETUP)
    disk.build(root, p1)
    shutil.rmtree(root)
    seed = work / "seed.raw"
    seed.unlink(missing_ok=True)
    e2e.run(["mkfs.vfat", "-n", "CIDATA", "-C", str(seed), "2048"])
    for name, text in [("meta-data", META_DATA), ("user-data", USER_DATA), ("network-config", NETWORK_CONFIG)]:
        (work / name).write_text(text)
        e2e.run(["mcopy", "-i", str(seed), str(work / name), f"::/{name}"])
    return kernel, disk, seed, version


def copy(disk, path):
    e2e.run(["cp", "--sparse=always", str(disk.path), str(path)])
    return e2e.Disk(path, SETUP)


def boot(name, disk, kernel, work, append, seed=None):
    """One boot; the report's sections. Raises assertions.Failed when it did not finish."""
    console, report = work / f"console-{name}.log", work / f"report-{name}.log"
    for f in (console, report):
        f.unlink(missing_ok=True)
    line = f"console=ttyS0 panic=-1 bench.password={EXPECTED.password} bench.addr={NIC.address.split('/')[0]} {append}"
    cmd = e2e.x86_64_command(SETUP, disk, kernel, work, line, console, report)
    # The NIC alone on its own hub: the guest's packets reach no one.
    cmd += ["-netdev", "hubport,id=nic0,hubid=0",
            "-device", f"virtio-net-pci,netdev=nic0,mac={NIC.mac},addr=0x3,romfile="]
    if seed is not None:
        cmd += ["-drive", f"file={seed},format=raw,if=none,id=seed,readonly=on",
                "-device", "virtio-blk-pci,drive=seed,addr=0x11"]
    log(f"boot: {name}")
    started = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    except subprocess.TimeoutExpired:
        raise assertions.Failed(f"{name}: no power-off within 1200 s\n" + e2e.tail(console)) from None
    if p.returncode != 0:
        raise assertions.Failed(f"{name}: qemu exited {p.returncode}: {p.stderr}\n" + e2e.tail(console))
    s = assertions.sections(report.read_text(errors="replace") if report.exists() else "")
    if "end" not in s:
        raise assertions.Failed(f"{name}: no complete report\n" + e2e.tail(console) + e2e.tail(report))
    log(f"boot: {name} done ({time.monotonic() - started:.0f} s)")
    return s


def slug(name, n):
    """A boot's name for its log files: `osconf-no-osconf-1`."""
    return re.sub(r"[^a-z0-9]+", "-", f"{name} {n}".replace("os.conf", "osconf").lower())


def units(s):
    """unit -> its properties, from the report's `units` section."""
    out, unit = {}, None
    for line in s.get("units", "").splitlines():
        if line.startswith("unit "):
            unit = line[5:].strip()
            out[unit] = {}
        elif "=" in line and unit:
            k, v = line.split("=", 1)
            out[unit][k] = v
    return out


def blame(props):
    """What `systemd-analyze blame` shows for a unit (inactive → active), in seconds; None if it did not run."""
    start, end = int(props.get("InactiveExitTimestampMonotonic", 0)), int(props.get("ActiveEnterTimestampMonotonic", 0))
    return (end - start) / 1e6 if start and end >= start else None


def boot_seconds(s):
    """`systemd-analyze time`'s total (kernel + userspace, up to the default target), in seconds."""
    text = s.get("analyze-time", "")
    total = text.split("=")[-1].strip().splitlines()[0] if "=" in text else ""
    secs = 0.0
    for word in total.split():
        for unit, mul in (("min", 60), ("ms", 1e-3), ("s", 1)):
            if word.endswith(unit) and word[:-len(unit)].replace(".", "").isdigit():
                secs += float(word[:-len(unit)]) * mul
                break
    return secs or None


def check(name, s, ran, skipped):
    """What the boot configured is what os.conf (and the seed) asked for; the units in `ran` ran at this
    boot and succeeded, those in `skipped` did not run. Failures as strings."""
    fails = []
    got = s.get("hostname", "").strip()
    if got != EXPECTED.hostname:
        fails.append(f"host name {got!r}, not {EXPECTED.hostname}")
    found = assertions.links(s.get("addr", ""))
    if NIC.mac not in found or found[NIC.mac][1] != [NIC.address]:
        fails.append(f"the NIC {NIC.mac} should have exactly {NIC.address}: {found}")
    else:
        default = [r for r in assertions.routes(s.get("route", "")) if r.startswith("default ")]
        want = f"default via {EXPECTED.default[0]} dev {found[NIC.mac][0]}"
        if default != [want]:
            fails.append(f"default routes {default}, not [{want}]")
    ns = re.findall(r"^nameserver\s+(\S+)", s.get("resolv.conf", ""), re.M)
    # cloud-init hands the servers to networkd (netplan), which needs resolved to write resolv.conf;
    # neither image has it, so only osconf's boots are held to resolv.conf.
    if "osconf.service" in ran and ns != EXPECTED.nameservers:
        fails.append(f"resolv.conf lists {ns}, not {EXPECTED.nameservers}")
    if s.get("password", "").strip() != "verifies":
        fails.append("root's password does not verify")
    props = units(s)
    for unit in ran:
        p = props.get(unit, {})
        if p.get("Result") != "success" or blame(p) is None:
            fails.append(f"{unit} should have run at this boot and succeeded: {p}")
    for unit in skipped:
        if blame(props.get(unit, {})) is not None:
            fails.append(f"{unit} should not have run: {props.get(unit)}")
    if s.get("net-up", "").strip() == "":
        fails.append("the network watch saw no address and default route")
    return [f"{name}: {f}" for f in fails]


def figures(name, s, measured):
    props = units(s)
    row = {"boot": name, "boot_s": boot_seconds(s)}
    for unit in ["osconf.service", "bench-floor.service"] + CLOUD_INIT_UNITS + LATER_UNITS:
        row[unit] = blame(props.get(unit, {}))
    up = s.get("net-up", "").strip()
    row["net_up_s"] = float(up) if up else None
    row["blame"] = [line.strip() for line in s.get("analyze-blame", "").splitlines()
                    if any(u in line for u in ["osconf", "cloud-", "netplan", "networkd", "bench-floor"])]
    measured.append(row)


def secs(v, unit="s"):
    if v is None:
        return "-"
    return f"{v * 1000:.0f} ms" if unit == "ms" else f"{v:.2f} s"


def table(rows):
    lines = [f"{'boot':34} {'osconf.service':>14} {'floor':>6} {'cloud-init-local':>16} {'cloud-init':>10} "
             f"{'cloud-config':>12} {'cloud-final':>11} {'network up':>10} {'boot (analyze)':>14}"]
    lines.append("-" * len(lines[0]))
    for r in rows:
        lines.append(f"{r['boot']:34} {secs(r['osconf.service'], 'ms'):>14} {secs(r['bench-floor.service'], 'ms'):>6} "
                     f"{secs(r['cloud-init-local.service'], 'ms'):>16} {secs(r['cloud-init.service'], 'ms'):>10} "
                     f"{secs(r['cloud-config.service'], 'ms'):>12} {secs(r['cloud-final.service'], 'ms'):>11} "
                     f"{secs(r['net_up_s']):>10} {secs(r['boot_s']):>14}")
    return "\n".join(lines)


def verdict(rows):
    """The issue's two targets, from the medians over the rounds."""
    def med(boot, key):
        vals = [r[key] for r in rows if r["boot"] == boot and r[key] is not None]
        return statistics.median(vals) if vals else None
    osconf = med("osconf, os.conf applied", "osconf.service")
    local, init = med("cloud-init, first boot", "cloud-init-local.service"), med("cloud-init, first boot", "cloud-init.service")
    idle, idle_boot = med("osconf, no os.conf", "osconf.service"), med("osconf, no os.conf", "boot_s")
    out = []
    if None not in (osconf, local, init):
        ratio = (local + init) / osconf
        out.append(f"{'HOLDS' if ratio >= 20 else 'MISSED'}  osconf.service at most 1/20 of cloud-init-local + "
                   f"cloud-init (first boot): {osconf * 1000:.0f} ms vs {(local + init) * 1000:.0f} ms, 1/{ratio:.1f}")
    if None not in (idle, idle_boot):
        share = 100 * idle / idle_boot
        out.append(f"{'HOLDS' if share <= 1 else 'MISSED'}  osconf.service at most 1 % of a boot without os.conf: "
                   f"{idle * 1000:.0f} ms of {idle_boot:.2f} s, {share:.2f} %")
        floor = med("osconf, no os.conf", "bench-floor.service")
        if floor is not None:
            out.append(f"        of which any oneshot unit's cost (the floor, a static no-op unit after osconf): "
                       f"{floor * 1000:.0f} ms; osconf's own {max(idle - floor, 0) * 1000:.0f} ms, "
                       f"{100 * max(idle - floor, 0) / idle_boot:.2f} % of the boot")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1, help="boots of each kind (default 1)")
    ap.add_argument("--cache", default=str(REPO / "target/e2e-cache"), help="tests/e2e's download cache")
    ap.add_argument("--work", default=str(REPO / "target/bench-cloud-init"))
    ap.add_argument("--osconf", help="the osconf binary to install (default: cargo build --release)")
    args = ap.parse_args()
    e2e.prerequisites([SETUP])
    if args.osconf:
        os.environ["OSCONF_E2E_BINARY"] = str(Path(args.osconf).resolve())
    os.environ["OSCONF_E2E_BINARY"] = str(setups.osconf_binary(REPO))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    kernel, image, seed, version = build(e2e.Cache(Path(args.cache)), work)
    fails, rows = [], []
    try:
        for n in range(1, args.rounds + 1):
            ci = copy(image, work / "cloud-init.raw")
            for name in ["cloud-init, first boot", "cloud-init, next boot"]:
                s = boot(slug(name, n), ci, kernel, work, "osconf=off", seed)
                fails += check(name, s, CLOUD_INIT_UNITS + LATER_UNITS, ["osconf.service"])
                figures(name, s, rows)
            oc = copy(image, work / "osconf.raw")
            oc.write_os_conf(CONF, work)
            for name in ["osconf, os.conf applied", "osconf, no os.conf"]:
                s = boot(slug(name, n), oc, kernel, work, "cloud-init=disabled")
                fails += check(name, s, ["osconf.service"], CLOUD_INIT_UNITS + LATER_UNITS)
                figures(name, s, rows)
            if "os.conf" in oc.p1_listing():
                fails.append("osconf: os.conf is still on partition 1")
    except assertions.Failed as e:
        fails.append(str(e))
    load_after = os.getloadavg()
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    text = (f"bench/cloud-init.sh: qemu TCG, 1 vCPU, 1 GiB; Debian 12, cloud-init "
            f"{version}; osconf at {rev}; {args.rounds} round(s); "
            f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after\n"
            f"(systemd-analyze blame's time of each unit; network up: the address and default route in the "
            f"kernel, seconds after boot)\n\n" + table(rows) + "\n\n" + verdict(rows) + "\n")
    print("\n" + text)
    for r in rows:
        print(f"{r['boot']}: blame: " + "; ".join(r["blame"]))
    (work / "results.txt").write_text(text)
    (work / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    for f in fails:
        print("FAIL " + f.replace("\n", "\n  "))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
