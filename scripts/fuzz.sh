#!/usr/bin/env bash
# Fuzzes the NOSPARSE_* setting parsers with cargo-fuzz (libFuzzer) for a bounded time:
#   bash scripts/fuzz.sh [SECONDS]     (default 60)
# Installs cargo-fuzz if missing. Uses `--sanitizer none`, which builds on stable Rust;
# the parsers are safe Rust, so a panic or failed assertion is what it looks for.
# A crash leaves its input in fuzz/artifacts/settings/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi
cd fuzz
cargo fuzz run --sanitizer none settings -- -max_total_time="$seconds" 2>&1 | tail -n 3
