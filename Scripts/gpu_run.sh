#!/usr/bin/env bash
# gpu_run.sh — the one command for a lent GPU machine (issue 16): every step under its own timeout inside a global
# budget, later steps run after a failure, and everything lands under $OUT:
#   NAME.out / NAME.err   each step's output
#   steps.jsonl           one JSON line per step as it ends: name, status (ok | failed | timeout | skipped), rc, seconds
#   summary.json          all steps, the budget, the device, written at the end (and on interruption)
#   nvidia-smi.csv        clocks, power, temperature and utilisation once a second (when nvidia-smi exists)
#   cache/                the CLBlast tuning cache (XDG_CACHE_HOME), so tuned parameters come back with the results
# Steps, in order: environment → eddy devices (again with OCL_ICD_DEBUG when it finds no GPU) → the PyTorch reference
# (torch_edmd.py beside this script or in the bundle; fp32 Koopman, fp32 recurrent, fp64 Koopman; run outside the
# bundle's libraries) → eddy bench untuned, one precision per step → eddy tune (bounded; double, then single, each
# saved as it ends, each with a time budget inside its step's timeout) → eddy bench tuned → chunk sizes.
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
  ROWS=16384; INPUTS=8; WIDTH=256; CHUNK=4096; TUNE_SIZE=128; TUNE_TRIALS=1; DEVICE_ARGS=(--backend opencl --device pthread)
  STEP_LONG=60; CHUNKS="2048"; REPS=1
else
  ROWS=1048576; INPUTS=32; WIDTH=4096; CHUNK=16384; TUNE_SIZE=4096; TUNE_TRIALS=12; DEVICE_ARGS=(--backend opencl)
  STEP_LONG=150; CHUNKS="8192 16384 32768"; REPS=3
fi

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
summary = {"smoke": smoke, "budget_s": budget, "elapsed_s": round(time.time() - start, 3), "eddy": eddy, "device": device,
           "counts": counts, "steps": steps}
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
    --inputs "$INPUTS" --width "$WIDTH" --chunk-rows "$CHUNK" --reps "$REPS" --json
done
# Tuning, bounded; each precision saved as its step ends.
for p in double single; do
  step "tune-$p" "$STEP_LONG" "$EDDY" tune "${DEVICE_ARGS[@]:2}" --precision "$p" --size "$TUNE_SIZE" --trials "$TUNE_TRIALS" \
    --budget $((STEP_LONG * 2 / 3)) --json
done
for p in double mixed; do
  step "eddy-tuned-$p" "$STEP_LONG" "$EDDY" bench "${DEVICE_ARGS[@]}" --precision "$p" --form koopman,recurrent --rows "$ROWS" \
    --inputs "$INPUTS" --width "$WIDTH" --chunk-rows "$CHUNK" --reps "$REPS" --json
done
for c in $CHUNKS; do
  step "eddy-chunk-$c" "$STEP_LONG" "$EDDY" bench "${DEVICE_ARGS[@]}" --precision mixed --form koopman --rows "$ROWS" \
    --inputs "$INPUTS" --width "$WIDTH" --chunk-rows "$c" --json
done
exit 0
