#!/usr/bin/env bash
# stowage's standard-archive benchmark: export of the benchmark image from a datastore to .gz,
# .zst, .xz and .lz4, side by side in one run with pigz, zstd, xz and lz4 at the same level and
# thread count, reading the same raw image.
#
#   bench/run-export.sh [SIZE_MIB [XZ_SIZE_MIB [XZ_ROUNDS]]]   defaults 4096, 512 and 1
#
# xz -6 is slow and its times vary from run to run; XZ_ROUNDS > 1 repeats the xz pair
# (stowage export, xz) alternately.
#
# Needs: pigz, zstd, xz-utils, lz4, GNU time (Debian packages: pigz zstd xz-utils lz4 time).
# Scratch data goes to $BENCH_DIR (default /dev/shm/stowage-bench-export, a tmpfs).
set -euo pipefail

SIZE_MIB=${1:-4096}
XZ_MIB=${2:-512}
XZ_ROUNDS=${3:-1}
source "$(dirname "$0")/common.sh"
bench_start /dev/shm/stowage-bench-export "pigz zstd xz-utils lz4" pigz zstd xz lz4
T=$(nproc)


# measure LABEL INPUT_MIB OUTPUT COMMAND...: one row (wall s, MB/s of input, output MiB, ratio)
measure() {
    local label=$1 mib=$2 out=$3
    shift 3
    warm "$mib"
    /usr/bin/time -f "%e %M" -o "$WORK/time" bash -c "$*" 2>"$WORK/err" >/dev/null || {
        echo "FAILED: $label" >&2
        cat "$WORK/err" >&2
        exit 1
    }
    local secs rss size
    read -r secs rss <"$WORK/time"
    size=$(stat -c %s "$out")
    awk -v l="$label" -v s="$secs" -v m="$mib" -v o="$size" -v r="$rss" 'BEGIN {
        printf "| %s | %.2f | %.0f | %.1f | %.3f | %.0f |\n", l, s, m * 1048576 / s / 1e6, o / 1048576, m * 1048576 / o, r / 1024 }'
    rm -f "$out" "$out.sha256" "$out.manifest.json"
}

setup() { # MIB: the image, and a datastore holding one backup of it
    rm -rf "$WORK/store" "$WORK/image.raw"
    "$GEN" image "$WORK/image.raw" "$1" 1 2>/dev/null
    "$STOWAGE" datastore create "$WORK/store" >/dev/null
    "$STOWAGE" --repository "$WORK/store" -q backup "drive-scsi0.img:$WORK/image.raw" \
        --backup-type vm --backup-id 100 >/dev/null
}

EXPORT="$STOWAGE --repository $WORK/store -q --threads $T export vm/100 drive-scsi0.img"
ARCHIVE="$STOWAGE -q --threads $T archive"
echo "$SIZE_MIB MiB image (bench gen), $T threads everywhere"
echo
echo "| case | wall s | MB/s | output MiB | ratio | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|"
setup "$SIZE_MIB"
measure "stowage export .img.gz (level 6)" "$SIZE_MIB" "$WORK/a.img.gz" "$EXPORT $WORK/a.img.gz"
measure "stowage archive raw file .img.gz (level 6)" "$SIZE_MIB" "$WORK/c.img.gz" "$ARCHIVE $WORK/image.raw $WORK/c.img.gz"
measure "pigz -6 -p $T" "$SIZE_MIB" "$WORK/b.gz" "pigz -6 -p $T < $WORK/image.raw > $WORK/b.gz"
measure "stowage export .img.zst (level 3)" "$SIZE_MIB" "$WORK/a.img.zst" "$EXPORT $WORK/a.img.zst"
measure "stowage archive raw file .img.zst (level 3)" "$SIZE_MIB" "$WORK/c.img.zst" "$ARCHIVE $WORK/image.raw $WORK/c.img.zst"
measure "zstd -3 -T$T" "$SIZE_MIB" "$WORK/b.zst" "zstd -q -3 -T$T < $WORK/image.raw > $WORK/b.zst"
measure "stowage export .img.zst (level 1: the stored frames)" "$SIZE_MIB" "$WORK/a.img.zst" "$EXPORT $WORK/a.img.zst --level 1"
measure "zstd -1 -T$T" "$SIZE_MIB" "$WORK/b.zst" "zstd -q -1 -T$T < $WORK/image.raw > $WORK/b.zst"
measure "stowage export .img.lz4" "$SIZE_MIB" "$WORK/a.img.lz4" "$EXPORT $WORK/a.img.lz4"
measure "lz4 -1 (single-threaded tool)" "$SIZE_MIB" "$WORK/b.lz4" "lz4 -q -1 < $WORK/image.raw > $WORK/b.lz4"
echo
echo "$XZ_MIB MiB image for xz"
echo
echo "| case | wall s | MB/s | output MiB | ratio | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|"
setup "$XZ_MIB"
measure "stowage archive raw file .img.xz (level 6)" "$XZ_MIB" "$WORK/c.img.xz" "$ARCHIVE $WORK/image.raw $WORK/c.img.xz"
for _ in $(seq "$XZ_ROUNDS"); do
    measure "stowage export .img.xz (level 6)" "$XZ_MIB" "$WORK/a.img.xz" "$EXPORT $WORK/a.img.xz"
    measure "xz -6 -T$T" "$XZ_MIB" "$WORK/b.xz" "xz -q -6 -T$T < $WORK/image.raw > $WORK/b.xz"
done
