#!/usr/bin/env bash
# Whole-process benchmark of osconf at a boot without os.conf (issue 7: "exit 0 quickly; within 1.5x
# a static no-op process when partition 1 is mounted"). A benchmark that reports, not a timed test.
#
#   bash bench/boot.sh [--runs N]   N measured runs of each command (default 500)
#   bash bench/boot.sh --smoke      10 runs of each: proves the benchmark still works (scripts/test-all)
#
# Needs root (a mount namespace, a loop device), gcc with a static libc, python3. Rows, each measured
# by bench/measure.c (fork + exec + wait4), interleaved with the no-op of its own group. `plan` runs
# the same path as `apply` up to os.conf (partition 1 found, its mount, os.conf absent: exit 0) and
# can never change this host, should an os.conf turn up here:
#   no-op          a static `int main(void){return 0;}`: the floor
#   mounted-p1     `osconf plan` on root /, partition 1 mounted: the whole finder (mountinfo, the
#                  sysfs walk / → vda2 → vda → vda1, the mount of vda1, os.conf absent there). This
#                  host's / is an unpartitioned disk, so it runs in a private mount namespace where
#                  /proc, /sys and /dev are bind mounts of a fake tree (regular files: reading them
#                  costs less than procfs generating mountinfo does, which the next rows pay)
#   device         `osconf plan --device /dev/loopN`, an ext4 loop device mounted at a scratch
#                  directory, os.conf absent: the real kernel's mountinfo and stat of the device
#   host           `osconf plan` on this host as it is (/ on a disk without partitions: the real
#                  sysfs walk, then the paths under /)
#   version        `osconf --version`: what starting this binary costs before it does anything
# Every run must exit 0 and say "no os.conf found"; it exits 1 if one does not.
set -euo pipefail

me=boot.sh usage_lines=5,6 number_opts=(runs) switch_opts=()
runs=500
smoke() { runs=10; }
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_args "$@"
((EUID == 0)) || missing "needs root (a mount namespace and a loop device)"
need cargo gcc python3 unshare losetup mkfs.ext4 mount umount

bench_build

scratch=$(mktemp -d /tmp/osconf-boot-bench.XXXXXX)
loopdev=
cleanup() {
    umount "$scratch/p1" 2>/dev/null || true
    [[ -n $loopdev ]] && losetup -d "$loopdev"
    rm -rf "$scratch"
}
trap cleanup EXIT
mkdir -p "$scratch/bin"
helpers "$scratch/bin"
cp "$osconf" "$scratch/bin/osconf"

# --- The fake host: vda with vda1 (mounted at $scratch/boot, empty) and vda2 (/) ---------------------
fake=$scratch/fake
disk=$fake/sys/devices/pci0000:00/0000:00:04.0/virtio1/block/vda
mkdir -p "$fake/proc/self" "$fake/sys/class/block" "$fake/sys/dev/block" "$fake/dev" "$scratch/boot"
device() { # device DIR NAME MAJ:MIN [PARTITION START]
    mkdir -p "$1"
    echo "$3" >"$1/dev"
    echo 41943040 >"$1/size"
    if [[ -n ${4:-} ]]; then echo "$4" >"$1/partition"; echo "$5" >"$1/start"; fi
    ln -s "../..${1#"$fake/sys"}" "$fake/sys/class/block/$2"
    ln -s "../..${1#"$fake/sys"}" "$fake/sys/dev/block/$3"
    : >"$fake/dev/$2"
}
device "$disk" vda 254:0
device "$disk/vda1" vda1 254:1 1 2048
device "$disk/vda2" vda2 254:2 2 1050624
# As a systemd host's mountinfo reads, with partition 1 on a directory of ours.
cat >"$fake/proc/self/mountinfo" <<EOM
22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
23 27 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
24 27 0:5 / /dev rw,nosuid,relatime shared:8 - devtmpfs udev rw,size=4008052k,nr_inodes=1002013,mode=755
25 24 0:23 / /dev/pts rw,nosuid,noexec,relatime shared:9 - devpts devpts rw,gid=5,mode=620,ptmxmode=000
26 27 0:24 / /run rw,nosuid,nodev,noexec,relatime shared:5 - tmpfs tmpfs rw,size=806520k,mode=755
27 1 254:2 / / rw,relatime shared:1 - ext4 /dev/vda2 rw,errors=remount-ro
28 23 0:6 / /sys/kernel/security rw,nosuid,nodev,noexec,relatime shared:3 - securityfs securityfs rw
29 24 0:25 / /dev/shm rw,nosuid,nodev shared:10 - tmpfs tmpfs rw
30 26 0:26 / /run/lock rw,nosuid,nodev,noexec,relatime shared:6 - tmpfs tmpfs rw,size=5120k
31 23 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
32 23 0:28 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:7 - pstore pstore rw
33 23 0:29 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:11 - bpf bpf rw,mode=700
34 22 0:30 / /proc/sys/fs/binfmt_misc rw,relatime shared:13 - autofs systemd-1 rw,fd=30,pgrp=1,timeout=0
35 24 0:19 / /dev/mqueue rw,nosuid,nodev,noexec,relatime shared:14 - mqueue mqueue rw
36 23 0:7 / /sys/kernel/debug rw,nosuid,nodev,noexec,relatime shared:15 - debugfs debugfs rw
60 27 254:1 / $scratch/boot rw,relatime shared:30 - vfat /dev/vda1 rw,fmask=0022,dmask=0022,codepage=437
EOM

# --- A real ext4 loop device, mounted ---------------------------------------------------------------
truncate -s 16M "$scratch/p1.img"
mkfs.ext4 -q -F "$scratch/p1.img"
loopdev=$(losetup -f --show "$scratch/p1.img")
mkdir -p "$scratch/p1"
mount -t ext4 "$loopdev" "$scratch/p1"

# --- Measuring ----------------------------------------------------------------------------------------
# rounds RESULTS LABEL CMD... : $runs rounds (after one warm-up) of no-op then CMD, each checked.
cat >"$scratch/rounds.sh" <<'EOS'
set -euo pipefail
bin=$1 results=$2 runs=$3 label=$4 expect=$5
shift 5
one() {
    local l=$1; shift
    if ! "$bin/measure" "$results" "$l" "$@" 2>"$results.err"; then
        echo "boot.sh: $l failed: $*" >&2; cat "$results.err" >&2; exit 1
    fi
}
for ((i = 0; i <= runs; i++)); do
    one "no-op($label)" "$bin/noop"
    one "$label" "$@" >/dev/null
    [[ -z $expect ]] || grep -q "$expect" "$results.err" || {
        echo "boot.sh: $label did not do its job (no \"$expect\"):" >&2; cat "$results.err" >&2; exit 1; }
    ((i > 0)) || : >"$results"   # the first round warms up
done
EOS
echo "== measuring: $runs rounds per row"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
results=$scratch/results
all=$scratch/all
: >"$all"
unshare -m --propagation private bash -c '
    set -e
    mount --bind "$1/proc" /proc; mount --bind "$1/sys" /sys; mount --bind "$1/dev" /dev
    shift
    bash "$@"' _ "$fake" "$scratch/rounds.sh" "$scratch/bin" "$results" "$runs" mounted-p1 \
    "partition 1 of vda, the disk holding /" "$scratch/bin/osconf" plan
cat "$results" >>"$all"
bash "$scratch/rounds.sh" "$scratch/bin" "$results" "$runs" device "mounted at $scratch/p1" \
    "$scratch/bin/osconf" plan --device "$loopdev"
cat "$results" >>"$all"
bash "$scratch/rounds.sh" "$scratch/bin" "$results" "$runs" host "no os.conf found" "$scratch/bin/osconf" plan
cat "$results" >>"$all"
# What starting this binary costs at all, whatever it then does: the floor osconf cannot go under.
bash "$scratch/rounds.sh" "$scratch/bin" "$results" "$runs" version "" "$scratch/bin/osconf" --version
cat "$results" >>"$all"

echo
echo "osconf boot benchmark: $runs runs each, $(uname -srm), $(nproc) CPU(s)"
echo "  load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  invocation: $invocation"
echo "  mounted-p1: osconf plan   (private mount namespace, fake /proc /sys /dev: / on vda2, vda1 mounted at $scratch/boot)"
echo "  device:     osconf plan --device $loopdev   (ext4 mounted at $scratch/p1)"
echo "  host:       osconf plan   (this host: / on $(findmnt -n -o SOURCE /) without partitions)"
echo "  binary:     $osconf, $(stat -c %s "$osconf") bytes"
echo
python3 - "$all" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, wall_ns, rss_kib, _ = line.split()
    runs.setdefault(label, []).append(int(wall_ns) / 1e6)
row = "{:<12} {:>9} {:>10} {:>12} {:>15} {:>12}"
print(row.format("", "min ms", "median ms", "no-op min", "no-op median", "ratio (med)"))
ratios = {}
for label in ("mounted-p1", "device", "host", "version"):
    wall, noop = runs[label], runs[f"no-op({label})"]
    ratios[label] = statistics.median(wall) / statistics.median(noop), min(wall) / min(noop)
    print(row.format(label, f"{min(wall):.3f}", f"{statistics.median(wall):.3f}", f"{min(noop):.3f}",
                     f"{statistics.median(noop):.3f}", f"{ratios[label][0]:.2f}x"))
print()
med, best = ratios["mounted-p1"]
print(f"target: {'HOLDS ' if med <= 1.5 else 'MISSED'}  partition 1 mounted within 1.5x the no-op: "
      f"{med:.2f}x of medians, {best:.2f}x of minima (--version alone: {ratios['version'][0]:.2f}x, "
      f"{ratios['version'][1]:.2f}x)")
EOF
