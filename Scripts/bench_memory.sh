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
# Usage: Scripts/bench_memory.sh [--json FILE] [--rows-list 100000,1000000[,10000000]] [--width M]
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

while [ $# -gt 0 ]; do
  case "$1" in
    --json) JSON_OUT="$2"; shift 2 ;;
    --json=*) JSON_OUT="${1#*=}"; shift ;;
    --rows-list) ROWS_LIST="$2"; shift 2 ;;
    --rows-list=*) ROWS_LIST="${1#*=}"; shift ;;
    --width) WIDTH="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
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

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

: > "$TMP/results.txt"
IFS=',' read -r -a ROWS_ARR <<< "$ROWS_LIST"
for rows in "${ROWS_ARR[@]}"; do
  echo "bench_memory: generating lorenz96 --dim $DIM --steps $rows" >&2
  "$EDDY" generate lorenz96 --dim "$DIM" --steps "$rows" --seed 0 --out "$TMP/data.npy" >/dev/null
  echo "bench_memory: training on $rows rows" >&2
  /usr/bin/time -v -o "$TMP/time_$rows.txt" \
    "$EDDY" train --data "$TMP/data.npy" --width "$WIDTH" --sampler random --scale "$SCALE" \
      --form recurrent --solver cholesky --out "$TMP/model.safetensors" --json > "$TMP/train_$rows.json"
  rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$TMP/time_$rows.txt")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { print $2 }' "$TMP/time_$rows.txt")
  echo "$rows $rss $wall $TMP/train_$rows.json" >> "$TMP/results.txt"
  echo "bench_memory: $rows rows: peak RSS $rss KB, wall $wall" >&2
  rm -f "$TMP/data.npy"
done

TMP="$TMP" JSON_OUT="$JSON_OUT" EDDY="$EDDY" WIDTH="$WIDTH" DIM="$DIM" SCALE="$SCALE" TARGET="$TARGET" python3 - <<'PY'
import json, os, datetime
tmp = os.environ["TMP"]
target = float(os.environ["TARGET"])

def wall_seconds(s):  # h:mm:ss or m:ss(.ss)
    secs = 0.0
    for part in s.split(":"):
        secs = secs * 60 + float(part)
    return secs

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
    "config": {"system": f"lorenz96 --dim {os.environ['DIM']}", "width": int(os.environ["WIDTH"]),
               "sampler": "random", "scale": float(os.environ["SCALE"]), "form": "recurrent", "solver": "cholesky"},
    "runs": runs,
    "peak_ratio_largest_over_smallest": ratio,
    "target": target,
    "meets_target": ratio <= target,
}
print()
print(f"bench_memory: lorenz96 --dim {os.environ['DIM']}, width {os.environ['WIDTH']}, random scale {os.environ['SCALE']}, recurrent, cholesky")
print()
print("| rows | peak RSS (MiB) | ratio to smallest | wall (s) | eddy total (s) |")
print("|---:|---:|---:|---:|---:|")
for r in runs:
    print(f"| {r['rows']:,} | {r['peak_rss_mib']:.1f} | {r['rss_ratio_to_smallest']:.3f} | {r['wall_s']:.2f} | {r['seconds']['total']:.2f} |")
print()
print(f"peak ratio {runs[-1]['rows']:,} / {base['rows']:,} rows: {ratio:.3f} (target ≤ {target}: {'meets' if ratio <= target else 'ABOVE'})")
text = json.dumps(out, indent=1)
if os.environ.get("JSON_OUT"):
    with open(os.environ["JSON_OUT"], "w") as f:
        f.write(text + "\n")
    print(f"\nJSON written to {os.environ['JSON_OUT']}")
else:
    print("\n(no --json FILE / BENCH_JSON given; JSON not written)")
PY
