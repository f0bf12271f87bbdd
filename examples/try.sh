#!/usr/bin/env bash
# Builds osconf, applies an example os.conf to a scratch copy of an example root, and shows what
# changed. Usage: examples/try.sh [vpc|classic] [rootfs name, default centos7]
set -euo pipefail
cd "$(dirname "$0")/.."
sample=${1:-classic}
rootfs=${2:-centos7}
cargo build --release --quiet
scratch=$(mktemp -d /tmp/osconf-try.XXXXXX)
cp -a "examples/rootfs/$rootfs/." "$scratch/"
mkdir -p "$scratch/boot/aliyun_custom_image"
cp "examples/$sample/os.conf" "$scratch/boot/aliyun_custom_image/os.conf"
echo "== osconf apply --root $scratch (os.conf: examples/$sample, root: examples/rootfs/$rootfs)"
./target/release/osconf apply --root "$scratch" --no-live
echo
echo "== what changed (diff -r examples/rootfs/$rootfs $scratch)"
diff -r -N --no-dereference --exclude=backup "examples/rootfs/$rootfs" "$scratch" || true
echo
echo "== the scratch root stays at $scratch"
