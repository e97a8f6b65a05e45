#!/usr/bin/env bash
# The whole test suite, as root: unit tests, root-only unit tests (#[ignore = "requires root"])
# and the integration tiers, which start their own agents.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --workspace --bins
cargo test --workspace -- --include-ignored
