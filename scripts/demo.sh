#!/usr/bin/env bash
# The main job on the embedded default datastore (~/.local/share/stowage/datastore, created on
# first use): back up a generated 256 MiB demo disk image twice (the second run is incremental),
# restore it, and check the restored image is byte-identical.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p stowage -p stowage-bench-gen
STOWAGE=$ROOT/target/release/stowage
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$ROOT/target/release/stowage-bench-gen" image "$WORK/disk.raw" 256 7
printf 'cores: 2\nmemory: 2048\nscsi0: local:vm-100-disk-0,size=256M\n' >"$WORK/qemu-server.conf"

"$STOWAGE" backup drive-scsi0.img:"$WORK/disk.raw" qemu-server.conf:"$WORK/qemu-server.conf" \
    --backup-type vm --backup-id 100
"$ROOT/target/release/stowage-bench-gen" mutate "$WORK/disk.raw" 1 3
"$STOWAGE" backup drive-scsi0.img:"$WORK/disk.raw" --backup-type vm --backup-id 100
"$STOWAGE" snapshots vm/100
"$STOWAGE" restore vm/100 drive-scsi0.img "$WORK/restored.raw"
cmp "$WORK/disk.raw" "$WORK/restored.raw"
"$STOWAGE" verify vm/100
echo "demo: restored image is byte-identical to the source"
