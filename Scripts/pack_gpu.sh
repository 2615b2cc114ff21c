#!/usr/bin/env bash
# Pack a release eddy for the lent GPU machine, which has no Swift (see the team's docs/GPU.md).
# Like ../shared/gpu/pack.sh, but it ships every shared library the binary needs (found with ldd) except the C
# library's own, so new dependencies (NetCDF pulls in HDF5 and curl) travel too, and clinfo when it is installed.
# The libraries are found without LD_LIBRARY_PATH in the shell: device-env.sh puts a wrapper per bundled executable on
# PATH that alone sees them, and where patchelf is installed the executables also carry an rpath of $ORIGIN/lib.
# Usage: Scripts/pack_gpu.sh [DIR]      (default .gpu; keep it out of git: add /.gpu/ to .git/info/exclude)
# Then on the GPU machine: source DIR/device-env.sh && OUT=$OUT bash DIR/gpu_run.sh   (Scripts/gpu_run.sh: the bounded run)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.gpu}
# The bundle is useless without the environment script that unpacks it and registers NVIDIA's OpenCL driver: refuse
# before spending minutes on a release build.
[ -f ../shared/gpu/device-env.sh ] || { echo "pack_gpu: ../shared/gpu/device-env.sh is missing; the bundle needs it" >&2; exit 1; }
swift build -c release --static-swift-stdlib --product eddy 2>&1 | tail -n 1
bin="$(swift build -c release --static-swift-stdlib --show-bin-path)/eddy"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib"
cp "$bin" "$stage/"
strip "$stage/eddy"
exes=("$stage/eddy")
if command -v clinfo >/dev/null 2>&1; then cp "$(command -v clinfo)" "$stage/"; exes+=("$stage/clinfo"); else echo "pack_gpu: note: no clinfo here; the bundle ships without it" >&2; fi
for exe in "${exes[@]}"; do
  ldd "$exe" | awk '/=> \// { print $3 }' | grep -vE '/(libc|libm|libpthread|libdl|librt|libresolv)\.so|/ld-linux' \
    | while read -r lib; do cp -L "$lib" "$stage/lib/"; done
done
# LAPACKE reaches LAPACK and BLAS through Debian's alternatives: ship OpenBLAS's own copies under those names.
for lib in libblas.so.3 liblapack.so.3; do
  cp -L "/usr/lib/x86_64-linux-gnu/openblas-pthread/$lib" "$stage/lib/"
done
if command -v patchelf >/dev/null 2>&1; then
  for exe in "${exes[@]}"; do patchelf --set-rpath '$ORIGIN/lib' "$exe"; done
else
  echo "pack_gpu: note: no patchelf here; the bundled executables find lib/ through device-env.sh's wrappers only" >&2
fi
for exe in "${exes[@]}"; do
  if missing=$(LD_LIBRARY_PATH="$stage/lib" ldd "$exe" | grep 'not found'); then
    echo "pack_gpu: unresolved libraries of $(basename "$exe"):" >&2; echo "$missing" >&2; exit 1
  fi
done
mkdir -p "$dest"
tar cJf "$dest/bundle.tar.xz" -C "$stage" .
# The bundle is useless without the environment script that unpacks it and registers NVIDIA's OpenCL driver: refuse.
[ -f ../shared/gpu/device-env.sh ] || { echo "pack_gpu: ../shared/gpu/device-env.sh is missing; the bundle needs it" >&2; exit 1; }
cp ../shared/gpu/device-env.sh "$dest/"
# The bounded device script and the PyTorch reference it runs beside Eddy travel with the bundle.
cp Scripts/gpu_run.sh "$dest/"
if [ -f ../shared/gpu/torch_edmd.py ]; then cp ../shared/gpu/torch_edmd.py "$dest/"; else echo "pack_gpu: note: no ../shared/gpu/torch_edmd.py; gpu_run.sh will skip the PyTorch reference" >&2; fi
ls -la "$dest"
grep -qx "/$dest/" .git/info/exclude 2>/dev/null || echo "note: add '/$dest/' to .git/info/exclude"
