#!/usr/bin/env bash
# Runs each cargo-fuzz target in fuzz/ for SECONDS (default 60), one after another, one libFuzzer
# process each: the zygote frame decoder, the grpc spec to OCI conversion plus validation, and the
# ttrpc payload of every served RPC. Not part of CI (CI replays the corpora as ordinary tests:
# `cargo test -p tests --test fuzz_corpus`).
#
#   scripts/fuzz.sh [SECONDS] [--merge]
#
# Each target starts from its in-repo corpus (fuzz/corpus/<target>, read only) and writes what it
# finds to a scratch corpus (fuzz/target/corpus-new/<target>, gitignored), so that a run never
# dirties the repo with thousands of near-duplicates. With --merge, the scratch inputs that add
# coverage the repo corpus lacks (libFuzzer -merge=1, which keeps the smallest input per feature)
# are copied into fuzz/corpus after the runs. That is for local use: after 600 s per target it
# adds some 7,000 files and 4 MB (mostly hit-count variants of the same edges), so the committed
# corpus stays the seeds plus the minimised input of each past crash (`regression-*`).
#
# A crash (panic, abort, timeout, out-of-memory) leaves its input in fuzz/artifacts/<target>/;
# the script still runs the remaining targets, then exits 1 and names every artifact. Replay one
# with `fuzz/target/<host>/release/<target> <artifact>`, or copy it into the corpus and run the
# replay test.
#
# There is no nightly toolchain: cargo-fuzz's -Z flags go to the stable compiler through
# RUSTC_BOOTSTRAP=1. The build has no sanitizer (`-s none`): the code under fuzz is safe Rust
# (the unsafe fd passing and clone calls are never reached from these bodies), so ASan would only
# halve the exec rate; overflow checks and debug assertions stay on.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=60
merge=0
for arg in "$@"; do
    case "$arg" in
        --merge) merge=1 ;;
        '' | *[!0-9]*)
            echo "usage: $0 [SECONDS] [--merge]" >&2
            exit 2
            ;;
        *) secs=$arg ;;
    esac
done

export RUSTC_BOOTSTRAP=1
targets=(zygote_frame oci_spec ttrpc_request)
host=$(rustc -vV | sed -n 's/^host: //p')
bindir=fuzz/target/$host/release
scratch=fuzz/target/corpus-new
artifacts=fuzz/artifacts

build_with_cargo_fuzz() {
    if ! command -v cargo-fuzz >/dev/null; then
        echo "== installing cargo-fuzz" >&2
        cargo install cargo-fuzz --locked || return 1
    fi
    # The fuzz crate is a workspace of its own, so this builds in fuzz/target and never takes
    # the main workspace's target dir lock.
    cargo fuzz build -s none
}

# What cargo-fuzz passes to rustc, for when it cannot be installed: coverage instrumentation
# for libFuzzer's feedback, `cfg(fuzzing)`, and debug assertions in the release build.
build_direct() {
    local flags=(
        -Cpasses=sancov-module
        -Cllvm-args=-sanitizer-coverage-level=4
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
        -Cllvm-args=-sanitizer-coverage-pc-table
        -Cllvm-args=-sanitizer-coverage-trace-compares
        -Cllvm-args=-sanitizer-coverage-stack-depth
        --cfg fuzzing
        -Cdebug-assertions
        -Coverflow-checks
    )
    # --target keeps the flags off build scripts and proc macros, as cargo-fuzz does.
    RUSTFLAGS="${flags[*]}" cargo build --manifest-path fuzz/Cargo.toml --release \
        --target "$host" --bins
}

echo "== building the fuzz targets" >&2
build_with_cargo_fuzz || {
    echo "== cargo-fuzz unavailable; building with cargo and the sancov flags" >&2
    build_direct
}

count() { find "$1" -type f 2>/dev/null | wc -l; }
stat_of() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }

summary=()
crashed=()
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "$artifacts/$t"
    log=$scratch/$t.log
    echo "== $t: ${secs}s (corpus fuzz/corpus/$t, new inputs to $scratch/$t)" >&2
    start=$(date +%s)
    set +e
    # The first corpus directory receives new inputs; the repo corpus after it is only read.
    # -timeout: an input that takes 10 s is a hang worth an artifact. -max_len: the largest
    # seeds (CreateContainer with a full spec) are about 1.5 KB; leave room to grow them.
    "$bindir/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 -artifact_prefix="$artifacts/$t/" \
        "$scratch/$t" "fuzz/corpus/$t" 2>&1 | tee "$log" >&2
    rc=${PIPESTATUS[0]}
    set -e
    ran=$(($(date +%s) - start))
    execs=$(stat_of number_of_executed_units "$log")
    rate=$(stat_of average_exec_per_sec "$log")
    added=$(stat_of new_units_added "$log")
    corpus=$(($(count "$scratch/$t") + $(count "fuzz/corpus/$t")))
    if [ "$rc" -ne 0 ]; then
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        crashed+=("$t: exit $rc, artifact ${artifact:-none (see $log)}")
        result="CRASH"
    else
        result="0 crashes"
    fi
    summary+=("$(printf '%-14s %6ss %12s execs %8s exec/s %6s new %6s corpus  %s' \
        "$t" "$ran" "${execs:-?}" "${rate:-?}" "${added:-?}" "$corpus" "$result")")
done

if [ "$merge" = 1 ]; then
    for t in "${targets[@]}"; do
        before=$(count "fuzz/corpus/$t")
        "$bindir/$t" -merge=1 -max_len=16384 "fuzz/corpus/$t" "$scratch/$t" \
            >"$scratch/$t.merge.log" 2>&1
        echo "== merged $t: $before -> $(count "fuzz/corpus/$t") inputs" >&2
    done
    du -sh fuzz/corpus >&2
fi

echo
echo "target         seconds        execs     rate   added  corpus  result"
printf '%s\n' "${summary[@]}"
if [ "${#crashed[@]}" -gt 0 ]; then
    echo
    echo "crashes:"
    printf '  %s\n' "${crashed[@]}"
    exit 1
fi
