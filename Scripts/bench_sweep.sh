#!/usr/bin/env bash
# bench_sweep.sh — what does a sweep cost against one fit? (issue 4)
#
# Lorenz-63 (dt 0.01): 20,000 training steps (then 100,000), 10 validation trajectories of 501 steps. Times, in one run:
#   one fit     `eddy train` at the largest width (recurrent form, cholesky),
#   the sweep   `eddy sweep` over 7 widths × 6 ridges (42 models, each scored on validation), one data pass,
#   refits      `eddy train` + `eddy evaluate` for every one of the 42 combinations separately.
# Prints sweep/fit (target ≤ 1.5) and refits/fit. Wall clock of whole commands, best of 2 for the fit and sweep.
# The refits are timed at 20,000 steps only. Runtime: about 3 minutes on 2 cores.
# Usage: Scripts/bench_sweep.sh [--json FILE]      EDDY=/path/to/eddy to measure a given binary
set -euo pipefail
cd "$(dirname "$0")/.."
json=""
if [ "${1:-}" = "--json" ]; then json="$2"; fi
source Scripts/lib.sh
use_eddy bench_sweep
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
widths="64,128,256,512,1024,1536,2048"
ridges="1e-12,1e-11,1e-10,1e-9,1e-8,1e-7"
largest=2048
"$EDDY" generate lorenz63 --trajectories 10 --steps 501 --seed 7 --out "$tmp/val.csv" >/dev/null

now() { date +%s.%N; }
best_of() {  # best_of N command… → seconds
  local n=$1; shift; local best=""
  for _ in $(seq "$n"); do
    local t0; t0=$(now); "$@" >/dev/null 2>&1; local t1; t1=$(now)
    best=$(python3 -c "a='$best'; d=$t1-$t0; print(d if a=='' else min(float(a), d))")
  done
  echo "$best"
}
results=""
for steps in 20001 100001; do
  "$EDDY" generate lorenz63 --trajectories 1 --steps $steps --seed 0 --out "$tmp/train.csv" >/dev/null
  # The Gram path throughout (the ratios this benchmark tracks since issue 4); bench_qr.sh measures qr sweeps.
  fit=$(best_of 2 "$EDDY" train --data "$tmp/train.csv" --width $largest --solver cholesky --out "$tmp/fit.st")
  sweep=$(best_of 2 "$EDDY" sweep --data "$tmp/train.csv" --validation "$tmp/val.csv" --widths $widths --ridges $ridges --solver auto --horizon 100 --out "$tmp/best.st")
  refits=0
  if [ $steps = 20001 ]; then
    t0=$(now)
    for w in ${widths//,/ }; do
      for r in ${ridges//,/ }; do
        "$EDDY" train --data "$tmp/train.csv" --width "$w" --ridge "$r" --solver cholesky --out "$tmp/r.st" >/dev/null 2>&1
        "$EDDY" evaluate --model "$tmp/r.st" --data "$tmp/val.csv" --horizon 100 --json >/dev/null
      done
    done
    t1=$(now)
    refits=$(python3 -c "print($t1-$t0)")
  fi
  results="$results $((steps - 1)):$fit:$sweep:$refits"
done
python3 - "$json" $results <<'PY'
import json, sys, os
out = sys.argv[1]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"machine: {cpu}, {os.cpu_count()} cores")
print("| training steps | one fit at width 2048 (s) | sweep 7 widths × 6 ridges (s) | sweep / fit | 42 separate fits + evaluations (s) | refits / fit |")
print("|---|---|---|---|---|---|")
rows = []
for item in sys.argv[2:]:
    steps, fit, sweep, refits = item.split(":")
    fit, sweep, refits = float(fit), float(sweep), float(refits)
    rows.append({"steps": int(steps), "fit_s": fit, "sweep_s": sweep, "sweep_over_fit": sweep / fit,
                 "refits_s": refits or None, "refits_over_fit": (refits / fit) if refits else None})
    r = f"{refits:.1f} | {refits / fit:.1f}" if refits else "— | —"
    print(f"| {int(steps):,} | {fit:.2f} | {sweep:.2f} | {sweep / fit:.2f} | {r} |")
if out:
    json.dump({"cpu": cpu, "cores": os.cpu_count(), "results": rows}, open(out, "w"), indent=1)
PY
