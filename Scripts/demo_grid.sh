#!/usr/bin/env bash
# The gridded workflow end to end, on a synthetic field shaped like reanalysis data: `eddy generate tracer` writes
# half a year of an hourly field q(time, lat, lon) on a 32 × 64 grid (2048 variables) as CF netCDF; a sweep trains on
# January–March on its leading EOFs with hour-of-day inputs and chooses their number (--pca 20,40,80), delays, width
# and ridge on April; May–June are the test: 1 h, 6 h and 24 h errors over the grid against persistence, the last day
# and the hour-of-day climatology. The forecasts go back on the grid as netCDF, and grid-map.svg maps truth, forecast
# and error. About 5 s after the build on 2 cores.
# Usage: Scripts/demo_grid.sh [OUTDIR]   (default: ./out/grid; needs Scripts/setup.sh's packages)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/grid}
mkdir -p "$out"
source Scripts/lib.sh
use_eddy demo_grid
eddy=$EDDY
"$eddy" generate tracer --steps 4344 --lat 32 --lon 64 --out "$out/field.nc"
echo
echo "== sweep: train January–March on 20, 40 or 80 EOFs, validate on April (24 h) =="
"$eddy" sweep --data "$out/field.nc" --calendar hour --pca 20,40,80 --until 2000-04-01 \
  --validation "$out/field.nc" --validation-from 2000-04-01 --validation-until 2000-05-01 \
  --delays 1,2 --widths 0,100,300 --ridges 1e-6,1e-4,1e-2 --horizon 24 --out "$out/grid.safetensors" --top 5
echo
echo "== test: May–June, an origin every 6 h, 1 h / 6 h / 24 h ahead =="
"$eddy" evaluate --model "$out/grid.safetensors" --data "$out/field.nc" --from 2000-05-01 --horizon 24 --origins every:6 \
  --score-steps 1,6,24 --baselines --every 6
"$eddy" forecast --model "$out/grid.safetensors" --data "$out/field.nc" --from 2000-05-01 --horizon 24 --origins every:24 \
  --out "$out/grid-forecasts.nc" --plot "$out/grid-map.svg"
