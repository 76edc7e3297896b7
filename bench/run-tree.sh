#!/usr/bin/env bash
# stowage's file-tree benchmark: a deterministic tree of 100 000 files (about 2 GB), backed up,
# backed up again after 1% of the files changed, backed up again unchanged, and restored, side by
# side with `tar | zstd -T0 -1`, `zstd -d | tar -x` and restic, in the same run.
#
#   bench/run-tree.sh [TOTAL_MIB [RESTORE_ROUNDS]]      defaults 2048 and 2
#
# stowage runs with --change-detection-mode metadata (split archives; unchanged files are not
# read again).
# Needs: tar, zstd, restic, GNU time. Scratch data on $BENCH_DIR (default /dev/shm/stowage-tree).
set -euo pipefail

TOTAL_MIB=${1:-2048}
RESTORE_ROUNDS=${2:-2}
source "$(dirname "$0")/common.sh"
bench_start /dev/shm/stowage-tree "tar zstd restic" tar zstd restic
TREE=$WORK/tree
echo "generating a tree of about ${TOTAL_MIB} MiB ..." >&2
"$GEN" tree "$TREE" "$TOTAL_MIB" 1 2>/dev/null
FILES=$(find "$TREE" -type f | wc -l)
BYTES=$(du -sb --apparent-size "$TREE" | cut -f1)


RESULTS=()
measure() {
    local label=$1
    shift
    warm $((TOTAL_MIB + 256))
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || {
        local rc=$?
        if [ "$rc" -ne 7 ]; then
            echo "FAILED ($rc): $label" >&2
            cat "$WORK/err" >&2
            exit 1
        fi
    }
    local secs rss
    read -r secs rss <"$WORK/time"
    local fps mbs
    fps=$(awk -v f="$FILES" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? f / s : 0) }')
    mbs=$(awk -v b="$BYTES" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? b / s / 1e6 : 0) }')
    RESULTS+=("$label;$secs;$fps;$mbs;$((rss / 1024))")
    printf '%-44s %8s s %8s files/s %6s MB/s %6s MiB\n' "$label" "$secs" "$fps" "$mbs" "$((rss / 1024))" >&2
    eval "T_$(echo "$label" | tr -c 'a-zA-Z0-9\n' '_')=$secs"
}

export STOWAGE_REPOSITORY=$WORK/datastore
export RESTIC_REPOSITORY=$WORK/restic RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$WORK/restic-cache
"$STOWAGE" datastore create "$STOWAGE_REPOSITORY" >/dev/null
restic init -q
chunk_bytes() { du -sb "$STOWAGE_REPOSITORY/.chunks" | cut -f1; }

measure "tar -c | zstd -T0 -1" sh -c "tar -C '$WORK' -cf - tree | zstd -q -T0 -1 -o '$WORK/tree.tar.zst'"
MODE=(--change-detection-mode metadata)
measure "stowage backup (full)" "$STOWAGE" backup -q root.pxar:"$TREE" --backup-type host --backup-id bench "${MODE[@]}"
measure "restic backup (full)" restic backup -q "$TREE"

CHANGED=$("$GEN" mutate-tree "$TREE" 1 2 2>/dev/null)
before=$(chunk_bytes)
measure "stowage backup (1% of files changed)" "$STOWAGE" backup -q root.pxar:"$TREE" --backup-type host --backup-id bench "${MODE[@]}"
GROWTH=$(( $(chunk_bytes) - before ))
measure "restic backup (1% of files changed)" restic backup -q "$TREE"
measure "stowage backup (unchanged)" "$STOWAGE" backup -q root.pxar:"$TREE" --backup-type host --backup-id bench "${MODE[@]}"
measure "restic backup (unchanged)" restic backup -q "$TREE"

# Restores swing with this VM's memory (a first run may spend seconds more in the kernel than
# the next), so the pair runs $RESTORE_ROUNDS times, alternately, and the best of each counts.
for round in $(seq "$RESTORE_ROUNDS"); do
    measure "stowage restore (round $round)" "$STOWAGE" restore -q host/bench root.pxar "$WORK/restored"
    diff -r "$TREE" "$WORK/restored" >/dev/null || { echo "stowage restore differs from the tree" >&2; exit 1; }
    rm -rf "$WORK/restored"
    mkdir -p "$WORK/untar"
    measure "zstd -d | tar -x (round $round)" sh -c "zstd -q -d -c '$WORK/tree.tar.zst' | tar -C '$WORK/untar' -xf -"
    rm -rf "$WORK/untar"
done
rm -f "$WORK/tree.tar.zst"
best() { # best (lowest) seconds of the steps whose label starts with $1
    for r in "${RESULTS[@]}"; do
        IFS=';' read -r l s _ <<<"$r"
        if [[ "$l" == "$1"* ]]; then echo "$s"; fi
    done | sort -g | head -1
}
T_stowage_restore=$(best "stowage restore")
T_zstd__d___tar__x=$(best "zstd -d | tar -x")
measure "restic restore" restic restore -q latest --target "$WORK/restic-out"
rm -rf "$WORK/restic-out"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
echo "tree: $FILES files, $BYTES bytes; 1% change rewrote $CHANGED bytes; stowage's store grew by $GROWTH bytes"
echo
echo "| step | seconds | files/s | MB/s | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for r in "${RESULTS[@]}"; do
    IFS=';' read -r l s f m k <<<"$r"
    echo "| ${l//|/\\|} | $s | $f | $m | $k |"
done
echo
echo "| target | measured |"
echo "|---|---:|"
echo "| full backup vs tar \\| zstd -T0 -1 (>= 1x) | $(ratio "$T_tar__c___zstd__T0__1" "$T_stowage_backup__full_")x |"
echo "| full backup vs restic | $(ratio "$T_restic_backup__full_" "$T_stowage_backup__full_")x |"
echo "| restore vs zstd -d \\| tar -x, best of $RESTORE_ROUNDS rounds each (>= 1x) | $(ratio "$T_zstd__d___tar__x" "$T_stowage_restore")x |"
echo "| unchanged re-backup / full (<= 0.10, metadata mode) | $(ratio "$T_stowage_backup__unchanged_" "$T_stowage_backup__full_") |"
echo "| unchanged re-backup vs restic (>= 5x) | $(ratio "$T_restic_backup__unchanged_" "$T_stowage_backup__unchanged_")x |"
echo "| store growth / changed bytes (<= 2) | $(ratio "$GROWTH" "$CHANGED") |"
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); tree on $(df --output=fstype "$WORK" | tail -1)"
