#!/usr/bin/env bash
# A/B of two stowage binaries on the benchmarks' data, in one run: an image backup (full, then
# incremental after 1% of the image changed) and its restore, and a file-tree backup of the real
# tree (full and unchanged, metadata change detection) and its restore. Rounds alternate the
# binaries (A B, B A, ...); every round is listed and the best of each step counts.
#
#   bench/ab.sh BIN_A BIN_B [ROUNDS [IMAGE_MIB]]     defaults 3 and 4096
#
# Build A from an earlier commit, e.g.
#   git worktree add /dev/shm/ab-base COMMIT
#   (cd /dev/shm/ab-base && CARGO_TARGET_DIR=/dev/shm/ab-target cargo build --release -p stowage)
# and B with `cargo build --release -p stowage` here. Needs root for the real tree (see
# bench/real-tree.sh) and GNU time. Scratch data on $BENCH_DIR (default /dev/shm/stowage-ab).
set -euo pipefail

BIN_A=$(realpath "$1")
BIN_B=$(realpath "$2")
ROUNDS=${3:-3}
IMAGE_MIB=${4:-4096}
source "$(dirname "$0")/common.sh"
bench_start /dev/shm/stowage-ab "coreutils" cmp
IMG=$WORK/image.raw
IMG2=$WORK/image-1pct.raw
TREE_SOURCE=$(bash "$ROOT/bench/real-tree.sh")
TREE=$WORK/tree
TREE_MIB=$(($(du -sb --apparent-size "$TREE_SOURCE" | cut -f1) >> 20))

echo "generating a ${IMAGE_MIB} MiB image and its copy with 1% changed ..." >&2
"$GEN" image "$IMG" "$IMAGE_MIB" 1
cp "$IMG" "$IMG2"
"$GEN" mutate "$IMG2" 1 2 2>/dev/null
echo "copying the real tree from $TREE_SOURCE ..." >&2
cp -a "$TREE_SOURCE" "$TREE"

RESULTS=()
# measure LABEL WARM_MIB COMMAND...: wall seconds and peak RSS of one command
measure() {
    local label=$1 warm_mib=$2
    shift 2
    warm "$warm_mib"
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || {
        echo "FAILED: $label" >&2
        cat "$WORK/err" >&2
        exit 1
    }
    local secs rss
    read -r secs rss <"$WORK/time"
    RESULTS+=("$label|$secs|$((rss / 1024))")
    printf '%-40s %8s s %6s MiB\n' "$label" "$secs" "$((rss / 1024))" >&2
}
best() { # best (lowest) seconds of the steps whose label starts with $1
    for r in "${RESULTS[@]}"; do
        IFS='|' read -r l s _ <<<"$r"
        if [[ "$l" == "$1"* ]]; then echo "$s"; fi
    done | sort -g | head -1
}

# one_round WHICH BIN ROUND: every step with one binary, on a fresh datastore.
one_round() {
    local which=$1 bin=$2 round=$3
    local repo=$WORK/datastore
    rm -rf "$repo"
    "$bin" datastore create "$repo" >/dev/null
    local image=(backup -q drive-scsi0.img:"$IMG" --backup-type vm --backup-id 100)
    local image2=(backup -q drive-scsi0.img:"$IMG2" --backup-type vm --backup-id 100)
    local tree=(backup -q root.pxar:"$TREE" --backup-type host --backup-id tree --change-detection-mode metadata)
    export STOWAGE_REPOSITORY=$repo
    export STOWAGE_CACHE_DIR=$WORK/cache-$which
    rm -rf "$STOWAGE_CACHE_DIR"
    measure "$which image backup (full, round $round)" "$IMAGE_MIB" "$bin" "${image[@]}"
    measure "$which image backup (1%, round $round)" "$IMAGE_MIB" "$bin" "${image2[@]}"
    measure "$which image restore (round $round)" "$IMAGE_MIB" "$bin" restore -q vm/100 drive-scsi0.img "$WORK/restored.raw"
    cmp "$IMG2" "$WORK/restored.raw" || { echo "$which: the restored image differs" >&2; exit 1; }
    rm -f "$WORK/restored.raw"
    measure "$which tree backup (full, round $round)" "$TREE_MIB" "$bin" "${tree[@]}"
    measure "$which tree backup (unchanged, round $round)" "$TREE_MIB" "$bin" "${tree[@]}"
    measure "$which tree restore (round $round)" "$TREE_MIB" "$bin" restore -q host/tree root.pxar "$WORK/restored"
    diff -rq --no-dereference "$TREE" "$WORK/restored" 2>&1 | grep -v -e 'special file' | grep -q . &&
        { echo "$which: the restored tree differs" >&2; exit 1; }
    rm -rf "$WORK/restored" "$repo"
}

for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
        one_round A "$BIN_A" "$round"
        one_round B "$BIN_B" "$round"
    else
        one_round B "$BIN_B" "$round"
        one_round A "$BIN_A" "$round"
    fi
done

echo
echo "| step | A best (s) | B best (s) | B / A |"
echo "|---|---:|---:|---:|"
for step in "image backup (full" "image backup (1%" "image restore" "tree backup (full" "tree backup (unchanged" "tree restore"; do
    a=$(best "A $step")
    b=$(best "B $step")
    printf '| %s | %s | %s | %s |\n' "${step//(/}" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')"
done
echo
echo "A: $BIN_A ($("$BIN_A" --version))"
echo "B: $BIN_B ($("$BIN_B" --version))"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -r)"
