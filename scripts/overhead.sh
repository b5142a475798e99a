#!/usr/bin/env bash
# What the library costs a call it lets through: extra user-space instructions per
# pass-through pwrite64 (valgrind --tool=callgrind, which counts instructions and is
# not disturbed by a busy machine) and extra syscalls (strace -c), for x86_64 and i686.
#
# Each count is taken for two loop lengths, so start-up cost cancels out:
#   per call = (count(N2) - count(N1)) / (N2 - N1)
# Needs valgrind, strace and gcc-multilib; builds the library in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in valgrind strace gcc; do
    command -v "$tool" >/dev/null || { echo "overhead.sh: $tool is not installed" >&2; exit 1; }
done

N1=1000
N2=101000
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/loop.c" <<'C'
/* N small pwrite64 calls: the kind of call nosparse must let through untouched. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    int fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0600);
    char buf[16] = "0123456789abcdef";
    for (long i = 0; i < n; i++)
        if (pwrite64(fd, buf, sizeof buf, (i & 255) * 16) != sizeof buf) return 1;
    return 0;
}
C

instructions() { # binary n [preload]
    local out="$work/cg.out"
    env ${3:+LD_PRELOAD=$3} valgrind --tool=callgrind --callgrind-out-file="$out" "$1" "$2" "$work/data" 2>/dev/null
    awk '/^summary:/ { print $2 }' "$out"
}

syscalls() { # binary n [preload]
    strace -c -f ${3:+-E LD_PRELOAD=$3} -o "$work/st.out" "$1" "$2" "$work/data"
    # A 32-bit program gets two tables (the execve is counted in 64-bit mode): add them.
    awk '$NF == "total" { s += $(NF-2) } END { print s }' "$work/st.out"
}

printf '%-8s %28s %28s\n' arch "extra instructions per call" "extra syscalls per call"
for arch in x86_64 i686; do
    if [ "$arch" = x86_64 ]; then
        cargo build --release -q -p nosparse
        lib=$PWD/target/release/libnosparse.so
        cc_flags=()
    else
        cargo build --release -q -p nosparse --target i686-unknown-linux-gnu
        lib=$PWD/target/i686-unknown-linux-gnu/release/libnosparse.so
        cc_flags=(-m32)
    fi
    gcc -O2 "${cc_flags[@]}" -o "$work/loop-$arch" "$work/loop.c"
    bin="$work/loop-$arch"
    base=$(( $(instructions "$bin" $N2) - $(instructions "$bin" $N1) ))
    with=$(( $(instructions "$bin" $N2 "$lib") - $(instructions "$bin" $N1 "$lib") ))
    sbase=$(( $(syscalls "$bin" $N2) - $(syscalls "$bin" $N1) ))
    swith=$(( $(syscalls "$bin" $N2 "$lib") - $(syscalls "$bin" $N1 "$lib") ))
    awk -v a="$arch" -v b="$base" -v w="$with" -v sb="$sbase" -v sw="$swith" -v n=$((N2 - N1)) \
        'BEGIN { printf "%-8s %28.2f %28.4f\n", a, (w - b) / n, (sw - sb) / n }'
done
