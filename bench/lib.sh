# bench/lib.sh: what the bench scripts share (sourced, never run): the command line, the build, the
# scratch media (a tmpfs, an ext4 loop image) and their cleanup, the measuring helper, fresh roots,
# the vendor's script and the checks that a measured command did its job. It never touches the host
# outside the scratch directories it creates; everything it mounts or creates is undone at exit.
#
# The sourcing script sets `me` (its name, for messages); sourcing moves to the repository's top.
# shellcheck shell=bash

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "$me: $*" >&2; exit 1; }

# --- Command line -----------------------------------------------------------------------------------
# bench_args "$@": the command line every bench script takes, once the script has set
#   usage_lines  the lines of its header comment that `-h` prints (a sed range: `4,5`)
#   number_opts  its options taking a positive whole number, each into the variable of that name
#                (`--runs N` sets runs)
#   switch_opts  its options without a value, each setting the variable of that name to `yes`
#   smoke()      what `--smoke` sets (a few runs: scripts/test-all proves the script still works)
# and sets invocation (the command as given, for the report) and smoke_run (`yes` under --smoke).
# A usage error exits 2.
usage() { sed -n "${usage_lines}p" "$0" | sed 's/^# *//'; }
bench_args() {
    invocation="bash bench/$me${*:+ $*}"
    local name
    while (($#)); do
        name=${1#--}
        if [[ $1 == --* && " ${number_opts[*]-} " == *" $name "* ]]; then
            [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "$me: $1 needs a positive number" >&2; exit 2; }
            printf -v "$name" %s "$2"
            shift 2
            continue
        fi
        case $1 in
        --smoke) smoke; smoke_run=yes ;;
        -h | --help) usage; exit 0 ;;
        *)
            [[ $1 == --* && " ${switch_opts[*]-} " == *" $name "* ]] ||
                { echo "$me: unknown argument: $1" >&2; usage >&2; exit 2; }
            printf -v "$name" yes
            ;;
        esac
        shift
    done
}
smoke_run=
# need TOOL...: every TOOL is on PATH, else `missing`.
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || missing "$tool not found (.ci/packages.txt lists it)"
    done
}
# missing WHY: this machine lacks what the run needs (a tool, root). Run by hand that is an error; in
# the suite's --smoke run it is scripts/checks.sh's loud skip (exit 0), and under CI=true, where
# .ci/run installed everything, a failure.
missing() {
    [[ -n $smoke_run ]] || die "$*"
    suite=bench/$me
    # shellcheck source=scripts/checks.sh
    source scripts/checks.sh
    skip "$*"
}

# The vendor's document, whose sample script the benchmarks set beside osconf: not ours to commit, so
# read from beside the repository (OSCONF_VENDOR_DOC names another place). Optional: see vendor_extract.
vendor_doc=${OSCONF_VENDOR_DOC:-$PWD/../shared/reference/customized-linux-images.md}

# --- Cleanup: every mount and directory made here is undone at exit, also on Ctrl-C -----------------
bench_mounts=()
bench_dirs=()
bench_cleanup() {
    local i
    for ((i = ${#bench_mounts[@]} - 1; i >= 0; i--)); do
        umount "${bench_mounts[i]}" || echo "$me: could not unmount ${bench_mounts[i]}" >&2
    done
    ((${#bench_dirs[@]} == 0)) || rm -rf "${bench_dirs[@]}"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Build ------------------------------------------------------------------------------------------
# bench_build: `cargo build --release --locked`; sets target_dir and osconf (the binary).
bench_build() {
    echo "== cargo build --release --locked"
    cargo build --release --locked --quiet
    target_dir=$(cargo metadata --format-version 1 --no-deps --offline |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    osconf=$target_dir/release/osconf
    [[ -x $osconf ]] || die "no binary at $osconf after the build"
}

# --- Scratch media ----------------------------------------------------------------------------------
# tmpfs_scratch: sets scratch to a fresh tmpfs (mounted for the run when we are root, else a directory
# in /dev/shm) and bin_dir to a directory where executables may run (/dev/shm is often noexec).
tmpfs_scratch() {
    scratch=$(mktemp -d /tmp/osconf-bench.XXXXXX)
    bench_dirs+=("$scratch")
    if ((EUID == 0)) && mount -t tmpfs -o size=64m,mode=0700 osconf-bench "$scratch" 2>/dev/null; then
        bench_mounts+=("$scratch")
    else
        scratch=$(mktemp -d /dev/shm/osconf-bench.XXXXXX)
        bench_dirs+=("$scratch")
    fi
    if [[ $(stat -f -c %T "$scratch") != tmpfs ]]; then
        echo "$me: warning: $scratch is not a tmpfs; file I/O is part of the figures" >&2
    fi
    bin_dir=$scratch
    if findmnt -n -o OPTIONS -T "$scratch" 2>/dev/null | grep -qw noexec; then
        bin_dir=$(mktemp -d /tmp/osconf-bench-bin.XXXXXX)
        bench_dirs+=("$bin_dir")
    fi
}

# ext4_scratch DIR: (root only) makes a sparse 256 MiB ext4 image in DIR, which must be on a disk (not a
# tmpfs: fsync must reach the device), loop-mounts it and sets ext4_dir to the mount point. The image is
# removed at exit; `mount -o loop` detaches the loop device itself when it is unmounted.
ext4_scratch() {
    local image mnt
    image=$(mktemp "$1/osconf-bench-ext4.XXXXXX.img")
    bench_dirs+=("$image")
    truncate -s 256M "$image"
    mkfs.ext4 -q -F "$image"
    mnt=$(mktemp -d /tmp/osconf-bench-ext4.XXXXXX)
    bench_dirs+=("$mnt")
    mount -o loop "$image" "$mnt" || die "could not loop-mount $image"
    bench_mounts+=("$mnt")
    ext4_dir=$mnt
}

# --- Helpers, compiled at run time ------------------------------------------------------------------
# helpers DIR: gcc -static -O2 of bench/measure.c and of a no-op main into DIR.
helpers() {
    gcc -static -O2 -o "$1/measure" bench/measure.c
    printf 'int main(void){return 0;}\n' >"$1/noop.c"
    gcc -static -O2 -o "$1/noop" "$1/noop.c"
}

# rounds N: one unmeasured warm-up `round` (the script's own function, measuring into $results), then
# N measured ones; sets load_before and load_after (the load average around them).
rounds() {
    local i
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    round
    rm -f "$results"
    for ((i = 0; i < $1; i++)); do
        round
    done
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)
}

# measure RESULTS LABEL COMMAND...: one timed run (see bench/measure.c); the command's output goes to
# RESULTS.LABEL.log, which is shown if it fails.
measure() {
    local results=$1 label=$2 log
    log=$1.${2//\//_}.log
    shift 2
    if ! "$measure_bin" "$results" "$label" "$@" >"$log" 2>&1; then
        echo "$me: $label failed: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}

# fresh_root DIR [EXAMPLE]: DIR becomes a copy of examples/rootfs/EXAMPLE (centos7 by default) with
# examples/classic/os.conf at DIR/boot/aliyun_custom_image/os.conf.
fresh_root() {
    rm -rf "$1"
    mkdir "$1"
    cp -a "examples/rootfs/${2:-centos7}/." "$1/"
    mkdir -p "$1/boot/aliyun_custom_image"
    cp examples/classic/os.conf "$1/boot/aliyun_custom_image/os.conf"
}

# --- Did it do its job? -----------------------------------------------------------------------------
# expect LABEL FILE TEXT: FILE must contain the line TEXT.
expect() {
    grep -qxF -- "$3" "$2" 2>/dev/null || die "$1 did not do its job: $2 lacks the line \"$3\""
}
# did_the_job LABEL ROOT: os.conf consumed; both NICs, a route, the DNS servers written (sysconfig).
did_the_job() {
    local label=$1 root=$2 scripts=$2/etc/sysconfig/network-scripts
    [[ ! -e $root/boot/aliyun_custom_image/os.conf ]] || die "$label did not do its job: os.conf is still there"
    expect "$label" "$scripts/ifcfg-eth0" "IPADDR=10.171.254.123"
    expect "$label" "$scripts/ifcfg-eth0" "HWADDR=00:8c:fa:5e:14:23"
    expect "$label" "$scripts/ifcfg-eth1" "IPADDR=42.120.74.105"
    expect "$label" "$scripts/route-eth0" "10.0.0.0/8 via 10.171.254.1 dev eth0"
    expect "$label" "$root/etc/resolv.conf" "nameserver 7.7.7.7"
    expect "$label" "$root/etc/resolv.conf" "nameserver 8.8.8.8"
}
# new_root_hash LABEL ROOT EXAMPLE: the root line of ROOT/etc/shadow carries a new SHA-512 crypt hash.
new_root_hash() {
    if grep -qxF -f <(grep '^root:' "examples/rootfs/$3/etc/shadow") "$2/etc/shadow" ||
        ! grep -q '^root:[$]6[$]' "$2/etc/shadow"; then
        die "$1 did not do its job: the root password hash is unchanged"
    fi
}

# --- The vendor's script ----------------------------------------------------------------------------
# It is the vendor's text, not ours to commit: vendor_extract OUT takes it at run time from the fenced
# block under "## Example of the parsing script" in $vendor_doc. Without the document (a fresh clone
# with nothing beside it) it says so loudly and returns 1, under CI=true too: the vendor's rows are a
# comparison, not a test of osconf.
vendor_extract() {
    if [[ ! -f $vendor_doc ]]; then
        echo "*** SKIPPED bench/$me: the vendor's script: its document is not at $vendor_doc" \
            "(OSCONF_VENDOR_DOC names another place) ***"
        return 1
    fi
    awk '/^## Example of the parsing script/ { found = 1; next }
         found && /^```/ { if (inside) exit; inside = 1; next }
         inside { print }' "$vendor_doc" >"$1"
    [[ -s $1 ]] || die "no parsing script found in $vendor_doc"
}
# vendor_script ORIG ROOT STUBS OUT: the vendor's script ORIG with only its paths rewritten by sed, so
# that it does the same job as `osconf apply --root` on its own root:
#   first_partition_dir='/boot/'   -> '<root>/boot/'        (os.conf is read and removed there)
#   /etc/sysconfig/...             -> <root>/etc/sysconfig/... (network, ifcfg-ethN, route-ethN)
#   /etc/resolv.conf               -> <root>/etc/resolv.conf
#   /etc/init.d/network            -> <stubs>/network       (stub: records "stop"/"start", exits 0)
# `chpasswd` and `hostname` are found first on PATH in <stubs> (see make_stubs). The stubs are what
# makes the vendor script harmless to the host; they also make it cheaper than on a real system (no
# PAM, no network restart), so the ratio is in the vendor's favour. Its bugs are kept as they are
# (e.g. `s/^HOSTNAME=. */` keeps the end of an old value): only time is compared.
vendor_script() {
    local root=$2 stubs=$3 out=$4 leftover
    sed -e "s#^first_partition_dir='/boot/'#first_partition_dir='$root/boot/'#" \
        -e "s#/etc/sysconfig/#$root/etc/sysconfig/#g" \
        -e "s#/etc/resolv\.conf#$root/etc/resolv.conf#g" \
        -e "s#/etc/init\.d/network#$stubs/network#g" \
        "$1" >"$out"
    # Every path the script touches must now be inside the scratch dir: a new path in the vendor's
    # text must be seen here, not silently written on the host.
    if leftover=$(grep -nE "(^|[^/[:alnum:]_.-])/(etc|boot)/" "$out"); then
        die "the vendor script still names host paths after rewriting:"$'\n'"$leftover"
    fi
}
# make_stubs STUBS ROOT CHPASSWD: the stub commands, with CHPASSWD as the body of `chpasswd`;
# `hostname` records its argument in ROOT/.hostname-args, `network` its own in ROOT/.network-calls.
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
# vendor_did_its_job LABEL ROOT: did_the_job, and the stubs saw the password, host name and restart.
vendor_did_its_job() {
    did_the_job "$1" "$2"
    expect "$1" "$2/.chpasswd-stdin" "root:qwer1234"
    expect "$1" "$2/.hostname-args" "iZ23r29djmjZ"
    expect "$1" "$2/.network-calls" "start"
}
