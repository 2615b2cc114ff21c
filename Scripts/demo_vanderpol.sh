#!/usr/bin/env bash
# A worked example on a generated system: Van der Pol trajectories, the recurrent and the Koopman forms, 200-step
# free runs on unseen initial conditions, the Koopman spectrum and a plot. Well under a minute after the build.
# Usage: Scripts/demo_vanderpol.sh [OUTDIR]   (default: ./out)
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
out=${1:-out}
mkdir -p "$out"
source Scripts/lib.sh
use_eddy demo
eddy=$EDDY
"$eddy" generate vanderpol --trajectories 100 --steps 200 --seed 0 --out "$out/vdp-train.csv"
"$eddy" generate vanderpol --trajectories 20 --steps 201 --seed 1 --initial-range=-2,2 --out "$out/vdp-test.csv"
for form in recurrent koopman; do
  echo "== $form form, width 400 =="
  "$eddy" train --data "$out/vdp-train.csv" --width 400 --form "$form" --ridge 1e-12 --out "$out/vdp-$form.safetensors"
  "$eddy" evaluate --model "$out/vdp-$form.safetensors" --data "$out/vdp-test.csv" --horizon 200 --every 50
done
echo "== Koopman eigenvalues (largest modulus first) =="
"$eddy" spectrum --model "$out/vdp-koopman.safetensors" --top 6 --plot "$out/vdp-spectrum.svg"
"$eddy" forecast --model "$out/vdp-recurrent.safetensors" --data "$out/vdp-test.csv" --horizon 200 --origins 0 \
  --out "$out/vdp-forecast.csv" --plot "$out/vdp-forecast.svg"
