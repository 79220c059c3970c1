#!/usr/bin/env bash
# Build the tests' microVM guest kernel from Debian's linux-source-6.1 and a config
# fragment (tinyconfig + fragment, olddefconfig). Writes <out>/bzImage (QEMU) and
# <out>/vmlinux (an ELF, what Firecracker boots). Called by tests/support/images.rs, which
# caches <out> outside the clone keyed by a hash of this script, the fragment and the
# source tarball, so a machine pays for this once (~8 min on 2 cores).
# Usage: build-kernel.sh <linux-source tarball> <config fragment> <out dir>
set -euo pipefail
tarball=$1 frag=$2 out=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/smolvm-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xf "$tarball" -C "$work"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n1)
cd "$src"
make -s tinyconfig
scripts/kconfig/merge_config.sh -m .config "$frag" >/dev/null
make -s olddefconfig
# Every option the fragment asks for must have survived olddefconfig (a missing dependency
# drops it silently).
missing=$(grep -E '^CONFIG_[A-Z0-9_]+=y$' "$frag" | while read -r opt; do
  grep -qx "$opt" .config || echo "$opt"
done)
if [ -n "$missing" ]; then
  echo "kernel config lost: $missing" >&2
  exit 1
fi
make -s -j"$(nproc)" bzImage vmlinux
mkdir -p "$out"
cp arch/x86/boot/bzImage "$out/bzImage.partial"
cp vmlinux "$out/vmlinux.partial"
mv "$out/bzImage.partial" "$out/bzImage"
mv "$out/vmlinux.partial" "$out/vmlinux"
