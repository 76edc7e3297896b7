# Shared by the benchmark scripts (sourced, not run): tool checks, the release build, the
# scratch directory, and the memory warm-up.

# bench_start WORK_DEFAULT "apt packages" TOOL...: checks the tools, builds stowage and the data
# generator in release mode, and makes a fresh scratch directory $WORK (removed on exit).
# Sets ROOT, STOWAGE, GEN and WORK.
bench_start() {
    local default=$1 packages=$2
    shift 2
    for tool in "$@" /usr/bin/time; do
        command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install $packages time" >&2; exit 2; }
    done
    ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p stowage -p stowage-bench-gen
    STOWAGE=$ROOT/target/release/stowage
    GEN=$ROOT/target/release/stowage-bench-gen
    WORK=${BENCH_DIR:-$default}
    rm -rf "$WORK"
    mkdir -p "$WORK"
    # The client's cache (fast hashes) lives with the scratch data, as restic's does.
    export STOWAGE_CACHE_DIR=$WORK/stowage-cache
    trap 'rm -rf "$WORK"' EXIT
}

# On a VM with free-page reporting (virtio-balloon), memory that the guest freed goes back to
# the host within seconds, and touching it again costs ~3 s per GiB. Every step writes new data
# (chunks, archives, restored files) into tmpfs, so before each measured step the same amount of
# memory is touched and freed: every tool starts from the same warm state, and the figures
# measure the tools rather than the hypervisor.
# warm MIB: touch and free MIB of tmpfs memory.
warm() {
    dd if=/dev/zero of="$WORK/warm" bs=4M count=$(($1 / 4)) status=none
    rm -f "$WORK/warm"
}
