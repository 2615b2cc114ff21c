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
# --wide: a state too wide for its Gram — `eddy generate tracer --lat 91 --lon 181` (16,471 grid points, the shape of
# issue 14's monthly SST climatology). First the refusal: training without --pca must exit 1 with a message naming
# --pca, before any big allocation (its peak RSS is printed; under EDDY_MEMORY_LIMIT=2G, so on any machine). Then --pca 3 (the randomized EOF path) --width 16
# --delays 1 on 240 and 2400 hourly steps (default rows); peak RSS must stay under WIDE_LIMIT_MIB (default 512, what
# the README states) and not grow with the rows (ratio ≤ 1.3). About 2 minutes; 2400 steps are 320 MB of disk.
#
# --solver S: train with that solver (default cholesky; qr keeps the (F+T)² factor instead of the Gram).
#
# Usage: Scripts/bench_memory.sh [--json FILE] [--rows-list 100000,1000000[,10000000]] [--width M] [--grid | --wide] [--solver S]
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
WIDE=0
WIDE_LIMIT_MIB="${WIDE_LIMIT_MIB:-512}"
SOLVER=cholesky

while [ $# -gt 0 ]; do
  case "$1" in
    --json) JSON_OUT="$2"; shift 2 ;;
    --json=*) JSON_OUT="${1#*=}"; shift ;;
    --rows-list) ROWS_LIST="$2"; shift 2 ;;
    --rows-list=*) ROWS_LIST="${1#*=}"; shift ;;
    --width) WIDTH="$2"; shift 2 ;;
    --grid) GRID=1; shift ;;
    --wide) WIDE=1; shift ;;
    --solver) SOLVER="$2"; shift 2 ;;
    --solver=*) SOLVER="${1#*=}"; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
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
if [ "$WIDE" = 1 ]; then
  [ "$ROWS_LIST" = "100000,1000000" ] && ROWS_LIST="240,2400"
  [ "$WIDTH" = 1024 ] && WIDTH=16
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

: > "$TMP/results.txt"
REFUSAL=""
if [ "$WIDE" = 1 ]; then
  # Without --pca: refused before any big allocation, with a message naming --pca.
  "$EDDY" generate tracer --steps 24 --lat 91 --lon 181 --seed 0 --out "$TMP/refuse.nc" >/dev/null
  set +e
  # The estimate is checked against the memory there is: EDDY_MEMORY_LIMIT=2G makes the refusal the same on any machine.
  EDDY_MEMORY_LIMIT=2G /usr/bin/time -v -o "$TMP/time_refuse.txt" "$EDDY" train --data "$TMP/refuse.nc" --width "$WIDTH" \
    --out "$TMP/refused.safetensors" > /dev/null 2> "$TMP/refuse.err"
  rc=$?
  set -e
  rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$TMP/time_refuse.txt")
  message=$(grep -v "Command exited" "$TMP/refuse.err" | head -n 1)
  echo "bench_memory: without --pca: exit $rc, peak RSS $rss KB: $message" >&2
  if [ "$rc" != 1 ] || ! grep -q -- "--pca" "$TMP/refuse.err" || [ -e "$TMP/refused.safetensors" ]; then
    echo "bench_memory: the wide state without --pca was not refused as it should be (exit $rc)" >&2
    exit 1
  fi
  REFUSAL="$rc $rss"
  rm -f "$TMP/refuse.nc"
fi
IFS=',' read -r -a ROWS_ARR <<< "$ROWS_LIST"
for rows in "${ROWS_ARR[@]}"; do
  if [ "$WIDE" = 1 ]; then
    DATA="$TMP/data.nc"
    echo "bench_memory: generating tracer --steps $rows (91 × 181 grid)" >&2
    "$EDDY" generate tracer --steps "$rows" --lat 91 --lon 181 --seed 0 --out "$DATA" >/dev/null
    TRAIN=(--pca 3 --width "$WIDTH" --delays 1 --ridge 1e-4)
  elif [ "$GRID" = 1 ]; then
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

PYTHONPATH="$HERE" TMP="$TMP" JSON_OUT="$JSON_OUT" EDDY="$EDDY" WIDTH="$WIDTH" DIM="$DIM" SCALE="$SCALE" TARGET="$TARGET" GRID="$GRID" \
  WIDE="$WIDE" WIDE_LIMIT_MIB="$WIDE_LIMIT_MIB" REFUSAL="$REFUSAL" SOLVER="$SOLVER" python3 - <<'PY'
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
wide = os.environ["WIDE"] == "1"
config = ({"system": "tracer 91 x 181 (netCDF, 16,471 points)", "width": int(os.environ["WIDTH"]), "pca": 3, "delays": 1,
           "sampler": "swim", "form": "recurrent", "solver": os.environ["SOLVER"]} if wide else
          {"system": "tracer 32 x 64 (netCDF)", "width": int(os.environ["WIDTH"]), "pca": 40, "delays": 2, "calendar": "hour",
           "sampler": "swim", "form": "recurrent", "solver": os.environ["SOLVER"]} if grid else
          {"system": f"lorenz96 --dim {os.environ['DIM']}", "width": int(os.environ["WIDTH"]),
           "sampler": "random", "scale": float(os.environ["SCALE"]), "form": "recurrent", "solver": os.environ["SOLVER"]})
label = (f"tracer 91 x 181 netCDF (16,471 points), --pca 3 (randomized EOFs), width {os.environ['WIDTH']}, delays 1" if wide else
         f"tracer 32 x 64 netCDF, --pca 40, width {os.environ['WIDTH']}, delays 2, calendar hour" if grid else
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
if wide:
    rc, rss = os.environ["REFUSAL"].split()
    limit = float(os.environ["WIDE_LIMIT_MIB"])
    peak = max(r["peak_rss_mib"] for r in runs)
    out["refusal_without_pca"] = {"exit": int(rc), "peak_rss_mib": int(rss) / 1024}
    out["limit_mib"] = limit
    out["meets_limit"] = peak <= limit
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
if wide:
    print(f"without --pca: exit {out['refusal_without_pca']['exit']} (refused before allocating), peak RSS {out['refusal_without_pca']['peak_rss_mib']:.1f} MiB")
    print(f"largest peak {peak:.1f} MiB (limit {limit:.0f} MiB: {'within' if out['meets_limit'] else 'ABOVE'})")
write_json(out)
PY
