#!/usr/bin/env bash
# Deployment tests, judged from outside: the launcher on 32- and 64-bit programs,
# `nosparse check` against filefrag, `nosparse rewrite`, scripts/install.sh and
# uninstall.sh (under a scratch prefix, then /usr), the VMware wrapper in front of a
# set-user-ID root fake vmx started by `nobody`, system-wide mode through
# /etc/ld.so.preload and /etc/nosparse.conf (bind-mounted in a private mount namespace,
# so no other process on the host sees them), and the Debian packages (built with
# cargo-deb, installed with dpkg -i, used, removed). Needs root; under CI=true a missing
# tool or privilege is a failure. Prints `deploy: N passed, N failed`.
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
undo_vmware() {
    dpkg-divert --list 2>/dev/null | sed -n "s|^local diversion of \($V/[^ ]*\) to .*|\1|p" |
        while read -r f; do rm -f "$f"; dpkg-divert --quiet --local --rename --remove "$f"; done
    rm -rf "$V"
}

undo_leftovers() {
    undo_vmware
    if grep -qx usr "$LEFT" 2>/dev/null; then
        find /usr/lib* -maxdepth 2 -name libnosparse.so -exec chmod u-s {} + 2>/dev/null
        scripts/uninstall.sh >/dev/null 2>&1 || true
    fi
    if grep -qx deb "$LEFT" 2>/dev/null; then
        dpkg -r nosparse >/dev/null 2>&1 || true
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
N=$P/bin/nosparse

t_install_under_a_prefix() {
    scripts/install.sh --prefix "$P" --no-build
    for f in bin/nosparse sbin/nosparse-vmware "$LIB64/libnosparse.so" "$LIB32/libnosparse.so"; do
        [ -f "$P/$f" ] || fail "$P/$f was not installed"
    done
    readelf -h "$P/$LIB64/libnosparse.so" | grep -q 'Class:.*ELF64' || fail "64-bit library is not ELF64"
    readelf -h "$P/$LIB32/libnosparse.so" | grep -q 'Class:.*ELF32' || fail "32-bit library is not ELF32"
    [ "$(wc -l <"$P/share/nosparse/installed-files")" -eq 7 ] || fail "manifest: $(cat "$P/share/nosparse/installed-files")"
}

t_launcher_runs_both_classes() {
    local out
    for bits in 64 32; do
        local vmx=VMX$bits
        "$N" --log stderr -- "${!vmx}" --path "$S/l$bits.vmem" --size $((256 * MIB)) --writes 8 >"$S/out" 2>"$S/err"
        grep -q 'nosparse: preallocated' "$S/err" || fail "no log line ($bits-bit): $(cat "$S/err")"
        whole "$S/l$bits.vmem"
        "${!vmx}" --path "$S/bare$bits.vmem" --size $((256 * MIB)) --writes 8 >/dev/null
        sparse "$S/bare$bits.vmem"
        cmp "$S/l$bits.vmem" "$S/bare$bits.vmem" || fail "contents differ ($bits-bit)"
    done
    # A 64-bit shell starting a 32-bit program: $LIB gives each its own build.
    "$N" -- sh -c "exec '$VMX32' --path '$S/via-sh.vmem' --size $((128 * MIB))" >/dev/null 2>"$S/err"
    whole "$S/via-sh.vmem"
    ! grep -q 'ELF class' "$S/err" || fail "loader complained: $(cat "$S/err")"
    out=$("$N" --dry-run -- "$VMX32")
    grep -qxF "LD_PRELOAD=$P/\$LIB/libnosparse.so" <<<"$out" || fail "dry run: $out"
    grep -qxF "library=$P/$LIB32/libnosparse.so" <<<"$out" || fail "dry run: $out"
    # The program's exit status is the launcher's.
    set +e
    "$N" -- sh -c 'exit 7'
    [ $? -eq 7 ] || fail "exit status not passed through"
    set -e
}

# The i686 launcher (the i386 package's) does the same from the same prefix.
t_launcher_built_for_i686() {
    local q=$S/prefix32
    mkdir -p "$q/bin" "$q/$LIB64" "$q/$LIB32"
    cp "$P/$LIB64/libnosparse.so" "$q/$LIB64/"
    cp "$P/$LIB32/libnosparse.so" "$q/$LIB32/"
    cp "$ROOT/target/$I686/release/nosparse" "$q/bin/"
    readelf -h "$q/bin/nosparse" | grep -q 'Class:.*ELF32' || fail "not a 32-bit launcher"
    for bits in 64 32; do
        local vmx=VMX$bits
        "$q/bin/nosparse" -- "${!vmx}" --path "$S/q$bits.vmem" --size $((128 * MIB)) >/dev/null
        whole "$S/q$bits.vmem"
    done
    "$q/bin/nosparse" check "$S/q32.vmem" | grep -q ': whole: ' || fail "32-bit check"
    rm -rf "$q"
}

t_launcher_options_and_errors() {
    local rc
    "$N" --method off --log stderr -- "$VMX64" --path "$S/off.vmem" --size $((128 * MIB)) >/dev/null 2>"$S/err"
    grep -q 'would preallocate' "$S/err" || fail "--method off: $(cat "$S/err")"
    sparse "$S/off.vmem"
    "$N" --min-size 1G -- "$VMX64" --path "$S/small.vmem" --size $((128 * MIB)) >/dev/null
    sparse "$S/small.vmem"
    set +e
    "$N" --min-size 1X -- true 2>"$S/err"; rc=$?
    [ $rc -eq 125 ] && grep -q -- '--min-size' "$S/err" || fail "bad option: rc $rc: $(cat "$S/err")"
    "$N" --frobnicate -- true 2>/dev/null; [ $? -eq 125 ] || fail "unknown option accepted"
    "$N" -- no-such-program-here 2>/dev/null; [ $? -eq 127 ] || fail "missing program: not 127"
    "$N" -- /etc/passwd 2>/dev/null; [ $? -eq 126 ] || fail "non-executable: not 126"
    # A prefix holding only the 64-bit build: a 32-bit program is refused, with the path.
    mkdir -p "$S/only64/bin" "$S/only64/$LIB64"
    cp "$N" "$S/only64/bin/"
    cp "$P/$LIB64/libnosparse.so" "$S/only64/$LIB64/"
    "$S/only64/bin/nosparse" -- "$VMX32" --path "$S/x.vmem" 2>"$S/err"; rc=$?
    [ $rc -eq 125 ] && grep -q "32-bit" "$S/err" && grep -q "$LIB32" "$S/err" || fail "missing build: rc $rc: $(cat "$S/err")"
    [ ! -e "$S/x.vmem" ] || fail "ran the program anyway"
    set -e
    "$N" --help | grep -q 'nosparse check' || fail "--help"
}

t_check_reports_like_filefrag() {
    local rc
    "$N" check "$S/l64.vmem" >"$S/out"
    grep -q ': whole: ' "$S/out" || fail "$(cat "$S/out")"
    grep -q " $(frags "$S/l64.vmem") fragments" "$S/out" || fail "fragments differ from filefrag ($(frags "$S/l64.vmem")): $(cat "$S/out")"
    set +e
    "$N" check "$S/bare64.vmem" >"$S/out"; rc=$?
    [ $rc -eq 1 ] && grep -q ': sparse: ' "$S/out" || fail "sparse file: rc $rc: $(cat "$S/out")"
    "$N" check "$S/l64.vmem" "$S/missing" >/dev/null 2>&1; [ $? -eq 2 ] || fail "missing file: not 2"
    "$N" check --max-fragments 0 "$S/l64.vmem" >"$S/out"; rc=$?
    [ $rc -eq 1 ] && grep -q ': fragmented: ' "$S/out" || fail "--max-fragments 0: rc $rc"
    "$N" check --quiet --max-fragments 100000 "$S/l64.vmem" >"$S/out"; rc=$?
    [ $rc -eq 0 ] && [ ! -s "$S/out" ] || fail "--quiet: rc $rc, $(cat "$S/out")"
    set -e
}

t_rewrite_makes_a_fragmented_file_whole() {
    local f=$S/mnt1/guest.vmem before after sum rc
    mkdir -p "$S/mnt1"
    truncate -s $((1536 * MIB)) "$S/fs1.img"
    mkfs.ext4 -q -F "$S/fs1.img"
    mount -o loop "$S/fs1.img" "$S/mnt1"
    # A guest's life without the library, beside a competing writer: fragmented.
    "$VMX64" --path "$f" --size $((512 * MIB)) --writes 256 --competitor "$S/mnt1/other" --sync-every 8 >/dev/null
    before=$(frags "$f")
    [ "$before" -gt 20 ] || fail "the test file has only $before fragments"
    chown 1234:5678 "$f"
    chmod 640 "$f"
    touch -m -d '2020-01-02 03:04:05.123456789' "$f"
    python3 -c "import os; os.setxattr('$f', 'user.nosparse', b'kept')"
    sum=$(sha256sum <"$f")
    local ino_before; ino_before=$(stat -c %i "$f")
    # Refused while another process has it open for writing; the file is untouched.
    (exec 3<>"$f"; sleep 30) & local holder=$!
    sleep 0.5
    set +e
    "$N" rewrite "$f" 2>"$S/err"; rc=$?
    set -e
    kill $holder; wait $holder 2>/dev/null || true
    [ $rc -eq 1 ] && grep -q 'open for writing' "$S/err" || fail "writer not refused: rc $rc: $(cat "$S/err")"
    [ "$(stat -c %i "$f")" = "$ino_before" ] || fail "replaced despite the writer"
    # A hard link is refused too.
    ln "$f" "$S/mnt1/link"
    set +e
    "$N" rewrite "$f" 2>"$S/err"; rc=$?
    set -e
    rm "$S/mnt1/link"
    [ $rc -eq 1 ] && grep -q 'hard links' "$S/err" || fail "hard link not refused: rc $rc"
    # A reader does not stop it.
    (exec 3<"$f"; sleep 30) & holder=$!
    sleep 0.5
    "$N" rewrite "$f" >"$S/out"
    kill $holder; wait $holder 2>/dev/null || true
    after=$(frags "$f")
    echo "fragments: $before -> $after"
    [ "$after" -le 8 ] || fail "still $after fragments (was $before)"
    whole "$f"
    [ "$(sha256sum <"$f")" = "$sum" ] || fail "contents changed"
    [ "$(stat -c '%u:%g %a %y' "$f")" = "1234:5678 640 2020-01-02 03:04:05.123456789 +0000" ] ||
        fail "metadata not kept: $(stat -c '%u:%g %a %y' "$f")"
    [ "$(python3 -c "import os; print(os.getxattr('$f', 'user.nosparse').decode())")" = kept ] || fail "xattr lost"
    [ -z "$(find "$S/mnt1" -name '.guest.vmem.nosparse-*')" ] || fail "temporary file left"
    grep -q "$before fragments" "$S/out" || fail "report: $(cat "$S/out")"
    umount "$S/mnt1"
}

t_uninstall_under_a_prefix() {
    scripts/uninstall.sh --prefix "$P"
    [ -z "$(find "$P" -type f)" ] || fail "left behind: $(find "$P" -type f)"
}

# Everything below uses an install under /usr, as an admin's would be.
t_install_under_usr() {
    for f in /usr/bin/nosparse "/usr/$LIB64/libnosparse.so" "/usr/$LIB32/libnosparse.so"; do
        [ ! -e "$f" ] || fail "$f exists already: this test would overwrite an existing install"
    done
    echo usr >>"$LEFT"
    scripts/install.sh --no-build
    [ -f "/usr/$LIB64/libnosparse.so" ] && [ -f "/usr/$LIB32/libnosparse.so" ] || fail "libraries missing"
    /usr/bin/nosparse --dry-run -- "$VMX32" | grep -qx 'trusted_dir=1' || fail "/usr/$LIB32 is not trusted by the loader"
}

# A set-user-ID root fake vmx of each class, in its own VMware-like tree.
make_vmx() {
    rm -rf "$V"
    mkdir -p "$V/bin32" "$V/bin64" "$V/vm"
    install -m 4755 -o root "$VMX32" "$V/bin32/vmware-vmx"
    install -m 4755 -o root "$VMX64" "$V/bin64/vmware-vmx"
    chmod 1777 "$V/vm"
}
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }

t_vmware_wrapper_end_to_end() {
    make_vmx
    local state=$S/vmware.state
    for bits in 32 64; do
        local vmx=$V/bin$bits/vmware-vmx
        # Control: the set-user-ID program started by nobody, no wrapper: sparse.
        as_nobody "$vmx" --path "$V/vm/bare$bits.vmem" --size $((256 * MIB)) >/dev/null
        sparse "$V/vm/bare$bits.vmem"
        [ "$(stat -c %U "$V/vm/bare$bits.vmem")" = root ] || fail "fake vmx did not run set-user-ID root"
        nosparse-vmware install --vmx "$vmx" --wrapper-dir "$S/etc-vmware$bits" --state "$state"
        [ -L "$vmx" ] && [ -u "$vmx.real" ] || fail "not diverted"
        [ -u "/usr/$([ $bits = 32 ] && echo "$LIB32" || echo "$LIB64")/libnosparse.so" ] || fail "library not set-user-ID"
        # Unprivileged user, wrapper, set-user-ID root program: whole.
        as_nobody "$vmx" --path "$V/vm/guest$bits.vmem" --size $((256 * MIB)) --writes 16 >/dev/null
        whole "$V/vm/guest$bits.vmem"
        nosparse-vmware status --state "$state" | grep -q "$vmx.*: ok" || fail "status: $(nosparse-vmware status --state "$state")"
    done
    # The launcher says why a set-user-ID program would not get a library without the bit.
    for bits in 32 64; do
        local vmx=$V/bin$bits/vmware-vmx
        nosparse-vmware uninstall --vmx "$vmx" --state "$state"
        [ ! -L "$vmx" ] && [ ! -e "$vmx.real" ] && [ -u "$vmx" ] || fail "not restored"
        local src=VMX$bits
        cmp "$vmx" "${!src}" || fail "the restored program differs"
        as_nobody "$vmx" --path "$V/vm/after$bits.vmem" --size $((256 * MIB)) >/dev/null
        sparse "$V/vm/after$bits.vmem"
    done
    [ ! -u "/usr/$LIB32/libnosparse.so" ] && [ ! -u "/usr/$LIB64/libnosparse.so" ] || fail "set-user-ID bit left on a library"
    [ ! -e "$state" ] || fail "state left: $(cat "$state")"
    dpkg-divert --list | grep -q "$V" && fail "diversion left"
    as_nobody /usr/bin/nosparse -- "$V/bin32/vmware-vmx" --path "$V/vm/x.vmem" --size $MIB >/dev/null 2>"$S/err"
    grep -q 'set-user-ID bit' "$S/err" || fail "no warning for a set-user-ID program: $(cat "$S/err")"
    rm -rf "$V"
}

# Runs "$@" in a private mount namespace where /etc/ld.so.preload and /etc/nosparse.conf
# are $S/ld.so.preload and $S/nosparse.conf. Placeholders are made for the bind mounts
# where the files do not exist, and removed after.
with_system_files() {
    local made=()
    for f in /etc/ld.so.preload /etc/nosparse.conf; do
        [ -e "$f" ] || { : >"$f"; made+=("$f"); }
    done
    local rc=0
    unshare --mount --propagation private sh -c '
        mount --bind "$1/ld.so.preload" /etc/ld.so.preload &&
        mount --bind "$1/nosparse.conf" /etc/nosparse.conf && shift && exec "$@"' sh "$S" "$@" || rc=$?
    for f in "${made[@]}"; do rm -f "$f"; done
    return $rc
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
    # A file others can write is not trusted: its allow-list is ignored, and it says so.
    printf 'NOSPARSE_PROGRAMS=nothing\nNOSPARSE_LOG=stderr\n' >"$S/nosparse.conf"
    chmod 666 "$S/nosparse.conf"
    with_system_files env -u LD_PRELOAD NOSPARSE_LOG=stderr "$VMX64" --path "$S/untrusted.vmem" --size $((128 * MIB)) >/dev/null 2>"$S/err"
    grep -q 'not reading /etc/nosparse.conf: writable by group or others' "$S/err" || fail "$(cat "$S/err")"
    rm -rf "$V"
}

t_uninstall_under_usr() {
    scripts/uninstall.sh
    sed -i '/^usr$/d' "$LEFT"
    for f in /usr/bin/nosparse /usr/sbin/nosparse-vmware "/usr/$LIB64/libnosparse.so" "/usr/$LIB32/libnosparse.so" /usr/share/nosparse; do
        [ ! -e "$f" ] || fail "$f left behind"
    done
}

t_debian_packages() {
    bash scripts/package.sh "$S/debs"
    local amd64 i386
    amd64=$(ls "$S"/debs/nosparse_*_amd64.deb)
    i386=$(ls "$S"/debs/nosparse_*_i386.deb)
    dpkg-deb -c "$amd64" >"$S/amd64.list"
    for f in ./usr/bin/nosparse ./usr/sbin/nosparse-vmware "./usr/lib/x86_64-linux-gnu/libnosparse.so" ./usr/lib32/libnosparse.so; do
        grep -q " $f\$" "$S/amd64.list" || fail "$f not in $amd64"
    done
    dpkg-deb -c "$i386" >"$S/i386.list"
    grep -q ' ./usr/lib/i386-linux-gnu/libnosparse.so$' "$S/i386.list" || fail "i386 package lacks its library"
    mkdir -p "$S/i386"
    dpkg-deb -x "$i386" "$S/i386"
    readelf -h "$S/i386/usr/bin/nosparse" | grep -q 'Class:.*ELF32' || fail "i386 launcher is not 32-bit"
    readelf -h "$S/i386/usr/lib/i386-linux-gnu/libnosparse.so" | grep -q 'Class:.*ELF32' || fail "i386 library is not 32-bit"
    echo deb >>"$LEFT"
    dpkg -i "$amd64"
    for bits in 64 32; do
        local vmx=VMX$bits
        /usr/bin/nosparse -- "${!vmx}" --path "$S/deb$bits.vmem" --size $((128 * MIB)) >/dev/null
        whole "$S/deb$bits.vmem"
    done
    dpkg -r nosparse
    sed -i '/^deb$/d' "$LEFT"
    [ ! -e /usr/bin/nosparse ] && [ ! -e "/usr/$LIB64/libnosparse.so" ] || fail "dpkg -r left files"
}

for t in t_install_under_a_prefix t_launcher_runs_both_classes t_launcher_built_for_i686 t_launcher_options_and_errors \
    t_check_reports_like_filefrag t_rewrite_makes_a_fragmented_file_whole t_uninstall_under_a_prefix \
    t_install_under_usr t_vmware_wrapper_end_to_end t_system_wide_mode t_uninstall_under_usr \
    t_debian_packages; do
    run "$t"
done
umount_all
undo_leftovers
echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
