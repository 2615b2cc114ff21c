#!/usr/bin/env bash
# Pack a release eddy for the lent GPU machine, which has no Swift (see the team's docs/GPU.md).
# Like ../shared/gpu/pack.sh, but it ships every shared library the binary needs (found with ldd) except the C
# library's own, so new dependencies (NetCDF pulls in HDF5 and curl) travel too.
# Usage: Scripts/pack_gpu.sh [DIR]      (default .gpu; keep it out of git: add /.gpu/ to .git/info/exclude)
# Then on the GPU machine: source DIR/device-env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.gpu}
swift build -c release --static-swift-stdlib --product eddy 2>&1 | tail -n 1
bin="$(swift build -c release --static-swift-stdlib --show-bin-path)/eddy"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib"
cp "$bin" "$stage/"
strip "$stage/eddy"
ldd "$bin" | awk '/=> \// { print $3 }' | grep -vE '/(libc|libm|libpthread|libdl|librt|libresolv)\.so|/ld-linux' \
  | while read -r lib; do cp -L "$lib" "$stage/lib/"; done
# LAPACKE reaches LAPACK and BLAS through Debian's alternatives: ship OpenBLAS's own copies under those names.
for lib in libblas.so.3 liblapack.so.3; do
  cp -L "/usr/lib/x86_64-linux-gnu/openblas-pthread/$lib" "$stage/lib/"
done
if missing=$(LD_LIBRARY_PATH="$stage/lib" ldd "$stage/eddy" | grep 'not found'); then
  echo "pack_gpu: unresolved libraries:" >&2; echo "$missing" >&2; exit 1
fi
mkdir -p "$dest"
tar cJf "$dest/bundle.tar.xz" -C "$stage" .
if [ -f ../shared/gpu/device-env.sh ]; then cp ../shared/gpu/device-env.sh "$dest/"; fi
ls -la "$dest"
grep -qx "/$dest/" .git/info/exclude 2>/dev/null || echo "note: add '/$dest/' to .git/info/exclude"
