#!/usr/bin/env bash
# System packages smolvm's tests and runtime use on Debian/Ubuntu. Run as root.
# (The Rust toolchain comes from rustup, never from apt.)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(
  e2fsprogs   # chattr (prune failure tests), mkfs.ext4 and e2fsck (image tests)
  util-linux  # setpriv (run as an unprivileged user), mount
  coreutils   # du (prune benchmark baseline), sha256sum (image benchmark baseline)
  iproute2    # ip netns / tuntap: every network test runs in its own namespace
  nftables    # nft: SmolVM's smolvm_nat / smolvm_filter tables
  qemu-system-x86  # QEMU: stand-in VMMs for cleanup tests, and real boots
  python3     # SmolVM-compat DB checks and the fake Firecracker API in tests
  zstd        # compresses the image tests' rootfs; image benchmark baseline
  curl        # image benchmark baseline
  tmux        # drives the real dashboard in the end-to-end test
  fonts-dejavu-core  # DejaVu Sans Mono for the dashboard screenshots
  # Boot tests: the test kernel (built once per machine, cached in ~/.cache/smolvm-tests),
  # a busybox rootfs and a Debian rootfs with sshd, and the SSH client for sandbox ssh/exec.
  linux-source-6.1 bc flex bison libelf-dev libssl-dev make gcc libc6-dev xz-utils
  busybox-static debootstrap openssh-client
)
apt-get update
apt-get install -y --no-install-recommends "${packages[@]}"
