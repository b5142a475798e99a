#!/usr/bin/env bash
# What the library costs a call it lets through: extra user-space instructions per
# pass-through pwrite64, pwrite (on i686, with its 32-bit off_t) and write (hooked for
# the opt-in write trigger), counted by valgrind --tool=callgrind (instructions, not
# disturbed by a busy machine), and extra syscalls (strace -c), for x86_64 and i686.
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
/* N small pwrite64 (or, built with -DUSE_WRITE, write; with -DUSE_PWRITE, pwrite)
   calls: the kind of call nosparse must let through untouched. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    int fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0600);
    char buf[16] = "0123456789abcdef";
    for (long i = 0; i < n; i++) {
#if defined(USE_WRITE)
        if ((i & 255) == 0) lseek(fd, 0, SEEK_SET);
        if (write(fd, buf, sizeof buf) != sizeof buf) return 1;
#elif defined(USE_PWRITE)
        if (pwrite(fd, buf, sizeof buf, (i & 255) * 16) != sizeof buf) return 1;
#else
        if (pwrite64(fd, buf, sizeof buf, (i & 255) * 16) != sizeof buf) return 1;
#endif
    }
    return 0;
}
C

# For scale: the smallest useful hook, in C — the test first, then a tail call through
# a pointer resolved once.
cat > "$work/chook.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/types.h>
static ssize_t (*real)(int, const void *, size_t, off64_t);
__attribute__((constructor)) static void init(void) { real = dlsym(RTLD_NEXT, "pwrite64"); }
__attribute__((noinline)) static ssize_t closer_look(int fd, const void *b, size_t n, off64_t o) { return real(fd, b, n, o); }
ssize_t pwrite64(int fd, const void *b, size_t n, off64_t o) {
    if (__builtin_expect(n == 1, 0)) return closer_look(fd, b, n, o);
    return real(fd, b, n, o);
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
    awk '$NF == "total" { s += $4 } END { print s }' "$work/st.out"
}

printf '%-8s %-9s %20s %20s %24s\n' arch call "nosparse: extra" "C hook: extra" "nosparse: extra"
printf '%-8s %-9s %20s %20s %24s\n' "" "" "instructions/call" "instructions/call" "syscalls/call"
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
    gcc -O2 -shared -fPIC "${cc_flags[@]}" -o "$work/chook-$arch.so" "$work/chook.c" -ldl
    for call in pwrite64 pwrite write; do
        bin="$work/loop-$arch-$call"
        define=()
        [ "$call" = write ] && define=(-DUSE_WRITE)
        [ "$call" = pwrite ] && define=(-DUSE_PWRITE)
        gcc -O2 "${cc_flags[@]}" "${define[@]}" -o "$bin" "$work/loop.c"
        # The lseek every 256 writes is in both runs, so it cancels out too.
        base=$(( $(instructions "$bin" $N2) - $(instructions "$bin" $N1) ))
        with=$(( $(instructions "$bin" $N2 "$lib") - $(instructions "$bin" $N1 "$lib") ))
        chook=-
        if [ "$call" = pwrite64 ]; then
            chook=$(( $(instructions "$bin" $N2 "$work/chook-$arch.so") - $(instructions "$bin" $N1 "$work/chook-$arch.so") ))
        fi
        sbase=$(( $(syscalls "$bin" $N2) - $(syscalls "$bin" $N1) ))
        swith=$(( $(syscalls "$bin" $N2 "$lib") - $(syscalls "$bin" $N1 "$lib") ))
        awk -v a="$arch" -v call="$call" -v b="$base" -v w="$with" -v c="$chook" -v sb="$sbase" -v sw="$swith" -v n=$((N2 - N1)) \
            'BEGIN { ch = (c == "-") ? "-" : sprintf("%.2f", (c - b) / n)
                     printf "%-8s %-9s %20.2f %20s %24.4f\n", a, call, (w - b) / n, ch, (sw - sb) / n }'
    done
done
