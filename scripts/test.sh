#!/usr/bin/env bash
# The full test run, for x86_64 and i686: installs what it needs (scripts/setup.sh),
# then runs rustfmt, clippy -D warnings and every test. Run it as root to include the
# loop-mounted filesystem tests; CI (CI=true) runs it as root, and there a test that
# cannot run fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

HOST=x86_64-unknown-linux-gnu
I686=i686-unknown-linux-gnu

if [ "$(uname -m)" != x86_64 ]; then
    echo "test.sh: this runs on x86_64 Linux hosts (found $(uname -m))" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: not root: the loop-mounted filesystem tests will be skipped (they fail under CI=true)" >&2
fi

bash scripts/setup.sh

step() { printf '\n==> %s\n' "$*"; }

# Every cargo test summary line is kept, to print the totals at the end.
results=$(mktemp)
output=$(mktemp)
trap 'rm -f "$results" "$output"' EXIT

step "cargo fmt --check"
cargo fmt --all -- --check

# The host build goes to target/release (the contract's path), the i686 one to
# target/i686-unknown-linux-gnu/release.
for target in "$HOST" "$I686"; do
    args=()
    [ "$target" = "$I686" ] && args=(--target "$I686")
    step "clippy for $target"
    cargo clippy --workspace --release --all-targets "${args[@]}" -- -D warnings
    step "tests for $target"
    cargo test --workspace --release "${args[@]}" 2>&1 | tee "$output"
    grep '^test result:' "$output" >>"$results"
done
step "fuzzing the setting parsers for 30 s"
bash scripts/fuzz.sh 30
step "all tests passed for $HOST and $I686"
awk '{ for (i = 1; i < NF; i++) { if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$results"
