#!/usr/bin/env bash
# The test command: installs what is missing (Debian packages, NumPy), builds, runs every test, then fuzzes the readers
# of untrusted input for 20 s each (EDDY_FUZZ_SECONDS to change; Scripts/fuzz.sh).
# Usage: Scripts/test.sh            (from anywhere; runs in the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh mpi
# Build everything, eddy-mpi and its tests included (EDDY_MPI=1 declares them), and the eddy binary the end-to-end
# tests run; show the compiler's messages only.
export EDDY_MPI=1
swift build --build-tests 2>&1 | { grep -vE '^\[[0-9]+/[0-9]+\]|^Building|^Build complete|^Compiling|^Write' || true; }
swift build --product eddy 2>&1 | { grep -vE '^\[[0-9]+/[0-9]+\]|^Building|^Build of|^Compiling|^Write' || true; }
# The OpenCL backend's tests run on PoCL (OpenCL on the CPU, installed by setup.sh): its kernel cache lives in
# the build folder, and a missing PoCL fails the run instead of skipping those tests.
export POCL_CACHE_DIR="${POCL_CACHE_DIR:-$PWD/.build/pocl-cache}"
export EDDY_REQUIRE_POCL=1
mkdir -p "$POCL_CACHE_DIR"
swift test --skip-build --skip MPITests 2>&1 | tee /tmp/eddy-test.log | grep -vE '^(Test Case|◇|􀟈)' | tail -n 60
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || exit "$status"
# Then eddy-mpi under mpirun (Open MPI; the tests set what running as root and more ranks than cores need, and run
# every mpirun under a timeout).
swift test --skip-build --filter MPITests 2>&1 | tee /tmp/eddy-test-mpi.log | grep -vE '^(Test Case|◇|􀟈)' | tail -n 20
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || exit "$status"
# Then the fuzzers of the untrusted-input readers, 20 s each, after replaying every saved finding (Scripts/fuzz.sh).
bash Scripts/fuzz.sh "${EDDY_FUZZ_SECONDS:-20}"
