#!/bin/sh
# The conformance probe (tests/tests/conformance.rs): prints what the container's process sees,
# one "== section" at a time, so that the report of runc and of zagent for the same spec can be
# compared line by line. Only reads, except for files it creates and removes at once in the
# places whose writability it reports (the rootfs is a per-run copy). Every tool is called
# through /bin/busybox by absolute path: a variant's env may have no PATH, and the rootfs links
# only some applets.
B=/bin/busybox
S=/proc/$$/status
sec() { echo "== $1"; }

sec identity
$B grep -E '^(Uid|Gid|Groups|Umask|NoNewPrivs|Seccomp|Seccomp_filters|SigBlk|SigIgn|Cpus_allowed_list|Mems_allowed_list|PPid):' $S | $B tr '\t' ' '
$B grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' $S | $B tr '\t' ' '
# stat fields 5-8 and 18-19: pgrp, session, tty_nr, tpgid, priority, nice ("(sh)" has no
# spaces); a pid is only compared as "this process" or not.
echo "pid-is-1: $([ $$ = 1 ] && echo yes || echo no)"
set -- $($B cut -d' ' -f5-8,18-19 /proc/$$/stat)
same() { [ "$1" = $$ ] && echo self || echo "$1"; }
echo "pgrp: $(same $1) session: $(same $2) tty_nr: $3 tpgid: $4 priority: $5 nice: $6"
# stat fields 40-41: real-time priority and scheduling policy; then the I/O priority and the
# personality (uname's machine follows it).
set -- $($B cut -d' ' -f40-41 /proc/$$/stat)
echo "rt_priority: $1 policy: $2"
echo "ionice: $($B ionice -p $$ 2>&1)"
echo "personality: $($B cat /proc/$$/personality 2>&1) machine: $($B uname -m)"
echo "id: $($B id 2>&1)"

sec uts
echo "hostname: $($B hostname 2>&1)"
echo "domainname: $($B cat /proc/sys/kernel/domainname 2>&1)"

sec cwd
echo "cwd: $($B readlink /proc/$$/cwd)"
echo "PWD: $PWD"

sec env
$B tr '\0' '\n' < /proc/$$/environ

sec limits
$B cat /proc/$$/limits

sec namespaces
for n in cgroup ipc mnt net pid pid_for_children time time_for_children user uts; do
    echo "$n: $($B readlink /proc/$$/ns/$n 2>&1)"
done

sec mountinfo
$B cat /proc/$$/mountinfo

sec dev
$B find /dev | $B sort | while read -r f; do
    $B stat -c '%n %F %a %u:%g %t:%T' "$f"
done
sec dev-open
# Opening (read-only, never reading) each device shows the device cgroup's verdict.
$B find /dev -type c | $B sort | while read -r f; do
    if err=$( (: < "$f") 2>&1); then echo "$f opens"; else echo "$f: ${err##*: }"; fi
done

sec fds
for f in /proc/$$/fd/*; do
    echo "${f##*/} -> $($B readlink "$f" 2>&1)"
done

sec oom
echo "oom_score_adj: $($B cat /proc/$$/oom_score_adj)"

sec cgroup
$B cat /proc/$$/cgroup
if [ -d /sys/fs/cgroup ]; then
    echo "-- /sys/fs/cgroup: $($B ls /sys/fs/cgroup | $B tr '\n' ' ')"
    for f in memory/memory.limit_in_bytes memory/memory.soft_limit_in_bytes \
        memory/memory.memsw.limit_in_bytes memory/memory.swappiness memory/memory.oom_control \
        pids/pids.max cpu/cpu.shares cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us \
        cpu/cpu.rt_period_us cpu/cpu.rt_runtime_us cpuset/cpuset.cpus cpuset/cpuset.mems \
        devices/devices.list blkio/blkio.weight blkio/blkio.bfq.weight \
        blkio/blkio.throttle.read_bps_device blkio/blkio.throttle.write_iops_device \
        freezer/freezer.state; do
        [ -e /sys/fs/cgroup/$f ] && echo "$f: $($B cat /sys/fs/cgroup/$f 2>&1 | $B tr '\n' ' ')"
    done
fi

sec masked
for p in /proc/acpi /proc/asound /proc/kcore /proc/keys /proc/latency_stats /proc/timer_list \
    /proc/timer_stats /proc/sched_debug /sys/firmware /proc/scsi /proc/cpuinfo /proc/meminfo \
    /sys/kernel/mm /sys/devices/virtual/powercap /proc/sys/kernel/core_pattern; do
    if [ ! -e $p ]; then echo "$p absent"; continue; fi
    if [ -d $p ]; then
        echo "$p dir entries=$($B ls -A $p 2>/dev/null | $B wc -l)"
    elif $B head -c 1 $p >/dev/null 2>&1; then
        echo "$p readable bytes=$($B head -c 64 $p 2>/dev/null | $B wc -c)"
    else
        echo "$p unreadable"
    fi
done

sec writable
for d in / /tmp /root /mnt /mnt/a /mnt/b /mnt/c /dev /dev/shm /dev/mqueue /sys /sys/fs/cgroup \
    /proc/sys /proc/bus /proc/fs /proc/irq; do
    [ -d $d ] || continue
    if err=$($B mkdir $d/.probe-w 2>&1); then
        $B rmdir $d/.probe-w
        echo "$d writable"
    else
        echo "$d not writable: ${err##*: }"
    fi
done
for f in /proc/sysrq-trigger /proc/sys/kernel/hostname /proc/sys/net/ipv4/ip_forward; do
    [ -w $f ] && echo "$f writable" || echo "$f not writable"
done

sec sysctl
for k in kernel/hostname kernel/domainname kernel/shmmax kernel/shmmni kernel/shm_rmid_forced \
    kernel/msgmax kernel/msgmnb kernel/sem fs/mqueue/msg_max net/ipv4/ip_forward \
    net/ipv4/ping_group_range net/ipv4/ip_unprivileged_port_start net/core/somaxconn \
    net/ipv4/tcp_syncookies net/ipv4/conf/all/forwarding; do
    echo "$k: $($B cat /proc/sys/$k 2>&1 | $B tr '\t' ' ')"
done

sec net
echo "interfaces: $($B ls /sys/class/net 2>&1 | $B tr '\n' ' ')"
echo "lo flags: $($B cat /sys/class/net/lo/flags 2>&1)"
echo "lo operstate: $($B cat /sys/class/net/lo/operstate 2>&1)"
$B ip -o addr show dev lo 2>&1

sec syscalls
# What a seccomp profile refuses shows here (mkdir in a tmpfs of the container's own).
if err=$($B mkdir /dev/.probe-s 2>&1); then $B rmdir /dev/.probe-s; echo "mkdir ok"; else echo "mkdir: ${err##*: }"; fi
echo "unshare -m: $($B unshare -m true 2>&1; echo "status $?")" | $B tr '\n' ' '
echo
