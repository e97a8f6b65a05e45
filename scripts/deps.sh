#!/usr/bin/env bash
# Installs what zagent's demo and tests need on a fresh Debian machine: a static busybox for
# the container rootfs, libseccomp's development files (the agent compiles OCI seccomp
# profiles with libseccomp; the binaries link libseccomp.so.2), and runc, which the conformance
# suite (tests/tests/conformance.rs) runs every spec variant under beside zagent, and e2fsprogs
# and mount (mkfs.ext4, losetup) for the block storage test (tests/tests/kata_storage.rs), and
# iptables (iptables-save/-restore) for GetIPTables/SetIPTables (tests/tests/kata_network.rs).
set -euo pipefail
need=()
for p in busybox-static libseccomp-dev runc e2fsprogs mount iptables; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}"
fi
