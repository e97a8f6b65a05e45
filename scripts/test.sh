#!/usr/bin/env bash
# The whole test suite, as root: unit tests, root-only unit tests (#[ignore = "requires root"]),
# the integration tiers (each test starts its own agents, for both launchers), and the
# benchmark's quick mode for both launchers as a smoke test (it asserts no timings).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# The house style: formatting and lints are part of the suite.
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
bench_out=$(mktemp -d /tmp/zagent-bench.XXXXXX)
cleanup() {
    # The agents remove their containers' cgroups; the shared `zagent` parents they made are
    # left for the next container. Remove them once everything is done (rmdir: only if empty).
    for h in /sys/fs/cgroup/*/; do rmdir "${h}zagent" 2>/dev/null || true; done
    # The smoke run's report is printed; its files are not kept.
    rm -rf "$bench_out"
}
trap cleanup EXIT
# Includes tests/tests/module_cycles.rs: no module import cycle in any crate.
# The guest tier boots a VM (tests/tests/guest.rs): its tools are installed before the tests.
bash scripts/guest.sh deps
cargo test --workspace -- --include-ignored
target/debug/zagent-bench --quick --launchers zygote,pool,reexec --out "$bench_out"
