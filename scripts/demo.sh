#!/usr/bin/env bash
# The main job: build zagent, make a busybox bundle, start zagent on a unix socket and run a
# few containers through zagent-ctl, stop the agent (which removes what it still holds), then
# run the benchmark: zygote vs re-exec (and runc/crun when installed) vs the floor.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release --workspace --bins
bin=target/release
work=$(mktemp -d /tmp/zagent-demo.XXXXXX)
sock="unix://$work/zagent.sock"
cleanup() {
    if [ -n "${agent:-}" ] && kill -0 "$agent" 2>/dev/null; then
        kill -TERM "$agent"; wait "$agent" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
"$bin/zagent-ctl" bundle "$work/bundle"
"$bin/zagent" --listen "$sock" --state-dir "$work/state" &
agent=$!
for _ in $(seq 100); do "$bin/zagent-ctl" --addr "$sock" check >/dev/null 2>&1 && break; sleep 0.1; done
set -x
"$bin/zagent-ctl" --addr "$sock" check
"$bin/zagent-ctl" --addr "$sock" run --bundle "$work/bundle" -- echo hello from a zagent container
"$bin/zagent-ctl" --addr "$sock" run --bundle "$work/bundle" -- sh -c 'hostname; id; ls /proc/self/fd'
"$bin/zagent-ctl" --addr "$sock" create --id demo --bundle "$work/bundle"
"$bin/zagent-ctl" --addr "$sock" ps
"$bin/zagent-ctl" --addr "$sock" start demo
"$bin/zagent-ctl" --addr "$sock" kill demo KILL
"$bin/zagent-ctl" --addr "$sock" wait demo || echo "demo exited with $?"
"$bin/zagent-ctl" --addr "$sock" rm demo
status=0; "$bin/zagent-ctl" --addr "$sock" run --bundle "$work/bundle" -- sh -c 'exit 7' || status=$?
echo "sh -c 'exit 7' exited with $status"
set +x
kill -TERM "$agent"; wait "$agent" || true
"$bin/zagent-bench" --out bench-out
for h in /sys/fs/cgroup/*/; do rmdir "${h}zagent" 2>/dev/null || true; done
