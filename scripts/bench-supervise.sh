#!/usr/bin/env bash
# The supervise mode's costs, side by side in one run (x86_64 programs; I686=1 for i386
# programs under the 32-bit supervisor):
#   1. a non-candidate call (a 16-byte pwrite64 on tmpfs) under the supervisor's filter,
#      under a one-instruction allow-everything filter, and with no filter;
#   2. the creation call (pwrite64 of the last byte of a SIZE file on DIR) through the
#      supervisor, against a bare fallocate(2) of the same size;
#   3. start-up: the launcher with --supervise around a program that does nothing,
#      against the program alone; and each exec inside a supervised tree (a shell
#      starting the program COUNT times) against the same shell unsupervised.
# Medians of ROUNDS interleaved rounds (the per-call cost: the fastest of 20 chunks of
# each run, in CPU time). Usage: scripts/bench-supervise.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/var/tmp}
ROUNDS=${ROUNDS:-11}
CALLS=${CALLS:-2000000}
SIZE=${SIZE:-$((1 << 30))}
COUNT=${COUNT:-200}
SHM=${SHM:-/dev/shm}

target=() m32=() triple=x86_64-unknown-linux-gnu
if [ "${I686:-0}" = 1 ]; then
    target=(--target i686-unknown-linux-gnu) m32=(-m32) triple=i686-unknown-linux-gnu
fi
cargo build --quiet --release -p nosparse-cli "${target[@]}"
nosparse=target/release/nosparse
[ "${I686:-0}" = 1 ] && nosparse=target/i686-unknown-linux-gnu/release/nosparse
work=$(mktemp -d "$DIR/nosparse-bench-sup.XXXXXX")
trap 'rm -rf "$work" "$SHM"/nosparse-bench-sup.$$' EXIT
prog=$work/supervise
gcc -O2 -static "${m32[@]}" -o "$prog" examples/bench/supervise.c
shm=$SHM/nosparse-bench-sup.$$

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ns() { date +%s%N; }

declare -A r
for ((i = 0; i < ROUNDS; i++)); do
    r[bare]+="$("$prog" loop "$CALLS" "$shm") "
    r[allow]+="$("$prog" allowall "$CALLS" "$shm") "
    r[filter]+="$("$nosparse" --supervise -- "$prog" loop "$CALLS" "$shm") "
    rm -f "$work/c"; sync
    r[create]+="$("$nosparse" --supervise -- "$prog" create "$SIZE" "$work/c") "
    rm -f "$work/c"; sync
    r[falloc]+="$("$prog" fallocate "$SIZE" "$work/c") "
    rm -f "$work/c"
    t=$(ns); for ((j = 0; j < 50; j++)); do "$prog" true; done; r[start_bare]+="$((($(ns) - t) / 50)) "
    t=$(ns); for ((j = 0; j < 50; j++)); do "$nosparse" --supervise -- "$prog" true; done
    r[start_sup]+="$((($(ns) - t) / 50)) "
    loop="for j in \$(seq $COUNT); do '$prog' true; done"
    t=$(ns); sh -c "$loop"; r[exec_bare]+="$((($(ns) - t) / COUNT)) "
    t=$(ns); "$nosparse" --supervise -- sh -c "$loop"; r[exec_sup]+="$((($(ns) - t) / COUNT)) "
done
m() { tr ' ' '\n' <<<"${r[$1]}" | grep . | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
echo "supervise mode, $triple programs, $(uname -r), median of $ROUNDS rounds"
printf '16-byte pwrite64 on tmpfs, ns/call: no filter %s, allow-all filter %s, supervisor filter %s\n' \
    "$(m bare)" "$(m allow)" "$(m filter)"
printf '  supervisor filter / allow-all filter = %s; / no filter = %s\n' \
    "$(ratio "$(m filter)" "$(m allow)")" "$(ratio "$(m filter)" "$(m bare)")"
printf 'creation of %s bytes on %s, us: through the supervisor %s, bare fallocate(2) %s; ratio %s\n' "$SIZE" \
    "$(stat -f -c %T "$work")" "$(($(m create) / 1000))" "$(($(m falloc) / 1000))" "$(ratio "$(m create)" "$(m falloc)")"
printf 'start-up, us: program alone %s, nosparse --supervise -- program %s (+%s)\n' \
    "$(($(m start_bare) / 1000))" "$(($(m start_sup) / 1000))" "$((($(m start_sup) - $(m start_bare)) / 1000))"
printf 'each exec in a shell loop, us: unsupervised %s, supervised %s; ratio %s\n' \
    "$(($(m exec_bare) / 1000))" "$(($(m exec_sup) / 1000))" "$(ratio "$(m exec_sup)" "$(m exec_bare)")"
