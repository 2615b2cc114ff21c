#!/usr/bin/env bash
# bench_cpu.sh — training speed of `eddy train` against NumPy on the same data, same invocation.
#
# Measures: wall clock of `eddy train` (whole command, best of 3; plus its own `seconds` from
# --json) on N=131072 pairs of lorenz96 --dim 32, width 1024, random features (scale 0.2),
# recurrent form, cholesky solver; then Scripts/numpy_edmd.py on the same .npy:
#   (a) NumPy pipeline: standardise, lift Φ=[1,X,tanh(XW+b)], G=ΦᵀΦ, Cholesky solve (best of 2)
#   (b) NumPy lstsq:   numpy.linalg.lstsq(Φ, Y) on the rows (1 run)
# and prints numpy_pipeline/eddy (target ≥ 3×) and numpy_lstsq/eddy (target ≥ 10×).
# The same training with --solver qr (streamed QR, best of 3): qr/cholesky (goal ≤ 2.5×) and numpy_lstsq/qr (goal ≥ 3×).
# Also records nproc, CPU model, date, NumPy's BLAS, eddy's BLAS and OPENBLAS_CORETYPE.
#
# Runtime: ~40–70 s on 2 cores (eddy ~3 s × 3, NumPy pipeline ~3 s × 2, lstsq ~10–35 s; noisy VM).
# Memory: ~3 GB peak (NumPy holds Φ, 131072×1057 doubles, and lstsq copies it).
#
# Usage: Scripts/bench_cpu.sh [--json FILE] [--rows N] [--width M] [--no-lstsq]
#   EDDY=/path/to/eddy  binary to time (default: swift build -c release --product eddy)
#   BENCH_JSON=FILE     same as --json
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
JSON_OUT="${BENCH_JSON:-}"
PAIRS=131072
WIDTH=1024
DIM=32
SCALE=0.2
EDDY_REPEATS=3
NUMPY_REPEATS=2
LSTSQ=1

while [ $# -gt 0 ]; do
  case "$1" in
    --json) JSON_OUT="$2"; shift 2 ;;
    --json=*) JSON_OUT="${1#*=}"; shift ;;
    --rows) PAIRS="$2"; shift 2 ;;
    --width) WIDTH="$2"; shift 2 ;;
    --no-lstsq) LSTSQ=0; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench_cpu: unknown argument $1" >&2; exit 2 ;;
  esac
done

source "$HERE/lib.sh"
use_eddy bench_cpu
python3 -c 'import numpy, scipy' 2>/dev/null || { echo "bench_cpu: needs python3 with numpy and scipy" >&2; exit 1; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# Timings on a 2-core machine are only meaningful when nothing else runs (e.g. a swift build).
read -r LOAD1 _ < /proc/loadavg
echo "$LOAD1" > "$TMP/load_before"
if awk -v l="$LOAD1" 'BEGIN { exit !(l > 0.5) }'; then
  echo "bench_cpu: WARNING: 1-min load average is $LOAD1 before starting; timings will be noisy" >&2
fi

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }

echo "bench_cpu: generating lorenz96 --dim $DIM --steps $((PAIRS + 1))" >&2
"$EDDY" generate lorenz96 --dim "$DIM" --steps "$((PAIRS + 1))" --seed 0 --out "$TMP/l96.npy" >/dev/null

# --- eddy, cholesky then qr: best of EDDY_REPEATS wall clocks each --------------------------------
# time_train SOLVER TAG: EDDY_REPEATS runs of `eddy train --solver SOLVER`, one line "wall json" each in TAG_runs.txt.
time_train() {
  local solver="$1" tag="$2"
  : > "$TMP/${tag}_runs.txt"
  for i in $(seq "$EDDY_REPEATS"); do
    t0=$(now)
    "$EDDY" train --data "$TMP/l96.npy" --width "$WIDTH" --sampler random --scale "$SCALE" \
      --form recurrent --solver "$solver" --out "$TMP/model_$tag.safetensors" --json > "$TMP/${tag}_$i.json"
    t1=$(now)
    echo "$(elapsed "$t0" "$t1") $TMP/${tag}_$i.json" >> "$TMP/${tag}_runs.txt"
    echo "bench_cpu: eddy --solver $solver run $i: $(elapsed "$t0" "$t1") s" >&2
  done
}
time_train cholesky eddy
time_train qr qr

# --- NumPy ------------------------------------------------------------------------------------
echo "bench_cpu: NumPy pipeline (best of $NUMPY_REPEATS)$([ "$LSTSQ" = 1 ] && echo ' and lstsq (~10–35 s)')" >&2
np_args=(--data "$TMP/l96.npy" --width "$WIDTH" --scale "$SCALE" --repeats "$NUMPY_REPEATS" --json "$TMP/numpy.json")
[ "$LSTSQ" = 1 ] || np_args+=(--no-lstsq)
python3 "$HERE/numpy_edmd.py" "${np_args[@]}"

# --- environment ------------------------------------------------------------------------------
nproc > "$TMP/nproc"
grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //' > "$TMP/cpu" || echo unknown > "$TMP/cpu"
date -u +%Y-%m-%dT%H:%M:%SZ > "$TMP/date"
read -r LOAD1 _ < /proc/loadavg; echo "$LOAD1" > "$TMP/load_after"
{ ldd "$EDDY" 2>/dev/null | grep -E 'openblas|libblas' | awk '{print $3}' | xargs -r readlink -f; } > "$TMP/eddy_blas" || true

# --- report -----------------------------------------------------------------------------------
PYTHONPATH="$HERE" EDDY="$EDDY" TMP="$TMP" JSON_OUT="$JSON_OUT" PAIRS="$PAIRS" WIDTH="$WIDTH" DIM="$DIM" SCALE="$SCALE" python3 - <<'PY'
import json, os
from benchlib import write_json
tmp = os.environ["TMP"]
runs = []
for line in open(f"{tmp}/eddy_runs.txt"):
    wall, path = line.split()
    rep = json.load(open(path))
    runs.append({"wall": float(wall), "seconds": rep["seconds"], "report": rep})
best = min(runs, key=lambda r: r["wall"])
qr_runs = []
for line in open(f"{tmp}/qr_runs.txt"):
    wall, path = line.split()
    qr_runs.append({"wall": float(wall), "seconds": json.load(open(path))["seconds"]})
qr_best = min(qr_runs, key=lambda r: r["wall"])
np_rep = json.load(open(f"{tmp}/numpy.json"))
import numpy
cfg = numpy.show_config(mode="dicts")
blas = cfg.get("Build Dependencies", {}).get("blas", {})
read = lambda name: open(f"{tmp}/{name}").read().strip()

eddy_wall = best["wall"]
pipe = np_rep["pipeline"]["best"]
out = {
    "benchmark": "bench_cpu",
    "date": read("date"),
    "nproc": int(read("nproc")),
    "cpu": read("cpu"),
    "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    "loadavg_1min": {"before": float(read("load_before")), "after": float(read("load_after"))},
    "numpy": {"version": numpy.__version__, "blas": blas.get("name"), "blas_version": blas.get("version"),
              "blas_config": blas.get("openblas configuration")},
    "eddy_blas": read("eddy_blas").splitlines(),
    "config": {"system": f"lorenz96 --dim {os.environ['DIM']}", "pairs": int(os.environ["PAIRS"]),
               "width": int(os.environ["WIDTH"]), "sampler": "random", "scale": float(os.environ["SCALE"]),
               "form": "recurrent", "solver": "cholesky"},
    "eddy": {"binary": os.environ["EDDY"], "best_wall": eddy_wall, "best_seconds": best["seconds"],
             "walls": [r["wall"] for r in runs], "features": best["report"]["features"],
             "pairs": best["report"]["pairs"], "condition": best["report"].get("condition")},
    "numpy_pipeline": {"best": pipe, "runs": np_rep["pipeline"]["runs"],
                       "one_step_rmse": np_rep["pipeline"]["one_step_rmse"]},
    "ratios": {"numpy_pipeline_over_eddy": pipe["total"] / eddy_wall, "numpy_pipeline_target": 3.0,
               "qr_over_cholesky": qr_best["wall"] / eddy_wall, "qr_over_cholesky_goal": 2.5},
    "eddy_qr": {"best_wall": qr_best["wall"], "best_seconds": qr_best["seconds"], "walls": [r["wall"] for r in qr_runs]},
}
if "lstsq" in np_rep:
    out["numpy_lstsq"] = np_rep["lstsq"]
    out["ratios"]["numpy_lstsq_over_eddy"] = np_rep["lstsq"]["seconds"]["total"] / eddy_wall
    out["ratios"]["numpy_lstsq_target"] = 10.0
    out["ratios"]["numpy_lstsq_over_qr"] = np_rep["lstsq"]["seconds"]["total"] / qr_best["wall"]
    out["ratios"]["numpy_lstsq_over_qr_goal"] = 3.0

s = best["seconds"]
print()
print(f"bench_cpu  {out['date']}  {out['cpu']}  nproc={out['nproc']}  OPENBLAS_CORETYPE={out['openblas_coretype']}")
print(f"load average (1 min) before/after: {out['loadavg_1min']['before']}/{out['loadavg_1min']['after']}"
      + ("  -- WARNING: machine busy, timings unreliable" if out['loadavg_1min']['before'] > 0.5 else ""))
print(f"NumPy {numpy.__version__} BLAS: {blas.get('name')} {blas.get('version')}; eddy BLAS: {', '.join(out['eddy_blas']) or '?'}")
print(f"data: lorenz96 --dim {os.environ['DIM']}, {out['eddy']['pairs']} pairs, width {os.environ['WIDTH']} "
      f"({out['eddy']['features']} features), random scale {os.environ['SCALE']}, recurrent, cholesky")
print()
print("| run | total s | phases |")
print("|---|---:|---|")
print(f"| eddy train (wall, best of {len(runs)}) | {eddy_wall:.3f} | own: statistics {s['statistics']:.3f}, "
      f"sample {s['sample']:.4f}, accumulate {s['accumulate']:.3f}, solve {s['solve']:.3f}, total {s['total']:.3f}; "
      f"walls {', '.join('%.2f' % r['wall'] for r in runs)} |")
q = qr_best["seconds"]
print(f"| eddy train --solver qr (wall, best of {len(qr_runs)}) | {qr_best['wall']:.3f} | own: statistics {q['statistics']:.3f}, "
      f"accumulate (lift + QR) {q['accumulate']:.3f}, solve (SVD) {q['solve']:.3f}; walls {', '.join('%.2f' % r['wall'] for r in qr_runs)} |")
print(f"| NumPy pipeline (best of {len(np_rep['pipeline']['runs'])}) | {pipe['total']:.3f} | load {pipe['load']:.3f}, "
      f"standardise {pipe['standardise']:.3f}, lift {pipe['lift']:.3f}, gram {pipe['gram']:.3f}, solve {pipe['solve']:.3f} |")
if "lstsq" in np_rep:
    l = np_rep["lstsq"]["seconds"]
    print(f"| NumPy lstsq (1 run) | {l['total']:.3f} | load {l['load']:.3f}, standardise {l['standardise']:.3f}, "
          f"lift {l['lift']:.3f}, lstsq {l['lstsq']:.3f} |")
print()
r = out["ratios"]
ok = lambda v, t: "meets" if v >= t else "BELOW"
print("| ratio | value | target |")
print("|---|---:|---:|")
print(f"| numpy_pipeline / eddy | {r['numpy_pipeline_over_eddy']:.2f}× | ≥ 3× ({ok(r['numpy_pipeline_over_eddy'], 3)}) |")
if "numpy_lstsq_over_eddy" in r:
    print(f"| numpy_lstsq / eddy | {r['numpy_lstsq_over_eddy']:.2f}× | ≥ 10× ({ok(r['numpy_lstsq_over_eddy'], 10)}) |")
    print(f"| numpy_lstsq / eddy qr | {r['numpy_lstsq_over_qr']:.2f}× | ≥ 3× ({ok(r['numpy_lstsq_over_qr'], 3)}) |")
print(f"| eddy qr / eddy cholesky | {r['qr_over_cholesky']:.2f}× | ≤ 2.5× ({'meets' if r['qr_over_cholesky'] <= 2.5 else 'ABOVE'}) |")

write_json(out)
PY
