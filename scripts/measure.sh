#!/usr/bin/env bash
# The numbers behind the README's "Measured" section, on fresh loop-mounted ext4
# images (needs root): creation time of a 4 GiB .vmem with and without the library
# (median of 5), physical fragments after fake_vmx's simulated guest run (counted by
# filefrag), then the pass-through overhead (scripts/overhead.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "measure.sh: needs root for loop mounts" >&2; exit 1; }

RUNS=5
SIZE=$((4 << 30))
cargo build --release -q -p nosparse --lib --example fake_vmx
lib=$PWD/target/release/libnosparse.so
vmx=$PWD/target/release/examples/fake_vmx
work=$(mktemp -d /var/tmp/nosparse-measure.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
cleanup() { umount "$mnt" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

fresh_ext4() { # size
    umount "$mnt" 2>/dev/null || true
    rm -f "$work/img"
    truncate -s "$1" "$work/img"
    mkfs.ext4 -q -F "$work/img"
    mount -o loop "$work/img" "$mnt"
}

value() { sed -n "s/^$1=//p"; }

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] " (range " v[1] "-" v[NR] ")" }'; }

create_ms() { # preload
    for i in $(seq "$RUNS"); do
        rm -f "$mnt/guest.vmem"
        sync
        env ${1:+LD_PRELOAD=$1} NOSPARSE_LOG=none "$vmx" --path "$mnt/guest.vmem" --size "$SIZE" |
            value create_ns | awk '{ printf "%.3f\n", $1 / 1e6 }'
    done | median
}

fresh_ext4 $((8 << 30))
echo "creation call for a 4 GiB .vmem on ext4, ms, median of $RUNS:"
echo "  without nosparse: $(create_ms "")"
echo "  with nosparse:    $(create_ms "$lib")"

GUEST=$((1 << 30))
WRITES=1024
echo "fragments (filefrag) of a 1 GiB .vmem after $WRITES random 1 MiB writes with fdatasync and a competing writer, fresh 4 GiB ext4:"
for mode in without with; do
    fresh_ext4 $((4 << 30))
    preload=""
    [ "$mode" = with ] && preload=$lib
    env ${preload:+LD_PRELOAD=$preload} NOSPARSE_LOG=none "$vmx" --path "$mnt/guest.vmem" --size "$GUEST" \
        --writes "$WRITES" --competitor "$mnt/rival" >/dev/null
    printf '  %-8s nosparse: %s\n' "$mode" "$(filefrag "$mnt/guest.vmem" | sed 's/.*: //')"
done

bash scripts/overhead.sh
