"""Eddy through its command line: one `eddy sweep` chooses width and ridge for each form × sampler (and the
ridge of the linear delay model, width 0) on the validation windows, then `eddy train` fits each chosen
configuration (timed on its own) and `eddy forecast` runs it from the same origins as every other model.
"""
from __future__ import annotations

import json
import math
import os
import subprocess

import numpy as np

from common import Timer


def _run(cmd, capture=True):
    r = subprocess.run(cmd, stdout=subprocess.PIPE if capture else subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{r.stderr.strip()}")
    return r.stdout


# Cut-offs the qr sweep tries besides the ridges (NumPy lstsq semantics: σ < rcond·σ_max dropped).
RCONDS = [1e-16, 1e-14, 1e-12, 1e-10]


class EddyTask:
    """Writes a task's arrays as .npy files Eddy reads and runs the CLI on them."""

    def __init__(self, eddy, task, workdir):
        self.eddy, self.task = eddy, task
        self.dir = os.path.join(workdir, task.name, "eddy")
        os.makedirs(self.dir, exist_ok=True)
        t = task
        lengths = {len(a) for a in t.train}
        if len(lengths) == 1:
            self.train = os.path.join(self.dir, "train.npy")
            np.save(self.train, np.stack(t.train))
        else:
            self.train = os.path.join(self.dir, "train")
            os.makedirs(self.train, exist_ok=True)
            for i, a in enumerate(t.train):
                np.save(os.path.join(self.train, f"{i:05d}.npy"), a)
        # The sweep scores from the first full window (row k - 1): trim the validation windows so that it is
        # row warm - 1 of the full windows, the origin every model uses.
        self.val_sweep = os.path.join(self.dir, "val-sweep.npy")
        np.save(self.val_sweep, t.val[:, t.warm - t.delays:])
        self.files = {}
        for name in ("val", "test", "climate"):
            a = getattr(t, name)
            if a is not None:
                self.files[name] = os.path.join(self.dir, f"{name}.npy")
                np.save(self.files[name], a)
        self.shape = []
        if t.m:
            self.shape += ["--columns", ",".join(f"c{i}" for i in range(t.n)),
                           "--inputs", ",".join(f"c{i}" for i in range(t.n, t.n + t.m))]

    def sweep(self, forms=("recurrent", "koopman"), samplers=("swim", "random")):
        t = self.task
        # Eddy's default solver, qr: every ridge (0 included) × cut-off from one QR pass.
        cmd = [self.eddy, "sweep", "--data", self.train, "--validation", self.val_sweep, *self.shape, "--dt", repr(t.dt),
               "--delays", str(t.delays), "--widths", ",".join(map(str, t.eddy_widths)),
               "--ridges", ",".join(f"{r:g}" for r in [0.0] + list(t.eddy_ridges)), "--solver", "qr",
               "--rconds", ",".join(f"{r:g}" for r in RCONDS), "--horizon", str(t.val_horizon),
               "--forms", ",".join(forms), "--samplers", ",".join(samplers), "--json"]
        if t.score_steps:
            cmd += ["--score-steps", ",".join(map(str, t.score_steps))]
        with Timer() as tm:
            out = json.loads(_run(cmd))
        return out, tm.seconds

    @staticmethod
    def pick(sweep, form, sampler, linear=False):
        """Best candidate (lowest finite score) of one form × sampler; linear: width 0."""
        best = None
        for c in sweep["candidates"]:
            if c["form"] != form or (linear != (c["width"] == 0)):
                continue
            if not linear and c["sampler"] != sampler:
                continue
            s = c["score"]
            if s is None or not math.isfinite(s):
                continue
            if best is None or s < best["score"]:
                best = c
        return best

    @staticmethod
    def candidate_args(c):
        """The options that reproduce a sweep candidate's solve with `eddy train`."""
        return ("--solver", c.get("solver", "qr")) + (("--rcond", repr(c["rcond"])) if c.get("rcond") is not None else ())

    def train_model(self, tag, width, ridge, form, sampler, seed=0, solver_args=()):
        t = self.task
        model = os.path.join(self.dir, f"{tag}.safetensors")
        cmd = [self.eddy, "train", "--data", self.train, *self.shape, "--dt", repr(t.dt), "--delays", str(t.delays),
               "--width", str(width), "--ridge", f"{ridge:g}", "--form", form, "--sampler", sampler,
               "--seed", str(seed), *solver_args, "--json", "--out", model]
        with Timer() as tm:
            report = json.loads(_run(cmd))
        return model, tm.seconds, report

    def forecast(self, model, which, horizon):
        """Standardised forecasts (B, H, n) from row warm - 1 of every window of val / test / climate."""
        t = self.task
        out = os.path.join(self.dir, f"fc-{os.path.basename(model)}-{which}.npy")
        _run([self.eddy, "forecast", "--model", model, "--data", self.files[which], *self.shape,
              "--origins", str(t.warm - 1), "--horizon", str(horizon), "--out", out])
        f = np.load(out)
        os.remove(out)
        return (f - t.mean) / t.std

    def evaluate_check(self, model, horizon):
        """`eddy evaluate` on the test windows, to check this harness's metrics against Eddy's own."""
        t = self.task
        out = _run([self.eddy, "evaluate", "--model", model, "--data", self.files["test"], *self.shape,
                    "--origins", str(t.warm - 1), "--horizon", str(horizon), "--json"]
                   + (["--lyapunov", repr(t.lyapunov)] if t.lyapunov else []))
        return json.loads(out)
