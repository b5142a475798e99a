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
# man-db renders the man pages in the tests; qemu-system-x86, busybox-static and cpio
# run the hypervisor test's guest; libeatmydata1 is the benchmark's reference for
# another preloaded library; python3-prometheus-client parses `nosparse check --format
# prometheus` in the tests as Prometheus does; dosfstools makes the torture test's vfat
# image; golang-go and musl-tools build the programs a preload cannot reach, for the
# supervise tests (a Go program, a musl static one).
packages=(gcc-multilib e2fsprogs xfsprogs btrfs-progs dosfstools util-linux strace valgrind binutils qemu-utils python3
    lintian rpm man-db qemu-system-x86 busybox-static cpio libeatmydata1 python3-prometheus-client golang-go musl-tools)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done
if [ "$(id -u)" -ne 0 ]; then
    if [ "${#missing[@]}" -gt 0 ]; then
        say "not root: cannot install ${missing[*]}; run as root, or install them yourself"
        [ "${CI:-}" = true ] && exit 1
    fi
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Wait for another dpkg (an unattended upgrade, a test installing packages) rather
# than fail at once.
apt_get() { apt-get -o DPkg::Lock::Timeout=300 "$@"; }
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    apt_get update -qq
    if [[ " ${missing[*]} " == *" qemu-system-x86 "* ]]; then
        # A qemu-utils newer than the release's (from backports) breaks the release's
        # qemu-system-common: take qemu-utils at qemu-system-x86's version.
        v=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ { print $2 }')
        missing=("${missing[@]/#qemu-utils/}")
        missing+=("qemu-utils=$v")
    fi
    apt_get install -y -qq --no-install-recommends --allow-downgrades ${missing[@]} >/dev/null
fi

# The hypervisor test's guest kernel: Debian's linux-image-cloud-amd64 (a small kernel
# with the serial console and initramfs support built in), unpacked, not installed.
KERNEL_DIR=/var/cache/nosparse-test
if [ ! -e "$KERNEL_DIR/vmlinuz" ]; then
    say "downloading the hypervisor test's guest kernel into $KERNEL_DIR"
    mkdir -p "$KERNEL_DIR"
    image=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
    if [ -z "$image" ]; then
        apt_get update -qq
        image=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
    fi
    (cd "$KERNEL_DIR" && apt-get download -qq -o APT::Sandbox::User=root "$image")
    rm -rf "$KERNEL_DIR/unpacked"
    dpkg -x "$KERNEL_DIR/${image}"_*.deb "$KERNEL_DIR/unpacked"
    mv "$(ls "$KERNEL_DIR"/unpacked/boot/vmlinuz-* | head -n 1)" "$KERNEL_DIR/vmlinuz"
    rm -rf "$KERNEL_DIR/unpacked" "$KERNEL_DIR/${image}"_*.deb
fi

# The benchmark's 32-bit libeatmydata: Debian's libeatmydata1:i386, downloaded with a
# private package list for i386 (the machine's apt and dpkg settings are not touched)
# and unpacked beside the kernel.
EATMYDATA32=$KERNEL_DIR/i386/libeatmydata.so.1
if [ ! -e "$EATMYDATA32" ]; then
    say "downloading the benchmark's 32-bit libeatmydata into $KERNEL_DIR/i386"
    apt_i386="$KERNEL_DIR/apt-i386"
    mkdir -p "$apt_i386/lists/partial" "$apt_i386/cache/archives/partial"
    opts=(-qq -o APT::Architecture=i386 -o APT::Architectures=i386 -o "Dir::State::Lists=$apt_i386/lists"
        -o "Dir::Cache=$apt_i386/cache" -o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
    apt-get "${opts[@]}" update >/dev/null 2>&1 || true
    (cd "$apt_i386" && apt-get "${opts[@]}" download libeatmydata1:i386) || say "could not download libeatmydata1:i386"
    if ls "$apt_i386"/libeatmydata1_*_i386.deb >/dev/null 2>&1; then
        dpkg -x "$(ls "$apt_i386"/libeatmydata1_*_i386.deb | head -n 1)" "$apt_i386/unpacked"
        mkdir -p "$KERNEL_DIR/i386"
        cp -L "$apt_i386/unpacked/usr/lib/i386-linux-gnu/libeatmydata.so.1" "$EATMYDATA32"
    fi
    rm -rf "$apt_i386"
fi

# The packagers, pinned: scripts/package.sh and package-rpm.sh would install them too,
# but inside the deployment tests' time.
for tool in cargo-deb@3.8.0 cargo-generate-rpm@0.21.1; do
    if ! "${tool%@*}" --version 2>/dev/null | grep -q "${tool#*@}"; then
        say "installing $tool"
        cargo install --quiet --locked "${tool%@*}" --version "${tool#*@}"
    fi
done
