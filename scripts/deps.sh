#!/usr/bin/env bash
# Installs what zagent's demo and tests need on a fresh Debian machine: a static busybox for
# the container rootfs.
set -euo pipefail
if ! dpkg -s busybox-static >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq busybox-static
fi
