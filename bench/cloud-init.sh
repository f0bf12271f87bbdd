#!/usr/bin/env bash
# osconf beside cloud-init at boot (issue 14 §3): the same Debian 12 image, booted under the same
# qemu (TCG) with cloud-init and a NoCloud seed, and with osconf and os.conf, saying the same host
# name, password and network. A benchmark that reports, not a test (not in scripts/test-all: it
# needs network access for Debian's packages, then about 10 minutes of qemu per round here).
#
#   bash bench/cloud-init.sh [--rounds N]   N rounds of four boots (default 1)
#
# As root, with .ci/packages.txt's e2e tools (debootstrap, qemu-system-x86_64, mtools, …). The image
# is tests/e2e's (its download cache, target/e2e-cache/, is shared); its NIC is alone on a qemu hub:
# the guest never reaches any network. Work files and figures: target/bench-cloud-init/
# (results.txt, results.json, the serial logs). What it measures: bench/README.md.
set -euo pipefail

me=cloud-init.sh usage_lines=7,7 number_opts=(rounds) switch_opts=()
rounds=1
smoke() { die "--smoke: this benchmark boots qemu for minutes and needs the network; it has no smoke run"; }
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_args "$@"
((EUID == 0)) || missing "needs root (debootstrap, chroot, images owned by root)"
need python3 cargo gcc
exec python3 bench/cloud-init/bench.py --rounds "$rounds"
