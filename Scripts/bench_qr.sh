#!/usr/bin/env bash
# bench_qr.sh — the accuracy of the streamed QR solver against the Gram on clean chaotic data (issue 11).
#
# Lorenz-63 (dt 0.01): train on 1 trajectory of 20,000 pairs after the generator's transient (seed 0), test on 100
# trajectories on the attractor (seed 7), one 4500-step free run from the start of each (40 Lyapunov times),
# threshold 0.5 on standardised variables, λ_max 0.906. Recurrent form, tanh, delays 1.
#   a. SWIM at widths 500 / 1000 / 2000: cholesky at ridges 1e-14 … 1e-8 (its best reported) against qr with its
#      default cut-off (machine ε) and qr at rcond 1e-12; median valid prediction time (VPT, Lyapunov times) and
#      training seconds.
#   b. Width 2000, qr default cut-off, seeds 0–2: SWIM, and random features at scales 0.1 / 0.3 / 0.5.
#   c. Agreement at width 500 (rcond 1e-12): qr against in-memory lstsq (same cut-off), qr with two QR block sizes
#      (1024 and 8192 rows), and (if PoCL or a GPU is present) qr on --backend opencl: the weights' relative
#      difference, the forecasts' over the first Lyapunov time (110 steps; later a chaotic system amplifies any
#      difference), and the median step at which the two models' forecasts of the same origin part by more than the
#      VPT threshold (0.5 standardised) — their mutual valid prediction time.
#   d. eddy sweep --solver qr choosing by its own validation split (the last 20 % of the training trajectory), then
#      the chosen model on the test origins.
# Runtime: about 10 minutes on 2 cores.
#
# Usage: Scripts/bench_qr.sh [--json FILE] [--quick] [--parts abcd]   (--quick: parts a (widths 500, 1000) and c only)
#   EDDY=/path/to/eddy   binary to use (default: swift build -c release --product eddy)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JSON_OUT=""
QUICK=""
PARTS=abcd
while [ $# -gt 0 ]; do
  case "$1" in
    --json) JSON_OUT="$2"; shift 2 ;;
    --json=*) JSON_OUT="${1#*=}"; shift ;;
    --quick) QUICK=1; PARTS=ac; shift ;;
    --parts) PARTS="$2"; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "bench_qr: unknown argument $1" >&2; exit 2 ;;
  esac
done
source "$HERE/lib.sh"
use_eddy bench_qr
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
export POCL_CACHE_DIR="${POCL_CACHE_DIR:-$TMP/pocl}"
mkdir -p "$POCL_CACHE_DIR"
MANIFEST="$TMP/manifest.txt"
: > "$MANIFEST"
: > "$TMP/failed.txt"

"$EDDY" generate lorenz63 --trajectories 1 --steps 20001 --seed 0 --out "$TMP/train.csv" >/dev/null
"$EDDY" generate lorenz63 --trajectories 100 --steps 4501 --seed 7 --out "$TMP/test.csv" >/dev/null

# run PART NAME TRAIN-ARGS...: trains on the training trajectory, evaluates on the test origins, records both.
run() {
  local part="$1" name="$2"; shift 2
  echo "bench_qr: $part $name" >&2
  if ! "$EDDY" train --data "$TMP/train.csv" --backend "${BACKEND:-cpu}" --json --out "$TMP/$name.safetensors" "$@" > "$TMP/$name.train.json"; then
    echo "bench_qr: $name did not train (recorded as failed)" >&2
    echo "$name" >> "$TMP/failed.txt"
    return 0
  fi
  "$EDDY" evaluate --model "$TMP/$name.safetensors" --data "$TMP/test.csv" --episode-column episode --horizon 4500 \
    --lyapunov 0.906 --origins 0 --json > "$TMP/$name.eval.json"
  "$EDDY" forecast --model "$TMP/$name.safetensors" --data "$TMP/test.csv" --episode-column episode --horizon 4500 \
    --origins 0 --out "$TMP/$name.forecast.npy" >/dev/null
  echo "$part $name $TMP/$name" >> "$MANIFEST"
}

WIDTHS="500 1000 2000"
[ -n "$QUICK" ] && WIDTHS="500 1000"
has() { [[ "$PARTS" == *"$1"* ]]; }
has a && for w in $WIDTHS; do
  for r in 1e-14 1e-12 1e-10 1e-8; do run a "cholesky_w${w}_r${r}" --width "$w" --solver cholesky --ridge "$r"; done
  run a "qr_w${w}" --width "$w" --solver qr
  run a "qr_w${w}_rcond1e-12" --width "$w" --solver qr --rcond 1e-12
done
if has b; then
  for s in 0 1 2; do
    run b "swim_w2000_s$s" --width 2000 --solver qr --seed "$s"
    for scale in 0.1 0.3 0.5; do run b "random_w2000_scale${scale}_s$s" --width 2000 --solver qr --sampler random --scale "$scale" --seed "$s"; done
  done
fi
if has c; then
  run c "qr_block8192" --width 500 --solver qr --rcond 1e-12 --qr-block-rows 8192
  run c "qr_block1024" --width 500 --solver qr --rcond 1e-12 --qr-block-rows 1024
  run c "lstsq" --width 500 --solver lstsq --ridge 0 --rcond 1e-12
  if "$EDDY" devices --json 2>/dev/null | grep -q '"name"'; then BACKEND=opencl run c "qr_opencl" --width 500 --solver qr --rcond 1e-12 || true; fi
fi
if has d; then
  echo "bench_qr: d sweep" >&2
  /usr/bin/time -f "%e" -o "$TMP/sweep.time" "$EDDY" sweep --data "$TMP/train.csv" --validation-fraction 0.2 --widths 500,1000,2000 \
    --solver qr --rconds 1e-16,1e-15,1e-14,1e-12 --horizon 3000 --lyapunov 0.906 --backend cpu --json --out "$TMP/sweep.safetensors" > "$TMP/sweep.json"
  "$EDDY" evaluate --model "$TMP/sweep.safetensors" --data "$TMP/test.csv" --episode-column episode --horizon 4500 \
    --lyapunov 0.906 --origins 0 --json > "$TMP/sweep.eval.json"
fi

TMP="$TMP" PARTS="$PARTS" JSON_OUT="$JSON_OUT" EDDY="$EDDY" PYTHONPATH="$HERE" python3 - <<'PY'
import json, os, struct, datetime
from benchlib import write_json
tmp = os.environ["TMP"]

def npy(path):
    with open(path, "rb") as f:
        assert f.read(6) == b"\x93NUMPY"
        major = f.read(2)[0]
        n = struct.unpack("<H" if major == 1 else "<I", f.read(2 if major == 1 else 4))[0]
        f.read(n)
        data = f.read()
    return struct.unpack("<%dd" % (len(data) // 8), data)

def weights_of(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    lo, hi = header["A"]["data_offsets"] if "A" in header else header["K"]["data_offsets"]
    return struct.unpack("<%dd" % ((hi - lo) // 8), body[lo:hi])

rows = {}
for line in open(os.path.join(tmp, "manifest.txt")):
    part, name, base = line.split()
    tr, ev = json.load(open(base + ".train.json")), json.load(open(base + ".eval.json"))
    rows[name] = {"part": part, "name": name, "solver": tr["solver"], "ridge": tr["ridge"], "rcond": tr.get("rcond"),
                  "dropped": tr.get("dropped"), "condition": tr["condition"], "train_seconds": tr["seconds"]["total"],
                  "vpt_lyapunov": ev["valid_prediction_time"]["median_lyapunov_times"], "base": base}

def rel(a, b):
    return max(abs(x - y) for x, y in zip(a, b)) / max(max(abs(y) for y in b), 1e-300)

failed = open(os.path.join(tmp, "failed.txt")).read().split()
out = {"date": datetime.date.today().isoformat(), "eddy": os.environ["EDDY"], "runs": [], "agreement": {}, "failed": failed}
if failed:
    print("did not train (e.g. Cholesky not positive definite at that ridge): " + ", ".join(failed) + "\n")
parts = os.environ["PARTS"]
widths = [w for w in (500, 1000, 2000) if f"qr_w{w}" in rows]
if "a" in parts:
    print("## a. Lorenz-63, SWIM: median VPT (Lyapunov times) and training seconds")
    print("| width | cholesky, best ridge | qr (default cut-off ε) | qr (rcond 1e-12) |")
    print("|---:|---:|---:|---:|")
for w in widths:
    ch = max((r for r in rows.values() if r["name"].startswith(f"cholesky_w{w}_")), key=lambda r: r["vpt_lyapunov"])
    q, q12 = rows[f"qr_w{w}"], rows[f"qr_w{w}_rcond1e-12"]
    print(f"| {w} | {ch['vpt_lyapunov']:.1f} (α {ch['ridge']:g}, {ch['train_seconds']:.1f} s) | {q['vpt_lyapunov']:.1f} ({q['train_seconds']:.1f} s, {q['dropped']} dropped) | {q12['vpt_lyapunov']:.1f} |")
if "b" in parts:
    print("\n## b. width 2000, qr default cut-off: median VPT by seed")
    print("| sampler | seed 0 | seed 1 | seed 2 |")
    print("|---|---:|---:|---:|")
    for label, key in [("SWIM", "swim_w2000_s{}"), ("random, scale 0.1", "random_w2000_scale0.1_s{}"),
                       ("random, scale 0.3", "random_w2000_scale0.3_s{}"), ("random, scale 0.5", "random_w2000_scale0.5_s{}")]:
        print(f"| {label} | " + " | ".join(f"{rows[key.format(s)]['vpt_lyapunov']:.1f}" for s in range(3)) + " |")
def agreement(a, b, horizon=4500, n=3, early=110, threshold=0.5):
    """Forecast difference over the first `early` steps relative to the largest |value| there, and the median step at
    which the two forecasts of one origin first part by more than `threshold` standardised (their mutual VPT)."""
    origins = len(a) // (horizon * n)
    std = [max(1e-300, (sum(x * x for x in a[j::n]) / (len(a) // n) - (sum(a[j::n]) / (len(a) // n)) ** 2) ** 0.5) for j in range(n)]
    d = s = 0.0
    parts = []
    for o in range(origins):
        base = o * horizon * n
        part = horizon
        for h in range(horizon):
            err = (sum(((a[base + h * n + j] - b[base + h * n + j]) / std[j]) ** 2 for j in range(n)) / n) ** 0.5
            if h < early:
                for j in range(n):
                    d = max(d, abs(a[base + h * n + j] - b[base + h * n + j])); s = max(s, abs(b[base + h * n + j]))
            if err > threshold:
                part = h
                break
        parts.append(part)
    parts.sort()
    return d / s, parts[len(parts) // 2]

if "c" in parts:
    ref = rows["qr_block8192"]
    f_ref, w_ref = npy(ref["base"] + ".forecast.npy"), weights_of(ref["base"] + ".safetensors")
    print("\n## c. agreement at width 500, rcond 1e-12 (against qr with 8192-row blocks)")
    print("| run | weights | forecasts, first Lyapunov time | forecasts part after (median, Lyapunov times) | VPT |")
    print("|---|---:|---:|---:|---:|")
    for name in ("qr_block1024", "lstsq", "qr_opencl"):
        if name not in rows: continue
        r = rows[name]
        early, mutual = agreement(npy(r["base"] + ".forecast.npy"), f_ref)
        wd = rel(weights_of(r["base"] + ".safetensors"), w_ref)
        out["agreement"][name] = {"weights": wd, "forecast_first_lyapunov_time": early, "mutual_vpt_lyapunov": mutual * 0.01 * 0.906}
        print(f"| {name} | {wd:.2e} | {early:.2e} | {mutual * 0.01 * 0.906:.1f} | {r['vpt_lyapunov']:.2f} |")
if "d" in parts:
    sw, se = json.load(open(os.path.join(tmp, "sweep.json"))), json.load(open(os.path.join(tmp, "sweep.eval.json")))
    best = sw["candidates"][0]
    seconds = float(open(os.path.join(tmp, "sweep.time")).read().split()[-1])
    out["sweep"] = {"best": best, "test_vpt_lyapunov": se["valid_prediction_time"]["median_lyapunov_times"], "seconds": seconds,
                    "origins": sw["validation_origins"], "origin_stride": sw["origin_stride"]}
    print(f"\n## d. eddy sweep --solver qr ({len(sw['candidates'])} candidates, {sw['validation_origins']} validation origins, {seconds:.1f} s)")
    print(f"chose width {best['width']}, rcond {best['rcond']:g}: validation VPT {best['vpt_lyapunov']:.1f}, test VPT {out['sweep']['test_vpt_lyapunov']:.1f} Lyapunov times")
for r in rows.values():
    r = dict(r); r.pop("base"); out["runs"].append(r)
write_json(out)
PY
