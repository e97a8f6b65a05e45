#!/usr/bin/env bash
# Soak test: N (default 10000) mixed container lifecycles against one zagent started for the
# run, from 4 concurrent clients, then the agent's fds, RSS, threads, zombies, mounts, cgroups,
# state dirs and the zygote's threads against a baseline taken after a warm-up. Exits non-zero
# if a lifecycle failed or anything leaked. Extra arguments go to zagent-soak, e.g.
#   bash scripts/soak.sh 3000 --max-seconds 900 --seed 7 --launcher reexec
# zagent-soak stops the agent (SIGTERM: it removes its containers) and removes its temp dir on
# every path, Ctrl-C included. Binaries come from target/release (or $CARGO_TARGET_DIR/release).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "soak.sh: needs root (namespaces, mounts, cgroups)" >&2
    exit 1
fi
bash scripts/deps.sh
cargo build --release --workspace --bins
bin="${CARGO_TARGET_DIR:-target}/release"
n="${1:-10000}"
shift || true
exec "$bin/zagent-soak" "$n" "$@"
