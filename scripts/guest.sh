#!/usr/bin/env bash
# A real guest VM with zagent as its agent, reached from the host over hybrid vsock.
#
#   scripts/guest.sh up DIR [--kvm] [--mem MIB]   boot a guest in the background; returns once
#                                                 Health.Check answers; DIR/addr holds the
#                                                 agent's address (hvsock://DIR/vm.vsock:1024)
#   scripts/guest.sh down DIR                     stop it and remove all that `up` made
#   scripts/guest.sh demo [--kvm]                 up, run containers in the guest, down
#   scripts/guest.sh deps                         install what the others need (CI, first)
#
# The guest: Debian's kernel (its uncompressed vmlinux, booted through PVH) under QEMU TCG
# `-M microvm` (--kvm where nested virtualisation works), an initramfs with busybox, zagent
# (with the shared libraries it needs and the loader), the vsock/virtio-mmio modules, and a
# busybox bundle at /bundle (rootfs and config.json). Its /init switches to a tmpfs root (from
# the initramfs root pivot_root fails, and every container needs it) and execs zagent as
# PID 1, which mounts /proc, /sys, /dev, /run and cgroup2, and serves on vsock port 1024 as
# agent.server_addr on the kernel command line says. The host side of the guest's vsock is
# vhost-device-vsock (rust-vmm), attached as vhost-user-vsock-device; its Unix socket
# DIR/vm.vsock takes Kata's `CONNECT <port>` handshake.
#
# Environment: GUEST_LOG (agent.log, default info), GUEST_APPEND (more kernel command line),
# GUEST_BOOT_TIMEOUT (seconds, default 90), GUEST_TSC_KHZ (default: the host's cpu MHz),
# GUEST_KVM_CPU (--kvm's -cpu, default host; on this nested host `host` makes QEMU fail to set
# MSR 0x10a, and `host,-arch-capabilities` starts a guest that hangs in early boot).
# Binaries: $ZAGENT_BIN (default $CARGO_TARGET_DIR/debug or target/debug); built when missing.
# Tools installed when missing: qemu-system-x86, linux-image-amd64, busybox-static (apt), and
# vhost-device-vsock (cargo install, cached in $CARGO_TARGET_DIR/guest-tools).
set -Eeuo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tgt=${CARGO_TARGET_DIR:-$repo/target}
tools=$tgt/guest-tools
cache=$tgt/guest-cache
VHOST_VERSION=0.3.0
PORT=1024
MARK=.zagent-guest

die() { echo "guest.sh: $*" >&2; exit 1; }

install_deps() {
    local need=()
    command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
    compgen -G '/boot/vmlinuz-*' >/dev/null || need+=(linux-image-amd64)
    [ -x /bin/busybox ] || need+=(busybox-static)
    command -v cpio >/dev/null || need+=(cpio)
    command -v xz >/dev/null || need+=(xz-utils)
    if [ ${#need[@]} -gt 0 ]; then
        echo "guest.sh: installing ${need[*]}" >&2
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
    fi
    if [ ! -x "$tools/bin/vhost-device-vsock" ]; then
        echo "guest.sh: cargo install vhost-device-vsock $VHOST_VERSION into $tools" >&2
        # In a temp dir of its own: not in (nor locking) the target dir a running build holds.
        env -u CARGO_TARGET_DIR cargo install --locked --quiet vhost-device-vsock \
            --version "$VHOST_VERSION" --root "$tools"
    fi
}

bin_dir() {
    local dir=${ZAGENT_BIN:-$tgt/debug}
    if [ ! -x "$dir/zagent" ] || [ ! -x "$dir/zagent-ctl" ]; then
        [ -z "${ZAGENT_BIN:-}" ] || die "no zagent and zagent-ctl in ZAGENT_BIN=$dir"
        (cd "$repo" && CARGO_TARGET_DIR=$tgt cargo build -q -p agent --bins) >&2
    fi
    echo "$dir"
}

# The newest installed Debian kernel's version.
kernel_version() {
    local v
    v=$(ls /boot/vmlinuz-* | sed 's|/boot/vmlinuz-||' | sort -V | tail -1)
    [ -n "$v" ] && [ -d "/lib/modules/$v" ] || die "no kernel with modules in /boot and /lib/modules"
    echo "$v"
}

# bzImage's payload is an XZ stream: the uncompressed vmlinux inside boots through PVH, which
# spares the guest ~3 s of decompression under TCG. Extracted once, cached.
vmlinux() {
    local kver=$1 out=$cache/vmlinux-$1
    if [ ! -s "$out" ]; then
        mkdir -p "$cache"
        local off
        off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "/boot/vmlinuz-$kver" | head -1 | cut -d: -f1)
        [ -n "$off" ] || die "no XZ payload in /boot/vmlinuz-$kver"
        tail -c +$((off + 1)) "/boot/vmlinuz-$kver" | xz -dc --single-stream >"$out.tmp"
        [ "$(head -c 4 "$out.tmp" | od -An -c | tr -d ' ')" = '177ELF' ] || die "extracted vmlinux is not ELF"
        mv "$out.tmp" "$out"
    fi
    echo "$out"
}

# The host's TSC frequency: without tsc_early_khz about half the TCG microvm boots hang while
# the kernel calibrates the TSC (no HPET, no PM timer).
tsc_khz() {
    if [ -n "${GUEST_TSC_KHZ:-}" ]; then echo "$GUEST_TSC_KHZ"; return; fi
    awk -F: '/^cpu MHz/ { printf "%d\n", $2 * 1000; exit }' /proc/cpuinfo
}

# The initramfs tree at $1, packed into $2.
build_initramfs() {
    local root=$1 out=$2 bin=$3 kver=$4
    mkdir -p "$root"/{bin,sbin,newroot,proc,sys,dev,run,tmp,modules}
    cp /bin/busybox "$root/bin/busybox"
    ln -s busybox "$root/bin/sh"
    strip -o "$root/sbin/zagent" "$bin/zagent"
    # zagent is dynamically linked (libseccomp, libc...): its libraries and the loader.
    local lib
    for lib in $(ldd "$bin/zagent" | grep -o '/[^ ]*'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
    local insmods=() line ko
    while read -r line; do
        ko=${line#insmod }
        ko=${ko%% *}
        [ -e "$root/modules/$(basename "$ko")" ] && continue
        cp "$ko" "$root/modules/"
        insmods+=("$(basename "$ko")")
    done < <(modprobe -S "$kver" --show-depends virtio_mmio; modprobe -S "$kver" --show-depends vmw_vsock_virtio_transport)
    mknod -m 600 "$root/dev/console" c 5 1
    # The busybox bundle, its root at the guest's /bundle/rootfs. Without device cgroup rules:
    # the guest is cgroup v2 only, where zagent refuses them (no eBPF device program yet).
    "$bin/zagent-ctl" bundle --root-path /bundle/rootfs --no-device-rules "$root/bundle" >/dev/null
    {
        echo '#!/bin/sh'
        echo '# First stage: vsock modules, then a tmpfs root (pivot_root fails from the initramfs'
        echo '# root), and zagent as PID 1 there.'
        echo 'export PATH=/bin'
        for ko in "${insmods[@]}"; do echo "busybox insmod /modules/$ko || exit 1"; done
        echo 'busybox mount -t tmpfs -o mode=0755 root /newroot || exit 1'
        echo 'for e in /bin /sbin /lib /lib64 /usr /bundle; do [ -e $e ] && busybox cp -a $e /newroot/; done'
        echo 'busybox mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/run /newroot/tmp'
        echo 'busybox mknod -m 600 /newroot/dev/console c 5 1'
        echo 'exec busybox switch_root /newroot /sbin/zagent'
    } >"$root/init"
    chmod 755 "$root/init"
    (cd "$root" && find . | cpio -o -H newc --quiet) >"$out"
}

# Kills the process in pidfile $1 if it still runs $2; waits up to 5 s, then SIGKILL.
stop_pidfile() {
    local pidfile=$1 exe=$2 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if [ -d "/proc/$pid" ] && [ "$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null)")" = "$exe" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
}

cmd_down() {
    local dir=${1:?usage: guest.sh down DIR}
    [ -e "$dir/$MARK" ] || die "$dir was not made by guest.sh up (no $MARK): not touching it"
    stop_pidfile "$dir/qemu.pid" qemu-system-x86_64
    stop_pidfile "$dir/vhost.pid" vhost-device-vsock
    rm -rf "$dir/initramfs" "$dir/bundle"
    rm -f "$dir"/{initramfs.cpio,vhost.sock,vm.vsock,vm.vsock_$PORT,addr,console.log,vhost.log,qemu.log,$MARK}
    rmdir "$dir" 2>/dev/null || echo "guest.sh: $dir is not empty: left in place" >&2
}

cmd_up() {
    local dir=${1:?usage: guest.sh up DIR [--kvm] [--mem MIB]}
    shift
    local accel=tcg mem=512
    while [ $# -gt 0 ]; do
        case $1 in
            --kvm) accel=kvm ;;
            --mem) mem=${2:?--mem MIB}; shift ;;
            *) die "up: unknown option $1" ;;
        esac
        shift
    done
    if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then die "$dir exists and is not empty"; fi
    install_deps
    local bin kver kernel khz
    bin=$(bin_dir)
    kver=$(kernel_version)
    kernel=$(vmlinux "$kver")
    khz=$(tsc_khz)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    touch "$dir/$MARK"
    # From here a failure takes down what was started.
    trap 'trap - ERR; cmd_down "$dir"' ERR
    build_initramfs "$dir/initramfs" "$dir/initramfs.cpio" "$bin" "$kver"
    rm -rf "$dir/initramfs"
    # The host's copy of the guest's config.json (its root.path names the guest's rootfs), so
    # that `zagent-ctl run --bundle DIR/bundle` runs the guest's bundle.
    mkdir -p "$dir/bundle"
    cpio -i --quiet --to-stdout bundle/config.json <"$dir/initramfs.cpio" >"$dir/bundle/config.json"

    setsid "$tools/bin/vhost-device-vsock" --guest-cid 3 --socket "$dir/vhost.sock" \
        --uds-path "$dir/vm.vsock" </dev/null >"$dir/vhost.log" 2>&1 &
    echo $! >"$dir/vhost.pid"
    for _ in $(seq 100); do [ -S "$dir/vhost.sock" ] && break; sleep 0.05; done
    [ -S "$dir/vhost.sock" ] || { cat "$dir/vhost.log" >&2; cmd_down "$dir"; die "vhost-device-vsock did not start"; }

    local machine=microvm,memory-backend=mem accel_args=(-accel tcg)
    [ "$accel" = kvm ] && accel_args=(-accel kvm -cpu "${GUEST_KVM_CPU:-host}")
    qemu-system-x86_64 -M "$machine" "${accel_args[@]}" -smp 2 -m "${mem}M" \
        -object "memory-backend-memfd,id=mem,size=${mem}M,share=on" \
        -nodefaults -no-user-config -display none -no-reboot \
        -serial "file:$dir/console.log" \
        -kernel "$kernel" -initrd "$dir/initramfs.cpio" \
        -append "console=ttyS0 tsc_early_khz=$khz pci=off panic=-1 quiet agent.server_addr=vsock://-1:$PORT agent.log=${GUEST_LOG:-info} ${GUEST_APPEND:-}" \
        -chardev "socket,id=vsock,path=$dir/vhost.sock" \
        -device vhost-user-vsock-device,chardev=vsock \
        -daemonize -pidfile "$dir/qemu.pid" >"$dir/qemu.log" 2>&1 \
        || { cat "$dir/qemu.log" >&2; cmd_down "$dir"; die "qemu did not start"; }

    # QEMU removes its pidfile when it exits (a guest that powered off): read it once.
    local addr="hvsock://$dir/vm.vsock:$PORT" deadline=$((SECONDS + ${GUEST_BOOT_TIMEOUT:-90}))
    local qemu_pid
    qemu_pid=$(cat "$dir/qemu.pid")
    until "$bin/zagent-ctl" --addr "$addr" check >/dev/null 2>&1; do
        if ! kill -0 "$qemu_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            echo "guest.sh: the guest's agent did not answer on $addr; console:" >&2
            tail -30 "$dir/console.log" >&2 || true
            cmd_down "$dir"
            die "guest did not come up"
        fi
        sleep 0.2
    done
    trap - ERR
    echo "$addr" >"$dir/addr"
}

cmd_demo() {
    local work start
    work=$(mktemp -d /tmp/zagent-guest.XXXXXX)
    # shellcheck disable=SC2064
    trap "'$0' down '$work/g' || true; rmdir '$work' 2>/dev/null || true" EXIT
    install_deps
    local bin
    bin=$(bin_dir)
    start=$SECONDS
    cmd_up "$work/g" "$@"
    local addr ctl
    addr=$(cat "$work/g/addr")
    echo "guest up in $((SECONDS - start)) s at $addr"
    ctl() { "$bin/zagent-ctl" --addr "$addr" "$@"; }
    set -x
    ctl check
    ctl run --bundle "$work/g/bundle" -- echo hello from a container in a guest
    ctl run --bundle "$work/g/bundle" -- sh -c 'echo "kernel $(uname -r), cgroup $(cat /proc/self/cgroup), pid $$"'
    set +x
    "$0" down "$work/g"
    rmdir "$work"
    trap - EXIT
    echo "demo done in $((SECONDS - start)) s (boot, containers, teardown)"
}

case ${1:-} in
    up) shift; cmd_up "$@" ;;
    down) shift; cmd_down "$@" ;;
    demo) shift; cmd_demo "$@" ;;
    deps) install_deps ;;
    *) die "usage: guest.sh up DIR [--kvm] [--mem MIB] | down DIR | demo [--kvm] | deps" ;;
esac
