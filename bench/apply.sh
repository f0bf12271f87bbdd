#!/usr/bin/env bash
# Whole-process benchmark of `osconf apply` (issue 3): a benchmark that reports, not a timed test.
#
#   bash bench/apply.sh [--runs N]   N measured runs of each command (default 200)
#   bash bench/apply.sh --smoke      5 runs of each: proves the benchmark still works (scripts/test-all)
#   bash bench/apply.sh --ext4 ...   the same rows on an ext4 loop image (root only) instead of tmpfs:
#                                    on a disk every flush is a journal commit (issue 8: at most 4 per
#                                    apply, ext4 within 5x of tmpfs); run once without and once with it
#
# Three (four) commands are measured the same way, interleaved (one of each per round, after one unmeasured
# warm-up round), by bench/measure.c (fork + exec + wait4: wall time and the child's ru_maxrss):
#   osconf   osconf apply --root <R> --no-live, R a fresh copy of examples/rootfs/centos7 with
#            examples/classic/os.conf at R/boot/aliyun_custom_image/os.conf
#   no-op    a static `int main(void){return 0;}`: the floor (process creation + the helper's overhead)
#   vendor   the vendor's sample parsing script (see "The vendor's script" below), `bash vendor.sh start`,
#            on its own fresh copy of the same root and os.conf
#   vendor+chpasswd  (as root, where shadow-utils' chpasswd exists) the same script with a real
#            `chpasswd -R <its root> -c SHA512`, so that it too hashes the password
# Copying the roots and checking the results are not timed. Everything runs on a tmpfs: one mounted for
# the run when we are root (unmounted at exit), else a directory in /dev/shm.
#
# It prints min, median and p90 wall time, peak RSS (the largest ru_maxrss of all runs), the
# vendor/osconf ratio of medians, the binary size, the exact command lines, and whether the targets
# hold (median < 5 ms, peak RSS < 4 MiB, >= 30x faster than the vendor script). It exits 0 whatever
# the figures are; it exits 1 if any measured command fails or did not do its job, 2 on a usage error.
#
# Builds with `cargo build --release --locked` into $CARGO_TARGET_DIR (or wherever cargo's own
# configuration puts it; ./target by default). Needs gcc with a static libc (libc6-dev), python3, bash.
set -euo pipefail

usage() { sed -n '4,5p' "$0" | sed 's/^# *//'; }

runs=200
ext4=
invocation="bash bench/apply.sh${*:+ $*}"
while (($#)); do
    case $1 in
    --runs)
        [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "apply.sh: --runs needs a positive number" >&2; exit 2; }
        runs=$2
        shift 2
        ;;
    --smoke) runs=5; shift ;;
    --ext4) ext4=yes; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "apply.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
vendor_doc=$repo/../shared/reference/customized-linux-images.md

for tool in cargo gcc python3; do
    command -v "$tool" >/dev/null || { echo "apply.sh: $tool not found" >&2; exit 1; }
done
[[ -f $vendor_doc ]] || { echo "apply.sh: the vendor's document is not at $vendor_doc" >&2; exit 1; }

# --- Build --------------------------------------------------------------------------------------
echo "== cargo build --release --locked"
cargo build --release --locked --quiet
target_dir=$(cargo metadata --format-version 1 --no-deps --offline |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
osconf=$target_dir/release/osconf
[[ -x $osconf ]] || { echo "apply.sh: no binary at $osconf after the build" >&2; exit 1; }

# --- Scratch tmpfs ------------------------------------------------------------------------------
scratch=$(mktemp -d /tmp/osconf-bench.XXXXXX)
mounted=
exec_dir=
image=
cleanup() {
    if [[ -n $mounted ]]; then
        umount "$scratch" || echo "apply.sh: could not unmount $scratch" >&2
    fi
    rm -rf "$scratch" ${exec_dir:+"$exec_dir"} ${image:+"$image"}
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [[ -n $ext4 ]]; then
    # An ext4 image on this machine's disk, loop-mounted (mount -o loop detaches it at umount).
    ((EUID == 0)) || { echo "apply.sh: --ext4 needs root (mount -o loop)" >&2; exit 1; }
    image=$(mktemp /var/tmp/osconf-bench.XXXXXX.ext4)
    truncate -s 256M "$image"
    mkfs.ext4 -q -F "$image"
    mount -o loop "$image" "$scratch"
    mounted=yes
    chmod 0700 "$scratch"
elif ((EUID == 0)) && mount -t tmpfs -o size=64m,mode=0700 osconf-bench "$scratch" 2>/dev/null; then
    mounted=yes
else
    rmdir "$scratch"
    scratch=$(mktemp -d /dev/shm/osconf-bench.XXXXXX)
fi
if [[ -z $ext4 && $(stat -f -c %T "$scratch") != tmpfs ]]; then
    echo "apply.sh: warning: $scratch is not a tmpfs; file I/O is part of the figures" >&2
fi
# The helpers and stubs must be executable: /dev/shm is often mounted noexec (containers), then
# they live in a directory of their own under /tmp (only the roots need the tmpfs).
if findmnt -n -o OPTIONS -T "$scratch" 2>/dev/null | grep -qw noexec; then
    exec_dir=$(mktemp -d /tmp/osconf-bench-bin.XXXXXX)
fi
bin=${exec_dir:-$scratch}/bin
stubs=${exec_dir:-$scratch}/stubs
mkdir -p "$bin" "$stubs"

# --- Helpers, compiled at run time ----------------------------------------------------------------
gcc -static -O2 -o "$bin/measure" bench/measure.c
printf 'int main(void){return 0;}\n' >"$scratch/noop.c"
gcc -static -O2 -o "$bin/noop" "$scratch/noop.c"

# --- The vendor's script --------------------------------------------------------------------------
# It is the vendor's text, not ours to commit: it is extracted at run time from the fenced block under
# "## Example of the parsing script" in ../shared/reference/customized-linux-images.md, and only its
# paths are rewritten with sed, so that it does the same job as `osconf apply --root` on its own root:
#   first_partition_dir='/boot/'   -> '<root>/boot/'        (os.conf is read and removed there)
#   /etc/sysconfig/...             -> <root>/etc/sysconfig/... (network, ifcfg-ethN, route-ethN)
#   /etc/resolv.conf               -> <root>/etc/resolv.conf
#   /etc/init.d/network            -> <stubs>/network       (stub: records "stop"/"start", exits 0)
# `chpasswd` and `hostname` are found first on PATH in <stubs>: chpasswd copies its stdin to
# <root>/.chpasswd-stdin, hostname records its argument in <root>/.hostname-args, both exit 0. The
# stubs are what makes the vendor script harmless to the host; they also make it cheaper than on a
# real system (no PAM, no network restart), so the ratio below is in the vendor's favour. Its bugs are
# kept as they are (e.g. `s/^HOSTNAME=. */` keeps the end of an old value): only time is compared.
vendor_root=$scratch/root-vendor
vendor_pw_root=$scratch/root-vendor-pw
osconf_root=$scratch/root-osconf
awk '/^## Example of the parsing script/ { found = 1; next }
     found && /^```/ { if (inside) exit; inside = 1; next }
     inside { print }' "$vendor_doc" >"$scratch/vendor.orig.sh"
[[ -s $scratch/vendor.orig.sh ]] || { echo "apply.sh: no parsing script found in $vendor_doc" >&2; exit 1; }
# vendor_script ROOT STUBS OUT: the vendor's script with its paths pointed at ROOT and STUBS.
vendor_script() {
    local root=$1 stubs=$2 out=$3 leftover
    sed -e "s#^first_partition_dir='/boot/'#first_partition_dir='$root/boot/'#" \
        -e "s#/etc/sysconfig/#$root/etc/sysconfig/#g" \
        -e "s#/etc/resolv\.conf#$root/etc/resolv.conf#g" \
        -e "s#/etc/init\.d/network#$stubs/network#g" \
        "$scratch/vendor.orig.sh" >"$out"
    # Every path the script touches must now be inside the scratch dir: a new path in the vendor's
    # text must be seen here, not silently written on the host.
    if leftover=$(grep -nE "(^|[^/[:alnum:]_.-])/(etc|boot)/" "$out"); then
        echo "apply.sh: the vendor script still names host paths after rewriting:" >&2
        echo "$leftover" >&2
        exit 1
    fi
}
# make_stubs STUBS ROOT CHPASSWD: the stub commands, with CHPASSWD as the body of `chpasswd`.
make_stubs() {
    local dir=$1 root=$2
    mkdir -p "$dir"
    # shellcheck disable=SC2016 # "$*" and "$1" are the stubs' own arguments, expanded when they run
    {
        printf '#!/bin/sh\n%s\n' "$3" >"$dir/chpasswd"
        printf '#!/bin/sh\necho "$*" >%s/.hostname-args\n' "$root" >"$dir/hostname"
        printf '#!/bin/sh\necho "$1" >>%s/.network-calls\n' "$root" >"$dir/network"
    }
    chmod 755 "$dir"/*
}
vendor_script "$vendor_root" "$stubs" "$scratch/vendor.sh"
make_stubs "$stubs" "$vendor_root" "cat >$vendor_root/.chpasswd-stdin"
# A fourth row, where root and shadow-utils allow it: the same script with a REAL chpasswd, run as
# `chpasswd -R <its scratch root> -c SHA512` (the chroot option: only the scratch root's
# /etc/passwd and /etc/shadow are read and written). It does the password work osconf does (a
# SHA-512 crypt hash at 5000 rounds), which the stubbed row leaves out.
real_chpasswd=$(command -v chpasswd || true)
if ((EUID == 0)) && [[ -n $real_chpasswd ]]; then
    vendor_script "$vendor_pw_root" "$stubs-pw" "$scratch/vendor-pw.sh"
    make_stubs "$stubs-pw" "$vendor_pw_root" "exec $real_chpasswd -R $vendor_pw_root -c SHA512"
else
    real_chpasswd=
    echo "== no 'vendor+chpasswd' row: it needs root and shadow-utils' chpasswd"
fi
bash=$(command -v bash)

# --- One measured run of each ---------------------------------------------------------------------
results=$scratch/results
fresh_root() {
    rm -rf "$1"
    mkdir "$1"
    cp -a examples/rootfs/centos7/. "$1/"
    mkdir -p "$1/boot/aliyun_custom_image"
    cp examples/classic/os.conf "$1/boot/aliyun_custom_image/os.conf"
}
# measure LABEL COMMAND...: the command's output goes to <scratch>/LABEL.log, shown if it fails.
measure() {
    local label=$1 log=$scratch/$1.log
    shift
    if ! "$bin/measure" "$results" "$label" "$@" >"$log" 2>&1; then
        echo "apply.sh: $label failed: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}
# expect LABEL FILE TEXT: FILE must contain the line TEXT.
expect() {
    grep -qxF -- "$3" "$2" 2>/dev/null || {
        echo "apply.sh: $1 did not do its job: ${2#"$scratch"/} lacks the line \"$3\"" >&2
        exit 1
    }
}
# did_the_job LABEL ROOT: os.conf consumed; both NICs, a route, the DNS servers written.
did_the_job() {
    local label=$1 root=$2 scripts=$2/etc/sysconfig/network-scripts
    [[ ! -e $root/boot/aliyun_custom_image/os.conf ]] || {
        echo "apply.sh: $label did not do its job: os.conf is still there" >&2
        exit 1
    }
    expect "$label" "$scripts/ifcfg-eth0" "IPADDR=10.171.254.123"
    expect "$label" "$scripts/ifcfg-eth0" "HWADDR=00:8c:fa:5e:14:23"
    expect "$label" "$scripts/ifcfg-eth1" "IPADDR=42.120.74.105"
    expect "$label" "$scripts/route-eth0" "10.0.0.0/8 via 10.171.254.1 dev eth0"
    expect "$label" "$root/etc/resolv.conf" "nameserver 7.7.7.7"
    expect "$label" "$root/etc/resolv.conf" "nameserver 8.8.8.8"
}
osconf_cmd=("$osconf" apply --root "$osconf_root" --no-live)
vendor_cmd=("$bash" "$scratch/vendor.sh" start)
round() {
    measure no-op "$bin/noop"

    fresh_root "$osconf_root"
    measure osconf "${osconf_cmd[@]}"
    did_the_job osconf "$osconf_root"
    # The password: the root line of /etc/shadow now carries a new SHA-512 crypt hash.
    if grep -qxF -f <(grep '^root:' examples/rootfs/centos7/etc/shadow) "$osconf_root/etc/shadow" ||
        ! grep -q '^root:[$]6[$]' "$osconf_root/etc/shadow"; then
        echo "apply.sh: osconf did not do its job: the root password hash is unchanged" >&2
        exit 1
    fi

    fresh_root "$vendor_root"
    PATH=$stubs:$PATH measure vendor "${vendor_cmd[@]}"
    did_the_job vendor "$vendor_root"
    expect vendor "$vendor_root/.chpasswd-stdin" "root:qwer1234"
    expect vendor "$vendor_root/.hostname-args" "iZ23r29djmjZ"
    expect vendor "$vendor_root/.network-calls" "start"

    if [[ -n $real_chpasswd ]]; then
        fresh_root "$vendor_pw_root"
        PATH=$stubs-pw:$PATH measure vendor+chpasswd "$bash" "$scratch/vendor-pw.sh" start
        did_the_job vendor+chpasswd "$vendor_pw_root"
        if ! grep -q '^root:[$]6[$]' "$vendor_pw_root/etc/shadow" ||
            grep -qxF -f <(grep '^root:' examples/rootfs/centos7/etc/shadow) "$vendor_pw_root/etc/shadow"; then
            echo "apply.sh: vendor+chpasswd did not do its job: the root password hash is unchanged" >&2
            exit 1
        fi
    fi
}

echo "== measuring: 1 warm-up round, then $runs rounds (no-op, osconf, vendor in turn)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
round
rm -f "$results"
for ((i = 0; i < runs; i++)); do
    round
done

# --- Report -----------------------------------------------------------------------------------------
size=$(stat -c %s "$osconf")
echo
echo "osconf benchmark: $runs runs each, $(uname -srm), $(nproc) CPU(s), scratch on $(stat -f -c %T "$scratch")"
echo "  load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg)   (other work skews the figures)"
echo "  invocation: $invocation"
echo "  osconf:     ${osconf_cmd[*]}   (fresh copy of examples/rootfs/centos7 + examples/classic/os.conf each run)"
echo "  no-op:      $bin/noop   (gcc -static -O2 of int main(void){return 0;})"
echo "  vendor:     PATH=$stubs:\$PATH ${vendor_cmd[*]}   (fresh copy of the same root each run)"
if [[ -n $real_chpasswd ]]; then
    echo "  vendor+chpasswd: the same with chpasswd running $real_chpasswd -R <its root> -c SHA512"
fi
echo "  binary:     $osconf, $size bytes ($((size / 1024)) KiB)"
echo
python3 - "$results" <<'EOF'
import math, statistics, sys

runs = {}
for line in open(sys.argv[1]):
    label, wall_ns, rss_kib, _status = line.split()
    runs.setdefault(label, []).append((int(wall_ns) / 1e6, int(rss_kib)))

def p90(values):
    values = sorted(values)
    return values[math.ceil(0.9 * len(values)) - 1]  # nearest rank

row = "{:<16} {:>10} {:>10} {:>10} {:>15}"
print(row.format("", "min ms", "median ms", "p90 ms", "peak RSS KiB"))
figures = {}
for label in ("osconf", "no-op", "vendor", "vendor+chpasswd"):
    if label not in runs:
        continue
    wall = [w for w, _ in runs[label]]
    figures[label] = (statistics.median(wall), p90(wall), max(r for _, r in runs[label]))
    median, tail, rss = figures[label]
    print(row.format(label, f"{min(wall):.3f}", f"{median:.3f}", f"{tail:.3f}", rss))

median, _, rss = figures["osconf"]
ratio = figures["vendor"][0] / median
floor = figures["no-op"][0]
above = (figures["vendor"][0] - floor) / (median - floor) if median > floor else math.inf
print()
print(f"speed-up vendor/osconf (medians): {ratio:.1f}x")
print(f"  above the no-op floor: osconf {median - floor:.3f} ms, vendor {figures['vendor'][0] - floor:.3f} ms ({above:.1f}x)")
if "vendor+chpasswd" in figures:
    real = figures["vendor+chpasswd"][0]
    print(f"speed-up vendor+chpasswd/osconf (medians, both hashing the password): {real / median:.1f}x")
print()
print("targets:")
for ok, text in (
    (median < 5, f"median under 5 ms: {median:.3f} ms"),
    (rss < 4096, f"peak RSS under 4 MiB (4096 KiB): {rss} KiB"),
    (ratio >= 30, f"at least 30x faster than the vendor script: {ratio:.1f}x"),
):
    print(f"  {'HOLDS ' if ok else 'MISSED'}  {text}")
EOF
