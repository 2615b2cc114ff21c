#!/usr/bin/env bash
# bench_mpi.sh — eddy-mpi's scaling on this machine (issue 13), in three parts:
#   a. One training run (Lorenz-63, 20 trajectories × 4000 steps = 79,980 pairs, width 1000, D = 1004, qr and cholesky)
#      under mpirun -n K for K = 1, 2, 4: wall seconds, CPU seconds of each rank and their sum, and the merge's time.
#      With 2 cores, K = 4 is oversubscribed: its wall time says nothing, its CPU seconds do (the work per rank).
#   b. The merge alone, by size: 64 pairs at D = 1024, 2048, 4096 (and 8192 for cholesky) under mpirun -n 2, so the
#      pass is nothing and the reported merge time is the reduction (send/receive along the tree, the TSQR merge of
#      two triangles for qr, then the broadcast). qr up to D = 2048 (see below).
#   c. Time per row in one process at D = 4096 (8192 rows; qr and cholesky) and D = 8192 (4096 rows; cholesky): the
#      rate the paper model of the README scales to clusters.
# Prints one table per part; with --json FILE, writes every measurement there too.
#
# Usage: Scripts/bench_mpi.sh [--json FILE] [--quick] [--parts abc]   (about 15 minutes; --quick: smaller sizes, about 2)
#   EDDY_MPI_BIN=/path/to/eddy-mpi   binary to use (default: EDDY_MPI=1 swift build -c release --product eddy-mpi)
# Runs as root in a container (OMPI_ALLOW_RUN_AS_ROOT) and oversubscribes (K > cores) on purpose.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JSON_OUT=""
QUICK=""
PARTS=abc
while [ $# -gt 0 ]; do
  case "$1" in
    --json) JSON_OUT="$2"; shift 2 ;;
    --json=*) JSON_OUT="${1#*=}"; shift ;;
    --quick) QUICK=1; shift ;;
    --parts) PARTS="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench_mpi: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "${EDDY_MPI_BIN:-}" ]; then
  echo "bench_mpi: building release eddy-mpi and eddy" >&2
  (cd "$ROOT" && EDDY_MPI=1 swift build -c release --product eddy-mpi 2>&1 | tail -n 1 >&2)
  (cd "$ROOT" && EDDY_MPI=1 swift build -c release --product eddy 2>&1 | tail -n 1 >&2)
  EDDY_MPI_BIN="$(cd "$ROOT" && EDDY_MPI=1 swift build -c release --show-bin-path)/eddy-mpi"
fi
# The data come from eddy (eddy-mpi has only train and sweep): the one built beside eddy-mpi.
EDDY_BIN="$(dirname "$EDDY_MPI_BIN")/eddy"
for b in "$EDDY_MPI_BIN" "$EDDY_BIN"; do [ -x "$b" ] || { echo "bench_mpi: $b is not an executable" >&2; exit 1; }; done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
# Results go straight to the --json file when there is one, so an interrupted run keeps what it measured.
RESULTS="${JSON_OUT:-$TMP/results.jsonl}"
: > "$RESULTS"

# train K TAG ARGS...: one eddy-mpi train under mpirun -n K, its JSON report kept as TAG.json, wall seconds as TAG.wall.
train() {
  local k="$1" tag="$2"; shift 2
  local start end
  start=$(date +%s.%N)
  timeout 1800 mpirun -n "$k" "$EDDY_MPI_BIN" train --backend cpu --json --out "$TMP/$tag.safetensors" "$@" > "$TMP/$tag.json"
  end=$(date +%s.%N)
  python3 - "$TMP/$tag.json" "$k" "$tag" "$start" "$end" >> "$RESULTS" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
k, tag, start, end = int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
cpu = r.get("ranks", {}).get("cpu_seconds") or [None]
print(json.dumps({"tag": tag, "ranks": k, "solver": r["solver"], "features": r["features"], "pairs": r["pairs"], "wall": end - start,
                  "statistics": r["seconds"].get("statistics"), "accumulate": r["seconds"].get("accumulate"), "merge": r["seconds"].get("merge", 0.0), "cpu": cpu}))
EOF
}

if [[ "$PARTS" == *a* ]]; then
  steps=4000; width=1000
  [ -n "$QUICK" ] && { steps=1000; width=500; }
  "$EDDY_BIN" generate lorenz63 --trajectories 20 --steps "$steps" --out "$TMP/a.csv" >/dev/null
  for solver in qr cholesky; do
    for k in 1 2 4; do
      echo "bench_mpi: a $solver K=$k" >&2
      train "$k" "a-$solver-$k" --data "$TMP/a.csv" --width "$width" --solver "$solver"
    done
  done
fi
if [[ "$PARTS" == *b* ]]; then
  "$EDDY_BIN" generate lorenz63 --trajectories 1 --steps 65 --out "$TMP/b.csv" >/dev/null
  sizes="1024 2048 4096"
  [ -n "$QUICK" ] && sizes="1024 2048"
  for d in $sizes 8192; do
    for solver in cholesky qr; do
      # qr up to 2048 only: at 4096 the run's solve (an SVD of the 4096² factor) takes minutes on 2 cores, and the merge
      # itself is O(D³) (a triangle-on-triangle QR), so it scales from 2048 by (D/2048)³.
      if { [ "$d" -ge 4096 ] && [ "$solver" = qr ]; } || { [ "$d" = 8192 ] && [ -n "$QUICK" ]; }; then continue; fi
      echo "bench_mpi: b $solver D=$d" >&2
      train 2 "b-$solver-$d" --data "$TMP/b.csv" --width $((d - 4)) --solver "$solver" --sampler random --ridge 1e-6
    done
  done
fi
if [[ "$PARTS" == *c* ]]; then
  # qr at D = 8192 is left out: its solve (one SVD of the 8192² factor, replicated on every rank) takes over ten minutes
  # on 2 cores; the pass's rate at 8192 follows from cholesky's and the qr/cholesky ratio at 4096.
  # (Rank 0 alone solves; in one process the qr solve at 4096 takes a few minutes of this run.)
  for spec in "4096 8192 cholesky qr" "8192 4096 cholesky"; do
    set -- $spec
    d=$1; rows=$2; shift 2
    [ -n "$QUICK" ] && rows=$((rows / 4))
    "$EDDY_BIN" generate lorenz63 --trajectories 1 --steps $((rows + 1)) --out "$TMP/c-$d.csv" >/dev/null
    for solver in "$@"; do
      echo "bench_mpi: c $solver D=$d rows=$rows" >&2
      train 1 "c-$solver-$d" --data "$TMP/c-$d.csv" --width $((d - 4)) --solver "$solver" --sampler random --ridge 1e-6
    done
  done
fi

python3 - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def fmt(x, d=2): return "-" if x is None else f"{x:.{d}f}"
a = [r for r in rows if r["tag"].startswith("a-")]
if a:
    print("a. one run under mpirun -n K (CPU backend; 2 cores: K = 4 is oversubscribed, read its CPU seconds, not its wall time)")
    print(f"{'solver':9}{'K':>3}{'pairs':>8}{'D':>6}{'wall s':>9}{'pass s':>9}{'merge s':>9}  CPU s per rank (sum)")
    for r in a:
        cpu = [c for c in r["cpu"] if c is not None]
        per = ", ".join(fmt(c) for c in cpu) if cpu else "-"
        total = f" ({fmt(sum(cpu))})" if len(cpu) > 1 else ""
        print(f"{r['solver']:9}{r['ranks']:>3}{r['pairs']:>8}{r['features']:>6}{r['wall']:>9.2f}{fmt(r['accumulate']):>9}{fmt(r['merge'], 3):>9}  {per}{total}")
b = [r for r in rows if r["tag"].startswith("b-")]
if b:
    print("\nb. the merge over 2 ranks by size (tree: receive, combine, broadcast)")
    print(f"{'solver':9}{'D':>6}{'MiB':>8}{'merge s':>9}")
    for r in b:
        n = r["features"] + (3 if r["solver"] == "qr" else 3)
        mib = (r["features"] * (r["features"] + 3) * 8 if r["solver"] != "qr" else n * n * 8) / 2**20
        print(f"{r['solver']:9}{r['features']:>6}{mib:>8.0f}{fmt(r['merge'], 3):>9}")
c = [r for r in rows if r["tag"].startswith("c-")]
if c:
    print("\nc. one process: time per row of the pass")
    print(f"{'solver':9}{'D':>6}{'rows':>7}{'read s':>8}{'pass s':>9}{'ms/row':>9}{'GFLOP/s':>9}")
    for r in c:
        d = r["features"]
        # The pass's arithmetic per row: the lift (2·3·D for these 3 variables) is nothing beside the update of the
        # D × D statistic: D² for the Gram (SYRK, upper triangle, multiply-add counted as 2), about 2 D² for dtpqrt.
        flops = (1 if r["solver"] != "qr" else 2) * d * d * r["pairs"]
        print(f"{r['solver']:9}{d:>6}{r['pairs']:>7}{fmt(r['statistics']):>8}{fmt(r['accumulate']):>9}{1000 * r['accumulate'] / r['pairs']:>9.3f}{flops / r['accumulate'] / 1e9:>9.1f}")
EOF
