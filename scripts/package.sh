#!/usr/bin/env bash
# Builds the Debian packages into OUTDIR (default target/debian):
#   libnosparse0_V_amd64.deb, libnosparse0_V_i386.deb  the library (Section libs,
#       Multi-Arch: same): /usr/lib/TRIPLET/libnosparse.so.0 (its SONAME) and
#       libnosparse.so beside it, the name LD_PRELOAD and a set-user-ID vmx's loader use
#   lib32nosparse0_V_amd64.deb   the 32-bit build in /usr/lib32, for amd64 hosts whose
#       32-bit C library is libc6-i386 (its loader never looks in /usr/lib/i386-linux-gnu)
#   nosparse_V_amd64.deb, nosparse_V_i386.deb  the tools (Multi-Arch: foreign), with
#       their -dbgsym .ddeb, made by cargo-deb (installed if missing)
# The library packages are made here with dpkg-deb: cargo-deb only treats the products
# of the package it is run for as built (to strip them and compute their dependencies),
# and the library is the root package's.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-target/debian}")
I686=i686-unknown-linux-gnu
CARGO_DEB_VERSION=3.8.0
SONAME=libnosparse.so.0
# The Debian revision and the homepage, from the tools' Cargo.toml; the version is the
# workspace's (Cargo.toml), the one place it is written.
REVISION=$(sed -n 's/^revision = "\(.*\)"$/\1/p' cli/Cargo.toml)
HOMEPAGE=$(sed -n 's/^homepage = "\(.*\)"$/\1/p' cli/Cargo.toml)

say() { printf 'package: %s\n' "$*" >&2; }

if ! cargo deb --version >/dev/null 2>&1; then
    say "installing cargo-deb $CARGO_DEB_VERSION"
    cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi
# A build of its own, with line tables for the -dbgsym packages, in a target dir of its
# own so that it neither changes nor rebuilds target/release (the contract's paths).
# The nosparse command is linked statically (crt-static, for that binary only: the flag
# would also make cargo drop the cdylib), so the tools run on any glibc host, old ones
# included, and depend on no C library.
export CARGO_TARGET_DIR=$PWD/target/package CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
for target in "" "$I686"; do
    cargo build --release --quiet -p nosparse ${target:+--target "$target"}
    cargo rustc --release --quiet -p nosparse-cli --bin nosparse ${target:+--target "$target"} -- -C target-feature=+crt-static
done
build=$CARGO_TARGET_DIR

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)-$REVISION
head -n 1 deploy/debian/changelog | grep -qF "($version)" ||
    { say "deploy/debian/changelog has no entry for $version"; exit 1; }

stage=target/deb-stage
rm -rf "$stage"
mkdir -p "$stage/man"
for page in docs/man/*.[0-9]; do
    gzip -9n <"$page" >"$stage/man/$(basename "$page").gz"
done
mkdir -p "$out"
rm -f "$out"/*.deb "$out"/*.ddeb

# The newest glibc symbol version a library references: the C library it needs.
glibc_floor() {
    objdump -T "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1
}

# The Depends of a library, from what it NEEDs: BIARCH is "" for the packages of its own
# architecture, "lib32" for amd64's biarch ones (libc6-i386, lib32gcc-s1).
library_depends() {
    local lib=$1 biarch=$2 need deps=()
    for need in $(readelf -d "$lib" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        case $need in
            libc.so.6 | ld-linux*.so.2)
                deps+=("$([ -n "$biarch" ] && echo libc6-i386 || echo libc6) (>= $(glibc_floor "$lib"))") ;;
            libgcc_s.so.1) deps+=("$([ -n "$biarch" ] && echo lib32gcc-s1 || echo libgcc-s1) (>= 3.0)") ;;
            *) say "$lib needs $need: which package has it?"; exit 1 ;;
        esac
    done
    [ "${#deps[@]}" -gt 0 ] || return 0
    printf '%s\n' "${deps[@]}" | sort -u | paste -sd, | sed 's/,/, /g'
}

# libdeb PACKAGE ARCH LIBDIR BUILT_LIBRARY BIARCH MULTIARCH DESCRIPTION
libdeb() {
    local pkg=$1 arch=$2 dir=$3 lib=$4 biarch=$5 multiarch=$6 desc=$7
    local root=$stage/$pkg-$arch soname doc
    mkdir -p "$root/DEBIAN" "$root/$dir"
    # The library's file is named for its SONAME, which build.rs sets.
    soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    [ "$soname" = "$SONAME" ] || { say "$lib has SONAME $soname, not $SONAME"; exit 1; }
    strip --strip-unneeded -R .comment -o "$root/$dir/$SONAME" "$lib"
    chmod 644 "$root/$dir/$SONAME"
    ln -s "$SONAME" "$root/$dir/libnosparse.so"
    doc=$root/usr/share/doc/$pkg
    install -D -m 644 deploy/debian/copyright "$doc/copyright"
    gzip -9n <deploy/debian/changelog >"$doc/changelog.Debian.gz"
    chmod 644 "$doc/changelog.Debian.gz"
    install -m 755 deploy/debian/lib/prerm "$root/DEBIAN/"
    install -m 644 deploy/debian/lib/triggers "$root/DEBIAN/"
    echo "libnosparse 0 $pkg (>= ${version%-*})" >"$root/DEBIAN/shlibs"
    chmod 644 "$root/DEBIAN/shlibs"
    install -D -m 644 "deploy/debian/overrides/$pkg" "$root/usr/share/lintian/overrides/$pkg"
    {
        echo "Package: $pkg"
        echo "Source: nosparse"
        echo "Version: $version"
        echo "Architecture: $arch"
        [ -z "$multiarch" ] || echo "Multi-Arch: $multiarch"
        echo "Maintainer: $(sed -n 's/^maintainer = "\(.*\)"$/\1/p' cli/Cargo.toml)"
        echo "Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)"
        echo "Depends: $(library_depends "$root/$dir/$SONAME" "$biarch")"
        echo "Section: libs"
        echo "Priority: optional"
        echo "Homepage: $HOMEPAGE"
        echo "Description: $desc"
        echo " libnosparse.so is loaded with LD_PRELOAD (or /etc/ld.so.preload) into programs"
        echo " that create big files sparse, such as VMware's vmware-vmx with its .vmem files,"
        echo " and allocates each such file whole and contiguous when it is created. The"
        echo " nosparse package has the command that runs programs with it."
    } >"$root/DEBIAN/control"
    (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
    chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
    dpkg-deb --root-owner-group -Zxz --build "$root" "$out/${pkg}_${version}_$arch.deb" >/dev/null
}

libdeb libnosparse0 amd64 usr/lib/x86_64-linux-gnu "$build/release/libnosparse.so" "" same \
    "preload library that preallocates files programs create sparse"
libdeb libnosparse0 i386 usr/lib/i386-linux-gnu "$build/$I686/release/libnosparse.so" "" same \
    "preload library that preallocates files programs create sparse"
libdeb lib32nosparse0 amd64 usr/lib32 "$build/$I686/release/libnosparse.so" lib32 "" \
    "preload library that preallocates files programs create sparse (32-bit)"

deb() { cargo deb --no-build --quiet --dbgsym --multiarch foreign -p nosparse-cli -o "$out" "$@" >/dev/null; }
deb
deb --target "$I686" --variant tools-i386
# cargo-deb writes no md5sums (dpkg --verify and debsums read them), and for the i386
# build it resolves dependencies against this amd64 host's /usr/lib32 (libc6-i386):
# both are put right here, the Depends computed as for the library, with the Suggests,
# from the workspace's version.
for tools in "$out"/nosparse_*.deb; do
    root=$stage/tools-$(basename "$tools" .deb)
    dpkg-deb -R "$tools" "$root"
    depends=$(library_depends "$root/usr/bin/nosparse" "")
    depends="${depends:+$depends, }libnosparse0 (= $version)"
    relations="Depends: $depends"
    if [ "$(sed -n 's/^Architecture: //p' "$root/DEBIAN/control")" = amd64 ]; then
        relations+="\nSuggests: lib32nosparse0 (= $version)"
    fi
    # Before the Description, which runs to the end of the paragraph.
    sed -i -e '/^Depends: /d; /^Suggests: /d' -e "/^Description: /i $relations" "$root/DEBIAN/control"
    (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
    chmod 644 "$root/DEBIAN/md5sums"
    dpkg-deb --root-owner-group -Zxz --build "$root" "$tools" >/dev/null
done
ls -1 "$out"/*.deb "$out"/*.ddeb
