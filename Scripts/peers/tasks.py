"""The benchmark's tasks: generated systems (by `eddy generate`, RK4 with sub-steps) and the hourly weather.

Generated systems: training trajectories, and validation / test / climate windows of `warm + H` rows from
independent initial conditions (other seeds), each with its origin at row warm - 1. Weather: the NYC airports
file shaped as `Scripts/demo.sh` has Eddy shape it (variables temp, dewp, humid, wind_speed, wind_dir as
sine/cosine, pressure, visib; calendar inputs hour and doy as sine/cosine of the UTC clock, Eddy's formula;
gaps of up to 3 hours filled by linear interpolation, longer ones split the trajectory), done here in NumPy
once so that every model reads the same arrays. Training: rows before 2013-10-01; validation: origins in
October whose 168 h lie in October; test: origins from 2013-11-01 on with 168 h of uninterrupted truth.
"""
from __future__ import annotations

import csv
import datetime
import math
import os
import subprocess

import numpy as np

from common import Task

LYAPUNOV = {"lorenz63": 0.906, "rossler": 0.0714, "lorenz96": 1.68}


def generate(eddy, system, out, trajectories, steps, seed, extra=()):
    cmd = [eddy, "generate", system, "--trajectories", str(trajectories), "--steps", str(steps),
           "--seed", str(seed), "--out", out, *extra]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return np.load(out)


# name: (system, extra generate args, dt, variables, delays, warm, horizon, val_horizon, report steps,
#        full sizes, quick sizes) with sizes = (train trajectories, train steps, val windows, test windows,
#        climate runs, climate steps)
SYSTEMS = {
    "vdp": dict(system="vanderpol", title="Van der Pol (μ=1, dt 0.05)", extra=(), test_extra=("--initial-range=-2,2",),
                dt=0.05, variables=["x", "y"], delays=1, warm=50, horizon=200, val_horizon=200,
                report=[20, 200], full=(100, 200, 20, 50, 4, 4000), quick=(100, 200, 10, 20, 2, 2000),
                widths=[0, 64, 128, 256, 512], quick_widths=[0, 64, 128, 256, 512]),
    "lorenz63": dict(system="lorenz63", title="Lorenz-63 (dt 0.01)", extra=(), test_extra=(),
                     dt=0.01, variables=["x", "y", "z"], delays=1, warm=100, horizon=3000, val_horizon=330,
                     report=[110, 1100], full=(1, 20001, 10, 50, 2, 10000), quick=(1, 10001, 5, 20, 1, 5000),
                     widths=[0, 128, 256, 512, 1024], quick_widths=[0, 128, 256, 512]),
    "rossler": dict(system="rossler", title="Rössler (dt 0.05)", extra=(), test_extra=(),
                    dt=0.05, variables=["x", "y", "z"], delays=1, warm=100, horizon=2800, val_horizon=560,
                    report=[280, 1400], full=(1, 20001, 10, 50, 2, 10000), quick=(1, 10001, 5, 20, 1, 5000),
                    widths=[0, 128, 256, 512, 1024], quick_widths=[0, 128, 256, 512]),
    "lorenz96": dict(system="lorenz96", title="Lorenz-96 (dim 40, F=8, dt 0.05)", extra=("--dim", "40"),
                     test_extra=(), dt=0.05, variables=[f"x{i}" for i in range(40)], delays=1, warm=50,
                     horizon=120, val_horizon=24, report=[12, 24],
                     full=(1, 20001, 20, 50, 2, 5000), quick=(1, 10001, 10, 20, 1, 2000),
                     widths=[0, 256, 512, 1024, 2048], quick_widths=[0, 256, 512, 1024]),
}
RIDGES = [1e-12, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2]


def system_task(name, eddy, workdir, quick):
    c = SYSTEMS[name]
    ntr, ttr, nval, ntest, nclim, lclim = c["quick" if quick else "full"]
    warm, H, Hv = c["warm"], c["horizon"], c["val_horizon"]
    if quick and name == "lorenz63":
        H = 1000
    if quick and name == "rossler":
        H = 1400
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    g = lambda tag, e, t, seed, extra: generate(eddy, c["system"], os.path.join(d, f"{tag}.npy"), e, t, seed,
                                                (*c["extra"], *extra))
    train = g("train-gen", ntr, ttr, 0, ())
    val = g("val-gen", nval, warm + Hv, 2, c["test_extra"])
    test = g("test-gen", ntest, warm + H, 1, c["test_extra"])
    clim = g("climate-gen", nclim, warm + lclim, 3, c["test_extra"])
    t = Task(name=name, title=c["title"], variables=c["variables"], inputs=[], dt=c["dt"],
             lyapunov=LYAPUNOV.get(c["system"]), delays=c["delays"], warm=warm, horizon=H, val_horizon=Hv,
             score_steps=None, report_steps=[s for s in c["report"] if s <= H],
             train=[a for a in train], val=val, test=test, climate=clim,
             eddy_widths=c["quick_widths" if quick else "widths"], eddy_ridges=RIDGES)
    t.notes.append(f"train {ntr}×{ttr} rows (seed 0); validation {nval} windows, test {ntest} windows, "
                   f"climate {nclim} free runs of {lclim} steps, each from its own initial condition "
                   f"(seeds 2, 1, 3); history {warm} rows, horizon {H}, validation horizon {Hv}")
    return t.finish()


# ---------------------------------------------------------------------------------------------- weather

WEATHER_COLUMNS = ["temp", "dewp", "humid", "wind_speed", "wind_dir", "pressure", "visib"]
VARIABLES = ["temp", "dewp", "humid", "wind_speed", "wind_dir_sin", "wind_dir_cos", "pressure", "visib"]
CALENDAR = [("hour", 86400.0), ("doy", 365.2425 * 86400.0)]
INPUTS = ["hour_sin", "hour_cos", "doy_sin", "doy_cos"]


def _epoch(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def weather_segments(path, fill_gaps=3):
    """Per station, the list of (times (T,), values (T, 8 + 4)) segments, Eddy's RowShaper rules."""
    by_station = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            vals = []
            for c in WEATHER_COLUMNS:
                v = r[c]
                x = float(v) if v not in ("NA", "NaN", "") else math.nan
                if c == "wind_dir":
                    vals += [math.sin(math.radians(x)), math.cos(math.radians(x))]
                else:
                    vals.append(x)
            by_station.setdefault(r["origin"], []).append((_epoch(r["time_hour"]), vals))
    out = {}
    for station, rows in by_station.items():
        t0 = rows[0][0]
        idx = np.array([round((t - t0) / 3600.0) for t, _ in rows])
        grid = np.full((idx[-1] + 1, len(VARIABLES)), np.nan)
        grid[idx] = np.array([v for _, v in rows])
        times = t0 + 3600.0 * np.arange(len(grid))
        complete = ~np.isnan(grid).any(axis=1)
        segs, start, last = [], None, None
        for i in range(len(grid)):
            if not complete[i]:
                continue
            if last is not None and i - last - 1 > 0:
                gap = i - last - 1
                if gap <= fill_gaps:
                    for j in range(1, gap + 1):
                        w = j / (gap + 1)
                        row = grid[last + j]
                        miss = np.isnan(row)
                        row[miss] = grid[last][miss] + w * (grid[i][miss] - grid[last][miss])
                else:
                    segs.append((start, last))
                    start = i
            if start is None:
                start = i
            last = i
        if start is not None:
            segs.append((start, last))
        cal = []
        for _, period in CALENDAR:
            phase = np.mod(times, period) / period
            cal += [np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase)]
        full = np.column_stack([grid, np.column_stack(cal)])
        out[station] = [(times[a:b + 1], full[a:b + 1]) for a, b in segs]
    return out


def weather_task(path, quick):
    warm, H = 24, 168
    oct1, nov1 = _epoch("2013-10-01T00:00:00Z"), _epoch("2013-11-01T00:00:00Z")
    segs = weather_segments(path)
    train, val, test, clim = [], [], [], []
    val_stride = 12 if quick else 6
    test_stride = 6 if quick else 1
    climate_len = 240
    for station in sorted(segs):
        for times, a in segs[station]:
            keep = times < oct1
            if keep.sum() > 24 + 1:
                train.append(a[keep])
            for o in range(warm - 1, len(a) - H):
                if o % val_stride == 0 and times[o] >= oct1 and times[o + H] < nov1:
                    val.append(a[o - warm + 1:o + H + 1])
                if o % test_stride == 0 and times[o] >= nov1:
                    test.append(a[o - warm + 1:o + H + 1])
            # climate: the first stretch of warm + 720 h whose origin is in the test period
            starts = [o for o in range(warm - 1, len(a) - climate_len) if times[o] >= nov1]
            if starts:
                o = starts[0]
                clim.append(a[o - warm + 1:o + climate_len + 1])
    t = Task(name="weather", title="NYC hourly weather 2013 (3 stations, 8 variables)", variables=VARIABLES,
             inputs=INPUTS, dt=1.0, lyapunov=None, delays=24, warm=warm, horizon=H, val_horizon=H,
             score_steps=[24, 168], report_steps=[24, 168], train=train, val=np.array(val), test=np.array(test),
             climate=np.array(clim) if clim else None,
             eddy_widths=[0, 64, 128, 256, 512], eddy_ridges=[1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    t.notes.append(f"train: {len(train)} segments before 2013-10-01 ({sum(len(x) for x in train)} rows); "
                   f"validation: {len(val)} origins in October (every {val_stride} h); test: {len(test)} origins "
                   f"from 2013-11-01 (every {test_stride} h), {warm} h history, {H} h horizon; climate: {len(clim)} "
                   f"free runs of {climate_len} h; 24 hourly delays for Eddy; calendar inputs hour and doy")
    return t.finish()


def build(name, eddy, workdir, quick, root):
    if name == "weather":
        return weather_task(os.path.join(root, "Scripts", "data", "nyc-airports-2013-hourly.csv"), quick)
    return system_task(name, eddy, workdir, quick)
