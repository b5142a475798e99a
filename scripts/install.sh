#!/usr/bin/env bash
# Installs nosparse: the launcher as PREFIX/bin/nosparse, the VMware helper as
# PREFIX/sbin/nosparse-vmware, the man pages under PREFIX/share/man, the bash completion,
# the systemd units that repair the VMware wrapper after an upgrade (not enabled),
# and each build of libnosparse.so where its loader looks
# for it under PREFIX: PREFIX/$LIB, with $LIB as the 64-bit and the 32-bit loader
# expand it on this machine (asked of each loader, `ld.so --list-diagnostics`).
# scripts/uninstall.sh removes exactly what this installed.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    cat <<'USAGE'
usage: [DESTDIR=STAGE] scripts/install.sh [--prefix DIR] [--no-build]
  --prefix DIR   install under DIR (default /usr; the 32-bit build needs a 32-bit loader)
  --no-build     install the builds already in target/ instead of running cargo build
  DESTDIR        stage the files under STAGE/DIR (for packaging); the list of installed
                 files names them without STAGE
USAGE
}

prefix=/usr
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --prefix=*) prefix=${1#--prefix=}; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
prefix=$(realpath -m "$prefix")

LOADER64=/lib64/ld-linux-x86-64.so.2
LOADER32=/lib/ld-linux.so.2
I686=i686-unknown-linux-gnu

say() { printf 'install: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# What $LIB expands to for a loader: it says so itself (glibc 2.33 and later).
dst_lib() {
    local lib
    lib=$(env -u LD_PRELOAD "$1" --list-diagnostics 2>/dev/null | sed -n 's/^dl_dst_lib="\(.*\)"$/\1/p')
    [ -n "$lib" ] || die "the loader $1 does not report where \$LIB points (needs glibc 2.33 or later)"
    printf '%s\n' "$lib"
}

[ -x "$LOADER64" ] || die "no 64-bit loader at $LOADER64: this installs on x86_64 hosts"
have32=0
[ -x "$LOADER32" ] && have32=1

if [ "$build" = 1 ]; then
    say "building (cargo build --release)"
    cargo build --release --quiet -p nosparse
    # The command statically linked (see scripts/package.sh): it runs on any glibc.
    cargo rustc --release --quiet -p nosparse-cli --bin nosparse -- -C target-feature=+crt-static
    if [ "$have32" = 1 ]; then
        cargo build --release --quiet -p nosparse --target "$I686"
    fi
fi

dest=${DESTDIR:-}
manifest_dir=$prefix/share/nosparse
manifest=$manifest_dir/installed-files
files=()
# The directories this made, deepest first: uninstall.sh removes them when empty.
made_dirs=()
put() { # put MODE SOURCE DEST
    [ -f "$2" ] || die "$2 is missing: build it first, or leave out --no-build"
    local d
    d=$(dirname "$3")
    while [ "$d" != / ] && [ "$d" != . ] && [ ! -e "$dest$d" ]; do
        made_dirs+=("$d/")
        d=$(dirname "$d")
    done
    install -D -m "$1" "$2" "$dest$3"
    files+=("$3")
    say "installed $dest$3"
}

put 755 target/release/nosparse "$prefix/bin/nosparse"
put 755 deploy/nosparse-vmware "$prefix/sbin/nosparse-vmware"
put 755 deploy/vmware-vmx-wrapper "$manifest_dir/vmware-vmx-wrapper"
put 644 deploy/nosparse.conf.example "$manifest_dir/nosparse.conf.example"
put 644 docs/man/nosparse.1 "$prefix/share/man/man1/nosparse.1"
put 644 docs/man/nosparse.conf.5 "$prefix/share/man/man5/nosparse.conf.5"
put 644 docs/man/nosparse-vmware.8 "$prefix/share/man/man8/nosparse-vmware.8"
put 644 deploy/bash-completion/nosparse "$prefix/share/bash-completion/completions/nosparse"
put 644 deploy/systemd/nosparse-vmware-repair.path "$prefix/lib/systemd/system/nosparse-vmware-repair.path"
put 644 deploy/systemd/nosparse-vmware-repair.service "$prefix/lib/systemd/system/nosparse-vmware-repair.service"
put 644 target/release/libnosparse.so "$prefix/$(dst_lib "$LOADER64")/libnosparse.so"
if [ "$have32" = 1 ]; then
    put 644 "target/$I686/release/libnosparse.so" "$prefix/$(dst_lib "$LOADER32")/libnosparse.so"
else
    say "no 32-bit loader at $LOADER32: the 32-bit build is not installed (install libc6-i386 for 32-bit programs)"
fi
# The files, then the directories made (a trailing '/'), deepest first.
printf '%s\n' "${files[@]}" "$manifest" >"$dest$manifest"
[ "${#made_dirs[@]}" -eq 0 ] || printf '%s\n' "${made_dirs[@]}" | awk '{ print length($0) "\t" $0 }' |
    sort -rn | cut -f2- >>"$dest$manifest"
say "installed; scripts/uninstall.sh --prefix $prefix removes it"
