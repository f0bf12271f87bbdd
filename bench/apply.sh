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
# Without the vendor's document (bench/lib.sh: vendor_doc) the vendor rows are skipped, loudly.
#
# Builds with `cargo build --release --locked` into $CARGO_TARGET_DIR (or wherever cargo's own
# configuration puts it; ./target by default). Needs gcc with a static libc (libc6-dev), python3, bash.
set -euo pipefail

me=apply.sh usage_lines=4,5 number_opts=(runs) switch_opts=(ext4)
runs=200
ext4=
smoke() { runs=5; }
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_args "$@"

need cargo gcc python3

bench_build
if [[ -n $ext4 ]]; then
    # An ext4 image on this machine's disk, loop-mounted (see ext4_scratch in bench/lib.sh).
    ((EUID == 0)) || die "--ext4 needs root (mount -o loop)"
    ext4_scratch /var/tmp
    scratch=$ext4_dir bin_dir=$ext4_dir
    chmod 0700 "$scratch"
else
    tmpfs_scratch
fi
bin=$bin_dir/bin
stubs=$bin_dir/stubs
mkdir -p "$bin" "$stubs"
helpers "$bin"
measure_bin=$bin/measure
results=$scratch/results

# The vendor's script (see vendor_script in bench/lib.sh), on its own scratch root.
vendor_root=$scratch/root-vendor
vendor_pw_root=$scratch/root-vendor-pw
osconf_root=$scratch/root-osconf
vendor=yes
if vendor_extract "$scratch/vendor.orig.sh"; then
    vendor_script "$scratch/vendor.orig.sh" "$vendor_root" "$stubs" "$scratch/vendor.sh"
    make_stubs "$stubs" "$vendor_root" "cat >$vendor_root/.chpasswd-stdin"
else
    vendor=
fi
# A fourth row, where root and shadow-utils allow it: the same script with a REAL chpasswd, run as
# `chpasswd -R <its scratch root> -c SHA512` (the chroot option: only the scratch root's
# /etc/passwd and /etc/shadow are read and written). It does the password work osconf does (a
# SHA-512 crypt hash at 5000 rounds), which the stubbed row leaves out.
real_chpasswd=$(command -v chpasswd || true)
if [[ -n $vendor ]] && ((EUID == 0)) && [[ -n $real_chpasswd ]]; then
    vendor_script "$scratch/vendor.orig.sh" "$vendor_pw_root" "$stubs-pw" "$scratch/vendor-pw.sh"
    make_stubs "$stubs-pw" "$vendor_pw_root" "exec $real_chpasswd -R $vendor_pw_root -c SHA512"
else
    real_chpasswd=
    echo "== no 'vendor+chpasswd' row: it needs the vendor's script, root and shadow-utils' chpasswd"
fi
bash=$(command -v bash)

# --- One measured run of each ---------------------------------------------------------------------
osconf_cmd=("$osconf" apply --root "$osconf_root" --no-live)
vendor_cmd=("$bash" "$scratch/vendor.sh" start)
round() {
    measure "$results" no-op "$bin/noop"

    fresh_root "$osconf_root"
    measure "$results" osconf "${osconf_cmd[@]}"
    did_the_job osconf "$osconf_root"
    new_root_hash osconf "$osconf_root" centos7

    if [[ -n $vendor ]]; then
        fresh_root "$vendor_root"
        PATH=$stubs:$PATH measure "$results" vendor "${vendor_cmd[@]}"
        vendor_did_its_job vendor "$vendor_root"
    fi

    if [[ -n $real_chpasswd ]]; then
        fresh_root "$vendor_pw_root"
        PATH=$stubs-pw:$PATH measure "$results" vendor+chpasswd "$bash" "$scratch/vendor-pw.sh" start
        did_the_job vendor+chpasswd "$vendor_pw_root"
        new_root_hash vendor+chpasswd "$vendor_pw_root" centos7
    fi
}

echo "== measuring: 1 warm-up round, then $runs rounds (no-op, osconf, vendor in turn)"
rounds "$runs"

# --- Report -----------------------------------------------------------------------------------------
size=$(stat -c %s "$osconf")
echo
echo "osconf benchmark: $runs runs each, $(uname -srm), $(nproc) CPU(s), scratch on $(stat -f -c %T "$scratch")"
echo "  load average before / after: $load_before / $load_after   (other work skews the figures)"
echo "  invocation: $invocation"
echo "  osconf:     ${osconf_cmd[*]}   (fresh copy of examples/rootfs/centos7 + examples/classic/os.conf each run)"
echo "  no-op:      $bin/noop   (gcc -static -O2 of int main(void){return 0;})"
if [[ -n $vendor ]]; then
    echo "  vendor:     PATH=$stubs:\$PATH ${vendor_cmd[*]}   (fresh copy of the same root each run)"
fi
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
floor = figures["no-op"][0]
ratio = None
print()
if "vendor" in figures:
    ratio = figures["vendor"][0] / median
    above = (figures["vendor"][0] - floor) / (median - floor) if median > floor else math.inf
    print(f"speed-up vendor/osconf (medians): {ratio:.1f}x")
    print(f"  above the no-op floor: osconf {median - floor:.3f} ms, vendor {figures['vendor'][0] - floor:.3f} ms ({above:.1f}x)")
else:
    print("speed-up vendor/osconf: not measured (no vendor script, see SKIPPED above)")
if "vendor+chpasswd" in figures:
    real = figures["vendor+chpasswd"][0]
    print(f"speed-up vendor+chpasswd/osconf (medians, both hashing the password): {real / median:.1f}x")
print()
print("targets:")
for ok, text in (
    (median < 5, f"median under 5 ms: {median:.3f} ms"),
    (rss < 4096, f"peak RSS under 4 MiB (4096 KiB): {rss} KiB"),
    (ratio and ratio >= 30, "at least 30x faster than the vendor script: "
     + (f"{ratio:.1f}x" if ratio else "not measured")),
):
    print(f"  {'HOLDS' if ok else 'SKIPPED' if ok is None else 'MISSED':<7} {text}")
EOF
