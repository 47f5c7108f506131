#!/usr/bin/env bash
# Runs every fuzz target of the geometry crate for SECONDS each (default 60)
# and fails on the first crash, panic, hang (> 10 s per input) or input that
# needs more than 2 GiB.
#
#   crates/geometry/fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). cargo-fuzz passes
# nightly-only flags (-Zsanitizer=address); on the stable toolchain
# RUSTC_BOOTSTRAP=1 allows them. The seed corpus is built from
# ../shared/models by seed.sh when missing; findings go to artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
secs="${1:-60}"
shift || true
targets=("$@")
if [[ ${#targets[@]} == 0 ]]; then
    targets=(stl_binary stl_ascii obj ply threemf analyze)
fi
export RUSTC_BOOTSTRAP=1
target_dir="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/fuzz}"
[[ -d corpus/analyze ]] || ./seed.sh
cargo fuzz build -O --debug-assertions --target-dir "$target_dir"
for t in "${targets[@]}"; do
    mkdir -p "artifacts/$t" "corpus/$t"
    echo "== $t: ${secs}s"
    log="artifacts/$t/last-run.log"
    status=0
    cargo fuzz run -O --debug-assertions --target-dir "$target_dir" "$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=1048576 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb" "$log" || true
    if [[ $status != 0 ]]; then
        grep -E "panicked|ERROR|SUMMARY|Test unit written|timeout" "$log" | head -20 >&2 || true
        echo "FAILED: $t (log $PWD/$log; reproducer in $PWD/artifacts/$t/)" >&2
        exit 1
    fi
done
echo "all ${#targets[@]} targets ran ${secs}s each without a crash"
