#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: the C libraries Eddy links (OpenBLAS, LAPACKE, the OpenCL
# loader and CLBlast), PoCL (OpenCL on the CPU, for the backend-parity tests)
# and what the tests need (NumPy for the model-file snippet test and the Python package, python3-venv for its
# virtual environment, librsvg2-bin's rsvg-convert to render every plot to PNG); with the argument `mpi`, Open MPI too. Safe to run again.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
pkgs="libopenblas-dev liblapacke-dev pkg-config ocl-icd-opencl-dev opencl-headers libclblast-dev libnetcdf-dev pocl-opencl-icd clinfo librsvg2-bin"
# The C++ standard library's headers, for the one C++ target (Sources/CLBlastParameters reads CLBlast's applied
# kernel parameters through its C++ API); Swift's own Debian dependencies usually bring it already.
pkgs="$pkgs libstdc++-12-dev"
# `Scripts/setup.sh mpi` also installs Open MPI (for eddy-mpi and its tests; Scripts/test.sh asks for it).
if [ "${1:-}" = mpi ]; then pkgs="$pkgs libopenmpi-dev openmpi-bin"; fi
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing$missing" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
if ! command -v swift >/dev/null 2>&1; then
  echo "setup: no 'swift' on PATH; install Swift 6.x (https://www.swift.org/install/linux/) and retry" >&2
  exit 1
fi
# The Python package's tests (Tests/EndToEndTests/PythonPackageTests.swift) make a virtual environment, .venv-test/.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  echo "setup: installing python3-venv for the Python package's tests" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
fi
# The CF forecast-file test (Tests/EndToEndTests/WeatherArchiveTests.swift) opens forecasts in xarray, in a virtual
# environment over Debian's Python (.venv-xarray/): Debian's python3-xarray and python3-netcdf4, no download.
if ! /usr/bin/python3 -c 'import xarray, netCDF4' 2>/dev/null; then
  echo "setup: installing python3-xarray and python3-netcdf4 for the CF forecast-file test" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-xarray python3-netcdf4 >/dev/null
fi
if ! python3 -c 'import numpy' 2>/dev/null; then
  echo "setup: installing NumPy for the model-file snippet test" >&2
  python3 -m pip install --quiet numpy
fi
