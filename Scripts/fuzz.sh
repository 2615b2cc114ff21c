#!/usr/bin/env bash
# fuzz.sh — coverage-guided fuzzing (libFuzzer) of the readers of untrusted input:
#   FuzzCSV        CSVFormat.parse, the line format every CSV is read with
#   FuzzNPY        the .npy header parser (NPY.Header.parse)
#   FuzzModelFile  the model-file reader (ModelFile.read(bytes:)), and the loaded model's accessors
#   FuzzOptions    the checks every train/sweep option goes through (TrainingConfig/SweepConfig.validate, the memory budget)
#   FuzzNetCDF     the classic netCDF header parser, then NetCDFReader (libnetcdf) on the same bytes
# Each must parse or throw EddyError for every input; a trap, crash, leak report, timeout or OOM is a finding.
#
# First every saved input under Fuzz/crashes/NAME/ is replayed (regressions: each must now pass), then each fuzzer
# runs for SECONDS from its seed corpus Fuzz/corpus/NAME/ (copied: the repository's corpus is not changed). A finding
# is written to out/fuzz/NAME/crash-… (or leak-, timeout-, oom-) and fails the script: add the file to
# Fuzz/crashes/NAME/ with the fix. Prints runs, executions per second and coverage per fuzzer.
#
# Usage: Scripts/fuzz.sh [SECONDS] [NAME…]     (default 60 s each, every fuzzer; Scripts/test.sh runs 20 s each)
# The build is a debug build with -sanitize=fuzzer in .build-fuzz/ (EDDY_FUZZ=1 declares the fuzz targets).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-60}"
shift || true
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=(FuzzCSV FuzzNPY FuzzModelFile FuzzOptions FuzzNetCDF)
export SWIFT_BACKTRACE=enable=no   # libFuzzer reports the crash; Swift's backtracer would only slow it down

echo "fuzz: building ${NAMES[*]} (debug, -sanitize=fuzzer, .build-fuzz/)" >&2
# Only the fuzzer sanitizer: SwiftPM keeps --sanitize values in a set, and with `--sanitize=fuzzer --sanitize=address`
# it passes them in a random order; "-sanitize=fuzzer -sanitize=address" compiled the library without coverage
# counters (seen here in about half of the builds), so the fuzzers ran blind. The debug build keeps Swift's bounds
# and overflow checks, which catch what matters in these parsers; the check below refuses an uninstrumented binary.
for name in "${NAMES[@]}"; do
  EDDY_FUZZ=1 swift build --sanitize=fuzzer --product "$name" --scratch-path .build-fuzz 2>&1 \
    | { grep -E 'error|warning: .*Sources/|Build of product' || true; } >&2
done

status=0
summary=()
mkdir -p out/fuzz
for name in "${NAMES[@]}"; do
  exe=".build-fuzz/debug/$name"
  [ -x "$exe" ] || { echo "fuzz: $exe was not built" >&2; exit 1; }
  # The fuzzer must be instrumented: an uninstrumented (release) build fuzzes blind.
  saved=$(find "Fuzz/crashes/$name" -type f 2>/dev/null | sort || true)
  if [ -n "$saved" ]; then
    echo "fuzz: $name: replaying $(echo "$saved" | wc -l) saved input(s)" >&2
    # shellcheck disable=SC2086
    if ! "$exe" -rss_limit_mb=2048 -timeout=10 $saved > "out/fuzz/$name-replay.log" 2>&1; then
      echo "fuzz: $name: a saved input fails again (see out/fuzz/$name-replay.log)" >&2
      status=1
    fi
  fi
  work=$(mktemp -d)
  cp -r "Fuzz/corpus/$name/." "$work/" 2>/dev/null || true
  mkdir -p "out/fuzz/$name"
  log="out/fuzz/$name/fuzz.log"
  echo "fuzz: $name: $SECONDS_EACH s" >&2
  if ! "$exe" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 -max_len=8192 -print_final_stats=1 \
      -artifact_prefix="out/fuzz/$name/" "$work" > "$log" 2>&1; then
    echo "fuzz: $name: FINDING — see $log and out/fuzz/$name/" >&2
    status=1
  fi
  grep -q "Loaded 1 modules" "$log" || { echo "fuzz: $name: no coverage counters (not instrumented)" >&2; status=1; }
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
  speed=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || echo "cov: ?")
  corpus=$(find "$work" -type f | wc -l)
  summary+=("$name: $runs runs in ${SECONDS_EACH} s ($speed exec/s), $cov, corpus $corpus inputs")
  rm -rf "$work"
done
printf '%s\n' "${summary[@]}"
if [ "$status" = 0 ]; then
  echo "fuzz: ${#NAMES[@]} passed, 0 failed"
else
  echo "fuzz: findings above (exit 1)"
fi
exit "$status"
