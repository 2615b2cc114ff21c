#!/usr/bin/env bash
# The test command: installs what is missing (Debian packages, NumPy), builds, runs every test, then fuzzes the readers
# of untrusted input for 20 s each (EDDY_FUZZ_SECONDS to change; Scripts/fuzz.sh).
# Usage: Scripts/test.sh            (from anywhere; runs in the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
# Build everything (tests and the eddy binary the end-to-end tests run); show the compiler's messages only.
swift build --build-tests 2>&1 | { grep -vE '^\[[0-9]+/[0-9]+\]|^Building|^Build complete|^Compiling|^Write' || true; }
swift build --product eddy 2>&1 | { grep -vE '^\[[0-9]+/[0-9]+\]|^Building|^Build of|^Compiling|^Write' || true; }
# The OpenCL backend's tests run on PoCL (OpenCL on the CPU, installed by setup.sh): its kernel cache lives in
# the build folder, and a missing PoCL fails the run instead of skipping those tests.
export POCL_CACHE_DIR="${POCL_CACHE_DIR:-$PWD/.build/pocl-cache}"
export EDDY_REQUIRE_POCL=1
mkdir -p "$POCL_CACHE_DIR"
swift test --skip-build 2>&1 | tee /tmp/eddy-test.log | grep -vE '^(Test Case|◇|􀟈)' | tail -n 60
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || exit "$status"
# Then the fuzzers of the untrusted-input readers, 20 s each, after replaying every saved finding (Scripts/fuzz.sh).
bash Scripts/fuzz.sh "${EDDY_FUZZ_SECONDS:-20}"
