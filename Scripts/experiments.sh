#!/usr/bin/env bash
# experiments.sh — the accuracy numbers for the README.
#
# a. Van der Pol (μ=1, dt 0.05): train on 100 trajectories × 200 steps (seed 0, ICs in the default
#    box [−3,3]²), test on 20 × 201 steps (seed 1, ICs in [−2,2]²). Width 400 (SWIM, tanh),
#    --episode-column episode; recurrent form with solvers cholesky/eigh/lstsq and koopman form
#    (cholesky), each at ridge 1e-12 and 1e-10 (default). Reports the 200-step free-run MSE
#    (`mse` of `eddy evaluate --horizon 200 --json`: mean over all 200 steps; also the MSE at
#    step 200) and, for the koopman models, `eddy spectrum`: the eigenvalue closest to 1 and the
#    largest modulus.
# b. Lorenz-63 (dt 0.01): train on 1 trajectory × 20001 steps (seed 0), test on 100 × 3001 steps
#    (seed 7), one forecast per test trajectory (--origins 0). Widths 500/1000/2000 (SWIM, tanh,
#    recurrent, delays 1) at ridge 1e-10 (default) and 1e-8; reports the median valid prediction
#    time in Lyapunov times (λ_max 0.906, threshold 0.5) and the training seconds. The 3000-step
#    horizon caps the VPT at 27.2 Lyapunov times; `censored` counts forecasts that never
#    crossed the threshold.
#
# Runtime: ~20 s on 2 cores (each model trains in under 3 s); ~50 s with --seeds 0,1,2.
#
# Usage: Scripts/experiments.sh [--json FILE] [--seeds 0[,1,2]]   (--seeds: sampling seeds, part b)
#   EDDY=/path/to/eddy  binary to use (default: swift build -c release --product eddy)
#   BENCH_JSON=FILE     same as --json
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
JSON_OUT="${BENCH_JSON:-}"
SEEDS="0"

while [ $# -gt 0 ]; do
  case "$1" in
    --json) JSON_OUT="$2"; shift 2 ;;
    --json=*) JSON_OUT="${1#*=}"; shift ;;
    --seeds) SEEDS="$2"; shift 2 ;;
    --seeds=*) SEEDS="${1#*=}"; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "experiments: unknown argument $1" >&2; exit 2 ;;
  esac
done

source "$HERE/lib.sh"
use_eddy experiments

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
MANIFEST="$TMP/manifest.txt"
: > "$MANIFEST"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }

# train_eval SECTION NAME TRAIN TEST EVAL-ARGS... -- TRAIN-ARGS...
# Trains, evaluates, (koopman) takes the spectrum; appends one manifest line.
train_eval() {
  local section="$1" name="$2" train="$3" test="$4"; shift 4
  local eval_args=()
  while [ "$1" != "--" ]; do eval_args+=("$1"); shift; done
  shift
  local model="$TMP/$name.safetensors"
  echo "experiments: $section $name" >&2
  local t0 t1
  t0=$(now)
  "$EDDY" train --data "$train" --episode-column episode --out "$model" --json "$@" \
    > "$TMP/$name.train.json" 2> "$TMP/$name.train.err"
  t1=$(now)
  "$EDDY" evaluate --model "$model" --data "$test" --episode-column episode "${eval_args[@]}" --json \
    > "$TMP/$name.eval.json" 2> "$TMP/$name.eval.err"
  local spec="-"
  case " $* " in
    *" --form koopman "*)
      "$EDDY" spectrum --model "$model" --json > "$TMP/$name.spectrum.json" 2> "$TMP/$name.spectrum.err"
      spec="$TMP/$name.spectrum.json" ;;
  esac
  echo "$section $name $(elapsed "$t0" "$t1") $TMP/$name.train.json $TMP/$name.eval.json $spec" >> "$MANIFEST"
  rm -f "$model"
}

# --- a. Van der Pol -------------------------------------------------------------------------------
"$EDDY" generate vanderpol --trajectories 100 --steps 200 --seed 0 --out "$TMP/vdp_train.csv" >/dev/null
"$EDDY" generate vanderpol --trajectories 20 --steps 201 --seed 1 --initial-range=-2,2 --out "$TMP/vdp_test.csv" >/dev/null
for ridge in 1e-12 1e-10; do
  for solver in cholesky eigh lstsq; do
    train_eval vdp "vdp_recurrent_${solver}_${ridge}" "$TMP/vdp_train.csv" "$TMP/vdp_test.csv" --horizon 200 -- \
      --width 400 --form recurrent --solver "$solver" --ridge "$ridge"
  done
  train_eval vdp "vdp_koopman_cholesky_${ridge}" "$TMP/vdp_train.csv" "$TMP/vdp_test.csv" --horizon 200 -- \
    --width 400 --form koopman --solver cholesky --ridge "$ridge"
done

# --- b. Lorenz-63 ---------------------------------------------------------------------------------
"$EDDY" generate lorenz63 --trajectories 1 --steps 20001 --seed 0 --out "$TMP/l63_train.csv" >/dev/null
"$EDDY" generate lorenz63 --trajectories 100 --steps 3001 --seed 7 --out "$TMP/l63_test.csv" >/dev/null
IFS=',' read -r -a SEED_ARR <<< "$SEEDS"
for ridge in 1e-10 1e-8; do
  for width in 500 1000 2000; do
    for seed in "${SEED_ARR[@]}"; do
      train_eval l63 "l63_w${width}_r${ridge}_s${seed}" "$TMP/l63_train.csv" "$TMP/l63_test.csv" \
        --horizon 3000 --lyapunov 0.906 --origins 0 -- \
        --width "$width" --sampler swim --activation tanh --form recurrent --delays 1 --ridge "$ridge" --seed "$seed"
    done
  done
done

# --- report ---------------------------------------------------------------------------------------
PYTHONPATH="$HERE" MANIFEST="$MANIFEST" JSON_OUT="$JSON_OUT" EDDY="$EDDY" python3 - <<'PY'
import json, os, re, datetime, statistics
from benchlib import write_json

vdp, l63 = [], []
for line in open(os.environ["MANIFEST"]):
    section, name, wall, train_p, eval_p, spec_p = line.split()
    tr, ev = json.load(open(train_p)), json.load(open(eval_p))
    row = {"name": name, "form": tr["form"], "solver": tr["solver"], "ridge": tr["ridge"],
           "features": tr["features"], "condition": tr.get("condition"), "warnings": tr.get("warnings", []),
           "train_seconds": tr["seconds"]["total"], "train_wall": float(wall),
           "mse": ev["mse"], "mse_standardised": ev["mse_standardised"],
           "mse_final_step": ev["steps"][-1]["mse"], "origins": ev["origins"],
           "non_finite_forecasts": ev["non_finite_forecasts"], "valid_prediction_time": ev["valid_prediction_time"]}
    if section == "vdp":
        if spec_p != "-":
            eig = json.load(open(spec_p))["eigenvalues"]
            near1 = min(eig, key=lambda e: abs(complex(e["real"], e["imaginary"]) - 1))
            top = max(eig, key=lambda e: e["modulus"])
            row["spectrum"] = {
                "count": len(eig),
                "closest_to_1": {"real": near1["real"], "imaginary": near1["imaginary"], "modulus": near1["modulus"],
                                 "distance": abs(complex(near1["real"], near1["imaginary"]) - 1)},
                "largest_modulus": {"real": top["real"], "imaginary": top["imaginary"], "modulus": top["modulus"],
                                    "frequency": top["frequency"], "growth_rate": top["growth_rate"]},
                "outside_unit_circle": sum(1 for e in eig if e["modulus"] > 1 + 1e-6)}
        vdp.append(row)
    else:
        m = re.match(r"l63_w(\d+)_r([^_]+)_s(\d+)", name)
        row.update(width=int(m.group(1)), seed=int(m.group(3)))
        l63.append(row)

print("\n### Van der Pol (width 400, 100×200 train, 20×201 test in [−2,2]², 200-step free run)\n")
print("| form | solver | ridge | MSE (200 steps) | MSE at step 200 | VPT censored | condition | train s |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for r in vdp:
    print(f"| {r['form']} | {r['solver']} | {r['ridge']:.0e} | {r['mse']:.3e} | {r['mse_final_step']:.3e} | "
          f"{r['valid_prediction_time']['censored']}/{r['origins']} | {r['condition']:.2e} | {r['train_seconds']:.3f} |")
print("\n### Van der Pol, Koopman form: spectrum of K\n")
print("| ridge | eigenvalue closest to 1 | abs(λ − 1) | largest modulus | its frequency | outside unit circle |")
print("|---:|---|---:|---:|---:|---:|")
for r in vdp:
    if "spectrum" in r:
        s = r["spectrum"]; c = s["closest_to_1"]; t = s["largest_modulus"]
        print(f"| {r['ridge']:.0e} | {c['real']:.10f}{c['imaginary']:+.2e}i | {c['distance']:.2e} | "
              f"{t['modulus']:.8f} | {t['frequency']:.4f} | {s['outside_unit_circle']}/{s['count']} |")

print("\n### Lorenz-63 (1×20001 train, 100 test trajectories × 3000-step forecasts, λ_max 0.906, threshold 0.5)\n")
print("| width | ridge | seed | median VPT (Lyapunov times) | median VPT (steps) | censored | MSE | train s |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in l63:
    v = r["valid_prediction_time"]
    print(f"| {r['width']} | {r['ridge']:.0e} | {r['seed']} | {v['median_lyapunov_times']:.2f} | {v['median_steps']:g} | "
          f"{v['censored']}/{r['origins']} | {r['mse']:.3g} | {r['train_seconds']:.3f} |")
seeds = sorted({r["seed"] for r in l63})
summary = []
if len(seeds) > 1:
    print("\n| width | ridge | VPT median over seeds | min | max |")
    print("|---:|---:|---:|---:|---:|")
    for w in sorted({r["width"] for r in l63}):
        for a in sorted({r["ridge"] for r in l63}):
            vs = [r["valid_prediction_time"]["median_lyapunov_times"] for r in l63 if r["width"] == w and r["ridge"] == a]
            summary.append({"width": w, "ridge": a, "median": statistics.median(vs), "min": min(vs), "max": max(vs)})
            print(f"| {w} | {a:.0e} | {statistics.median(vs):.2f} | {min(vs):.2f} | {max(vs):.2f} |")
print("\n(VPT is capped by the horizon at 3000·0.01·0.906 = 27.2 Lyapunov times.)")

out = {"experiments": "experiments.sh",
       "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
       "eddy": os.environ["EDDY"], "vanderpol": vdp, "lorenz63": l63, "lorenz63_seed_summary": summary}
write_json(out)
PY
