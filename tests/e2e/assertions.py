"""What a boot must show: the guest's report (tests/e2e/guest/report) and the image read back from the
host, compared with what os.conf asked for. Written from the vendor's os.conf description, not from
osconf's code, so that a bug shared by both cannot hide."""

import base64
import ipaddress
import json
import re
from dataclasses import dataclass, field

from setups import crypt


class Failed(Exception):
    pass


def sections(text):
    """`=== name` sections of the report, name -> body."""
    out, name = {}, None
    for line in text.splitlines():
        if line.startswith("=== "):
            name = line[4:].strip()
            out[name] = ""
        elif name is not None:
            out[name] += line + "\n"
    return out


def unquote(v):
    v = v.strip()
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'" else v


@dataclass
class Nic:
    mac: str
    address: str  # a.b.c.d/len
    gateway: str
    routes: list = field(default_factory=list)  # (dst, gateway)


@dataclass
class Expected:
    hostname: str
    password: str
    nics: dict  # N -> Nic
    default: tuple  # (gateway, N)
    nameservers: list

    @staticmethod
    def parse(text):
        kv = {}
        for line in text.splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                k, v = line.split("=", 1)
                kv[k.strip()] = unquote(v)
        pw = base64.b64decode(kv["password"] + "=" * (-len(kv["password"]) % 4)).decode().rstrip("\n")
        nics, default = {}, None
        for n in range(2):
            if f"eth{n}_ip_addr" not in kv:
                continue
            prefix = ipaddress.IPv4Network(f"0.0.0.0/{kv[f'eth{n}_netmask']}").prefixlen
            nic = Nic(kv[f"eth{n}_mac_addr"].lower(), f"{kv[f'eth{n}_ip_addr']}/{prefix}", kv[f"eth{n}_gateway"])
            for item in filter(None, (i.strip() for i in kv.get(f"eth{n}_route", "").split(";"))):
                dst, gw = item.split()
                if dst == "0.0.0.0/0":
                    default = (gw, n)
                else:
                    nic.routes.append((dst, gw))
            nics[n] = nic
        if default is None and 0 in nics and "eth1_ip_addr" not in kv:
            default = (nics[0].gateway, 0)  # a VPC without a default route item uses eth0's gateway
        return Expected(kv["hostname"], pw, nics, default, kv.get("dns_nameserver", "").split())


def links(addr_text):
    """mac -> (ifname, [ipv4 global a.b.c.d/len]) from `ip -j addr` or busybox's `ip addr`."""
    out = {}
    text = addr_text.strip()
    if text.startswith("["):
        for link in json.loads(text):
            v4 = [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                  if a.get("family") == "inet" and a.get("scope") == "global"]
            out[link.get("address", "").lower()] = (link["ifname"], v4)
        return out
    name = mac = None
    for line in text.splitlines():
        m = re.match(r"^\d+: ([^:@]+)[@:]", line)
        if m:
            name, mac = m.group(1), None
            continue
        m = re.match(r"^\s+link/\S+ ([0-9a-f:]+)", line)
        if m and name:
            mac = m.group(1).lower()
            out[mac] = (name, [])
            continue
        m = re.match(r"^\s+inet (\S+) .*scope global", line)
        if m and mac:
            out[mac][1].append(m.group(1))
    return out


def routes(route_text):
    """IPv4 main-table routes not made by the kernel, as `dst via gw dev ifname` / `dst dev ifname`."""
    out = []
    text = route_text.strip()
    if text.startswith("["):
        for r in json.loads(text):
            if r.get("protocol") == "kernel":
                continue
            via = f" via {r['gateway']}" if r.get("gateway") else ""
            out.append(f"{r['dst']}{via} dev {r.get('dev', '?')}")
    else:
        for line in text.splitlines():
            if "proto kernel" in line or not line.strip():
                continue
            m = re.match(r"^(\S+)(?: via (\S+))? dev (\S+)", line)
            if m:
                via = f" via {m.group(2)}" if m.group(2) else ""
                out.append(f"{m.group(1)}{via} dev {m.group(3)}")
    return sorted(out)


def check(setup, s, exp, disk, n, previous):
    """Failures (strings, empty when the boot showed everything os.conf asked for)."""
    fails = []

    def expect(cond, what, got):
        if not cond:
            fails.append(f"{what}; the guest showed:\n{got.rstrip()}")

    kernel_name = s.get("hostname", "").strip()
    expect(kernel_name == exp.hostname, f"kernel host name should be {exp.hostname}", kernel_name)
    etc = s.get("etc-hostname", "").strip()
    expect(etc == exp.hostname, f"/etc/hostname should be {exp.hostname}", etc)
    expect(s.get("password", "").strip() == "verifies", "root's password should verify in the guest",
           s.get("password", ""))
    shadow = disk.root_file("/etc/shadow")
    root_hash = next((line.split(":")[1] for line in shadow.splitlines() if line.startswith("root:")), "")
    if not root_hash.startswith("$") or crypt(exp.password, root_hash) != root_hash:
        fails.append(f"root's hash in the image's /etc/shadow does not verify os.conf's password ({root_hash[:3]}…)")
    try:
        listing = disk.p1_listing()
        if "os.conf" in listing:
            fails.append(f"os.conf is still on partition 1: aliyun_custom_image/ holds {listing}")
    except RuntimeError as e:
        fails.append(f"cannot read aliyun_custom_image/ on partition 1: {e}")
    if setup.init == "systemd":
        # systemctl says Result=success of a unit that does not exist: loaded, active and started at
        # this boot (a monotonic start stamp) is what proves it ran.
        svc = s.get("osconf-service", "")
        props = dict(line.split("=", 1) for line in svc.splitlines() if "=" in line)
        ok = (props.get("LoadState") == "loaded" and props.get("ActiveState") == "active"
              and props.get("Result") == "success" and props.get("ExecMainStartTimestampMonotonic", "0") != "0")
        expect(ok, "osconf.service should be loaded, started at this boot and active with Result=success",
               svc + s.get("osconf-journal", ""))
        failed = s.get("failed-units", "").strip()
        expect(not failed, "no unit should have failed", failed)
    else:
        fails += order(setup, s.get("kmsg-order", ""))
        # The kernel keeps 10 lines of one open /dev/kmsg per 5 s: the run's last line (its result)
        # must still be there.
        kmsg = s.get("kmsg-osconf", "")
        expect(n == 2 or "osconf: applied " in kmsg, "the kernel log should end with osconf's result", kmsg)
    if setup.log_shows and n != 2:
        # This boot's lines only: the journal's (systemd), else the kernel log's.
        log = s.get("osconf-journal") or s.get("kmsg-osconf", "")
        expect(setup.log_shows in log, f"osconf's log should show {setup.log_shows!r}", log)
    if n != 2:
        # Where the run's time went: `osconf status` lists each step timed.
        shown = s.get("osconf-status", "")
        expect(re.search(r"^time: .* ms in \d+ steps", shown, re.M) and "  validate os.conf " in shown,
               "osconf status should show each step's time", shown)
    ns = re.findall(r"^nameserver\s+(\S+)", s.get("resolv.conf", ""), re.M)
    expect(ns == exp.nameservers, f"resolv.conf should list {exp.nameservers}", s.get("resolv.conf", ""))

    try:
        found = links(s.get("addr", ""))
        got_routes = routes(s.get("route", ""))
    except (ValueError, KeyError) as e:
        fails.append(f"cannot parse ip's output: {e}")
        return fails
    names = {}
    for k, nic in exp.nics.items():
        if nic.mac not in found:
            fails.append(f"no NIC with eth{k}'s MAC {nic.mac}; the guest has {sorted(found)}")
            continue
        name, v4 = found[nic.mac]
        names[k] = name
        expect(v4 == [nic.address], f"{name} (eth{k}, {nic.mac}) should have exactly {nic.address}",
               f"{v4}")
    shown = "\n".join(got_routes)
    defaults = [r for r in got_routes if r.startswith("default ")]
    if exp.default and exp.default[1] in names:
        want = f"default via {exp.default[0]} dev {names[exp.default[1]]}"
        expect(defaults == [want], f"exactly one default route, {want}", shown)
    for k, nic in exp.nics.items():
        for dst, gw in nic.routes:
            if k in names:
                want = f"{dst} via {gw} dev {names[k]}"
                expect(want in got_routes, f"route {want}", shown)
    if previous is not None:
        # osconf renames nothing: each MAC keeps its kernel name from boot to boot, also when os.conf
        # moves the MACs between its NICs (the ifupdown setup's third boot).
        before = {mac: name for mac, (name, _) in links(previous.get("addr", "")).items()}
        for mac, (name, _) in found.items():
            if mac in before:
                expect(before[mac] == name, f"the NIC with MAC {mac} should still be {before[mac]}", name)
    if previous is not None and n == 2:
        for key in ("hostname", "etc-hostname", "resolv.conf"):
            expect(s.get(key) == previous.get(key), f"{key} should be as the boot before left it", s.get(key, ""))
        expect(routes(previous.get("route", "")) == got_routes, "routes should be as the boot before", shown)
        before = links(previous.get("addr", ""))
        expect(before == found, f"NIC names and addresses should be as the boot before ({before})", f"{found}")
    return fails


def order(setup, kmsg):
    """Without systemd, from this boot's kernel log (dmesg holds only this boot): osconf ran (it logs
    there before any log daemon), found partition 1 where the init had mounted it (so after the
    local file systems: otherwise it would have mounted it itself), and logged its last line before
    the first ifup (so before the network)."""
    lines = kmsg.splitlines()
    ours = [i for i, line in enumerate(lines) if "osconf" in line]
    ifups = [i for i, line in enumerate(lines) if "e2e: ifup" in line]
    if not ours:
        return [f"osconf should have run at this boot (no osconf line in the kernel log):\n{kmsg.rstrip()}"]
    fails = []
    if not any(f"mounted at {setup.p1_mount}" in lines[i] for i in ours):
        fails.append(f"osconf should find partition 1 mounted at {setup.p1_mount} by the init (after the "
                     f"local file systems):\n{kmsg.rstrip()}")
    if not ifups:
        fails.append(f"the network should have started (no ifup in the kernel log):\n{kmsg.rstrip()}")
    elif max(ours) > min(ifups):
        fails.append(f"osconf should be done before the first ifup:\n{kmsg.rstrip()}")
    return fails


def timing_row(setup, n, with_conf, s, wall):
    """(setup, boot, os.conf?, wall s, guest uptime at report s, systemd's figure, osconf's service s)."""
    start = s.get("start", "").split()
    uptime = float(start[0]) if start else None
    analyze = s.get("analyze-time", "").strip().splitlines()
    total = next((m.group(1) for m in re.finditer(r"= (.+?)\s*$", analyze[0])), "") if analyze else ""
    svc = dict(line.split("=", 1) for line in s.get("osconf-service", "").splitlines() if "=" in line)
    try:
        took = (int(svc["ExecMainExitTimestampMonotonic"]) - int(svc["ExecMainStartTimestampMonotonic"])) / 1e6
    except (KeyError, ValueError):
        # No systemd: the span of osconf's lines in the kernel log, where it logs before any daemon.
        stamps = [float(m.group(1)) for m in re.finditer(r"^\[\s*([0-9.]+)\]", s.get("kmsg-osconf", ""), re.M)]
        took = stamps[-1] - stamps[0] if len(stamps) > 1 else None
    return setup, n, with_conf, wall, uptime, total, took


def timing_table(rows):
    head = (f"{'setup':15} {'boot':>4} {'os.conf':>7} {'qemu wall':>9} {'report at':>9} "
            f"{'systemd-analyze':>15} {'osconf.service':>14}")
    lines = [head, "-" * len(head)]
    for name, n, conf, wall, up, total, took in rows:
        lines.append(f"{name:15} {n:>4} {'yes' if conf else 'no':>7} {wall:>8.1f}s "
                     f"{(f'{up:.1f}s' if up is not None else '-'):>9} {total or '-':>15} "
                     f"{(f'{took:.3f}s' if took is not None else '-'):>14}")
    return "\n".join(lines)
