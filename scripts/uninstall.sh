#!/usr/bin/env bash
# Removes what scripts/install.sh installed under PREFIX (default /usr), from the list
# it kept in PREFIX/share/nosparse/installed-files. Refuses while the VMware wrapper is
# in front of vmware-vmx: `nosparse-vmware uninstall` first.
set -euo pipefail

prefix=/usr
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --prefix=*) prefix=${1#--prefix=}; shift ;;
        -h|--help) echo "usage: scripts/uninstall.sh [--prefix DIR]"; exit 0 ;;
        *) echo "uninstall.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
prefix=$(realpath -m "$prefix")
manifest=$prefix/share/nosparse/installed-files
say() { printf 'uninstall: %s\n' "$*" >&2; }

[ -f "$manifest" ] || { say "nothing installed under $prefix ($manifest is missing)"; exit 1; }
state=${NOSPARSE_VMWARE_STATE:-/var/lib/nosparse/vmware}
if [ -s "$state" ]; then
    say "the VMware wrapper is installed ($state): run 'nosparse-vmware uninstall' first"
    exit 1
fi
while IFS= read -r f; do
    [ -n "$f" ] || continue
    rm -f -- "$f"
    say "removed $f"
done <"$manifest"
rmdir --ignore-fail-on-non-empty "$prefix/share/nosparse" 2>/dev/null || true
