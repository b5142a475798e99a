#!/usr/bin/env bash
# Deployment tests, judged from outside: scripts/install.sh and uninstall.sh (under a
# scratch prefix, then /usr), the VMware wrapper in front of a set-user-ID root fake vmx
# started by `nobody` (status, repair after a VMware upgrade, the name it runs under),
# system-wide mode through /etc/ld.so.preload and /etc/nosparse.conf, nosparse doctor
# on a sound and a broken setup, the Debian packages (lintian, dpkg -i, the wrapper,
# dpkg -i again: the .vmem still comes out whole; removal refused while in use; purge)
# and the RPM packages (rpm -qlp, installed into a scratch root). /etc/ld.so.preload and
# /etc/nosparse.conf are only ever bind-mounted in a private mount namespace, so no other
# process on the host sees them. The launcher, check and rewrite are tested without root
# by tests/cli.rs. Needs root; under CI=true a missing tool or privilege is a failure.
# Deterministic: no sleeps. Prints `deploy: N passed, N failed`. Arguments: run only
# the tests named.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
I686=i686-unknown-linux-gnu
MIB=$((1 << 20))

if [ "$(id -u)" -ne 0 ]; then
    echo "deploy-test.sh: needs root (loop mounts, /usr, setuid programs, dpkg)" >&2
    [ "${CI:-}" = true ] && exit 1
    echo "deploy: 0 passed, 0 failed (skipped: not root)"
    exit 0
fi

S=$ROOT/target/deploy-test
umount_all() { for m in "$S"/mnt*; do mountpoint -q "$m" 2>/dev/null && umount "$m"; done; true; }
umount_all
rm -rf "$S"
mkdir -p "$S"
chmod 755 "$S"

echo "==> building both architectures"
# Naming an example limits a build to it: the library and the launcher are named too.
for target in x86_64-unknown-linux-gnu "$I686"; do
    args=(--release --quiet)
    [ "$target" = "$I686" ] && args+=(--target "$I686")
    cargo build "${args[@]}" -p nosparse --lib --example fake_vmx || exit 1
    cargo build "${args[@]}" -p nosparse-cli --bin nosparse || exit 1
done
VMX64=$ROOT/target/release/examples/fake_vmx
VMX32=$ROOT/target/$I686/release/examples/fake_vmx

V=/opt/nosparse-deploy-test
# What a run put outside the scratch directory, for a later run to undo if this one
# stopped half-way: an install under /usr, the package.
LEFT=$ROOT/target/deploy-test.leftovers

# Puts back what the VMware test changes: diversions of its fake programs, its tree.
# Also run before each such test, so that one failing half-way does not fail the next.
undo_vmware() {
    dpkg-divert --list 2>/dev/null | sed -n "s|^local diversion of \($V/[^ ]*\) to .*|\1|p" |
        while read -r f; do rm -f "$f"; dpkg-divert --quiet --local --rename --remove "$f"; done
    dpkg-statoverride --list 2>/dev/null | awk '$4 ~ /libnosparse/ { print $4 }' |
        while read -r f; do dpkg-statoverride --quiet --remove "$f"; done
    find /usr/lib* -maxdepth 2 -name 'libnosparse.so*' -type f -perm -4000 -exec chmod u-s {} + 2>/dev/null
    rm -rf "$V" "$S/vmware.state" "$S"/etc-vmware*
}

undo_leftovers() {
    undo_vmware
    if grep -qx usr "$LEFT" 2>/dev/null; then
        scripts/uninstall.sh >/dev/null 2>&1 || true
    fi
    if grep -qx deb "$LEFT" 2>/dev/null; then
        rm -f /var/lib/nosparse/vmware
        dpkg --purge nosparse libnosparse0 lib32nosparse0 >/dev/null 2>&1 || true
    fi
    rm -f "$LEFT"
}
undo_leftovers

passed=0
failed=0
failures=()
# Runs one test function in a subshell with -e; its output is shown only on failure.
# (Not as an if condition: there bash would ignore -e inside the subshell.)
run() {
    local name=$1 log=$S/$1.log rc
    (set -e; "$name") >"$log" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        echo "test $name ... ok"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "test $name ... FAILED"
        sed 's/^/    /' "$log"
    fi
}
fail() { echo "FAIL: $*"; return 1; }

size_of() { stat -c %s "$1"; }
alloc_of() { echo $(($(stat -c '%b * %B' "$1"))); }
# Whole: every byte allocated (st_blocks, independent of the library's own FIEMAP code).
whole() { [ "$(alloc_of "$1")" -ge "$(size_of "$1")" ] || fail "$1 is not whole: $(alloc_of "$1") of $(size_of "$1") allocated"; }
sparse() { [ "$(alloc_of "$1")" -lt $(($(size_of "$1") / 2)) ] || fail "$1 is not sparse: $(alloc_of "$1") of $(size_of "$1") allocated"; }
# Physical fragments as filefrag counts them.
frags() { filefrag "$1" | sed -n 's/.*: \([0-9]*\) extents\? found/\1/p'; }
dst_lib() { "$1" --list-diagnostics | sed -n 's/^dl_dst_lib="\(.*\)"$/\1/p'; }
LIB64=$(dst_lib /lib64/ld-linux-x86-64.so.2)
LIB32=$(dst_lib /lib/ld-linux.so.2)
P=$S/prefix

t_install_under_a_prefix() {
    scripts/install.sh --prefix "$P" --no-build
    for f in bin/nosparse sbin/nosparse-vmware "$LIB64/libnosparse.so" "$LIB32/libnosparse.so"; do
        [ -f "$P/$f" ] || fail "$P/$f was not installed"
    done
    grep -q 'Class:.*ELF64' <<<"$(readelf -h "$P/$LIB64/libnosparse.so")" || fail "64-bit library is not ELF64"
    grep -q 'Class:.*ELF32' <<<"$(readelf -h "$P/$LIB32/libnosparse.so")" || fail "32-bit library is not ELF32"
    for page in man1/nosparse.1 man5/nosparse.conf.5 man8/nosparse-vmware.8; do
        [ -f "$P/share/man/$page" ] || fail "$page was not installed"
    done
    [ -f "$P/share/bash-completion/completions/nosparse" ] || fail "no bash completion"
    [ "$(grep -vc '/$' "$P/share/nosparse/installed-files")" -eq 13 ] || fail "manifest: $(cat "$P/share/nosparse/installed-files")"
    grep -qxF "library=$P/$LIB32/libnosparse.so" <<<"$("$P/bin/nosparse" --dry-run -- "$VMX32")" || fail "dry run"
}

t_uninstall_under_a_prefix() {
    scripts/uninstall.sh --prefix "$P"
    # Nothing left, not even the directories install.sh made.
    [ ! -e "$P" ] || fail "left behind: $(find "$P")"
    # DESTDIR stages the same files; the list names them as installed.
    DESTDIR=$S/stage scripts/install.sh --prefix /opt/nosparse-stage --no-build
    [ -f "$S/stage/opt/nosparse-stage/bin/nosparse" ] && [ ! -e /opt/nosparse-stage ] || fail "DESTDIR"
    grep -qx /opt/nosparse-stage/bin/nosparse "$S/stage/opt/nosparse-stage/share/nosparse/installed-files" || fail "DESTDIR's list"
    DESTDIR=$S/stage scripts/uninstall.sh --prefix /opt/nosparse-stage
    [ -z "$(ls -A "$S/stage")" ] || fail "left in DESTDIR: $(find "$S/stage")"
}

# Everything below uses an install under /usr, as an admin's would be.
t_install_under_usr() {
    for f in /usr/bin/nosparse "/usr/$LIB64/libnosparse.so" "/usr/$LIB32/libnosparse.so"; do
        [ ! -e "$f" ] || fail "$f exists already: this test would overwrite an existing install"
    done
    echo usr >>"$LEFT"
    scripts/install.sh --no-build
    [ -f "/usr/$LIB64/libnosparse.so" ] && [ -f "/usr/$LIB32/libnosparse.so" ] || fail "libraries missing"
    grep -qx 'trusted_dir=1' <<<"$(/usr/bin/nosparse --dry-run -- "$VMX32")" || fail "/usr/$LIB32 is not trusted by the loader"
}

# A set-user-ID root fake vmx of each class, in its own VMware-like tree.
make_vmx() {
    undo_vmware
    mkdir -p "$V/bin32" "$V/bin64" "$V/vm"
    install -m 4755 -o root "$VMX32" "$V/bin32/vmware-vmx"
    install -m 4755 -o root "$VMX64" "$V/bin64/vmware-vmx"
    chmod 1777 "$V/vm"
}
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }

# Runs "$@" in a private mount namespace where /etc/ld.so.preload and /etc/nosparse.conf
# are $S/ld.so.preload and $S/nosparse.conf. Placeholders are made for the bind mounts
# where the files do not exist, and removed after.
with_system_files() {
    local made=()
    for f in /etc/ld.so.preload /etc/nosparse.conf; do
        [ -e "$f" ] || { : >"$f"; made+=("$f"); }
    done
    local rc=0
    unshare --mount --propagation private bash -c '
        mount --bind "$1/ld.so.preload" /etc/ld.so.preload &&
        mount --bind "$1/nosparse.conf" /etc/nosparse.conf && shift && exec "$@"' bash "$S" "$@" || rc=$?
    for f in "${made[@]}"; do rm -f "$f"; done
    return $rc
}

# The settings a wrapped vmx reads: the example nosparse-vmware installs.
vmx_conf() {
    cp deploy/nosparse.conf.example "$S/nosparse.conf"
    chmod 644 "$S/nosparse.conf"
    : >"$S/ld.so.preload"
}
# Runs a test function in the private mount namespace of with_system_files, so that
# nosparse-vmware, vmx and the library read $S/nosparse.conf as /etc/nosparse.conf.
in_namespace() {
    # shellcheck disable=SC2163 # the test functions named in "$@" are exported
    export -f "$@" fail whole sparse size_of alloc_of as_nobody make_vmx wait_loaded vmx_conf
    export S V VMX32 VMX64 LIB32 LIB64 MIB ROOT
    with_system_files bash -c 'set -euo pipefail; for f in "$@"; do "$f"; done' bash "$@"
}

# Waits until process $1 runs program $2 and is asleep in it: its loader is done.
wait_loaded() {
    local i
    local stat
    for ((i = 0; i < 10000; i++)); do
        read -r stat <"/proc/$1/stat" || break
        stat=${stat##*) }
        if [ "${stat%% *}" = S ] && [ "$(readlink "/proc/$1/exe")" = "$2" ]; then
            return 0
        fi
    done
    fail "process $1 never settled in $2"
}

vmware_end_to_end() {
    local state=$S/vmware.state
    for bits in 32 64; do
        local vmx=$V/bin$bits/vmware-vmx real=$V/bin$bits/nosparse-real/vmware-vmx
        # Control: the set-user-ID program started by nobody, no wrapper: sparse.
        as_nobody "$vmx" --path "$V/vm/bare$bits.vmem" --size $((256 * MIB)) >/dev/null
        sparse "$V/vm/bare$bits.vmem"
        [ "$(stat -c %U "$V/vm/bare$bits.vmem")" = root ] || fail "fake vmx did not run set-user-ID root"
        local rc=0
        nosparse vmware install --check --vmx "$vmx" --wrapper-dir "$S/etc-vmware$bits" --state "$state" >"$S/out" || rc=$?
        [ "$rc" = 2 ] && grep -q '^would change: ' "$S/out" && [ ! -L "$vmx" ] || fail "install --check: exit $rc: $(cat "$S/out")"
        nosparse-vmware install --vmx "$vmx" --wrapper-dir "$S/etc-vmware$bits" --state "$state"
        [ -L "$vmx" ] && [ -u "$real" ] || fail "not diverted to $real"
        # Each step twice: the second changes nothing, and --check agrees.
        [ "$(nosparse vmware install --vmx "$vmx" --wrapper-dir "$S/etc-vmware$bits" --state "$state")" = unchanged ] || fail "install twice"
        [ "$(nosparse vmware repair --vmx "$vmx" --state "$state")" = unchanged ] || fail "repair of a sound install"
        nosparse vmware repair --check --state "$state" >"$S/out" || fail "repair --check of a sound install: $(cat "$S/out")"
        [ -u "/usr/$([ $bits = 32 ] && echo "$LIB32" || echo "$LIB64")/libnosparse.so" ] || fail "library not set-user-ID"
        grep -q libnosparse <<<"$(dpkg-statoverride --list)" || fail "no statoverride"
        # Unprivileged user, wrapper, set-user-ID root program: whole, with ftruncate too.
        as_nobody "$vmx" --path "$V/vm/guest$bits.vmem" --size $((256 * MIB)) --writes 16 >/dev/null
        whole "$V/vm/guest$bits.vmem"
        as_nobody "$vmx" --path "$V/vm/trunc$bits.vmem" --size $((256 * MIB)) --call ftruncate >/dev/null
        whole "$V/vm/trunc$bits.vmem"
        # Only vmx: the same program under another name is left alone.
        cp "$real" "$V/other$bits"
        as_nobody env LD_PRELOAD=libnosparse.so "$V/other$bits" --path "$V/vm/other$bits.vmem" --size $((256 * MIB)) >/dev/null
        sparse "$V/vm/other$bits.vmem"
        nosparse-vmware status --vmx "$vmx" --state "$state" >"$S/status" || fail "status: $(cat "$S/status")"
    done
    nosparse-vmware status --state "$state" >"$S/status" || fail "status: $(cat "$S/status")"
    cat "$S/status"
    nosparse vmware status --json --state "$state" >"$S/status.json" || fail "status --json: $(cat "$S/status.json")"
    python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); assert s["ok"] and len(s["wrapped"]) == 2, s' "$S/status.json" ||
        fail "status --json: $(cat "$S/status.json")"
    for bits in 32 64; do
        local vmx=$V/bin$bits/vmware-vmx
        nosparse-vmware uninstall --vmx "$vmx" --state "$state"
        [ "$(nosparse vmware uninstall --vmx "$vmx" --state "$state")" = unchanged ] || fail "uninstall twice"
        [ ! -L "$vmx" ] && [ ! -e "$V/bin$bits/nosparse-real" ] && [ -u "$vmx" ] || fail "not restored"
        local src=VMX$bits
        cmp "$vmx" "${!src}" || fail "the restored program differs"
        as_nobody "$vmx" --path "$V/vm/after$bits.vmem" --size $((256 * MIB)) >/dev/null
        sparse "$V/vm/after$bits.vmem"
    done
    [ ! -u "/usr/$LIB32/libnosparse.so" ] && [ ! -u "/usr/$LIB64/libnosparse.so" ] || fail "set-user-ID bit left on a library"
    ! grep -q libnosparse <<<"$(dpkg-statoverride --list)" || fail "statoverride left"
    [ ! -e "$state" ] || fail "state left: $(cat "$state")"
    # Repair repairs only what was installed: with nothing recorded, nothing.
    [ "$(nosparse vmware repair --state "$state")" = unchanged ] && [ ! -L "$V/bin64/vmware-vmx" ] || fail "repair installed"
    ! grep -q "$V" <<<"$(dpkg-divert --list)" || fail "diversion left"
    as_nobody /usr/bin/nosparse -- "$V/bin32/vmware-vmx" --path "$V/vm/x.vmem" --size $MIB >/dev/null 2>"$S/err"
    grep -q 'set-user-ID bit' "$S/err" || fail "no warning for a set-user-ID program: $(cat "$S/err")"
}

t_vmware_wrapper_end_to_end() {
    make_vmx
    vmx_conf
    in_namespace vmware_end_to_end
    rm -rf "$V"
}

# A long-running set-user-ID stand-in (sleep) behind the wrapper: the name it runs
# under, which processes status sees with the library, the library losing its bit, and
# a VMware upgrade replacing vmware-vmx; repair puts each right.
vmware_status_and_repair() {
    local state=$S/vmware.state vmx=$V/bin64/vmware-vmx real=$V/bin64/nosparse-real/vmware-vmx pid lib
    lib=$(readlink -f "/usr/$LIB64/libnosparse.so")
    install -m 4755 -o root /usr/bin/sleep "$vmx"
    nosparse-vmware install --vmx "$vmx" --wrapper-dir "$S/etc-vmware" --state "$state"
    # setpriv, then the wrapper, then vmx: one process, $!.
    setpriv --reuid=nobody --regid=nogroup --clear-groups "$vmx" 600 &
    pid=$!
    wait_loaded "$pid" "$real"
    [ "$(cat "/proc/$pid/comm")" = vmware-vmx ] || fail "runs as $(cat "/proc/$pid/comm")"
    [ "$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1)" = "$vmx" ] || fail "argv[0]: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
    nosparse-vmware status --state "$state" >"$S/status" || fail "status: $(cat "$S/status")"
    grep -q "^ok: running vmx $pid has the library" "$S/status" || fail "status: $(cat "$S/status")"
    kill "$pid"; wait "$pid" || true
    # The bit lost (as a reinstall without dpkg would): status says so, repair restores it.
    chmod u-s "$lib"
    ! nosparse-vmware status --state "$state" >"$S/status" || fail "status passed without the bit: $(cat "$S/status")"
    grep -q "^BROKEN: $lib has lost its set-user-ID bit" "$S/status" || fail "status: $(cat "$S/status")"
    local rc=0
    nosparse vmware repair --check --state "$state" >"$S/out" || rc=$?
    [ "$rc" = 2 ] && grep -qx "would change: set the set-user-ID bit on $lib" "$S/out" && [ ! -u "$lib" ] || fail "repair --check: exit $rc: $(cat "$S/out")"
    setpriv --reuid=nobody --regid=nogroup --clear-groups "$vmx" 600 &
    pid=$!
    wait_loaded "$pid" "$real"
    ! nosparse-vmware status --state "$state" >"$S/status" || fail "status passed"
    grep -q "^BROKEN: running vmx $pid does not have the library" "$S/status" || fail "status: $(cat "$S/status")"
    kill "$pid"; wait "$pid" || true
    nosparse-vmware repair --state "$state"
    nosparse-vmware status --state "$state" >"$S/status" || fail "status after repair: $(cat "$S/status")"
    # Settings that keep the library from acting on vmx's .vmem files: status and doctor
    # name the setting and the fix, and fail.
    local fs
    fs=$(stat -f -c %T "$V/vm")
    case $fs in ext2/ext3) fs=ext ;; overlayfs) fs=overlay ;; esac
    local setting
    for setting in NOSPARSE_DISABLE=1 NOSPARSE_METHOD=off 'NOSPARSE_MATCH=*.vmdk' NOSPARSE_MIN_SIZE=1T \
        "NOSPARSE_SKIP_FS=$fs" 'NOSPARSE_PROGRAMS=vmware-vmx* # vmx only'; do
        printf 'NOSPARSE_PROGRAMS=vmware-vmx*\nNOSPARSE_TRIGGERS=pwrite,ftruncate\n%s\n' "$setting" >"$S/nosparse.conf"
        ! nosparse-vmware status --state "$state" --vm-dir "$V/vm" >"$S/status" || fail "status passed with $setting: $(cat "$S/status")"
        grep -q "^BROKEN: /etc/nosparse.conf: .*${setting%%=*}.*; fix: " "$S/status" || fail "status with $setting: $(cat "$S/status")"
        ! nosparse doctor --vm-dir "$V/vm" >"$S/doctor" || fail "doctor passed with $setting: $(cat "$S/doctor")"
        grep -q "^PROBLEM: /etc/nosparse.conf: .*${setting%%=*}.*; fix: " "$S/doctor" || fail "doctor with $setting: $(cat "$S/doctor")"
    done
    grep -q "includes the comment after it.*fix: put the comment on a line of its own" "$S/status" || fail "inline comment: $(cat "$S/status")"
    ! grep -q "add vmware-vmx" "$S/status" || fail "status suggests adding what is there: $(cat "$S/status")"
    vmx_conf
    nosparse-vmware status --state "$state" --vm-dir "$V/vm" >"$S/status" || fail "status with the example settings: $(cat "$S/status")"
    # A VMware upgrade: a new vmware-vmx replaces the link.
    rm "$vmx"
    install -m 4755 -o root /usr/bin/sleep "$vmx"
    ! nosparse-vmware status --state "$state" >"$S/status" || fail "status passed after the upgrade"
    grep -q "^BROKEN: $vmx is a program again" "$S/status" || fail "status: $(cat "$S/status")"
    nosparse-vmware repair --state "$state"
    nosparse-vmware status --state "$state" >"$S/status" || fail "status after repair: $(cat "$S/status")"
    [ -L "$vmx" ] && [ -u "$real" ] || fail "repair did not wrap the new program"
    # A VMware upgrade that copies its new vmware-vmx to the link's name: cp writes
    # through the link, over the wrapper; the installer then sets the bits through it.
    local wrapper=$S/etc-vmware/nosparse-vmware-vmx
    for v in 2 3; do
        { cat /usr/bin/sleep; echo "version $v"; } >"$S/vmx-v$v"
    done
    cp "$S/vmx-v2" "$vmx"
    chmod 4755 "$vmx"
    ! nosparse-vmware status --state "$state" >"$S/status" || fail "status passed with vmx copied over the wrapper"
    grep -q "^BROKEN: $wrapper is not the wrapper but another program" "$S/status" || fail "status: $(cat "$S/status")"
    nosparse-vmware repair --state "$state"
    nosparse-vmware status --state "$state" >"$S/status" || fail "status after repair: $(cat "$S/status")"
    cmp "$real" "$S/vmx-v2" || fail "repair did not make the copied program the real one"
    [ -u "$real" ] && [ "$(stat -c %U "$real")" = root ] || fail "the new program lost its bits: $(stat -c '%A %U' "$real")"
    [ -L "$vmx" ] && grep -q nosparse "$wrapper" || fail "repair did not write the wrapper again"
    # ... and uninstall after such an upgrade keeps the new program.
    cp "$S/vmx-v3" "$vmx"
    # status of a program that is not wrapped names it; uninstall without --vmx acts on
    # the one wrapped program, and dpkg-divert gives no warning (--no-rename is given).
    ! nosparse-vmware status --vmx /bin/true --state "$state" >"$S/status" || fail "status of /bin/true passed"
    grep -q "^BROKEN: /bin/true has no wrapper recorded in $state: nosparse-vmware install --vmx /bin/true (wrapped: $vmx)" "$S/status" || fail "status: $(cat "$S/status")"
    nosparse-vmware uninstall --state "$state" 2>"$S/err" || fail "uninstall: $(cat "$S/err")"
    ! grep -qi warning "$S/err" || fail "uninstall warned: $(cat "$S/err")"
    [ -f "$vmx" ] && [ ! -L "$vmx" ] || fail "uninstall left no program at $vmx"
    cmp "$vmx" "$S/vmx-v3" || fail "uninstall did not keep the new program"
    [ ! -e "$real" ] && [ ! -e "$wrapper" ] && [ ! -u "$lib" ] || fail "uninstall after the copy"
    ! grep -q "$vmx" <<<"$(dpkg-divert --list)" || fail "diversion left"
}

t_vmware_status_and_repair() {
    make_vmx
    vmx_conf
    in_namespace vmware_status_and_repair
    rm -rf "$V"
}

t_system_wide_mode() {
    make_vmx
    echo "/usr/\$LIB/libnosparse.so" >"$S/ld.so.preload"
    printf 'NOSPARSE_PROGRAMS=fake_vmx:vmware-vmx\nNOSPARSE_LOG=stderr\n' >"$S/nosparse.conf"
    chmod 644 "$S/nosparse.conf"
    for bits in 64 32; do
        local vmx=VMX$bits
        # On the list: whole, in both classes, with no LD_PRELOAD at all.
        with_system_files env -u LD_PRELOAD "${!vmx}" --path "$S/sys$bits.vmem" --size $((128 * MIB)) >/dev/null 2>"$S/err"
        whole "$S/sys$bits.vmem"
        ! grep -qi 'error' "$S/err" || fail "loader or library complained: $(cat "$S/err")"
    done
    # Not on the list: inert and silent (Python's os.pwrite is the same creation call).
    with_system_files python3 -c "import os; fd = os.open('$S/py.img', os.O_RDWR | os.O_CREAT); os.pwrite(fd, b'\\0', $((128 * MIB - 1)))" 2>"$S/err"
    sparse "$S/py.img"
    [ ! -s "$S/err" ] || fail "an unlisted program printed: $(cat "$S/err")"
    # The loader of a 32-bit program finds its own build: no message from any process.
    with_system_files sh -c "'$VMX32' --help >/dev/null; ls / >/dev/null" 2>"$S/err"
    [ ! -s "$S/err" ] || fail "stderr: $(cat "$S/err")"
    # The file is trusted in a set-user-ID program, the environment is not.
    printf 'NOSPARSE_PROGRAMS=vmware-vmx\nNOSPARSE_MIN_SIZE=1G\n' >"$S/nosparse.conf"
    with_system_files setpriv --reuid=nobody --regid=nogroup --clear-groups env NOSPARSE_MIN_SIZE=1M "$V/bin32/vmware-vmx" --path "$V/vm/min.vmem" --size $((256 * MIB)) >/dev/null
    sparse "$V/vm/min.vmem"
    printf 'NOSPARSE_PROGRAMS=vmware-vmx\nNOSPARSE_MIN_SIZE=128M\n' >"$S/nosparse.conf"
    with_system_files setpriv --reuid=nobody --regid=nogroup --clear-groups env NOSPARSE_DISABLE=1 "$V/bin32/vmware-vmx" --path "$V/vm/on.vmem" --size $((256 * MIB)) >/dev/null
    whole "$V/vm/on.vmem"
    # A file others can write is not trusted: the library acts in no program (fail
    # closed) and says nothing (nosparse doctor does).
    printf 'NOSPARSE_PROGRAMS=*\nNOSPARSE_LOG=stderr\n' >"$S/nosparse.conf"
    chmod 666 "$S/nosparse.conf"
    with_system_files env -u LD_PRELOAD NOSPARSE_LOG=stderr "$VMX64" --path "$S/untrusted.vmem" --size $((128 * MIB)) >/dev/null 2>"$S/err"
    sparse "$S/untrusted.vmem"
    [ ! -s "$S/err" ] || fail "an untrusted settings file made noise: $(cat "$S/err")"
    rm -rf "$V"
}

doctor_sound_and_broken() {
    echo '/usr/$LIB/libnosparse.so' >"$S/ld.so.preload"
    nosparse doctor >"$S/doctor.ok" || fail "doctor on a sound setup: $(cat "$S/doctor.ok")"
    cat "$S/doctor.ok"
    # A preload entry without $LIB, a settings file others can write.
    echo "/usr/$LIB64/libnosparse.so" >"$S/ld.so.preload"
    chmod 666 "$S/nosparse.conf"
    ! nosparse doctor >"$S/doctor.bad" || fail "doctor passed a broken setup: $(cat "$S/doctor.bad")"
    cat "$S/doctor.bad"
    grep -q '^PROBLEM: /etc/ld.so.preload: .* for 32-bit programs: .* is not a 32-bit library' "$S/doctor.bad" || fail "preload not named"
    grep -q "^PROBLEM: /etc/nosparse.conf: not trusted (writable by group or others.*fix: sudo chown root:root" "$S/doctor.bad" || fail "settings not named"
    chmod 644 "$S/nosparse.conf"
    # A commented-out entry is none, for doctor as for glibc's loader ('#' to the end
    # of the line); not even a broken one.
    echo "# was: /usr/$LIB64/libnosparse.so" >"$S/ld.so.preload"
    nosparse doctor >"$S/doctor.ok" || fail "doctor with a commented-out entry: $(cat "$S/doctor.ok")"
    grep -q '^ok: /etc/ld.so.preload does not name the library' "$S/doctor.ok" || fail "$(cat "$S/doctor.ok")"
    : >"$S/ld.so.preload"
}

t_doctor_sound_and_broken() {
    vmx_conf
    in_namespace doctor_sound_and_broken
}

t_uninstall_under_usr() {
    scripts/uninstall.sh
    sed -i '/^usr$/d' "$LEFT"
    for f in /usr/bin/nosparse /usr/sbin/nosparse-vmware "/usr/$LIB64/libnosparse.so" "/usr/$LIB32/libnosparse.so" /usr/share/nosparse; do
        [ ! -e "$f" ] || fail "$f left behind"
    done
}

# What the packages must hold, and lintian's verdict.
t_debian_packages_are_sound() {
    bash scripts/package.sh "$S/debs"
    local d
    d=$S/debs
    dpkg-deb -c "$d"/libnosparse0_*_amd64.deb >"$S/list"
    grep -q " ./usr/lib/x86_64-linux-gnu/libnosparse.so.0\$" "$S/list" && grep -q " ./usr/lib/x86_64-linux-gnu/libnosparse.so -> libnosparse.so.0\$" "$S/list" || fail "libnosparse0: $(cat "$S/list")"
    dpkg-deb -c "$d"/lib32nosparse0_*_amd64.deb >"$S/list"
    grep -q ' ./usr/lib32/libnosparse.so.0$' "$S/list" || fail "lib32nosparse0 lacks its library"
    dpkg-deb -c "$d"/libnosparse0_*_i386.deb >"$S/list"
    grep -q ' ./usr/lib/i386-linux-gnu/libnosparse.so.0$' "$S/list" || fail "i386 library"
    dpkg-deb -c "$d"/nosparse_*_amd64.deb >"$S/list"
    for f in ./usr/bin/nosparse ./usr/sbin/nosparse-vmware ./usr/share/man/man1/nosparse.1.gz ./usr/share/man/man5/nosparse.conf.5.gz ./usr/share/man/man8/nosparse-vmware.8.gz ./usr/share/bash-completion/completions/nosparse; do
        grep -q " $f\$" "$S/list" || fail "$f not in the tools package"
    done
    ! grep -q libnosparse "$S/list" || fail "the tools package carries the library"
    [ "$(dpkg-deb -f "$d"/libnosparse0_*_amd64.deb Multi-Arch)" = same ] || fail "libnosparse0's Multi-Arch"
    [ "$(dpkg-deb -f "$d"/libnosparse0_*_amd64.deb Section)" = libs ] || fail "libnosparse0's Section"
    [ "$(dpkg-deb -f "$d"/nosparse_*_amd64.deb Multi-Arch)" = foreign ] || fail "nosparse's Multi-Arch"
    local depends version
    depends=$(dpkg-deb -f "$d"/nosparse_*_amd64.deb Depends)
    version=$(dpkg-deb -f "$d"/libnosparse0_*_amd64.deb Version)
    [[ $depends == *"libnosparse0 (= $version)"* ]] || fail "tools do not depend on the same library version: $depends"
    [ "$(dpkg-deb -f "$d"/nosparse_*_amd64.deb Suggests)" = "lib32nosparse0 (= $version)" ] || fail "amd64 tools' Suggests"
    [ -z "$(dpkg-deb -f "$d"/nosparse_*_amd64.deb Recommends)" ] && [ -z "$(dpkg-deb -f "$d"/nosparse_*_i386.deb Suggests)" ] || fail "Recommends, or i386 Suggests"
    [ "$(dpkg-deb -f "$d"/nosparse_*_amd64.deb Homepage)" = "$(dpkg-deb -f "$d"/libnosparse0_*_amd64.deb Homepage)" ] || fail "Homepage"
    for deb in "$d"/*.deb; do
        dpkg-deb -I "$deb" md5sums >/dev/null || fail "$deb has no md5sums"
    done
    [ "$(dpkg-deb -I "$d"/libnosparse0_*_amd64.deb triggers)" = 'activate-noawait ldconfig' ] || fail "no ldconfig trigger"
    ls "$d"/nosparse-dbgsym_*_amd64.ddeb >/dev/null || fail "no dbgsym"
    mkdir -p "$S/i386"
    dpkg-deb -x "$d"/nosparse_*_i386.deb "$S/i386"
    grep -q 'Class:.*ELF32' <<<"$(readelf -h "$S/i386/usr/bin/nosparse")" || fail "i386 launcher is not 32-bit"
    # The tools are linked statically: no loader, no library, no glibc symbol version,
    # so they run on glibc 2.17 hosts and older; their Depends name no C library.
    mkdir -p "$S/amd64"
    dpkg-deb -x "$d"/nosparse_*_amd64.deb "$S/amd64"
    for bin in "$S/amd64/usr/bin/nosparse" "$S/i386/usr/bin/nosparse"; do
        ! readelf -l "$bin" | grep -q 'INTERP' || fail "$bin has a loader: $(readelf -l "$bin" | grep -A1 INTERP)"
        ! readelf -d "$bin" 2>/dev/null | grep -q '(NEEDED)' || fail "$bin needs libraries: $(readelf -d "$bin" | grep NEEDED)"
        ! objdump -T "$bin" 2>/dev/null | grep -q 'GLIBC_' || fail "$bin has glibc symbol versions"
        "$bin" --version >/dev/null || fail "$bin does not run"
    done
    [[ $depends != *libc6* ]] || fail "the static tools depend on a C library: $depends"
    lintian --fail-on error,warning "$d"/*.deb >"$S/lintian" 2>&1 || fail "lintian: $(cat "$S/lintian")"
    cat "$S/lintian"
}

# Install the packages, wrap a set-user-ID vmx, install the packages again (what an
# upgrade does to the library's mode), and the .vmem still comes out whole.
debian_upgrade_keeps_the_wrapper() {
    local debs=("$S"/debs/libnosparse0_*_amd64.deb "$S"/debs/lib32nosparse0_*_amd64.deb "$S"/debs/nosparse_*_amd64.deb)
    dpkg -i "${debs[@]}"
    for bits in 32 64; do
        nosparse-vmware install --vmx "$V/bin$bits/vmware-vmx" --wrapper-dir "$S/etc-vmware$bits"
        as_nobody "$V/bin$bits/vmware-vmx" --path "$V/vm/deb$bits.vmem" --size $((256 * MIB)) >/dev/null
        whole "$V/vm/deb$bits.vmem"
    done
    dpkg -i "${debs[@]}"
    for lib in "/usr/$LIB64/libnosparse.so.0" "/usr/$LIB32/libnosparse.so.0"; do
        [ -u "$lib" ] || fail "the upgrade cleared the set-user-ID bit of $lib"
    done
    for bits in 32 64; do
        as_nobody "$V/bin$bits/vmware-vmx" --path "$V/vm/again$bits.vmem" --size $((256 * MIB)) >/dev/null
        whole "$V/vm/again$bits.vmem"
    done
    nosparse-vmware status >"$S/status" || fail "status after the upgrade: $(cat "$S/status")"
    # Removal is refused while the wrapper uses the library, saying how to undo it.
    # (--force-depends: it is the library's own prerm that must refuse, not dpkg.)
    ! dpkg -r --force-depends libnosparse0 >"$S/out" 2>&1 || fail "libnosparse0 removed under the wrapper"
    grep -q "the VMware wrapper is installed: run 'nosparse-vmware uninstall' first" "$S/out" || fail "$(cat "$S/out")"
    ! dpkg -r nosparse >"$S/out" 2>&1 || fail "nosparse removed under the wrapper"
    grep -q "nosparse-vmware uninstall" "$S/out" || fail "$(cat "$S/out")"
    for bits in 32 64; do
        nosparse-vmware uninstall --vmx "$V/bin$bits/vmware-vmx"
    done
    # Purging a library package (here one removed before the wrapper was installed, so
    # its prerm had nothing to refuse) leaves the wrapper's state alone.
    dpkg -r lib32nosparse0
    nosparse-vmware install --vmx "$V/bin64/vmware-vmx" --wrapper-dir "$S/etc-vmware64"
    dpkg --purge lib32nosparse0
    [ -s /var/lib/nosparse/vmware ] || fail "purging lib32nosparse0 removed the wrapper's state"
    nosparse-vmware status --vmx "$V/bin64/vmware-vmx" >"$S/status" || fail "status after the purge: $(cat "$S/status")"
    nosparse-vmware uninstall --vmx "$V/bin64/vmware-vmx"
    [ ! -L "$V/bin64/vmware-vmx" ] && [ -u "$V/bin64/vmware-vmx" ] || fail "uninstall after the purge"
    dpkg -i "$S"/debs/lib32nosparse0_*_amd64.deb
    # ... and while /etc/ld.so.preload names it.
    echo '/usr/$LIB/libnosparse.so' >"$S/ld.so.preload"
    ! dpkg -r --force-depends libnosparse0 >"$S/out" 2>&1 || fail "removed while preloaded"
    grep -q "ld.so.preload names the library" "$S/out" || fail "$(cat "$S/out")"
    # A commented-out line is no entry (glibc's loader ignores it): removal goes ahead.
    echo '# was: /usr/$LIB/libnosparse.so' >"$S/ld.so.preload"
    dpkg -r nosparse libnosparse0 lib32nosparse0
    [ ! -e /usr/bin/nosparse ] && [ ! -e "/usr/$LIB64/libnosparse.so.0" ] && [ ! -e "/usr/$LIB32/libnosparse.so" ] || fail "dpkg -r left files"
    ! grep -q libnosparse <<<"$(dpkg-statoverride --list)" || fail "statoverride left"
    mkdir -p /var/lib/nosparse
    dpkg --purge nosparse libnosparse0 lib32nosparse0
    [ ! -e /var/lib/nosparse ] || fail "purge left /var/lib/nosparse"
}

t_debian_upgrade_keeps_the_wrapper() {
    [ ! -e /var/lib/nosparse/vmware ] || fail "a wrapper is installed on this host: not touching it"
    make_vmx
    vmx_conf
    echo deb >>"$LEFT"
    in_namespace debian_upgrade_keeps_the_wrapper
    sed -i '/^deb$/d' "$LEFT"
    rm -rf "$V"
}

t_rpm_packages() {
    vmx_conf
    bash scripts/package-rpm.sh "$S/rpms"
    local r=$S/rpms v root=$S/rpmroot
    v=$(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$r"/nosparse-libs-*.x86_64.rpm)
    [ "$(rpm -qlp "$r/nosparse-libs-$v.x86_64.rpm" | grep libnosparse)" = /usr/lib64/libnosparse.so ] || fail "x86_64 library"
    [ "$(rpm -qlp "$r/nosparse-libs-$v.i686.rpm" | grep libnosparse)" = /usr/lib/libnosparse.so ] || fail "i686 library"
    rpm -qlp "$r/nosparse-$v.x86_64.rpm" >"$S/list"
    for f in /usr/bin/nosparse /usr/sbin/nosparse-vmware /usr/share/man/man1/nosparse.1.gz /usr/share/man/man8/nosparse-vmware.8.gz; do
        grep -qx "$f" "$S/list" || fail "$f not in the tools package"
    done
    [ "$(rpm -qp --qf '%{URL}' "$r/nosparse-$v.x86_64.rpm")" = "$(sed -n 's/^homepage = "\(.*\)"$/\1/p' cli/Cargo.toml)" ] || fail "the tools' URL"
    rpm -qp --qf '%{POSTTRANS}' "$r/nosparse-libs-$v.x86_64.rpm" | grep -q 'nosparse vmware repair' || fail "no %posttrans repair"
    rpm -qp --requires "$r/nosparse-$v.x86_64.rpm" >"$S/requires"
    grep -qx "nosparse-libs(x86-64) = $v" "$S/requires" || fail "tools do not require the same library of their architecture: $(cat "$S/requires")"
    rpm -qp --requires "$r/nosparse-$v.i686.rpm" | grep -qx "nosparse-libs(x86-32) = $v" || fail "i686 tools' requires"
    rpm -qp --provides "$r/nosparse-libs-$v.i686.rpm" | grep -qx "nosparse-libs(x86-32) = $v" || fail "i686 library's provides"
    # The library's removal script refuses while /etc/ld.so.preload names it, and not
    # for a commented-out line (run here in the private mount namespace).
    rpm -qp --qf '%{PREUN}' "$r/nosparse-libs-$v.x86_64.rpm" >"$S/preun"
    echo '/usr/$LIB/libnosparse.so' >"$S/ld.so.preload"
    ! with_system_files sh "$S/preun" 0 2>"$S/err" || fail "preun let the library go while preloaded"
    grep -q "ld.so.preload names the library" "$S/err" || fail "preun: $(cat "$S/err")"
    echo '# was: /usr/$LIB/libnosparse.so' >"$S/ld.so.preload"
    with_system_files sh "$S/preun" 0 || fail "preun refused for a commented-out line"
    : >"$S/ld.so.preload"
    rpm --root "$root" --initdb
    # A scratch root has no C library to satisfy the requirements, nor a shell for scripts.
    rpm --root "$root" -i --nodeps --noscripts "$r/nosparse-libs-$v.x86_64.rpm" "$r/nosparse-libs-$v.i686.rpm" "$r/nosparse-$v.x86_64.rpm"
    grep -q 'Class:.*ELF64' <<<"$(readelf -h "$root/usr/lib64/libnosparse.so")" || fail "lib64"
    grep -q 'Class:.*ELF32' <<<"$(readelf -h "$root/usr/lib/libnosparse.so")" || fail "lib"
    [ -x "$root/usr/bin/nosparse" ] && [ -x "$root/usr/sbin/nosparse-vmware" ] || fail "tools"
    [ "$(rpm --root "$root" -qa | grep -c '^nosparse')" -eq 3 ] || fail "$(rpm --root "$root" -qa)"
    rpm --root "$root" -e --nodeps --noscripts nosparse nosparse-libs.x86_64 nosparse-libs.i686
    [ ! -e "$root/usr/lib64/libnosparse.so" ] && [ ! -e "$root/usr/bin/nosparse" ] || fail "rpm -e left files"
}

all=(t_install_under_a_prefix t_uninstall_under_a_prefix t_install_under_usr t_vmware_wrapper_end_to_end
    t_vmware_status_and_repair t_system_wide_mode t_doctor_sound_and_broken t_uninstall_under_usr
    t_debian_packages_are_sound t_debian_upgrade_keeps_the_wrapper t_rpm_packages)
# Some tests, by name, in the order given (those under /usr need t_install_under_usr).
[ $# -eq 0 ] || all=("$@")
for t in "${all[@]}"; do
    run "$t"
done
umount_all
undo_leftovers
echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
