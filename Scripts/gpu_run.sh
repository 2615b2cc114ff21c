#!/usr/bin/env bash
# gpu_run.sh — the one command for a lent GPU machine (issue 16): every step under its own timeout inside a global
# budget, later steps run after a failure, and everything lands under $OUT:
#   NAME.out / NAME.err   each step's output
#   steps.jsonl           one JSON line per step as it ends: name, status (ok | failed | timeout | skipped), rc, seconds
#   summary.json          all steps, the budget, the device, written at the end (and on interruption)
#   nvidia-smi.csv        clocks, power, temperature and utilisation once a second (when nvidia-smi exists)
#   cache/                the CLBlast tuning cache (XDG_CACHE_HOME), so tuned parameters come back with the results
#   table.md              the comparison table (also "table" in summary.json): Eddy vs PyTorch, untuned and tuned
# Steps, in order: environment → eddy devices (again with OCL_ICD_DEBUG when it finds no GPU) → compiler probe (eddy
# devices --compiler: the PTX the driver emits, inline-PTX mma.sync tf32/f64 with shfl.sync as control, the lift
# kernel's registers and spills; "not NVIDIA, skipped" elsewhere) → the PyTorch reference (torch_edmd.py beside this
# script or in the bundle; fp32 Koopman, fp32 recurrent, fp64 Koopman; run outside the bundle's libraries) → eddy
# bench untuned with --check, one precision per step → eddy tune at the pass's shape (bounded; double, then mixed,
# each saved as it ends, each with a time budget inside its step's timeout) → eddy bench tuned → chunk sizes.
#
# Usage on the GPU machine (from the unpacked bundle: source .gpu/device-env.sh first):
#   OUT=/path/to/out bash .gpu/gpu_run.sh [--budget SECONDS]          (default budget 540 s)
# Here, on PoCL, with small shapes and the local build (the tests run this):
#   Scripts/gpu_run.sh --smoke [--out DIR] [--inject-failures]        (default DIR out/gpu-run; under 3 minutes)
# --inject-failures adds a step that fails and one that times out on purpose (the later steps must still run).
# Env: EDDY (the eddy binary; default: `eddy` on PATH, or with --smoke the debug build), TORCH_EDMD (the reference).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SMOKE=""
INJECT=""
BUDGET=540
OUTDIR="${OUT:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1; shift ;;
    --inject-failures) INJECT=1; shift ;;
    --budget) BUDGET="$2"; shift 2 ;;
    --out) OUTDIR="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "gpu_run: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -n "$SMOKE" ]; then
  ROOT="$(cd "$HERE/.." && pwd)"
  OUTDIR="${OUTDIR:-$ROOT/out/gpu-run}"
  EDDY="${EDDY:-$ROOT/.build/debug/eddy}"
  export POCL_CACHE_DIR="${POCL_CACHE_DIR:-$ROOT/.build/pocl-cache}"
else
  OUTDIR="${OUTDIR:-$PWD/gpu-run}"
  EDDY="${EDDY:-$(command -v eddy || true)}"
fi
[ -n "$EDDY" ] && [ -x "$EDDY" ] || { echo "gpu_run: no eddy binary (set EDDY, or source device-env.sh first)" >&2; exit 1; }
mkdir -p "$OUTDIR" "$OUTDIR/cache"
OUTDIR="$(cd "$OUTDIR" && pwd)"
: > "$OUTDIR/steps.jsonl"
export XDG_CACHE_HOME="$OUTDIR/cache"
START=$(date +%s)
# Seconds kept back for writing the summary when the budget runs out.
RESERVE=5

# Shapes: the benchmark shape of ../shared/gpu (N = 2^20, d = 32, D = 4096) on a GPU, small ones on PoCL.
if [ -n "$SMOKE" ]; then
  # PoCL compiles every new Xgemm parameter set for tens of seconds: the smoke run tries one single-precision set (the
  # H100's, which the tests compile anyway) and times only CLBlast's defaults in double.
  ROWS=16384; INPUTS=8; WIDTH=256; CHUNK=4096; TUNE_TRIALS=1; TUNE_TRIALS_DOUBLE=0; DEVICE_ARGS=(--backend opencl --device pthread)
  STEP_LONG=60; CHUNKS="2048"; REPS=1
else
  ROWS=1048576; INPUTS=32; WIDTH=4096; CHUNK=16384; TUNE_TRIALS=12; TUNE_TRIALS_DOUBLE=12; DEVICE_ARGS=(--backend opencl)
  STEP_LONG=150; CHUNKS="8192 16384 32768"; REPS=3
fi
# The tuner times the pass's own shape: ld = 1 + inputs + width padded to 64 (4160 at the benchmark shape), chunk rows.
TUNE_SIZE=$(( (1 + INPUTS + WIDTH + 63) / 64 * 64 ))

summary() {
  python3 - "$OUTDIR" "$BUDGET" "$START" "$EDDY" "${SMOKE:-0}" <<'EOF'
import json, os, sys, time
out, budget, start, eddy, smoke = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
steps = [json.loads(l) for l in open(os.path.join(out, "steps.jsonl")) if l.strip()]
counts = {}
for s in steps: counts[s["status"]] = counts.get(s["status"], 0) + 1
device = None
try:
    d = json.load(open(os.path.join(out, "devices.out")))
    device = d.get("auto") or d
except Exception:
    pass
def load(name):
    try:
        text = open(os.path.join(out, name + ".out")).read().strip()
        return json.loads(text.splitlines()[-1] if name.startswith("torch") else text)
    except Exception:
        return None
def eddy_result(step, form):
    j = load(step)
    for r in (j or {}).get("results", []):
        if r.get("form") == form: return r
    return None
# The comparison the device run is for: per form, Eddy double vs PyTorch fp64 and mixed vs PyTorch fp32, untuned and
# tuned, from this one run; speed = PyTorch total / Eddy total (above 1: Eddy faster). Missing cells are null.
table = []
for form, eddy_p, torch_name in [("koopman", "double", "torch-fp64-koopman"), ("koopman", "mixed", "torch-fp32-koopman"),
                                 ("recurrent", "double", None), ("recurrent", "mixed", "torch-fp32-recurrent")]:
    t = load(torch_name) if torch_name else None
    u, tu = eddy_result("eddy-untuned-" + eddy_p, form), eddy_result("eddy-tuned-" + eddy_p, form)
    def ratio(e): return round(t["total_s"] / e["total_s"], 3) if t and e and e.get("total_s") else None
    table.append({"form": form, "eddy": eddy_p, "torch": t and t.get("dtype"), "torch_total_s": t and t.get("total_s"),
                  "torch_gram_s": t and t.get("gram_s"),
                  "eddy_untuned_total_s": u and u.get("total_s"), "eddy_tuned_total_s": tu and tu.get("total_s"),
                  "speed_untuned": ratio(u), "speed_tuned": ratio(tu),
                  "gram_tflops_untuned": u and u.get("gram_tflops"), "gram_tflops_tuned": tu and tu.get("gram_tflops"),
                  "lift_gbs_untuned": u and u.get("lift_gbs"), "solve_s_untuned": u and u.get("solve_s"),
                  "device_solve_s_untuned": u and u.get("device_solve_s"), "device_solve_difference": u and u.get("device_solve_difference"),
                  "check_untuned": u and (u.get("check") or {}).get("max_relative_difference"),
                  "gemm_path": u and u.get("gemm_path"), "clblast_temp_bytes_per_slice": u and (u.get("traffic_per_slice") or {}).get("clblast_temp_bytes")})
chunks = []
for s in steps:
    if s["name"].startswith("eddy-chunk-"):
        r = eddy_result(s["name"], "koopman")
        chunks.append({"chunk_rows": int(s["name"].split("-")[-1]), "total_s": r and r.get("total_s"), "gram_tflops": r and r.get("gram_tflops")})
card = (load("torch-fp32-koopman") or {}).get("device") or (device if isinstance(device, str) else None)
def cell(v):
    return "–" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))
lines = [f"card: {card}", "", "| form | Eddy | PyTorch | PyTorch s | Eddy untuned s | Eddy tuned s | speed untuned | speed tuned | Gram TFLOP/s untuned | tuned | lift GB/s | solve host s | solve device s | check |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
for r in table:
    lines.append("| " + " | ".join(cell(r[k]) for k in ["form", "eddy", "torch", "torch_total_s", "eddy_untuned_total_s", "eddy_tuned_total_s",
                                                       "speed_untuned", "speed_tuned", "gram_tflops_untuned", "gram_tflops_tuned",
                                                       "lift_gbs_untuned", "solve_s_untuned", "device_solve_s_untuned", "check_untuned"]) + " |")
if chunks:
    lines += ["", "| chunk rows (mixed, Koopman) | total s | Gram TFLOP/s |", "|---|---|---|"]
    lines += [f"| {c['chunk_rows']} | {cell(c['total_s'])} | {cell(c['gram_tflops'])} |" for c in chunks]
open(os.path.join(out, "table.md"), "w").write("\n".join(lines) + "\n")
summary = {"smoke": smoke, "budget_s": budget, "elapsed_s": round(time.time() - start, 3), "eddy": eddy, "device": device,
           "card": card, "counts": counts, "steps": steps, "table": table, "chunks": chunks}
tmp = os.path.join(out, "summary.json.tmp")
json.dump(summary, open(tmp, "w"), indent=1)
os.replace(tmp, os.path.join(out, "summary.json"))
print(f"gpu_run: {len(steps)} steps: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + f"; summary in {out}/summary.json", file=sys.stderr)
EOF
}
SMI_PID=""
finish() {
  [ -n "$SMI_PID" ] && kill "$SMI_PID" 2>/dev/null
  summary
}
trap finish EXIT
trap 'exit 130' INT TERM

# step NAME TIMEOUT COMMAND…: runs COMMAND under min(TIMEOUT, what is left of the budget); records the outcome.
step() {
  local name="$1" limit="$2"; shift 2
  local now left status rc t0 t1
  now=$(date +%s)
  left=$((BUDGET - (now - START) - RESERVE))
  if [ "$left" -le 1 ]; then
    printf '{"name": "%s", "status": "skipped", "rc": null, "seconds": 0, "timeout_s": %s, "why": "budget spent"}\n' "$name" "$limit" >> "$OUTDIR/steps.jsonl"
    echo "gpu_run: $name: skipped (budget spent)" >&2
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "gpu_run: $name (at most ${limit} s)" >&2
  t0=$(date +%s.%N)
  timeout -k 5 "$limit" "$@" > "$OUTDIR/$name.out" 2> "$OUTDIR/$name.err"
  rc=$?
  t1=$(date +%s.%N)
  case $rc in
    0) status=ok ;;
    124|137) status=timeout ;;
    *) status=failed ;;
  esac
  printf '{"name": "%s", "status": "%s", "rc": %d, "seconds": %s, "timeout_s": %s}\n' "$name" "$status" "$rc" \
    "$(python3 -c "print(round($t1 - $t0, 3))")" "$limit" >> "$OUTDIR/steps.jsonl"
  [ "$status" = ok ] || echo "gpu_run: $name: $status (rc $rc; see $OUTDIR/$name.err)" >&2
  return 0
}

if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=timestamp,name,clocks.sm,clocks.mem,power.draw,temperature.gpu,utilization.gpu --format=csv -l 1 \
    > "$OUTDIR/nvidia-smi.csv" 2>/dev/null &
  SMI_PID=$!
fi

step environment 20 bash -c 'uname -a; cat /etc/os-release 2>/dev/null | head -2; nproc; free -g; echo "OCL_ICD_VENDORS=${OCL_ICD_VENDORS:-}"; ls /etc/OpenCL/vendors 2>/dev/null; command -v nvidia-smi && nvidia-smi -L; command -v clinfo && clinfo -l'
step devices 60 "$EDDY" devices --json
if ! grep -q '"gpu"' "$OUTDIR/devices.out" 2>/dev/null && [ -z "$SMOKE" ]; then
  step devices-debug 60 env OCL_ICD_DEBUG=7 "$EDDY" devices
fi
# Which PTX the driver emits, whether inline-PTX mma.sync builds and runs (tf32, f64; shfl.sync as control), the lift
# kernel's registers and spills. Elsewhere it reports "not NVIDIA, skipped" and succeeds.
step compiler 60 "$EDDY" devices --compiler "${DEVICE_ARGS[@]:2}" --json
if [ -n "$INJECT" ]; then
  step fail-on-purpose 10 bash -c 'echo "this step fails on purpose" >&2; exit 3'
  step timeout-on-purpose 2 sleep 30
fi

# The PyTorch reference, outside the bundle's library path (python3 must load the machine's own libstdc++).
TORCH_EDMD="${TORCH_EDMD:-}"
for cand in "$HERE/torch_edmd.py" "$HERE/../shared/gpu/torch_edmd.py" "$HERE/../../shared/gpu/torch_edmd.py"; do
  [ -z "$TORCH_EDMD" ] && [ -f "$cand" ] && TORCH_EDMD="$cand"
done
if [ -n "$TORCH_EDMD" ] && env -u LD_LIBRARY_PATH python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  step torch-fp32-koopman "$STEP_LONG" env -u LD_LIBRARY_PATH python3 "$TORCH_EDMD" --rows "$ROWS" --inputs "$INPUTS" --width "$WIDTH" --dtype float32 --form koopman
  step torch-fp32-recurrent "$STEP_LONG" env -u LD_LIBRARY_PATH python3 "$TORCH_EDMD" --rows "$ROWS" --inputs "$INPUTS" --width "$WIDTH" --dtype float32 --form recurrent
  step torch-fp64-koopman "$STEP_LONG" env -u LD_LIBRARY_PATH python3 "$TORCH_EDMD" --rows "$ROWS" --inputs "$INPUTS" --width "$WIDTH" --dtype float64 --form koopman
else
  printf '{"name": "torch", "status": "skipped", "rc": null, "seconds": 0, "timeout_s": 0, "why": "no torch_edmd.py or no CUDA PyTorch"}\n' >> "$OUTDIR/steps.jsonl"
fi

# Eddy untuned (the tuning cache under $OUT is still empty), one precision per step, so one failure loses nothing else.
for p in double mixed; do
  step "eddy-untuned-$p" "$STEP_LONG" "$EDDY" bench "${DEVICE_ARGS[@]}" --precision "$p" --form koopman,recurrent --rows "$ROWS" \
    --window "$INPUTS" --width "$WIDTH" --chunk-rows "$CHUNK" --reps "$REPS" --check --json
done
# Tuning, bounded; each precision saved as its step ends.
for p in double mixed; do
  step "tune-$p" "$STEP_LONG" "$EDDY" tune "${DEVICE_ARGS[@]:2}" --precision "$p" --size "$TUNE_SIZE" --rows "$CHUNK" \
    --trials "$([ "$p" = double ] && echo "$TUNE_TRIALS_DOUBLE" || echo "$TUNE_TRIALS")" \
    --budget $((STEP_LONG * 2 / 3)) --json
done
for p in double mixed; do
  step "eddy-tuned-$p" "$STEP_LONG" "$EDDY" bench "${DEVICE_ARGS[@]}" --precision "$p" --form koopman,recurrent --rows "$ROWS" \
    --window "$INPUTS" --width "$WIDTH" --chunk-rows "$CHUNK" --reps "$REPS" --json
done
for c in $CHUNKS; do
  step "eddy-chunk-$c" "$STEP_LONG" "$EDDY" bench "${DEVICE_ARGS[@]}" --precision mixed --form koopman --rows "$ROWS" \
    --window "$INPUTS" --width "$WIDTH" --chunk-rows "$c" --json
done
exit 0
