"""LSTM and GRU trained with backpropagation through time (PyTorch, CPU).

Settings, the common defaults of PyTorch's documentation and tutorials for sequence models (no per-task
tuning): one `nn.LSTM` / `nn.GRU` layer of 128 units and a linear head, the network reads [x_t, u_t] and
predicts the step x_{t+1} − x_t (a residual head: x_{t+1} = x_t + head(h_t)); Adam at its default learning rate
1e-3, mini-batches of 32 random windows of 100 steps from the training trajectories (truncated BPTT over the
window), mean squared one-step error after a 10-step burn-in of the hidden state (teacher forcing), gradient
norm clipped at 1. Each epoch is a fixed number of batches, then the validation score is computed exactly as
for every other model (free runs from the validation origins, mean standardised MSE); training stops after
`patience` epochs without improvement (early stopping), at `max_epochs`, or at the time cap, and the best
epoch's weights are kept. Training time counts everything in that loop, the validation runs included.
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

from common import score

HIDDEN = 128
LAYERS = 1
SEQ = 100
BURN = 10
BATCH = 32
LR = 1e-3
CLIP = 1.0


class Net(nn.Module):
    def __init__(self, cell, n, m, hidden=HIDDEN, layers=LAYERS):
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.n = n
        self.rnn = rnn(n + m, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, n)

    def forward(self, seq, state=None):
        h, state = self.rnn(seq, state)
        return seq[..., :self.n] + self.head(h), state


class RNNModel:
    def __init__(self, task, cell, seed=0):
        self.task, self.cell, self.seed = task, cell, seed

    def _windows(self, trajectories):
        seqs = [torch.tensor(a, dtype=torch.float32) for a in trajectories if len(a) >= SEQ + 1]
        if not seqs:   # short trajectories: use them whole (Van der Pol-like data have 200 rows)
            raise ValueError("no training trajectory is longer than the BPTT window")
        lengths = np.array([len(s) - SEQ for s in seqs], dtype=float)
        return seqs, lengths / lengths.sum()

    def fit(self, trajectories, val_hist, val_u, val_truth, max_epochs, patience, batches_per_epoch, time_cap):
        t = self.task
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.net = Net(self.cell, t.n, t.m)
        opt = torch.optim.Adam(self.net.parameters(), lr=LR)
        seqs, p = self._windows(trajectories)
        loss_fn = nn.MSELoss()
        best, best_state, best_epoch, since = np.inf, None, 0, 0
        history = []
        t0 = time.perf_counter()
        epoch = 0
        for epoch in range(1, max_epochs + 1):
            self.net.train()
            total = 0.0
            for _ in range(batches_per_epoch):
                which = rng.choice(len(seqs), size=BATCH, p=p)
                starts = [rng.integers(0, len(seqs[i]) - SEQ) for i in which]
                batch = torch.stack([seqs[i][s:s + SEQ + 1] for i, s in zip(which, starts)])
                pred, _ = self.net(batch[:, :-1])
                loss = loss_fn(pred[:, BURN:], batch[:, 1 + BURN:, :t.n])
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.net.parameters(), CLIP)
                opt.step()
                total += loss.item()
            val = score(self.forecast(val_hist, val_u, t.val_horizon), val_truth, t.score_steps)
            history.append({"epoch": epoch, "train_loss": total / batches_per_epoch, "val_score": val,
                            "seconds": time.perf_counter() - t0})
            if np.isfinite(val) and val < best:
                best, best_state, best_epoch, since = val, copy.deepcopy(self.net.state_dict()), epoch, 0
            else:
                since += 1
            if since >= patience or time.perf_counter() - t0 > time_cap:
                break
        self.fit_seconds = time.perf_counter() - t0
        if best_state is not None:
            self.net.load_state_dict(best_state)
        self.info = {"epochs": epoch, "best_epoch": best_epoch, "val_score": best,
                     "stopped": ("time cap" if time.perf_counter() - t0 > time_cap else
                                 "early stopping" if since >= patience else "max epochs"),
                     "history": history}
        return self

    @torch.no_grad()
    def forecast(self, hist, U, horizon):
        self.net.eval()
        n = self.task.n
        out = np.empty((hist.shape[0], horizon, n))
        chunk = 2048
        for a in range(0, hist.shape[0], chunk):
            hh = torch.tensor(hist[a:a + chunk], dtype=torch.float32)
            uu = torch.tensor(U[a:a + chunk], dtype=torch.float32)
            pred, state = self.net(hh)
            x = pred[:, -1:]
            out[a:a + chunk, 0] = x[:, 0].numpy()
            for h in range(1, horizon):
                x, state = self.net(torch.cat([x, uu[:, h:h + 1]], dim=2), state)
                out[a:a + chunk, h] = x[:, 0].numpy()
        return out
