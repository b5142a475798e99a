#!/usr/bin/env bash
# Removes what scripts/install.sh installed under PREFIX (default /usr), from the list
# it kept in PREFIX/share/nosparse/installed-files: the files, then the directories it
# made, when they are empty. Refuses while the VMware wrapper is in front of
# vmware-vmx: `nosparse vmware uninstall` first. DESTDIR as for install.sh.
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
dest=${DESTDIR:-}
manifest=$dest$prefix/share/nosparse/installed-files
say() { printf 'uninstall: %s\n' "$*" >&2; }

[ -f "$manifest" ] || { say "nothing installed under $prefix ($manifest is missing)"; exit 1; }
state=${NOSPARSE_VMWARE_STATE:-/var/lib/nosparse/vmware}
if [ -s "$state" ]; then
    say "the VMware wrapper is installed ($state): run 'nosparse vmware uninstall' first"
    exit 1
fi
list=$(cat "$manifest")
while IFS= read -r f; do
    case $f in
        "") ;;
        */) if rmdir -- "$dest$f" 2>/dev/null; then say "removed $dest$f"; fi ;;
        *) rm -f -- "$dest$f"; say "removed $dest$f" ;;
    esac
done <<<"$list"
rmdir --ignore-fail-on-non-empty "$dest$prefix/share/nosparse" 2>/dev/null || true
