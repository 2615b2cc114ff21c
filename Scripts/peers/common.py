"""Shared pieces of the peer benchmark: the task container, standardisation, the metrics and a timer.

Every model in the benchmark is scored here, by the same code, from its forecasts in standardised units
(training mean and standard deviation of each variable, population std). The definitions follow Eddy's
`eddy evaluate` (Sources/Eddy/Forecast/Metrics.swift):

- MSE per horizon step: mean over origins and variables of the squared standardised error.
- Valid prediction time: per origin, the number of leading steps whose normalised error
  e_h = sqrt(mean_i d_hi^2) stays <= threshold (a non-finite forecast exceeds it); median over origins,
  times dt, times the largest Lyapunov exponent.
- Histogram KL(truth || model) per variable: 50 equal bins over the truth's range widened by 10% each side,
  model values outside go to the edge bins (NaN to the last), pseudo-count 1e-6; mean over variables.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Optional

import numpy as np


@dataclasses.dataclass
class Task:
    """One forecasting task. Arrays are in the data's units, rows = time, columns = variables then inputs.

    val, test and climate are windows (E, warm + H, n + m): the origin of each window is row warm - 1, so
    every model sees the same `warm` rows of history (Eddy uses only the last `delays` of them) and is scored
    on the same following rows.
    """
    name: str
    title: str
    variables: list
    inputs: list
    dt: float
    lyapunov: Optional[float]
    delays: int
    warm: int
    horizon: int
    val_horizon: int
    score_steps: Optional[list]          # 1-based steps averaged into the validation score (None: all)
    report_steps: list                   # steps shown in the table
    train: list                          # list of (T_i, n + m) arrays
    val: np.ndarray
    test: np.ndarray
    climate: Optional[np.ndarray]
    eddy_widths: list
    eddy_ridges: list
    notes: list = dataclasses.field(default_factory=list)
    mean: np.ndarray = None
    std: np.ndarray = None
    in_mean: np.ndarray = None
    in_std: np.ndarray = None

    @property
    def n(self):
        return len(self.variables)

    @property
    def m(self):
        return len(self.inputs)

    def finish(self):
        """Training statistics (population std, as Eddy), used to standardise for every model and metric."""
        allrows = np.concatenate(self.train, axis=0)
        self.mean = allrows[:, :self.n].mean(axis=0)
        self.std = allrows[:, :self.n].std(axis=0)
        self.std[~(self.std > 0)] = 1.0
        if self.m:
            self.in_mean = allrows[:, self.n:].mean(axis=0)
            self.in_std = allrows[:, self.n:].std(axis=0)
            self.in_std[~(self.in_std > 0)] = 1.0
        else:
            self.in_mean = np.zeros(0)
            self.in_std = np.ones(0)
        return self

    def standardise(self, a):
        """(…, n + m) data units -> standardised variables and inputs."""
        mu = np.concatenate([self.mean, self.in_mean])
        sd = np.concatenate([self.std, self.in_std])
        return (a - mu) / sd

    def split_window(self, windows, horizon):
        """Standardised windows -> (history (B, warm, n + m), inputs (B, H, m) for rows origin…origin+H-1,
        truth (B, H, n))."""
        w = self.standardise(windows)
        hist = w[:, :self.warm]
        u = w[:, self.warm - 1:self.warm - 1 + horizon, self.n:]
        truth = w[:, self.warm:self.warm + horizon, :self.n]
        return hist, u, truth


def mse_per_step(forecast, truth):
    """Standardised MSE per step (H,), over origins and variables; non-finite forecasts count as inf."""
    d2 = (forecast - truth) ** 2
    d2[~np.isfinite(d2)] = np.inf
    return d2.mean(axis=(0, 2))


def score(forecast, truth, steps=None):
    """The validation score: mean standardised MSE over the score steps (1-based; None: every step)."""
    per = mse_per_step(forecast, truth)
    if steps:
        per = per[[s - 1 for s in steps]]
    return float(np.mean(per))


def valid_prediction_steps(forecast, truth, threshold=0.5):
    """Per origin: leading steps whose normalised error stays <= threshold. Returns (steps (B,), censored)."""
    d2 = (forecast - truth) ** 2
    e = np.sqrt(d2.mean(axis=2))
    e[~np.isfinite(e)] = np.inf
    exceed = ~(e <= threshold)
    first = np.where(exceed.any(axis=1), exceed.argmax(axis=1), e.shape[1])
    return first, int((~exceed.any(axis=1)).sum())


def histogram_kl(truth, model, bins=50):
    """KL(truth || model) between histograms of one variable (Eddy's Metrics.histogramKL)."""
    truth = truth[np.isfinite(truth)]
    if truth.size == 0 or model.size == 0:
        return 0.0
    lo0, hi0 = truth.min(), truth.max()
    span = hi0 - lo0
    pad = 0.1 * span if span > 0 else (0.1 * abs(lo0) if lo0 != 0 else 1.0)
    lo = lo0 - pad
    width = (hi0 + pad) - lo

    def hist(v):
        t = (v - lo) / width * bins
        b = np.where(np.isnan(v), bins - 1, np.clip(np.floor(np.nan_to_num(t, nan=bins, posinf=bins, neginf=-1)), 0, bins - 1))
        counts = np.bincount(b.astype(np.int64), minlength=bins).astype(float)
        eps = 1e-6
        return (counts / v.size + eps) / (1 + bins * eps)

    p, q = hist(truth), hist(model)
    return float(max(np.sum(p * np.log(p / q)), 0.0))


def climate_kl(forecast, truth):
    """Mean over variables of the histogram KL, pooled over all climate runs."""
    n = truth.shape[2]
    return float(np.mean([histogram_kl(truth[:, :, i].ravel(), forecast[:, :, i].ravel()) for i in range(n)]))


def test_metrics(task, forecast, truth):
    per = mse_per_step(forecast, truth)
    out = {
        "mse_mean": float(per.mean()),
        "mse_at": {str(s): float(per[s - 1]) for s in task.report_steps},
        "mse_curve_every": max(1, len(per) // 200),
        "mse_curve": [float(x) for x in per[max(1, len(per) // 200) - 1::max(1, len(per) // 200)]],
        "non_finite_forecasts": int((~np.isfinite(forecast).all(axis=(1, 2))).sum()),
        "origins": int(forecast.shape[0]),
    }
    if task.lyapunov is not None:
        steps, censored = valid_prediction_steps(forecast, truth)
        med = float(np.median(steps))
        out["vpt"] = {"median_steps": med, "median_time": med * task.dt,
                      "median_lyapunov_times": med * task.dt * task.lyapunov,
                      "censored": censored, "horizon_lyapunov_times": task.horizon * task.dt * task.lyapunov}
    return out


class Timer:
    """Wall-clock seconds of a block: `with Timer() as t: …; t.seconds`."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        return False
