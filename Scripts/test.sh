#!/usr/bin/env bash
# The test command: installs what is missing (Debian packages, NumPy), builds, runs every test.
# Usage: Scripts/test.sh            (from anywhere; runs in the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
swift build --build-tests 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
swift build --product eddy >/dev/null
swift test --skip-build 2>&1 | tee /tmp/eddy-test.log | grep -vE '^(Test Case|◇|􀟈)' | tail -n 60
status=${PIPESTATUS[0]}
exit "$status"
