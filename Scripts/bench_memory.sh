#!/usr/bin/env bash
# bench_memory.sh — does `eddy train` stream? Peak resident memory against the number of rows.
#
# Measures: peak RSS ("Maximum resident set size" from /usr/bin/time -v) and wall time of
# `eddy train` (width 1024, --sampler random --scale 0.2, recurrent, cholesky) on one
# lorenz96 --dim 40 trajectory of 10^5 and 10^6 rows (each generated as .npy). Prints both peaks
# and the ratio peak(largest)/peak(smallest) (target ≤ 1.3: memory should not grow with rows).
#
# Runtime: ~50 s on 2 cores for the default 10^5,10^6 (10^6 rows train in ~40 s).
# With --rows-list 100000,1000000,10000000 add ~7 min and 3.2 GB of temporary disk.
#
# --grid: the gridded workflow instead — `eddy generate tracer` (hourly netCDF, 32 × 64 = 2048 grid points)
# trained with --pca 40 --width 300 --delays 2 --calendar hour (three streamed passes: EOFs, statistics,
# accumulation). Default rows 10^4,10^5; 10^6 rows need 16 GB of temporary disk and ~7 min.
#
# --solver S: train with that solver (default cholesky; qr keeps the (F+T)² factor instead of the Gram).
#
# Usage: Scripts/bench_memory.sh [--json FILE] [--rows-list 100000,1000000[,10000000]] [--width M] [--grid] [--solver S]
#   EDDY=/path/to/eddy  binary to measure (default: swift build -c release --product eddy)
#   BENCH_JSON=FILE     same as --json
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
JSON_OUT="${BENCH_JSON:-}"
ROWS_LIST="100000,1000000"
WIDTH=1024
DIM=40
SCALE=0.2
TARGET=1.3
GRID=0
SOLVER=cholesky

while [ $# -gt 0 ]; do
  case "$1" in
    --json) JSON_OUT="$2"; shift 2 ;;
    --json=*) JSON_OUT="${1#*=}"; shift ;;
    --rows-list) ROWS_LIST="$2"; shift 2 ;;
    --rows-list=*) ROWS_LIST="${1#*=}"; shift ;;
    --width) WIDTH="$2"; shift 2 ;;
    --grid) GRID=1; shift ;;
    --solver) SOLVER="$2"; shift 2 ;;
    --solver=*) SOLVER="${1#*=}"; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench_memory: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ ! -x /usr/bin/time ] || ! /usr/bin/time -v true >/dev/null 2>&1; then
  echo "bench_memory: needs GNU time at /usr/bin/time (with -v); it is not installed here. " \
       "Install it (Debian: apt-get install time) and rerun." >&2
  exit 1
fi
source "$HERE/lib.sh"
use_eddy bench_memory
if [ "$GRID" = 1 ]; then
  [ "$ROWS_LIST" = "100000,1000000" ] && ROWS_LIST="10000,100000"
  [ "$WIDTH" = 1024 ] && WIDTH=300
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

: > "$TMP/results.txt"
IFS=',' read -r -a ROWS_ARR <<< "$ROWS_LIST"
for rows in "${ROWS_ARR[@]}"; do
  if [ "$GRID" = 1 ]; then
    DATA="$TMP/data.nc"
    echo "bench_memory: generating tracer --steps $rows (32 × 64 grid)" >&2
    "$EDDY" generate tracer --steps "$rows" --seed 0 --out "$DATA" >/dev/null
    TRAIN=(--pca 40 --width "$WIDTH" --delays 2 --calendar hour --ridge 1e-4)
  else
    DATA="$TMP/data.npy"
    echo "bench_memory: generating lorenz96 --dim $DIM --steps $rows" >&2
    "$EDDY" generate lorenz96 --dim "$DIM" --steps "$rows" --seed 0 --out "$DATA" >/dev/null
    TRAIN=(--width "$WIDTH" --sampler random --scale "$SCALE")
  fi
  echo "bench_memory: training on $rows rows" >&2
  /usr/bin/time -v -o "$TMP/time_$rows.txt" \
    "$EDDY" train --data "$DATA" "${TRAIN[@]}" \
      --form recurrent --solver "$SOLVER" --out "$TMP/model.safetensors" --json > "$TMP/train_$rows.json"
  rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$TMP/time_$rows.txt")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { print $2 }' "$TMP/time_$rows.txt")
  echo "$rows $rss $wall $TMP/train_$rows.json" >> "$TMP/results.txt"
  echo "bench_memory: $rows rows: peak RSS $rss KB, wall $wall" >&2
  rm -f "$DATA"
done

PYTHONPATH="$HERE" TMP="$TMP" JSON_OUT="$JSON_OUT" EDDY="$EDDY" WIDTH="$WIDTH" DIM="$DIM" SCALE="$SCALE" TARGET="$TARGET" GRID="$GRID" SOLVER="$SOLVER" python3 - <<'PY'
import json, os, datetime
from benchlib import write_json
tmp = os.environ["TMP"]
target = float(os.environ["TARGET"])

def wall_seconds(s):  # h:mm:ss or m:ss(.ss)
    secs = 0.0
    for part in s.split(":"):
        secs = secs * 60 + float(part)
    return secs

grid = os.environ["GRID"] == "1"
config = ({"system": "tracer 32 x 64 (netCDF)", "width": int(os.environ["WIDTH"]), "pca": 40, "delays": 2, "calendar": "hour",
           "sampler": "swim", "form": "recurrent", "solver": os.environ["SOLVER"]} if grid else
          {"system": f"lorenz96 --dim {os.environ['DIM']}", "width": int(os.environ["WIDTH"]),
           "sampler": "random", "scale": float(os.environ["SCALE"]), "form": "recurrent", "solver": os.environ["SOLVER"]})
label = (f"tracer 32 x 64 netCDF, --pca 40, width {os.environ['WIDTH']}, delays 2, calendar hour" if grid else
         f"lorenz96 --dim {os.environ['DIM']}, width {os.environ['WIDTH']}, random scale {os.environ['SCALE']}, recurrent, {os.environ['SOLVER']}")
runs = []
for line in open(f"{tmp}/results.txt"):
    rows, rss, wall, path = line.split()
    rep = json.load(open(path))
    runs.append({"rows": int(rows), "pairs": rep["pairs"], "features": rep["features"],
                 "peak_rss_kb": int(rss), "peak_rss_mib": int(rss) / 1024, "wall_s": wall_seconds(wall),
                 "seconds": rep["seconds"]})
base = runs[0]
for r in runs:
    r["rss_ratio_to_smallest"] = r["peak_rss_kb"] / base["peak_rss_kb"]
ratio = runs[-1]["peak_rss_kb"] / base["peak_rss_kb"]
out = {
    "benchmark": "bench_memory",
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "nproc": os.cpu_count(),
    "eddy": os.environ["EDDY"],
    "config": config,
    "runs": runs,
    "peak_ratio_largest_over_smallest": ratio,
    "target": target,
    "meets_target": ratio <= target,
}
print()
print(f"bench_memory: {label}")
print()
print("| rows | peak RSS (MiB) | ratio to smallest | wall (s) | eddy total (s) | rows/s |")
print("|---:|---:|---:|---:|---:|---:|")
for r in runs:
    r["rows_per_second"] = r["rows"] / r["seconds"]["total"]
    print(f"| {r['rows']:,} | {r['peak_rss_mib']:.1f} | {r['rss_ratio_to_smallest']:.3f} | {r['wall_s']:.2f} | {r['seconds']['total']:.2f} | {r['rows_per_second']:,.0f} |")
print()
print(f"peak ratio {runs[-1]['rows']:,} / {base['rows']:,} rows: {ratio:.3f} (target ≤ {target}: {'meets' if ratio <= target else 'ABOVE'})")
write_json(out)
PY
