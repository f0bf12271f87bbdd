#!/usr/bin/env bash
# osconf beside the alternatives (issue 9 §4), in one go, printed as one table with ratios:
#
#   bash bench/compare.sh [--rounds N] [--reps M]   N rounds (default 10); the fast rows M times a round (default 10)
#   bash bench/compare.sh --smoke                   1 round, 1 rep: proves the comparison still runs
#
# For the classic sample (examples/classic/os.conf) and four network stacks, on each medium (a tmpfs,
# and, as root, an ext4 file system on a loop image backed by the disk), whole processes timed by
# bench/measure.c (fork + exec + wait4: wall time and the child's ru_maxrss), interleaved (one of each
# per round, after one unmeasured warm-up round), each on fresh inputs:
#   osconf      osconf apply --root R --no-live --stack S, R a fresh copy of the stack's example root
#               (sysconfig: centos7, ifupdown: debian11, netplan: ubuntu22, networkd: debian12-networkd)
#               with os.conf in R/boot/aliyun_custom_image/; it also sets the host name, /etc/hosts,
#               resolv.conf and the root password (a SHA-512 crypt hash), which the others here do not
#   vendor      the vendor's sample script (sysconfig only: it is written for CentOS), as bench/apply.sh
#               runs it, with the stubs described in bench/README.md
#   cloud-init  Debian's cloud-init (apt-get download + dpkg -x, run from a venv holding its Python
#               dependencies from PyPI, pinned in bench/cloud-init/requirements.txt, byte-compiled as
#               Debian's postinst does): `cloud-init devel net-convert` of bench/cloud-init/classic.yaml
#               (the same network configuration) into a fresh directory, -O sysconfig|eni|netplan|networkd
#   no-op       a static `int main(void){return 0;}`: the floor, what creating a process costs here
# Each run is checked afterwards (untimed): os.conf consumed, the sample's addresses and routes written.
# The boot rows are not measured here: they are read from the last tests/e2e run (target/e2e-run/
# timings.txt, or $OSCONF_E2E_TIMINGS): osconf.service's own time in each e2e image booted under qemu,
# with os.conf (boots 1 and 3) and without (boot 2); busybox images, which have no systemd, the span
# of osconf's lines in the kernel log.
# cloud-init and the venv are kept in <target>/bench-cloud-init/ between runs.
#
# It prints the table, the exact commands, the sizes, the machine and its load, and whether the targets
# hold (osconf >= 100x faster than cloud-init's renderer on every row; peak RSS under 4 MiB). It exits
# 0 whatever the figures are; 1 if a command fails or did not do its job, 2 on a usage error.
set -euo pipefail

me=compare.sh usage_lines=4,5 number_opts=(rounds reps) switch_opts=()
rounds=10
reps=10
smoke() { rounds=1 reps=1; }
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_args "$@"

need cargo gcc python3 apt-get dpkg-deb

bench_build

# --- cloud-init, from Debian's package, in a venv --------------------------------------------------
ci_home=$target_dir/bench-cloud-init
ci_stamp="$(apt-cache policy cloud-init 2>/dev/null | awk '/Candidate:/ { print $2 }') $(sha256sum bench/cloud-init/requirements.txt | cut -c1-16)"
if [[ $(cat "$ci_home/stamp" 2>/dev/null) != "$ci_stamp" ]]; then
    echo "== preparing cloud-init in $ci_home (apt-get download cloud-init, dpkg -x, venv from PyPI)"
    rm -rf "$ci_home"
    mkdir -p "$ci_home/deb"
    (cd "$ci_home/deb" && apt-get download -q cloud-init >/dev/null 2>&1) ||
        die "apt-get download cloud-init failed (run apt-get update first?)"
    dpkg-deb -x "$ci_home"/deb/cloud-init_*.deb "$ci_home/pkg"
    python3 -m venv "$ci_home/venv" || die "python3 -m venv failed (Debian's python3 needs python3-venv)"
    "$ci_home/venv/bin/pip" install -q --disable-pip-version-check -r bench/cloud-init/requirements.txt
    # Debian byte-compiles cloud-init when it installs it (py3compile); without .pyc files every run
    # would compile its modules again.
    "$ci_home/venv/bin/python3" -m compileall -q "$ci_home/pkg/usr/lib/python3/dist-packages" >/dev/null
    echo "$ci_stamp" >"$ci_home/stamp"
fi
ci_deb=$(basename "$ci_home"/deb/cloud-init_*.deb)
ci_python=$ci_home/venv/bin/python3
ci_path=$ci_home/pkg/usr/lib/python3/dist-packages
ci_yaml=$PWD/bench/cloud-init/classic.yaml

# --- Media, helpers, the vendor's script -----------------------------------------------------------
tmpfs_scratch
media=(tmpfs)
declare -A dir=([tmpfs]=$scratch)
if ((EUID == 0)); then
    media+=(ext4)
    ext4_scratch "$target_dir"
    dir[ext4]=$ext4_dir
    ext4_image=$(findmnt -n -o SOURCE -T "${dir[ext4]}")
else
    echo "== tmpfs only: the ext4 loop image needs root"
fi
bin=$bin_dir/bin
mkdir -p "$bin"
helpers "$bin"
measure_bin=$bin/measure
results=$scratch/results
vendor_extract "$scratch/vendor.orig.sh" || die "the comparison needs the vendor's script"
for m in "${media[@]}"; do
    vendor_script "$scratch/vendor.orig.sh" "${dir[$m]}/root-vendor" "${dir[$m]}/stubs" "${dir[$m]}/vendor.sh"
    make_stubs "${dir[$m]}/stubs" "${dir[$m]}/root-vendor" "cat >${dir[$m]}/root-vendor/.chpasswd-stdin"
done
bash=$(command -v bash)

# The stacks compared: osconf's name, its example root, cloud-init's -O and -D, and the directory
# (inside the root, or cloud-init's output directory) where both write the NICs' configuration.
stacks=(sysconfig ifupdown netplan networkd)
declare -A example=([sysconfig]=centos7 [ifupdown]=debian11 [netplan]=ubuntu22 [networkd]=debian12-networkd)
declare -A ci_kind=([sysconfig]=sysconfig [ifupdown]=eni [netplan]=netplan [networkd]=networkd)
declare -A ci_distro=([sysconfig]=centos [ifupdown]=debian [netplan]=ubuntu [networkd]=debian)
declare -A net_dir=([sysconfig]=etc/sysconfig/network-scripts [ifupdown]=etc/network/interfaces.d
    [netplan]=etc/netplan [networkd]=etc/systemd/network)

# network_written LABEL DIR: the files under DIR hold the sample's two addresses and three routes.
network_written() {
    local text
    for text in 10.171.254.123 42.120.74.105 10.0.0.0 172.16.0.0 42.120.74.1; do
        grep -rqF -- "$text" "$2" 2>/dev/null || die "$1 did not do its job: nothing under $2 names $text"
    done
}

run_osconf() { # MEDIUM STACK
    local root=${dir[$1]}/root-osconf-$2
    fresh_root "$root" "${example[$2]}"
    measure "$results" "$1/osconf/$2" "$osconf" apply --root "$root" --no-live --stack "$2"
    [[ ! -e $root/boot/aliyun_custom_image/os.conf ]] || die "osconf $2 did not do its job: os.conf is still there"
    network_written "$1/osconf/$2" "$root/${net_dir[$2]}"
    new_root_hash "$1/osconf/$2" "$root" "${example[$2]}"
}
run_cloud_init() { # MEDIUM STACK
    local out=${dir[$1]}/cloud-init-$2
    rm -rf "$out"
    mkdir "$out"
    PYTHONPATH=$ci_path measure "$results" "$1/cloud-init/$2" "$ci_python" -m cloudinit.cmd.main \
        devel net-convert -p "$ci_yaml" -k yaml -d "$out" -D "${ci_distro[$2]}" -O "${ci_kind[$2]}"
    network_written "$1/cloud-init/$2" "$out/${net_dir[$2]}"
}
run_vendor() { # MEDIUM
    local root=${dir[$1]}/root-vendor
    fresh_root "$root"
    PATH=${dir[$1]}/stubs:$PATH measure "$results" "$1/vendor/sysconfig" "$bash" "${dir[$1]}/vendor.sh" start
    vendor_did_its_job "$1/vendor" "$root"
}
round() {
    local m s i
    for m in "${media[@]}"; do
        for ((i = 0; i < reps; i++)); do
            measure "$results" "$m/no-op/-" "$bin/noop"
            for s in "${stacks[@]}"; do run_osconf "$m" "$s"; done
            run_vendor "$m"
        done
        for s in "${stacks[@]}"; do run_cloud_init "$m" "$s"; done
    done
}

echo "== measuring: 1 warm-up round, then $rounds rounds; in each, per medium, $reps x (no-op, osconf x 4, vendor), then cloud-init x 4"
rounds "$rounds"

# --- Report ---------------------------------------------------------------------------------------
py_bin=$(readlink -f "$ci_python")
echo
echo "osconf beside the vendor's script and cloud-init: $rounds rounds ($((rounds * reps)) runs of the fast rows, $rounds of cloud-init per row)"
echo "  machine:    $(uname -srm), $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "  load average before / after: $load_before / $load_after   (other work skews the figures; ratios are interleaved)"
echo "  invocation: $invocation"
echo "  media:      tmpfs $scratch${ext4_image:+; ext4 ${dir[ext4]} (loop image $ext4_image, backed by $(stat -f -c %T "$target_dir") on disk)}"
echo "  osconf:     $osconf apply --root <fresh copy of examples/rootfs/EXAMPLE + os.conf> --no-live --stack STACK"
echo "  vendor:     PATH=<stubs>:\$PATH $bash <medium>/vendor.sh start   (bench/README.md: the vendor's script)"
echo "  cloud-init: PYTHONPATH=$ci_path $ci_python -m cloudinit.cmd.main devel net-convert -p bench/cloud-init/classic.yaml -k yaml -d <fresh dir> -D DISTRO -O KIND"
echo "              ($ci_deb, $("$ci_python" --version))"
echo "  sizes:      osconf $(stat -c %s "$osconf") bytes (static, no dependencies);" \
    "vendor script $(stat -c %s "$scratch/vendor.orig.sh") bytes + bash $(stat -c %s "$bash") bytes + the tools it runs;"
echo "              cloud-init $(du -sb "$ci_path/cloudinit" | cut -f1) bytes of Python + its PyPI dependencies" \
    "$(du -sb "$ci_home"/venv/lib/python3*/site-packages | cut -f1) bytes + python3 $(stat -c %s "$py_bin") bytes and its standard library"
timings=${OSCONF_E2E_TIMINGS:-target/e2e-run/timings.txt}
echo "  boot rows:  read from $timings$([[ -f $timings ]] && echo " ($(date -u -r "$timings" '+%Y-%m-%d %H:%M UTC'), bash tests/e2e/run, qemu TCG)")"
echo
python3 - "$results" "$timings" <<'EOF'
import math, statistics, sys

runs = {}
for line in open(sys.argv[1]):
    label, wall_ns, rss_kib, _status = line.split()
    runs.setdefault(tuple(label.split("/")), []).append((int(wall_ns) / 1e6, int(rss_kib)))

def fig(medium, tool, stack):
    r = runs.get((medium, tool, stack))
    if not r:
        return None
    wall = sorted(w for w, _ in r)
    return statistics.median(wall), wall[math.ceil(0.9 * len(wall)) - 1], max(k for _, k in r)

media = [m for m in ("tmpfs", "ext4") if any(k[0] == m for k in runs)]
stacks = {"sysconfig": "sysconfig", "ifupdown": "eni", "netplan": "netplan", "networkd": "networkd"}
head = "{:<6} {:<19} {:>17} {:>17} {:>19} {:>9} {:>11} {:>7} {:>7} {:>10}"
print(head.format("", "", "osconf ms", "vendor ms", "cloud-init ms", "vendor/", "cloud-init/", "", "peak RSS", "KiB"))
print(head.format("medium", "stack (cloud-init)", "median (p90)", "median (p90)", "median (p90)", "osconf", "osconf", "osconf", "vendor", "cloud-init"))
worst, rss_max = math.inf, 0
for m in media:
    for s, kind in stacks.items():
        o, v, c = fig(m, "osconf", s), fig(m, "vendor", s), fig(m, "cloud-init", s)
        cell = lambda f: f"{f[0]:.2f} ({f[1]:.2f})" if f else "-"
        ratio = lambda f: f"{f[0] / o[0]:.1f}x" if f else "-"
        worst = min(worst, c[0] / o[0])
        rss_max = max(rss_max, o[2])
        label = s if s == kind else f"{s} ({kind})"
        print(head.format(m, label, cell(o), cell(v), cell(c), ratio(v), ratio(c),
                          o[2], v[2] if v else "-", c[2]))
    floor = fig(m, "no-op", "-")
    print(f"{m:<6} no-op floor (process creation): {floor[0]:.2f} ms median, {floor[2]} KiB")
boots = {}
try:
    for line in open(sys.argv[2]):
        f = line.split()
        if len(f) >= 7 and f[1].isdigit() and f[-1].endswith("s"):
            boots.setdefault(f[0], {}).setdefault(f[2] == "yes", []).append(float(f[-1][:-1]) * 1000)
except OSError:
    pass
if boots:
    for setup, by in boots.items():
        cell = lambda ms: f"{statistics.median(ms):.0f}" if ms else "-"
        print(f"boot   {setup:<19} osconf.service ms, with os.conf {cell(by.get(True, [])):>6}, "
              f"without {cell(by.get(False, [])):>5}   (qemu TCG guest, tests/e2e)")
else:
    print("boot   no figures: run bash tests/e2e/run first (it writes target/e2e-run/timings.txt)")
print()
print("targets:")
for ok, text in (
    (worst >= 100, f"osconf at least 100x faster than cloud-init's renderer on every row: lowest {worst:.1f}x"),
    (rss_max < 4096, f"osconf's peak RSS under 4 MiB (4096 KiB): {rss_max} KiB"),
):
    print(f"  {'HOLDS ' if ok else 'MISSED'}  {text}")
EOF
