"""Echo state network with `reservoirpy` (0.4): a `Reservoir` (leaky tanh units, sparse normal W scaled to the
spectral radius `sr`, sparse Bernoulli input weights, the library's defaults: input scaling 1, connectivity 0.1)
driven by [x_t, u_t], and a `Ridge` readout on [r_t, x_t, u_t] (the input fed to the readout too, as
reservoirpy's ESN(input_to_readout=True)) trained on x_{t+1}, teacher forced, with a washout at the start of
every trajectory. Forecasts: the reservoir is run over the history from a zero state, then closed loop (the
prediction is fed back as the next input).

The search: spectral radius {0.5, 0.9, 1.25} × leak rate {0.3, 1} × ridge {1e-8, 1e-6, 1e-4, 1e-2} (24
candidates, the size of one form × sampler of Eddy's sweep), at the width Eddy chose for its recurrent SWIM
model, around the values of reservoirpy's tutorials (sr 0.9–1.25, lr 0.3–1, ridge 1e-8–1e-6); input scaling
and connectivities stay at the library's defaults. The reservoir states are computed once per (sr, lr) and every ridge refits the readout.
Closed-loop forecasts for many origins at once use the trained matrices in a vectorised loop, the same
update as `Reservoir._step`; `check_against_library` compares it with reservoirpy's own step-by-step run.
"""
from __future__ import annotations

import numpy as np
from reservoirpy.nodes import Reservoir, Ridge

from common import Timer

SPECTRAL_RADII = [0.5, 0.9, 1.25]
LEAK_RATES = [0.3, 1.0]
RIDGES = [1e-8, 1e-6, 1e-4, 1e-2]


class ESNStates:
    """A reservoir and its states over the training trajectories (computed once per sr, lr)."""

    def __init__(self, task, units, sr, lr, washout, seed=0):
        self.task, self.units, self.sr, self.lr, self.washout = task, units, sr, lr, washout
        n = task.n
        self.seqs = [a for a in task_train_std(task) if len(a) > washout + 1]
        with Timer() as tm:
            self.reservoir = Reservoir(units, sr=sr, lr=lr, seed=seed)
            X = [a[:-1] for a in self.seqs]
            states = self.reservoir.run(X if len(X) > 1 else X[0])
            if len(X) == 1:
                states = [states]
            self.features = [np.hstack([s, x]) for s, x in zip(states, X)]
            self.targets = [a[1:, :n] for a in self.seqs]
        self.seconds = tm.seconds

    def readout(self, ridge):
        with Timer() as tm:
            r = Ridge(ridge=ridge)
            r.fit(self.features, self.targets, warmup=self.washout)
        return ESNModel(self, r), tm.seconds


_STD_CACHE = {}


def task_train_std(task):
    key = id(task)
    if key not in _STD_CACHE:
        _STD_CACHE[key] = [task.standardise(a) for a in task.train]
    return _STD_CACHE[key]


class ESNModel:
    def __init__(self, states, ridge_node):
        res = states.reservoir
        self.task = states.task
        self.W = res.W.tocsr() if hasattr(res.W, "tocsr") else res.W
        self.Win = res.Win.tocsr() if hasattr(res.Win, "tocsr") else res.Win
        self.bias = res.bias
        self.lr = states.lr
        self.Wout = ridge_node.Wout
        self.b = ridge_node.bias
        self.units = states.units
        self.reservoir, self.ridge_node = res, ridge_node

    def _step(self, s, x):
        pre = (self.W @ s.T).T + (self.Win @ x.T).T + self.bias
        return (1 - self.lr) * s + self.lr * np.tanh(pre)

    def forecast(self, hist, U, horizon):
        n = self.task.n
        B = hist.shape[0]
        s = np.zeros((B, self.units))
        with np.errstate(all="ignore"):
            for j in range(hist.shape[1]):
                s = self._step(s, hist[:, j])
            x = hist[:, -1]
            out = np.empty((B, horizon, n))
            for h in range(horizon):
                y = np.hstack([s, x]) @ self.Wout + self.b
                out[:, h] = y
                if h + 1 < horizon:
                    x = np.hstack([y, U[:, h + 1]])
                    s = self._step(s, x)
        return out

    def check_against_library(self, hist, U, horizon):
        """Largest difference between the vectorised forecast and reservoirpy's own step-by-step run
        (Reservoir.step / Ridge.step) for the first origin."""
        n = self.task.n
        mine = self.forecast(hist[:1], U[:1], horizon)[0]
        res, ro = self.reservoir, self.ridge_node
        res.reset()
        for j in range(hist.shape[1]):
            r = res.step(hist[0, j])
        x = hist[0, -1]
        theirs = np.empty((horizon, n))
        for h in range(horizon):
            y = ro.step(np.concatenate([r, x]))
            theirs[h] = y
            if h + 1 < horizon:
                x = np.concatenate([y, U[0, h + 1]])
                r = res.step(x)
        res.reset()
        ok = np.isfinite(mine) & np.isfinite(theirs)
        return float(np.max(np.abs(mine[ok] - theirs[ok]))) if ok.any() else 0.0
