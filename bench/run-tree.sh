#!/usr/bin/env bash
# stowage's file-tree benchmark on a real tree: the Linux 6.1 source tree plus a minimal
# Debian 12 root (bench/real-tree.sh builds it once: about 84 000 files, 1.4 GB, deep
# directories of small files, symlinks, hardlinks, devices). The tree is backed up, backed up
# again unchanged, backed up after 1% of its files changed, and restored, side by side with
# `tar | zstd -T0 -1`, `zstd -d | tar -x` and restic, in the same run.
#
#   bench/run-tree.sh [ROUNDS]            default 3
#   BENCH_TREE=synthetic TOTAL_MIB=2048 bench/run-tree.sh   the generated tree of earlier runs
#
# Restores and unchanged re-backups run ROUNDS times, alternating with the tool they are
# compared with; every round is listed and the targets must hold in each round.
# stowage runs with --change-detection-mode metadata (split archives; unchanged files are not
# read again). Needs: tar, zstd, restic, GNU time (and for the real tree: root, debootstrap,
# linux-source-6.1). Scratch data on $BENCH_DIR (default /dev/shm/stowage-tree).
set -euo pipefail

ROUNDS=${1:-3}
source "$(dirname "$0")/common.sh"
bench_start /dev/shm/stowage-tree "tar zstd restic" tar zstd restic
TREE=$WORK/tree
if [ "${BENCH_TREE:-real}" = synthetic ]; then
    TOTAL_MIB=${TOTAL_MIB:-2048}
    echo "generating a tree of about ${TOTAL_MIB} MiB ..." >&2
    "$GEN" tree "$TREE" "$TOTAL_MIB" 1 2>/dev/null
    MUTATE=mutate-tree
else
    SOURCE=$(bash "$ROOT/bench/real-tree.sh")
    echo "copying the real tree from $SOURCE ..." >&2
    cp -a "$SOURCE" "$TREE"
    MUTATE=mutate-any
fi
FILES=$(find "$TREE" -type f | wc -l)
ENTRIES=$(find "$TREE" | wc -l)
BYTES=$(du -sb --apparent-size "$TREE" | cut -f1)
MIB=$((BYTES >> 20))

RESULTS=()
measure() {
    local label=$1
    shift
    warm $((MIB + 256))
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
    LAST=$secs
}
# The restored tree is the tree: every entry's type, mode, owner, size, mtime and link target,
# and every file's content (device nodes have none: diff only says it cannot compare them).
listing() { (cd "$1" && find . -printf '%y %M %U %G %s %T@ %l %p\n' | sort); }
same_tree() {
    [ "$(listing "$1")" = "$(listing "$2")" ] || return 1
    ! diff -r --no-dereference "$1" "$2" 2>&1 | grep -v -e 'is a character special file' -e 'is a block special file' | grep -q .
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

export STOWAGE_REPOSITORY=$WORK/datastore
export RESTIC_REPOSITORY=$WORK/restic RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$WORK/restic-cache
"$STOWAGE" datastore create "$STOWAGE_REPOSITORY" >/dev/null
restic init -q
chunk_bytes() { du -sb "$STOWAGE_REPOSITORY/.chunks" | cut -f1; }
MODE=(--change-detection-mode metadata)
BACKUP=("$STOWAGE" backup -q root.pxar:"$TREE" --backup-type host --backup-id bench "${MODE[@]}")

measure "tar -c | zstd -T0 -1" sh -c "tar -C '$WORK' -cf - tree | zstd -q -T0 -1 -o '$WORK/tree.tar.zst'"
T_TAR=$LAST
measure "stowage backup (full)" "${BACKUP[@]}"
T_FULL=$LAST
measure "restic backup (full)" restic backup -q "$TREE"
T_RESTIC_FULL=$LAST

# Unchanged re-backups, alternating with restic's: each round is its own figure.
UNCHANGED=()
for round in $(seq "$ROUNDS"); do
    measure "stowage backup (unchanged, round $round)" "${BACKUP[@]}"
    s=$LAST
    measure "restic backup (unchanged, round $round)" restic backup -q "$TREE"
    UNCHANGED+=("$(awk -v a="$s" -v b="$T_FULL" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }');$(ratio "$LAST" "$s")")
done

CHANGED=$("$GEN" "$MUTATE" "$TREE" 1 2 2>/dev/null)
before=$(chunk_bytes)
measure "stowage backup (1% of files changed)" "${BACKUP[@]}"
GROWTH=$(($(chunk_bytes) - before))
measure "restic backup (1% of files changed)" restic backup -q "$TREE"

# Restores swing with this VM's memory, so the pair runs ROUNDS times, alternately.
RESTORES=()
for round in $(seq "$ROUNDS"); do
    measure "stowage restore (round $round)" "$STOWAGE" restore -q host/bench root.pxar "$WORK/restored"
    s=$LAST
    same_tree "$TREE" "$WORK/restored" || { echo "stowage restore differs from the tree" >&2; exit 1; }
    rm -rf "$WORK/restored"
    mkdir -p "$WORK/untar"
    measure "zstd -d | tar -x (round $round)" sh -c "zstd -q -d -c '$WORK/tree.tar.zst' | tar -C '$WORK/untar' -xf -"
    rm -rf "$WORK/untar"
    RESTORES+=("$(ratio "$LAST" "$s")")
done
rm -f "$WORK/tree.tar.zst"
measure "restic restore" restic restore -q latest --target "$WORK/restic-out"
rm -rf "$WORK/restic-out"

echo
echo "tree: $FILES files ($ENTRIES entries), $BYTES bytes; the 1% change rewrote $CHANGED bytes; stowage's store grew by $GROWTH bytes"
echo
echo "| step | seconds | files/s | MB/s | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for r in "${RESULTS[@]}"; do
    IFS=';' read -r l s f m k <<<"$r"
    echo "| ${l//|/\\|} | $s | $f | $m | $k |"
done
echo
echo "| target | measured, round by round |"
echo "|---|---:|"
echo "| full backup vs tar \\| zstd -T0 -1 (>= 1x) | $(ratio "$T_TAR" "$T_FULL")x |"
echo "| full backup vs restic | $(ratio "$T_RESTIC_FULL" "$T_FULL")x |"
echo "| restore vs zstd -d \\| tar -x, each round (>= 1x) | $(printf '%sx ' "${RESTORES[@]}")|"
echo "| unchanged re-backup / full, each round (<= 0.10, metadata mode) | $(for u in "${UNCHANGED[@]}"; do printf '%s ' "${u%%;*}"; done)|"
echo "| unchanged re-backup vs restic, each round (>= 5x) | $(for u in "${UNCHANGED[@]}"; do printf '%sx ' "${u##*;}"; done)|"
echo "| store growth / changed bytes (<= 2) | $(ratio "$GROWTH" "$CHANGED") |"
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); tree on $(df --output=fstype "$WORK" | tail -1)"
