#!/usr/bin/env bash
# stowage's benchmark: image backup, incremental backup and restore, side by side with the tools
# people use instead, on the same deterministic image in the same run.
#
#   bench/run.sh [SIZE_MIB]        default 4096 (a 4 GiB image)
#
# Needs: zstd, openssl, restic, GNU time (Debian packages: zstd openssl restic time).
# Scratch data goes to $BENCH_DIR (default /dev/shm/stowage-bench, a tmpfs): the figures are
# CPU and memory bound, not disk bound. Peak RSS is GNU time's maximum resident set size.
set -euo pipefail

SIZE_MIB=${1:-4096}
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

"$STOWAGE" datastore create "$STOWAGE_REPOSITORY" >/dev/null
measure "stowage backup (full)" "$STOWAGE" backup -q drive-scsi0.img:"$IMG" --backup-type vm --backup-id 100
restic init -q
measure "restic backup (full)" restic backup -q "$IMG"

"$GEN" mutate "$IMG" 1 2 2>/dev/null
measure "stowage backup (1% changed)" "$STOWAGE" backup -q drive-scsi0.img:"$IMG" --backup-type vm --backup-id 100
measure "restic backup (1% changed)" restic backup -q "$IMG"

measure "stowage restore" "$STOWAGE" restore -q vm/100 drive-scsi0.img "$WORK/restored.raw"
cmp "$IMG" "$WORK/restored.raw" || { echo "stowage restore differs from the image" >&2; exit 1; }
rm -f "$WORK/restored.raw"
measure "restic restore" restic restore -q latest --target "$WORK/restic-out"
cmp "$IMG" "$WORK/restic-out$IMG" || { echo "restic restore differs from the image" >&2; exit 1; }
rm -rf "$WORK/restic-out"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
echo "| step | seconds | MB/s of image | peak RSS MiB |"
echo "|---|---:|---:|---:|"
for r in "${RESULTS[@]}"; do
    IFS='|' read -r l s m k <<<"$r"
    echo "| $l | $s | $m | $k |"
done
echo
echo "| target | measured |"
echo "|---|---:|"
echo "| full backup vs restic (>= 3x) | $(ratio "$T_restic_backup__full_" "$T_stowage_backup__full_")x |"
echo "| full backup vs zstd -T0 -1 (>= 0.8x) | $(ratio "$T_zstd__T0__1" "$T_stowage_backup__full_")x |"
echo "| 1%-changed backup faster than full (>= 3x) | $(ratio "$T_stowage_backup__full_" "$T_stowage_backup__1__changed_")x |"
echo "| restore vs restic (>= 2.5x) | $(ratio "$T_restic_restore" "$T_stowage_restore")x |"
echo "| restore (>= 1500 MB/s) | $(awk -v b="$BYTES" -v s="$T_stowage_restore" 'BEGIN { printf "%.0f", b / s / 1e6 }') MB/s |"
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); image ${SIZE_MIB} MiB on $(df --output=fstype "$WORK" | tail -1)"
echo "versions: $("$STOWAGE" --version), $(zstd --version | head -1), $(restic version | head -1), $(openssl version)"
