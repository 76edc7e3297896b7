#!/usr/bin/env bash
# The end of the safety suite: runs the fuzz targets (scripts/fuzz.sh), then prints what the
# whole suite tried, from the figures its tests recorded in target/safety-suite/ during
# `cargo test --workspace` (crash kills, injected faults, hostile inputs, concurrent runs) and
# the fuzzing runs. Exits non-zero if fuzzing failed or any snapshot was found damaged.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$ROOT/target/safety-suite
fuzzed=0
bash "$ROOT/scripts/fuzz.sh" || fuzzed=$?

sum() { cat "$DIR"/*.txt 2>/dev/null | awk -v k="$1" '$1 == k { s += $2 } END { print s + 0 }'; }
echo
echo "safety suite:"
printf '  %-38s %12s\n' \
    "kills of running commands (SIGKILL)" "$(sum kills)" \
    "faults injected (EIO, ENOSPC, short)" "$(sum faults)" \
    "hostile inputs refused" "$(sum hostile_cases)" \
    "concurrent backups, forgets, gc runs" "$(sum concurrent_runs)" \
    "fuzz executions ($(sum fuzz_targets) targets)" "$(sum fuzz_execs)" \
    "fuzz crashes" "$(sum fuzz_crashes)" \
    "damaged snapshots" "$(sum damaged_snapshots)"
if [ "$(sum kills)" -eq 0 ] || [ "$(sum faults)" -eq 0 ] || [ "$(sum hostile_cases)" -eq 0 ]; then
    echo "the suite's tests recorded no figures: run 'cargo test --workspace' first" >&2
    exit 1
fi
[ "$(sum damaged_snapshots)" -eq 0 ] && [ "$fuzzed" -eq 0 ]
