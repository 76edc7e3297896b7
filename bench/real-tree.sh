#!/usr/bin/env bash
# Builds the file-tree benchmark's real tree once, in DIR (default /dev/shm/stowage-real-tree):
# the Linux 6.1 source tree (Debian's linux-source-6.1 package) and a minimal Debian 12 root
# (debootstrap --variant=minbase): about 84 000 files, 1.4 GB, mostly small files in deep
# directories, with symlinks, hardlinks and device nodes, as real backups see them.
# Needs root, and the packages linux-source-6.1 and debootstrap (Debian's registry).
#
#   bench/real-tree.sh [DIR]        prints DIR when it is ready
set -euo pipefail
DIR=${1:-/dev/shm/stowage-real-tree}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ -f "$DIR/.complete" ]; then
    echo "$DIR"
    exit 0
fi
for tool in debootstrap xz; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install debootstrap xz-utils" >&2; exit 2; }
done
SOURCE=$(ls /usr/src/linux-source-6.1.tar.xz 2>/dev/null || true)
[ -n "$SOURCE" ] || { echo "missing /usr/src/linux-source-6.1.tar.xz: apt-get install linux-source-6.1" >&2; exit 2; }
rm -rf "$DIR"
mkdir -p "$DIR"
echo "extracting $SOURCE ..." >&2
tar -C "$DIR" -xJf "$SOURCE"
echo "debootstrap of a minimal Debian 12 root from $MIRROR ..." >&2
debootstrap --variant=minbase bookworm "$DIR/debian-root" "$MIRROR" >&2
touch "$DIR/.complete"
echo "$DIR"
