#!/usr/bin/env bash
# stowage's maintenance benchmark: garbage collection on a big synthetic store, and verify
# throughput against single-core chunk verification times the number of cores.
#
#   bench/run-maint.sh [CHUNKS [SNAPSHOTS [IMAGE_MIB]]]   defaults 1000000 1000 2048
#
# GC: a datastore of CHUNKS small chunks and SNAPSHOTS snapshots (20 per group; consecutive
# snapshots share 95% of their chunks; 2.5% of the chunks are garbage, their atime two days
# back). The first collection removes the garbage, the second finds nothing to do.
# Verify: a datastore holding one backup of the benchmark image, verified with one thread and
# with all cores; each run decompresses and hashes every chunk once.
# Needs GNU time. Scratch data goes to $BENCH_DIR (default /dev/shm/stowage-bench-maint).
set -euo pipefail

CHUNKS=${1:-1000000}
SNAPSHOTS=${2:-1000}
IMAGE_MIB=${3:-2048}
source "$(dirname "$0")/common.sh"
bench_start /dev/shm/stowage-bench-maint ""
CORES=$(nproc)

# run LABEL COMMAND...: prints wall seconds and peak RSS, keeps stdout in $WORK/out
run() {
    local label=$1
    shift
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || {
        echo "FAILED: $label" >&2
        cat "$WORK/err" "$WORK/out" >&2
        exit 1
    }
    read -r SECS RSS <"$WORK/time"
    RSS=$((RSS / 1024))
}

echo "generating a store of $CHUNKS chunks and $SNAPSHOTS snapshots ..." >&2
"$GEN" store "$WORK/gc-store" "$CHUNKS" "$SNAPSHOTS"
echo "| case | wall s | mark s | sweep s | removed chunks | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|"
for pass in first second; do
    run "gc $pass" "$STOWAGE" --repository "$WORK/gc-store" --output-format json gc
    read -r MARK SWEEP REMOVED < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["mark-seconds"], r["sweep-seconds"], r["status"]["removed-chunks"])' "$WORK/out")
    printf '| gc, %s run | %s | %.2f | %.2f | %s | %s |\n' "$pass" "$SECS" "$MARK" "$SWEEP" "$REMOVED" "$RSS"
done
rm -rf "$WORK/gc-store"

echo "generating a ${IMAGE_MIB} MiB image and backing it up ..." >&2
"$GEN" image "$WORK/image.raw" "$IMAGE_MIB" 1
"$STOWAGE" datastore create "$WORK/v-store" >/dev/null
"$STOWAGE" --repository "$WORK/v-store" --quiet backup "drive-scsi0.img:$WORK/image.raw" --backup-type vm --backup-id 100 >/dev/null
rm -f "$WORK/image.raw"
echo
echo "| verify | threads | wall s | checked MB/s | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
declare -A RATE
for threads in 1 "$CORES"; do
    run "verify $threads" "$STOWAGE" --repository "$WORK/v-store" --output-format json --threads "$threads" verify --all
    CHECKED=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_checked"])' "$WORK/out")
    RATE[$threads]=$(awk -v b="$CHECKED" -v s="$SECS" 'BEGIN { printf "%.0f", b / s / 1e6 }')
    printf '| all chunks of a %s MiB image | %s | %s | %s | %s |\n' "$IMAGE_MIB" "$threads" "$SECS" "${RATE[$threads]}" "$RSS"
done
awk -v one="${RATE[1]}" -v all="${RATE[$CORES]}" -v n="$CORES" \
    'BEGIN { printf "\nverify with %d threads: %.0f%% of %d x the single-thread speed\n", n, 100 * all / (one * n), n }'
