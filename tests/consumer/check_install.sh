#!/usr/bin/env bash
# The install test (ctest: test_install): installs the build tree into a
# temporary prefix, builds score_tiny.c against it four ways (pkg-config and
# find_package(libmamba), each with the shared and the static library), runs
# them, and checks that all four print the same line, with this release's
# version and a log-likelihood near the uniform one.
#
# usage: check_install.sh BUILD_DIR C_COMPILER PKG_CONFIG CMAKE_GENERATOR VERSION
set -euo pipefail
build=$1 cc=$2 pkgconfig=$3 generator=$4 version=$5
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_install: $*" >&2; exit 1; }

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
pc=$(find "$prefix" -name libmamba.pc)
[ -n "$pc" ] || fail "no libmamba.pc installed under $prefix"
libdir=$(dirname "$(dirname "$pc")")
export PKG_CONFIG_PATH=$(dirname "$pc")

# pkg-config: the shared library (found at run time through the rpath), and
# the static one (-l:libmamba.a picks the archive over the .so beside it)
"$cc" -o "$tmp/pc_shared" "$here/score_tiny.c" $("$pkgconfig" --cflags --libs libmamba) -lm \
    -Wl,-rpath,"$libdir"
static_libs=$("$pkgconfig" --static --libs libmamba | sed 's/-lmamba\b/-l:libmamba.a/')
"$cc" -o "$tmp/pc_static" "$here/score_tiny.c" $("$pkgconfig" --cflags libmamba) $static_libs

# find_package(libmamba)
cmake -S "$here" -B "$tmp/cmake" -G "$generator" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >"$tmp/configure.log" 2>&1 ||
    { cat "$tmp/configure.log"; fail "find_package(libmamba) failed"; }
cmake --build "$tmp/cmake" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "the find_package build failed"; }

# the static builds must not need libmamba.so, the shared ones must
for exe in "$tmp/pc_static" "$tmp/cmake/score_static"; do
    ! readelf -d "$exe" | grep -q 'libmamba\.so' || fail "$exe links libmamba.so"
done
for exe in "$tmp/pc_shared" "$tmp/cmake/score_shared"; do
    readelf -d "$exe" | grep -q 'libmamba\.so\.0' || fail "$exe does not link libmamba.so.0"
done

first=
for exe in pc_shared pc_static cmake/score_shared cmake/score_static; do
    line=$("$tmp/$exe") || fail "$exe failed"
    echo "$exe: $line"
    [ -z "$first" ] && first=$line
    [ "$line" = "$first" ] || fail "$exe printed another line than pc_shared"
done
# libmamba VERSION params N log_likelihood LL uniform U
read -r _ v _ _ _ ll _ u <<<"$first"
[ "$v" = "$version" ] || fail "version $v, expected $version"
awk -v ll="$ll" -v u="$u" 'BEGIN { d = ll - u; if (d < 0) d = -d; exit !(d < 0.05 * -u) }' ||
    fail "log-likelihood $ll is not near the uniform $u"
echo "test_install: 4 builds against $prefix agree"
