#!/usr/bin/env bash
# bench_peers.sh — Eddy head to head with the methods people use today (issue 7), on the same data, splits,
# origins and metrics, run one after another on this machine:
#   Eddy (recurrent and Koopman forms × SWIM and random features; width and ridge from one `eddy sweep` on
#   validation), the linear delay model (Eddy width 0), persistence, the Python reference (swimnetworks SWIM +
#   NumPy lstsq readout), an echo state network (reservoirpy; spectral radius × leak rate × ridge, as many
#   candidates as one form × sampler of Eddy's sweep, at Eddy's width), LSTM and GRU (PyTorch on the CPU,
#   BPTT, early stopping on validation).
# Tasks: vdp (Van der Pol), lorenz63, rossler, lorenz96 (dim 40), weather (NYC airports 2013, 24 h and 168 h).
# Metrics: standardised forecast MSE per horizon step, valid prediction time in Lyapunov times (chaotic
# systems), histogram KL of long free runs, training wall time. Output: Markdown on stdout (and --md FILE), JSON.
#
# Usage: Scripts/bench_peers.sh [--quick] [--tasks vdp,lorenz63,…] [--json FILE] [--md FILE] [--rnn-time-cap S]
#   --quick   every task on smaller data, LSTM/GRU capped at 12 s each: about 2 minutes (under 5)
#             on 2 cores once the environment exists. Full mode (all five tasks, LSTM/GRU up to 300 epochs or
#             600 s each) takes about an hour or more.
#   EDDY=/path/to/eddy   the binary to measure (default: swift build -c release --product eddy)
# Defaults: --json out/bench-peers/bench_peers[-quick].json, --md out/bench-peers/bench_peers[-quick].md.
# The Python environment lives in .venv-peers/ (created on first use: NumPy, SciPy, reservoirpy, swimnetworks
# from PyPI, and PyTorch: a CPU-only wheel when pip can see one, else PyPI's default build with its CUDA
# libraries, several GB). Not part of CI.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
VENV="$ROOT/.venv-peers"
QUICK=""
ARGS=()
JSON=""
MD=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --json) JSON="$2"; shift 2 ;;
    --json=*) JSON="${1#*=}"; shift ;;
    --md) MD="$2"; shift 2 ;;
    --md=*) MD="${1#*=}"; shift ;;
    --tasks) ARGS+=(--tasks "$2"); shift 2 ;;
    --tasks=*) ARGS+=(--tasks "${1#*=}"); shift ;;
    --rnn-time-cap) ARGS+=(--rnn-time-cap "$2"); shift 2 ;;
    --rnn-time-cap=*) ARGS+=(--rnn-time-cap "${1#*=}"); shift ;;
    --keep) ARGS+=(--keep); shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "bench_peers: unknown argument $1" >&2; exit 2 ;;
  esac
done
suffix=${QUICK:+-quick}
JSON=${JSON:-$ROOT/out/bench-peers/bench_peers$suffix.json}
MD=${MD:-$ROOT/out/bench-peers/bench_peers$suffix.md}

# --- the Python environment ----------------------------------------------------------------------------
REQ="$HERE/peers/requirements.txt"
STAMP="$VENV/.bench-peers-installed"
if [ ! -x "$VENV/bin/python" ] || [ ! -f "$STAMP" ] || ! cmp -s "$REQ" "$STAMP"; then
  t0=$(date +%s)
  echo "bench_peers: setting up $VENV" >&2
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
  if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    # PyPI's default Linux torch wheel depends on CUDA libraries (several GB). A CPU-only build (version
    # suffix +cpu) is used when pip can see one (a local find-links folder or an extra index configured for pip).
    cpu=$("$VENV/bin/python" -m pip index versions torch 2>/dev/null | tr ', ' '\n\n' | grep -E '^[0-9.]+\+cpu$' | sort -V | tail -n 1 || true)
    if [ -n "$cpu" ]; then
      echo "bench_peers: installing torch==$cpu (CPU-only build)" >&2
      "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$cpu"
    else
      echo "bench_peers: no CPU-only torch visible to pip; installing PyPI's default torch (with CUDA libraries, several GB)" >&2
      "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check torch
    fi
  fi
  cp "$REQ" "$STAMP"
  echo "bench_peers: environment ready in $(( $(date +%s) - t0 )) s ($(du -sh "$VENV" | cut -f1))" >&2
fi

# --- Eddy --------------------------------------------------------------------------------------------------
source "$HERE/lib.sh"
use_eddy bench_peers

echo "bench_peers: $(uptime)" >&2
exec "$VENV/bin/python" "$HERE/peers/bench.py" --eddy "$EDDY" --root "$ROOT" ${QUICK:+--quick} \
  --json "$JSON" --md "$MD" ${ARGS[@]+"${ARGS[@]}"}
