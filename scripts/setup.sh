#!/usr/bin/env bash
# Installs what building and testing nosparse needs on a fresh Debian/Ubuntu machine:
# the i686 Rust target, and as root the 32-bit C toolchain and the mkfs tools the
# filesystem tests use. Safe to run again; it only installs what is missing.
set -euo pipefail

say() { printf 'setup: %s\n' "$*" >&2; }

if ! rustup target list --installed | grep -qx i686-unknown-linux-gnu; then
    say "adding Rust target i686-unknown-linux-gnu"
    rustup target add i686-unknown-linux-gnu
fi
for component in rustfmt clippy; do
    if ! rustup component list --installed | grep -q "^$component"; then
        say "adding Rust component $component"
        rustup component add "$component"
    fi
done

# Debian packages: gcc-multilib links the i686 build; e2fsprogs, xfsprogs, btrfs-progs
# and util-linux make, mount and inspect the test filesystems; binutils (nm, readelf)
# checks the exports; strace and valgrind measure the pass-through overhead; qemu-utils
# (qemu-img) and python3 are programs the trigger tests run under the library; lintian
# checks the Debian packages, rpm builds and installs the RPM ones into a scratch root,
# man-db renders the man pages in the tests.
packages=(gcc-multilib e2fsprogs xfsprogs btrfs-progs util-linux strace valgrind binutils qemu-utils python3
    lintian rpm man-db)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        say "not root: cannot install ${missing[*]}; run as root, or install them yourself"
        [ "${CI:-}" = true ] && exit 1
        exit 0
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The packagers, pinned: scripts/package.sh and package-rpm.sh would install them too,
# but inside the deployment tests' time.
for tool in cargo-deb@3.8.0 cargo-generate-rpm@0.21.1; do
    if ! "${tool%@*}" --version 2>/dev/null | grep -q "${tool#*@}"; then
        say "installing $tool"
        cargo install --quiet --locked "${tool%@*}" --version "${tool#*@}"
    fi
done
