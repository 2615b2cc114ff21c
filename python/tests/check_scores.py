"""Recomputes ``eddy evaluate --baselines --json``'s gridded scores (latitude-weighted RMSE and ACC per lead, for the
model and every baseline, the trailing climatology included) directly in NumPy, and prints how far apart they are.

Called by ``Tests/EndToEndTests/PythonPackageTests.swift``, which writes into DIR: ``config.json`` (``model``,
``steps``, ``trailing_days``, ``evaluate``: the path of evaluate's JSON), ``eddy.npy`` (``eddy forecast`` from the
same origins, ``(B, H, n)``), ``truth.npy`` ``(B, H, n)``, ``origin_times.npy`` and ``origin_rows.npy`` ``(B,)`` (the
origin's time and its row in its segment), and ``all.npy`` ``(T, n)`` with ``all_times.npy`` ``(T,)``: every row of
the data, before the evaluated window too.
"""

from __future__ import annotations

import json
import os
import re
import sys

import numpy as np

import eddy


def main(folder: str) -> None:
    config = json.load(open(os.path.join(folder, "config.json")))
    load = lambda name: np.load(os.path.join(folder, name))  # noqa: E731
    model = eddy.load(config["model"])
    forecast, truth = load("eddy.npy"), load("truth.npy")
    t0s, rows0, data, times = load("origin_times.npy"), load("origin_rows.npy"), load("all.npy"), load("all_times.npy")
    steps, days = int(config["steps"]), int(config["trailing_days"])
    clim = model.climatology
    period, dt = clim.shape[0], model.dt
    at = {int(round(t / dt)): i for i, t in enumerate(times)}
    b, _, n = truth.shape

    def row(step: int) -> np.ndarray:
        return data[at[step]] if step in at else np.full(n, np.nan)

    baselines = {k: np.full_like(truth, np.nan) for k in ("persistence", "seasonal", "climatology", "trailing")}
    for c in range(b):
        o = int(round(t0s[c] / dt))
        for h in range(steps):
            v = o + h + 1
            baselines["persistence"][c, h] = row(o)
            if rows0[c] >= period - 1:
                baselines["seasonal"][c, h] = row(o - period + 1 + h % period)
            baselines["climatology"][c, h] = clim[v % period]
            latest = v - period * (-(-(v - o) // period))
            seen = [row(latest - d * period) for d in range(days)]
            seen = [r for r in seen if np.isfinite(r).all()]
            if seen:
                baselines["trailing"][c, h] = np.mean(seen, axis=0)
    methods = {"eddy": forecast, **baselines}

    lat = np.array([float(re.search(r"lat=([-0-9.eE]+)", v).group(1)) for v in model.variables])
    w = np.maximum(0, np.cos(np.radians(lat)))
    w /= w.mean()
    climate = np.stack([[clim[(int(round(t / dt)) + h + 1) % period] for h in range(steps)] for t in t0s])   # (B, H, n)
    report = json.load(open(config["evaluate"]))["gridded"]
    worst = {"rmse": 0.0, "acc": 0.0}
    ours = {}
    for name, f in methods.items():
        usable = np.all([np.isfinite(x).all(axis=2) for k, x in baselines.items()], axis=0)   # (B, H)
        mse = (w * (f - truth) ** 2).mean(axis=2)
        fa, ta = f - climate, truth - climate
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = (w * fa * ta).sum(axis=2) / np.sqrt((w * fa ** 2).sum(axis=2) * (w * ta ** 2).sum(axis=2))
        rmse_h = np.array([np.sqrt(mse[usable[:, h], h].mean()) for h in range(steps)])
        acc_h = np.array([acc[usable[:, h], h].mean() for h in range(steps)])
        ours[name] = {k: [x if np.isfinite(x) else None for x in v.tolist()] for k, v in (("rmse", rmse_h), ("acc", acc_h))}
        for key, mine in (("rmse", rmse_h), ("acc", acc_h)):
            theirs = np.array([np.nan if x is None else x for x in report[key][name][0]])
            same_nan = np.array_equal(np.isnan(mine), np.isnan(theirs))
            d = np.abs(mine - theirs)[np.isfinite(mine)]
            worst[key] = max(worst[key], float((d / np.maximum(1e-300, np.abs(mine[np.isfinite(mine)]))).max()) if d.size else 0.0,
                             0.0 if same_nan else float("inf"))
    print(json.dumps({"max_rel_rmse": worst["rmse"], "max_rel_acc": worst["acc"], "forecasts": int(b),
                      "scored": report["forecasts"], "numpy": ours}))


if __name__ == "__main__":
    main(sys.argv[1])
