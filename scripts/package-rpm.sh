#!/usr/bin/env bash
# Builds the RPM packages with cargo-generate-rpm (installed if missing) into OUTDIR
# (default target/rpm), for x86_64 and i686:
#   nosparse-libs-V-1.ARCH.rpm  the library: /usr/lib64/libnosparse.so (x86_64) or
#       /usr/lib/libnosparse.so (i686), where each class's loader looks on Red Hat hosts
#   nosparse-V-1.ARCH.rpm       the tools, requiring the same version of the library of
#       their own architecture (nosparse-libs(x86-64) or nosparse-libs(x86-32))
# Run scripts/package.sh first: this packages its build (target/package) and its
# staged man pages (target/deb-stage/man).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-target/rpm}")
I686=i686-unknown-linux-gnu
CARGO_GENERATE_RPM_VERSION=0.21.1
build=$PWD/target/package
man=$PWD/target/deb-stage/man

say() { printf 'package-rpm: %s\n' "$*" >&2; }

if ! cargo generate-rpm --version >/dev/null 2>&1; then
    say "installing cargo-generate-rpm $CARGO_GENERATE_RPM_VERSION"
    cargo install --quiet --locked cargo-generate-rpm --version "$CARGO_GENERATE_RPM_VERSION"
fi
for f in "$build/release/nosparse" "$build/$I686/release/nosparse" "$man/nosparse.1.gz"; do
    [ -f "$f" ] || { say "$f is missing: run scripts/package.sh first"; exit 1; }
done
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
mkdir -p "$out"
rm -f "$out"/*.rpm

# Removal is refused while something still loads the library (as the Debian prerm); a
# commented-out line of /etc/ld.so.preload does not count, as glibc's loader ignores it.
preun='if [ "$1" = 0 ]; then
  if sed "s/#.*//" /etc/ld.so.preload 2>/dev/null | grep -q libnosparse; then echo "nosparse: /etc/ld.so.preload names the library: remove that line first" >&2; exit 1; fi
  if [ -s /var/lib/nosparse/vmware ]; then echo "nosparse: the VMware wrapper is installed: run nosparse-vmware uninstall first" >&2; exit 1; fi
fi'

# RPM has no dpkg-statoverride: an upgrade of the library gives it the package's mode,
# without the set-user-ID bit vmx's loader needs. After every transaction that touches
# the library, the wrapper is repaired when one is recorded (repair changes nothing
# else, and nothing when all is in place).
posttrans='if [ -s /var/lib/nosparse/vmware ] && [ -x /usr/bin/nosparse ]; then /usr/bin/nosparse vmware repair || :; fi'

# rpm_for ARCH BUILD_DIR LIBDIR: the two packages of one architecture, from stripped
# copies of the build.
rpm_for() {
    local arch=$1 libdir=$3 dir=$PWD/target/rpm-stage/$1 isa
    # The tools need the library of their own architecture: cargo-generate-rpm gives
    # each package the provide NAME(ISA), as rpmbuild's %{_isa} has it.
    case $arch in x86_64) isa='(x86-64)' ;; i686) isa='(x86-32)' ;; esac
    rm -rf "$dir"
    mkdir -p "$dir"
    strip --strip-unneeded -R .comment -o "$dir/libnosparse.so" "$2/libnosparse.so"
    strip --strip-unneeded -R .comment -o "$dir/nosparse" "$2/nosparse"
    a() { printf '{ source = "%s", dest = "%s", mode = "%s" },\n' "$1" "$2" "$3"; }
    cargo generate-rpm -p cli -a "$arch" -o "$out/nosparse-libs-$version-1.$arch.rpm" -s "
name = \"nosparse-libs\"
summary = \"preload library that preallocates files programs create sparse\"
release = \"1\"
pre_uninstall_script = '''$preun'''
post_trans_script = '''$posttrans'''
assets = [
$(a "$dir/libnosparse.so" "$libdir/libnosparse.so" 755)
$(a "$PWD/deploy/debian/copyright" "/usr/share/licenses/nosparse-libs/copyright" 644)
]"
    cargo generate-rpm -p cli -a "$arch" -o "$out/nosparse-$version-1.$arch.rpm" -s "
name = \"nosparse\"
summary = \"run programs with libnosparse, check and rewrite files' layout, wrap VMware's vmx\"
release = \"1\"
requires = { \"nosparse-libs$isa\" = \"= $version-1\", bash = \"*\" }
pre_uninstall_script = '''if [ \"\$1\" = 0 ] && [ -s /var/lib/nosparse/vmware ]; then echo \"nosparse: run nosparse-vmware uninstall first\" >&2; exit 1; fi'''
post_trans_script = '''$posttrans'''
assets = [
$(a "$dir/nosparse" /usr/bin/nosparse 755)
$(a "$PWD/deploy/nosparse-vmware" /usr/sbin/nosparse-vmware 755)
$(a "$PWD/deploy/vmware-vmx-wrapper" /usr/share/nosparse/vmware-vmx-wrapper 755)
$(a "$PWD/deploy/nosparse.conf.example" /usr/share/nosparse/nosparse.conf.example 644)
$(a "$PWD/deploy/bash-completion/nosparse" /usr/share/bash-completion/completions/nosparse 644)
$(a "$PWD/deploy/systemd/nosparse-vmware-repair.path" /usr/lib/systemd/system/nosparse-vmware-repair.path 644)
$(a "$PWD/deploy/systemd/nosparse-vmware-repair.service" /usr/lib/systemd/system/nosparse-vmware-repair.service 644)
$(a "$man/nosparse.1.gz" /usr/share/man/man1/nosparse.1.gz 644)
$(a "$man/nosparse.conf.5.gz" /usr/share/man/man5/nosparse.conf.5.gz 644)
$(a "$man/nosparse-vmware.8.gz" /usr/share/man/man8/nosparse-vmware.8.gz 644)
$(a "$PWD/deploy/debian/copyright" /usr/share/licenses/nosparse/copyright 644)
]"
}

rpm_for x86_64 "$build/release" /usr/lib64
rpm_for i686 "$build/$I686/release" /usr/lib
ls -1 "$out"/*.rpm
