#!/usr/bin/env bash
# control_demo.sh — control with the learned model (issue 6): prediction under inputs, then closed loops.
#
# 1. Data: forced Van der Pol (input amplitude 2) and the damped pendulum (amplitude 1), 1000 trajectories × 40
#    steps (dt 0.05) per input signal kind — smoothed noise, steps, chirp — from the systems' default boxes
#    (pendulum θ ∈ [−π, π], ω ∈ [−1, 1]; short runs keep the pendulum from spinning far, so the upright is well
#    covered). Test sets: 100 × 41 steps per signal, other seeds.
# 2. Prediction under new inputs: a Koopman model (width 100, SWIM, ridge 1e-8, --inputs u) per training signal,
#    scored by `eddy evaluate --origins 0 --horizon 40` on every test signal: NRMSE at steps 1, 10, 20, 40.
# 3. Pendulum upright: `eddy control` with the noise-trained model from θ0 = π + d, ω0 = 0, for every d in
#    ±{0.25, 0.5, 1, 1.5, 2, 2.5, 3}, 200 steps (10 s), |u| ≤ 2, q = 1,1, r = 0.1, MPC horizon 40: tracking RMSE
#    and final error of each controller; "stabilised" means a final error below 0.01.
# 4. Forced Van der Pol tracking: from x0 = (2, 0) (near the limit cycle), 400 steps (20 s), |u| ≤ 3, references
#    sine:1,5 (x = sin(2πt/5), y its rate), sine:1.5,10 and setpoint:1,0: tracking RMSE over the run and over its
#    second half, effort, violations.
# Every table compares no control, LQR on the true linearisation (true-lqr), Eddy-LQR and Eddy-MPC on the same
# task (same initial state, integrator, saturation).
#
# Usage: Scripts/control_demo.sh [OUTDIR]   (default: out/control; about a minute after the build on 2 cores)
#   EDDY=/path/to/eddy  binary to use (default: swift build -c release --product eddy)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/control}
mkdir -p "$out"
if [ -z "${EDDY:-}" ]; then
  swift build -c release --product eddy 2>&1 | tail -n 1 >&2
  EDDY="$(swift build -c release --show-bin-path)/eddy"
fi
eddy() { "$EDDY" "$@"; }

echo "## Data and models" >&2
for sys in pendulum forced-vanderpol; do
  amp=1; [ "$sys" = forced-vanderpol ] && amp=2
  seed=0
  for sig in noise steps chirp; do
    eddy generate "$sys" --trajectories 1000 --steps 40 --input-signal "$sig" --input-amplitude "$amp" --seed "$seed" \
      --out "$out/$sys-$sig-train.csv" >/dev/null
    eddy generate "$sys" --trajectories 100 --steps 41 --input-signal "$sig" --input-amplitude "$amp" --seed $((seed + 100)) \
      --out "$out/$sys-$sig-test.csv" >/dev/null
    eddy train --data "$out/$sys-$sig-train.csv" --inputs u --form koopman --width 100 --ridge 1e-8 \
      --out "$out/$sys-$sig.safetensors" --json > "$out/$sys-$sig-train.json"
    seed=$((seed + 1))
  done
  for sig in noise steps chirp; do
    for test in noise steps chirp; do
      eddy evaluate --model "$out/$sys-$sig.safetensors" --data "$out/$sys-$test-test.csv" --origins 0 --horizon 40 --json \
        > "$out/eval-$sys-$sig-on-$test.json"
    done
  done
done

python3 - "$out" <<'EOF'
import json, sys
out = sys.argv[1]
print("## Prediction under new input signals (Koopman, width 100; NRMSE per horizon step, 100 test trajectories)\n")
print("| system | trained on | tested on | step 1 | step 10 | step 20 | step 40 |")
print("|---|---|---|---|---|---|---|")
for sys_ in ("pendulum", "forced-vanderpol"):
    for train in ("noise", "steps", "chirp"):
        for test in ("noise", "steps", "chirp"):
            d = json.load(open(f"{out}/eval-{sys_}-{train}-on-{test}.json"))
            s = {x["step"]: x["nrmse"] for x in d["steps"]}
            mark = "" if train != test else " (same kind)"
            print(f"| {sys_} | {train} | {test}{mark} | " + " | ".join(f"{s[k]:.2e}" for k in (1, 10, 20, 40)) + " |")
print()
EOF

echo "## Pendulum upright" >&2
model="$out/pendulum-noise.safetensors"
for d in -3 -2.5 -2 -1.5 -1 -0.5 -0.25 0.25 0.5 1 1.5 2 2.5 3; do
  theta=$(python3 -c "import math; print(math.pi + $d)")
  eddy control --model "$model" --system pendulum --reference setpoint:3.141592653589793,0 --initial "$theta,0" \
    --steps 200 --umin=-2 --umax 2 --mpc-horizon 40 --json > "$out/pendulum-$d.json"
done
eddy control --model "$model" --system pendulum --reference setpoint:3.141592653589793,0 --initial 2.141592653589793,0 \
  --steps 200 --umin=-2 --umax 2 --plot "$out/pendulum-upright.svg" --out "$out/pendulum-upright.csv" >/dev/null

python3 - "$out" <<'EOF'
import json, sys, math
out = sys.argv[1]
ds = ["-3", "-2.5", "-2", "-1.5", "-1", "-0.5", "-0.25", "0.25", "0.5", "1", "1.5", "2", "2.5", "3"]
names = ["none", "true-lqr", "eddy-lqr", "eddy-mpc"]
print("## Pendulum: stabilising the upright from θ0 = π + d, ω0 = 0 (|u| ≤ 2, 200 steps of 0.05)\n")
print("Tracking RMSE (both variables, data units) / final error ‖x_T − (π, 0)‖; ✓ = final error < 0.01.\n")
print("| d (rad) | " + " | ".join(names) + " |")
print("|---|" + "---|" * len(names))
ok = {n: [] for n in names}
for d in ds:
    j = json.load(open(f"{out}/pendulum-{d}.json"))
    c = {x["controller"]: x for x in j["controllers"]}
    cells = []
    for n in names:
        if "error" in c[n]:
            cells.append("no design")
            continue
        r, f = c[n]["tracking_rmse"], c[n]["final_error"]
        good = f is not None and f < 0.01
        if good: ok[n].append(float(d))
        cells.append(("diverged" if r is None else f"{r:.4f} / {f:.1e}") + (" ✓" if good else ""))
    print(f"| {d} | " + " | ".join(cells) + " |")
print()
for n in names:
    print(f"- {n}: stabilised from {len(ok[n])} of {len(ds)} starts" + (f" (d in [{min(ok[n])}, {max(ok[n])}])" if ok[n] else ""))
print()
EOF

echo "## Forced Van der Pol tracking" >&2
model="$out/forced-vanderpol-noise.safetensors"
for ref in sine:1,5 sine:1.5,10 setpoint:1,0; do
  eddy control --model "$model" --system forced-vanderpol --reference "$ref" --initial 2,0 --steps 400 \
    --umin=-3 --umax 3 --mpc-horizon 40 --json > "$out/vdp-${ref//[:,]/_}.json"
done
eddy control --model "$model" --system forced-vanderpol --reference sine:1,5 --initial 2,0 --steps 400 \
  --umin=-3 --umax 3 --plot "$out/vdp-tracking.svg" --out "$out/vdp-tracking.csv" >/dev/null

python3 - "$out" <<'EOF'
import json, sys
out = sys.argv[1]
print("## Forced Van der Pol: tracking from x0 = (2, 0) (|u| ≤ 3, 400 steps of 0.05)\n")
print("| reference | controller | tracking RMSE | second-half RMSE | final error | effort Σu²dt | max abs u | violations |")
print("|---|---|---|---|---|---|---|---|")
for ref in ("sine:1,5", "sine:1.5,10", "setpoint:1,0"):
    j = json.load(open(f"{out}/vdp-{ref.replace(':', '_').replace(',', '_')}.json"))
    for c in j["controllers"]:
        if "error" in c:
            print(f"| {ref} | {c['controller']} | no design: {c['error']} | | | | | |")
            continue
        f = lambda v: "diverged" if v is None else f"{v:.4f}"
        print(f"| {ref} | {c['controller']} | {f(c['tracking_rmse'])} | {f(c['late_rmse'])} | {f(c['final_error'])} | "
              f"{c['effort']:.2f} | {c['max_abs_input']:.2f} | {c['violations']} |")
print()
print(f"Plots: {out}/pendulum-upright.svg, {out}/vdp-tracking.svg")
EOF
