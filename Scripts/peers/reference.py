"""The reference construction in Python: the SWIM hidden layer from `swimnetworks` (the public reference
implementation, MIT; `Dense` with the tanh sampler, pairs weighted by ‖Δy‖∞ / ‖Δz‖) and its `Linear` readout,
which is NumPy's `lstsq` with an `rcond` cut-off (the library's `regularization_scale`, default 1e-8) and a bias
column. Recurrent form, as Eddy's: x_{t+1} = [z_t, φ(z_t), u_t, 1] A, re-lifted every step of a free run.
"""
from __future__ import annotations

import numpy as np
from swimnetworks import Dense, Linear

from common import Timer


def delay_pairs(task, trajectories):
    """Standardised trajectories -> windows z_t (newest row first), inputs u_t and targets x_{t+1}."""
    n, k = task.n, task.delays
    Z, U, Y = [], [], []
    for a in trajectories:
        T = len(a)
        if T < k + 1:
            continue
        z = np.concatenate([a[k - 1 - lag:T - 1 - lag, :n] for lag in range(k)], axis=1)
        Z.append(z)
        U.append(a[k - 1:T - 1, n:])
        Y.append(a[k:, :n])
    return np.concatenate(Z), np.concatenate(U), np.concatenate(Y)


class SwimReference:
    def __init__(self, task, width, rcond=1e-8, seed=0):
        self.task, self.width, self.rcond, self.seed = task, width, rcond, seed

    def fit(self, trajectories, pairs=None):
        with Timer() as tm:
            Z, U, Y = pairs if pairs is not None else delay_pairs(self.task, trajectories)
            self.dense = Dense(layer_width=self.width, activation="tanh", parameter_sampler="tanh",
                               random_seed=self.seed)
            self.dense.fit(Z, Y)
            F = np.hstack([Z, self.dense.transform(Z), U])
            self.linear = Linear(regularization_scale=self.rcond)
            self.linear.fit(F, Y)
        self.fit_seconds = tm.seconds
        return self

    def forecast(self, hist, U, horizon):
        t = self.task
        n, k = t.n, t.delays
        z = np.concatenate([hist[:, -1 - lag, :n] for lag in range(k)], axis=1)
        out = np.empty((hist.shape[0], horizon, n))
        with np.errstate(all="ignore"):
            for h in range(horizon):
                F = np.hstack([z, self.dense.transform(z), U[:, h]])
                x = self.linear.transform(F)
                out[:, h] = x
                z = np.concatenate([x, z[:, :n * (k - 1)]], axis=1)
        return out
