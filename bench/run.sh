#!/usr/bin/env bash
# stowage's benchmark: image backup, incremental backup and restore, side by side with the tools
# people use instead, on the same deterministic image in the same run.
#
#   bench/run.sh [SIZE_MIB [ROUNDS]]        defaults 4096 (a 4 GiB image) and 3
#
# This VM's timings swing by up to a third from one run of the same command to the next (freed
# memory goes back to the hypervisor and is slow to touch again), so each backup and restore step
# runs ROUNDS times, stowage and restic alternately, and the fastest of each counts; every round
# is listed. Between rounds the step's effect is undone outside the measurement: a full backup
# starts from an empty datastore or repository, an incremental one after the previous round's
# snapshot was forgotten (stowage: forget, then gc with cutoff 0; restic: forget --prune).
#
# Needs: zstd, openssl, restic, GNU time (Debian packages: zstd openssl restic time).
# Scratch data goes to $BENCH_DIR (default /dev/shm/stowage-bench, a tmpfs): the figures are
# CPU and memory bound, not disk bound. Peak RSS is GNU time's maximum resident set size.
set -euo pipefail

SIZE_MIB=${1:-4096}
ROUNDS=${2:-3}
source "$(dirname "$0")/common.sh"
bench_start /dev/shm/stowage-bench "zstd openssl restic" zstd openssl restic cmp
IMG=$WORK/image.raw
BYTES=$((SIZE_MIB * 1024 * 1024))


echo "generating a ${SIZE_MIB} MiB image ..." >&2
"$GEN" image "$IMG" "$SIZE_MIB" 1

RESULTS=()
# measure LABEL COMMAND...: wall seconds and peak RSS of one command
measure() {
    local label=$1
    shift
    warm "$SIZE_MIB"
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || {
        echo "FAILED: $label" >&2
        cat "$WORK/err" >&2
        exit 1
    }
    local secs rss
    read -r secs rss <"$WORK/time"
    local mbs
    mbs=$(awk -v b="$BYTES" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? b / s / 1e6 : 0) }')
    RESULTS+=("$label|$secs|$mbs|$((rss / 1024))")
    printf '%-40s %8s s %8s MB/s %6s MiB\n' "$label" "$secs" "$mbs" "$((rss / 1024))" >&2
    eval "T_$(echo "$label" | tr -c 'a-zA-Z0-9\n' '_')=$secs"
}

export STOWAGE_REPOSITORY=$WORK/datastore
export RESTIC_REPOSITORY=$WORK/restic RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$WORK/restic-cache

measure "openssl dgst -sha256" openssl dgst -sha256 "$IMG"
measure "zstd -T0 -1" zstd -q -T0 -1 -f "$IMG" -o "$WORK/image.zst"
rm -f "$WORK/image.zst"

stowage_fresh() { rm -rf "$STOWAGE_REPOSITORY"; "$STOWAGE" datastore create "$STOWAGE_REPOSITORY" >/dev/null; }
restic_fresh() { rm -rf "$RESTIC_REPOSITORY" "$RESTIC_CACHE_DIR"; restic init -q; }
stowage_undo() { # forget the newest snapshot and collect its chunks
    local newest
    newest=$("$STOWAGE" snapshots vm/100 --output-format json | tr ',' '\n' | sed -n 's/.*"snapshot":"\([^"]*\)".*/\1/p' | tail -1)
    "$STOWAGE" forget "$newest" >/dev/null
    "$STOWAGE" gc --cutoff 0 >/dev/null
}
restic_undo() { restic forget -q latest --prune >/dev/null; }
best() { # best (lowest) seconds of the steps whose label starts with $1
    for r in "${RESULTS[@]}"; do
        IFS='|' read -r l s _ <<<"$r"
        if [[ "$l" == "$1"* ]]; then echo "$s"; fi
    done | sort -g | head -1
}

for round in $(seq "$ROUNDS"); do
    stowage_fresh
    measure "stowage backup (full, round $round)" "$STOWAGE" backup -q drive-scsi0.img:"$IMG" --backup-type vm --backup-id 100
    restic_fresh
    measure "restic backup (full, round $round)" restic backup -q "$IMG"
done

"$GEN" mutate "$IMG" 1 2 2>/dev/null
for round in $(seq "$ROUNDS"); do
    measure "stowage backup (1% changed, round $round)" "$STOWAGE" backup -q drive-scsi0.img:"$IMG" --backup-type vm --backup-id 100
    measure "restic backup (1% changed, round $round)" restic backup -q "$IMG"
    if [ "$round" -lt "$ROUNDS" ]; then stowage_undo; restic_undo; fi
done

for round in $(seq "$ROUNDS"); do
    measure "stowage restore (round $round)" "$STOWAGE" restore -q vm/100 drive-scsi0.img "$WORK/restored.raw"
    cmp "$IMG" "$WORK/restored.raw" || { echo "stowage restore differs from the image" >&2; exit 1; }
    rm -f "$WORK/restored.raw"
    measure "restic restore (round $round)" restic restore -q latest --target "$WORK/restic-out"
    cmp "$IMG" "$WORK/restic-out$IMG" || { echo "restic restore differs from the image" >&2; exit 1; }
    rm -rf "$WORK/restic-out"
done

T_stowage_full=$(best "stowage backup (full")
T_restic_full=$(best "restic backup (full")
T_stowage_incr=$(best "stowage backup (1%")
T_stowage_restore=$(best "stowage restore")
T_restic_restore=$(best "restic restore")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
echo "| step | seconds | MB/s of image | peak RSS MiB |"
echo "|---|---:|---:|---:|"
for r in "${RESULTS[@]}"; do
    IFS='|' read -r l s m k <<<"$r"
    echo "| $l | $s | $m | $k |"
done
echo
echo "| target (best of $ROUNDS rounds each) | measured |"
echo "|---|---:|"
echo "| full backup vs restic (>= 3x) | $(ratio "$T_restic_full" "$T_stowage_full")x |"
echo "| full backup vs zstd -T0 -1 (>= 0.8x) | $(ratio "$T_zstd__T0__1" "$T_stowage_full")x |"
echo "| 1%-changed backup faster than full (>= 3x) | $(ratio "$T_stowage_full" "$T_stowage_incr")x |"
echo "| restore vs restic (>= 2.5x) | $(ratio "$T_restic_restore" "$T_stowage_restore")x |"
echo "| restore (>= 1500 MB/s) | $(awk -v b="$BYTES" -v s="$T_stowage_restore" 'BEGIN { printf "%.0f", b / s / 1e6 }') MB/s |"
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); image ${SIZE_MIB} MiB on $(df --output=fstype "$WORK" | tail -1)"
echo "versions: $("$STOWAGE" --version), $(zstd --version | head -1), $(restic version | head -1), $(openssl version)"
