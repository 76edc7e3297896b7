#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for FUZZ_SECONDS seconds (default 45), two at a
# time, starting from its seed corpus in fuzz/corpus/<target>. libFuzzer, built with the stable
# toolchain: the coverage instrumentation is LLVM's sanitizer-coverage pass, enabled through
# rustc's -C flags (no cargo-fuzz and no nightly needed). The seed corpus is only read; new
# inputs and crash reproducers go to a scratch directory. A crash fails the script and names
# the input that caused it. Figures go to target/safety-suite/fuzz.txt.
#
#   scripts/fuzz.sh [TARGET...]        FUZZ_SECONDS=600 scripts/fuzz.sh pxar_decode
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_EACH=${FUZZ_SECONDS:-45}
JOBS=${FUZZ_JOBS:-2}
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=$ROOT/target/fuzz
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"

if (($#)); then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(ls "$ROOT/fuzz/fuzz_targets" | sed -n 's/\.rs$//p')
fi
echo "building ${#TARGETS[@]} fuzz targets ..." >&2
# --target keeps the instrumentation off build scripts and proc macros.
cargo build --quiet --release --locked --manifest-path "$ROOT/fuzz/Cargo.toml" --target "$TRIPLE" \
    $(printf -- '--bin %s ' "${TARGETS[@]}")
BIN=$CARGO_TARGET_DIR/$TRIPLE/release

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stowage-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

run_one() {
    local name=$1 dir=$WORK/$1
    mkdir -p "$dir/new"
    if "$BIN/$name" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$dir/" "$dir/new" "$ROOT/fuzz/corpus/$name" \
        >"$dir/log" 2>&1; then
        echo ok >"$dir/result"
    else
        echo failed >"$dir/result"
    fi
}

running=0
for name in "${TARGETS[@]}"; do
    [ -d "$ROOT/fuzz/corpus/$name" ] || { echo "fuzz/corpus/$name is missing" >&2; exit 1; }
    run_one "$name" &
    running=$((running + 1))
    if ((running >= JOBS)); then
        wait -n
        running=$((running - 1))
    fi
done
wait

total=0
failed=0
for name in "${TARGETS[@]}"; do
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/$name/log" | tail -1)
    execs=${execs:-0}
    total=$((total + execs))
    if [ "$(cat "$WORK/$name/result")" = ok ]; then
        printf 'fuzz %-14s %10s executions in %s s, no crash\n' "$name" "$execs" "$SECONDS_EACH"
    else
        failed=$((failed + 1))
        echo "fuzz $name FAILED; the end of its log:" >&2
        tail -40 "$WORK/$name/log" >&2
        for crash in "$WORK/$name"/crash-* "$WORK/$name"/timeout-* "$WORK/$name"/oom-*; do
            [ -e "$crash" ] || continue
            mkdir -p "$ROOT/target/fuzz-crashes/$name"
            cp "$crash" "$ROOT/target/fuzz-crashes/$name/"
            echo "reproduce with: $BIN/$name $ROOT/target/fuzz-crashes/$name/$(basename "$crash")" >&2
        done
    fi
done
mkdir -p "$ROOT/target/safety-suite"
printf 'fuzz_targets %s\nfuzz_execs %s\nfuzz_crashes %s\n' "${#TARGETS[@]}" "$total" "$failed" \
    >"$ROOT/target/safety-suite/fuzz.txt"
((failed == 0))
