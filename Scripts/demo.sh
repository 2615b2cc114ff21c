#!/usr/bin/env bash
# The main job on the embedded default: real hourly weather at New York's three airports (2013, Scripts/data).
# Train on January–September, choose width and ridge on October (one sweep, 101 validation origins 7 h apart: the
# choice is the same from 35, 235 and 697 origins), test on November–December:
# forecasts 24 h and 168 h ahead from every test origin at every station, per-variable error in the data's units
# with skill against persistence, the last day repeated, the hour-of-day climatology and the trailing 14-day
# climatology, and an SVG with a week of forecast against truth. Takes well under 2 minutes after the build on 2 cores.
# Usage: Scripts/demo.sh [OUTDIR]   (default: ./out)
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
out=${1:-out}
mkdir -p "$out"
source Scripts/lib.sh
use_eddy demo
eddy=$EDDY
data=Scripts/data/nyc-airports-2013-hourly.csv
shape=(--data "$data" --episode-column origin --time-column time_hour
       --columns temp,dewp,humid,wind_speed,wind_dir,pressure,visib --angles wind_dir --calendar hour,doy --fill-gaps 3)
echo "== sweep: train Jan–Sep, validate on October (24 h and 168 h), 24 hourly delays =="
"$eddy" sweep "${shape[@]}" --until 2013-10-01 --validation "$data" --validation-from 2013-10-01 --validation-until 2013-11-01 \
  --delays 24 --widths 0,64,128,256,512 --ridges 1e-6,1e-5,1e-4,1e-3,1e-2,1e-1 --horizon 168 --score-steps 24,168 --validation-every 7 \
  --units temp=°F,dewp=°F,humid=%,wind_speed=mph,pressure=mbar,visib=mi \
  --out "$out/weather.safetensors" --plot "$out/weather-sweep.svg" --top 8
echo
echo "== test: November–December, every origin, 24 h and 168 h ahead =="
"$eddy" evaluate --model "$out/weather.safetensors" --data "$data" --from 2013-11-01 --horizon 168 --origins every:1 \
  --score-steps 24,168 --baselines --every 24
"$eddy" forecast --model "$out/weather.safetensors" --data "$data" --from 2013-11-01 --horizon 168 --origins 200 \
  --out "$out/weather-week.csv" --plot "$out/weather-week.svg" > /dev/null
echo
echo "wrote $out/weather-week.svg (a week of forecast against truth at EWR) and $out/weather-sweep.svg (validation error against width)"
