#!/usr/bin/env bash
# How long the image toolkit takes per format and image size (issue 16's closing note): `osconf-image
# check`, `prepare` and `test --boots N` on one image in each format ECS imports. A benchmark that
# reports, not a timed test.
#
#   bash bench/images.sh [--boots N] [--size MIB] [--noboot]   sizes 256 MiB and 2 GiB (or MIB),
#                                      `image test --boots N` (default 3; --noboot: none)
#   bash bench/images.sh --smoke       256 MiB only, check and prepare only: proves the script works
#
# Needs root (tests/e2e's image builder), python3, gcc with a static libc, qemu-img, and for the test
# column qemu-system-x86_64 and the e2e tools of .ci/packages.txt. The image is tests/e2e's `syslinux`
# setup without osconf (busybox root on ext4 in partition 2, syslinux on a bootable FAT32 partition
# 1, MBR), its partition 2 grown to make the disk SIZE, as a sparse raw file; from it `qemu-img
# convert` makes a qcow2, a dynamic and a fixed VHD, a monolithic sparse and a stream-optimized VMDK.
# On a fresh copy of each, timed by bench/measure.c (fork, exec, wait4: the whole process):
#   check     `osconf-image check DISK --json` (exit 1 is expected: `size` (>5 GiB), `agent` and
#             `root-password` (tests/e2e's image has a usable one) fail, and nothing else may)
#   prepare   `osconf-image prepare DISK` (installs osconf: raw files and fixed VHDs in place,
#             the others through qemu-img's raw copy); then `check` must pass `agent` and
#             `qemu-img check` (qcow2, VMDK) must find no errors
#   test      `osconf-image test DISK --boots N --json --accel tcg` (a qcow2 overlay for the
#             formats other than raw); it must pass
set -euo pipefail

me=images.sh usage_lines=6,8 number_opts=(boots size) switch_opts=(noboot)
boots=3 size= noboot=
smoke() { noboot=yes; size=256; }
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_args "$@"
[[ -z $noboot ]] || boots=0
if [[ -n $size ]]; then sizes=("$size"); else sizes=(256 2048); fi
((EUID == 0)) || missing "needs root (tests/e2e's image builder)"
need cargo gcc python3 qemu-img sfdisk mkfs.ext4 mkfs.vfat mcopy syslinux
((boots == 0)) || need qemu-system-x86_64

bench_build
toolkit=$target_dir/release/osconf-image
scratch=$(mktemp -d /var/tmp/osconf-bench-images.XXXXXX)
bench_dirs+=("$scratch")
mkdir "$scratch/bin"
helpers "$scratch/bin"
measure_bin=$scratch/bin/measure
results=$scratch/results

declare -A convert=(
    [qcow2]="-O qcow2" [vhd-dynamic]="-O vpc -o subformat=dynamic"
    [vhd-fixed]="-O vpc -o subformat=fixed,force_size=on"
    [vmdk-sparse]="-O vmdk -o subformat=monolithicSparse"
    [vmdk-stream]="-O vmdk -o subformat=streamOptimized"
)
formats=(raw qcow2 vhd-dynamic vhd-fixed vmdk-sparse vmdk-stream)

# base MIB: the raw image of MIB MiB, built by tests/e2e's code (image_test.build), in $scratch.
base() {
    OSCONF_E2E_BINARY=$osconf python3 - "$scratch/base-$1" "$1" <<'EOF' >/dev/null
import sys
from pathlib import Path
sys.path.insert(0, "tests/e2e")
import e2e, image_test, setups  # noqa: E401
work, mib = Path(sys.argv[1]), int(sys.argv[2])
# Partition 2 takes what partitions 1 and GPT-less MBR leave (1 MiB spare at the end).
e2e.P2_SIZE = mib * e2e.MIB - e2e.P2_START - e2e.MIB
setup = next(s for s in setups.SETUPS if s.name == "syslinux")
image_test.build(setup, e2e.Cache(e2e.REPO / "target/e2e-cache"), work, False)
EOF
    echo "$scratch/base-$1/disk.raw"
}

# timed LABEL OK_STATUSES COMMAND...: one measured run; its exit status must be among OK_STATUSES.
timed() {
    local label=$1 ok=$2 status
    shift 2
    set +e
    "$measure_bin" "$results" "$label" "$@" >"$scratch/last.out" 2>"$scratch/last.err"
    status=$?
    set -e
    [[ " $ok " == *" $status "* ]] || { cat "$scratch/last.out" "$scratch/last.err" >&2; die "$label exited $status: $*"; }
    tail -1 "$results" | awk '{ printf "   %s: %.3f s, peak RSS %d KiB\n", $1, $2 / 1e9, $3 }'
}

# verdicts FILE: "key verdict" per line of check's JSON.
verdicts() {
    python3 -c 'import json, sys
for c in json.load(open(sys.argv[1]))["checks"]: print(c["key"], c["result"])' "$1"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for size in "${sizes[@]}"; do
    echo "== building the ${size} MiB image"
    raw=$(base "$size")
    for fmt in "${formats[@]}"; do
        dir=$scratch/$size-$fmt
        mkdir "$dir"
        if [[ $fmt == raw ]]; then
            disk=$dir/disk.raw
            cp --sparse=always "$raw" "$disk"
        else
            disk=$dir/disk.${fmt%%-*}
            # shellcheck disable=SC2086 # the options are words
            qemu-img convert ${convert[$fmt]} "$raw" "$disk"
        fi
        echo "== $size MiB $fmt: $(du -k "$disk" | cut -f1) KiB allocated"
        timed "$size/$fmt/check" "1" "$toolkit" check "$disk" --json
        # The image is small, has no agent yet, and tests/e2e gives root a usable password.
        fails=$(verdicts "$scratch/last.out" | awk '$2 == "fail" { print $1 }' | tr '\n' ' ')
        [[ $fails == "size agent root-password " ]] || die "$size $fmt: check fails $fails(expected: size agent root-password)"
        timed "$size/$fmt/prepare" "0" "$toolkit" prepare "$disk"
        timed "$size/$fmt/check-after" "1" "$toolkit" check "$disk" --json
        verdicts "$scratch/last.out" | grep -x "agent pass" >/dev/null || die "$size $fmt: prepare left no agent"
        if [[ $fmt == qcow2 || $fmt == vmdk-* ]]; then
            qemu-img check "$disk" >/dev/null || die "$size $fmt: qemu-img check after prepare"
        fi
        if ((boots > 0)); then
            timed "$size/$fmt/test" "0" "$toolkit" test "$disk" --boots "$boots" --json --accel tcg \
                --timeout 300 --work "$dir/work"
        fi
        rm -rf "$dir"
    done
    rm -rf "$scratch/base-$size"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "  invocation: $invocation"
echo "  load average before / after: $load_before / $load_after   (other work skews the figures)"
echo "  toolkit:    $toolkit, $(stat -c %s "$toolkit") bytes; qemu-img $(qemu-img --version | head -1 | cut -d' ' -f3)"
python3 - "$results" "$boots" <<'EOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    label, ns, rss, _ = line.split()
    size, fmt, what = label.split("/")
    rows.setdefault((int(size), fmt), {})[what] = (int(ns) / 1e9, int(rss))
test = int(sys.argv[2]) > 0
print(f"\n{'size MiB':>8} {'format':12} {'check s':>8} {'prepare s':>10} {'peak RSS KiB':>13}"
      + (f" {'test --boots ' + sys.argv[2] + ' s':>19}" if test else ""))
for (size, fmt), r in rows.items():  # in the order measured
    print(f"{size:>8} {fmt:12} {r['check'][0]:>8.3f} {r['prepare'][0]:>10.3f} "
          f"{max(v[1] for k, v in r.items() if k != 'test'):>13}" + (f" {r['test'][0]:>19.1f}" if test else ""))
EOF
