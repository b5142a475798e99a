#!/usr/bin/env bash
# Builds the Debian packages with cargo-deb: nosparse_VERSION_amd64.deb (launcher,
# both builds of the library, VMware helper) and nosparse_VERSION_i386.deb (for 32-bit
# hosts), into OUTDIR (default target/debian). Installs cargo-deb if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-target/debian}")
I686=i686-unknown-linux-gnu
CARGO_DEB_VERSION=3.8.0

if ! cargo deb --version >/dev/null 2>&1; then
    echo "package: installing cargo-deb $CARGO_DEB_VERSION" >&2
    cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi
cargo build --release --quiet -p nosparse -p nosparse-cli
cargo build --release --quiet -p nosparse -p nosparse-cli --target "$I686"
mkdir -p "$out"
# cargo-deb names built products only by target/release/..., which it maps to the
# package's own target; the amd64 package's 32-bit build is staged as a plain file.
install -D -m 644 "target/$I686/release/libnosparse.so" target/lib32-stage/libnosparse.so
cargo deb --no-build --no-strip -p nosparse-cli -o "$out"
cargo deb --no-build --no-strip -p nosparse-cli --target "$I686" --variant i386 -o "$out"
ls -1 "$out"/*.deb
