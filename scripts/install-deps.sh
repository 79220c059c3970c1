#!/usr/bin/env bash
# System packages smolvm needs, for Debian 12/13 and Ubuntu 22.04/24.04. Run as root.
# (The Rust toolchain comes from rustup, never from apt.)
#
#   install-deps.sh --runtime   what `smolvm` needs to build and run: QEMU, iproute2,
#                               nftables, conntrack, e2fsprogs, util-linux,
#                               openssh-client, gcc and libc6-dev (+ debootstrap, optional)
#   install-deps.sh --test      the runtime set plus what `cargo test` uses: the test
#                               kernel's build chain, tmux, fonts, busybox, python3,
#                               docker.io (optional) — the default, and what CI runs
#   --dry-run                   print what would be installed, install nothing
#
# A package this distribution does not have is an error when smolvm cannot do without it
# and a warning when it is optional (the features that need it say so at run time).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

mode=test
dry_run=0
for arg in "$@"; do
  case "$arg" in
    --runtime) mode=runtime ;;
    --test) mode=test ;;
    --dry-run) dry_run=1 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$arg' (use --runtime, --test, --dry-run)" >&2; exit 2 ;;
  esac
done

if ! command -v apt-get >/dev/null; then
  echo "install-deps.sh: needs apt-get (Debian or Ubuntu); install the packages named in this script by hand" >&2
  exit 1
fi

id="unknown"; version=""
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  . /etc/os-release
  id="${ID:-unknown}"; version="${VERSION_ID:-}"
fi

# The kernel source package the tests' guest kernel is built from.
kernel_source() {
  case "$id:$version" in
    debian:12) echo linux-source-6.1 ;;
    debian:13) echo linux-source-6.12 ;;
    ubuntu:22.04) echo linux-source-5.15.0 ;;
    ubuntu:24.04) echo linux-source-6.8.0 ;;
    *)
      # Another release: the newest linux-source-X.Y[.Z] it offers.
      apt-cache search --names-only '^linux-source-[0-9.]+$' 2>/dev/null \
        | awk '{print $1}' | sort -V | tail -n1
      ;;
  esac
}

case "$(uname -m)" in
  aarch64) qemu=qemu-system-arm ;;
  *) qemu=qemu-system-x86 ;;
esac

required=(
  "$qemu"     # the QEMU backend (and the stand-in VMMs of the cleanup tests)
  iproute2    # ip: TAP devices, routes (and ip netns for the tests)
  nftables    # nft: SmolVM's smolvm_nat / smolvm_filter tables and smolvm_guard
  conntrack   # conntrack -D: a changed egress policy cuts the connections it no longer allows
  e2fsprogs   # mkfs.ext4, e2fsck, resize2fs: disks and built images
  util-linux  # mount, setpriv
  openssh-client  # sandbox ssh/exec/file, attach
  gcc libc6-dev   # building smolvm: the linker rustc uses, and the static C library the clone agent (guest/agent.rs) links
)
optional=()
if [ "$mode" = runtime ]; then
  optional+=(debootstrap)  # image build --engine debootstrap and local preset images
else
  ks="$(kernel_source)"
  required+=(
    coreutils   # du, sha256sum: benchmark baselines
    python3-venv  # SmolVM 0.0.36 from PyPI in a private venv (compatibility tests)
    python3     # SmolVM-compat DB checks, the fake Firecracker API, test HTTP servers
    zstd curl   # image tests and benchmark baselines
    tmux        # drives the real dashboard in the end-to-end tests
    zsh fish    # real shells load and run the completion scripts
    fonts-dejavu-core  # DejaVu Sans Mono (and Sans, for braille) for the dashboard screenshots
    bc flex bison libelf-dev libssl-dev make gcc libc6-dev xz-utils  # the test kernel
    busybox-static  # the busybox test rootfs
    debootstrap     # the Debian test rootfs
  )
  if [ -n "$ks" ]; then
    required+=("$ks")
  else
    echo "install-deps.sh: warning: no linux-source package found on $id $version; the boot tests need one" >&2
  fi
  optional+=(docker.io)  # the Docker engine of image build (its tests start a private dockerd)
fi

available() { apt-cache show --no-all-versions "$1" >/dev/null 2>&1; }

if [ "$dry_run" = 0 ]; then
  apt-get update
fi
missing=()
for p in "${required[@]}"; do
  available "$p" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps.sh: $id $version has no package named: ${missing[*]}" >&2
  exit 1
fi
present_optional=()
for p in "${optional[@]}"; do
  if available "$p"; then
    present_optional+=("$p")
  else
    echo "install-deps.sh: warning: optional package $p is not available on $id $version; skipped" >&2
  fi
done

if [ "$dry_run" = 1 ]; then
  echo "would install (${mode}): ${required[*]} ${present_optional[*]}"
  exit 0
fi

apt-get install -y --no-install-recommends "${required[@]}"

# Installing docker.io must not start a daemon on the default socket (the tests run their
# own on private paths, and other tests rely on no daemon answering there): keep services
# from starting while apt runs, unless the machine already has such a policy.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  made_policy=1
fi
for p in "${present_optional[@]}"; do
  if ! apt-get install -y --no-install-recommends "$p"; then
    echo "install-deps.sh: warning: could not install optional package $p; continuing" >&2
  fi
done
if [ "$made_policy" = 1 ]; then
  rm -f "$policy"
fi
