#!/usr/bin/env python3
"""NumPy reference for `eddy train` (recurrent form, random features), used by Scripts/bench_cpu.sh.

Loads an .npy trajectory (T, n) or (1, T, n), standardises it, forms pairs X = x_0..x_{N-1},
Y = x_1..x_N, lifts Φ = [1, X, tanh(X W + b)] with W ~ N(0, scale²), b ~ U(−π, π), and solves
the ridge-regularised EDMD problem two ways, timing each phase:

  pipeline : G = ΦᵀΦ, R = ΦᵀY, Cholesky solve of (G + λI)Θ = R   (best of --repeats runs)
  lstsq    : numpy.linalg.lstsq(Φ, Y, rcond=None) on the rows     (one run; the reference
             implementation's way; ~35 s for N=131072, width 1024 on 2 cores)

λ = ridge · trace(G) / D, as eddy's relative ridge. Weights differ from eddy's: this times the
pipeline, it does not reproduce eddy's numbers. Prints a JSON report on stdout (or --json FILE).
Runtime: ~40–60 s for the bench_cpu.sh sizes, dominated by lstsq (skip it with --no-lstsq).
"""
import argparse
import json
import sys
import time

import numpy as np
import scipy.linalg


def phase(timings, name, fn):
    t0 = time.perf_counter()
    out = fn()
    timings[name] = time.perf_counter() - t0
    return out


def load_and_lift(path, width, scale, seed, timings):
    data = phase(timings, "load", lambda: np.load(path))
    if data.ndim == 3:
        if data.shape[0] != 1:
            sys.exit(f"numpy_edmd: expected one trajectory, got shape {data.shape}")
        data = data[0]

    def standardise():
        mu = data.mean(axis=0)
        sd = data.std(axis=0)
        sd[sd == 0] = 1.0
        return (data - mu) / sd

    z = phase(timings, "standardise", standardise)
    X, Y = z[:-1], z[1:]
    n = X.shape[1]
    rng = np.random.default_rng(seed)
    W = rng.normal(0.0, scale, size=(n, width))
    b = rng.uniform(-np.pi, np.pi, size=width)

    def lift():
        phi = np.empty((X.shape[0], 1 + n + width))
        phi[:, 0] = 1.0
        phi[:, 1:1 + n] = X
        np.matmul(X, W, out=phi[:, 1 + n:])
        phi[:, 1 + n:] += b
        np.tanh(phi[:, 1 + n:], out=phi[:, 1 + n:])
        return phi

    phi = phase(timings, "lift", lift)
    return phi, Y


def one_step_rmse(phi, Y, theta):
    r = phi @ theta - Y
    return float(np.sqrt(np.mean(r * r)))


def run_pipeline(args):
    t = {}
    t0 = time.perf_counter()
    phi, Y = load_and_lift(args.data, args.width, args.scale, args.seed, t)

    def gram():
        # ΦᵀΦ via BLAS gemm (NumPy detects the Aᵀ·A pattern and uses syrk).
        return phi.T @ phi, phi.T @ Y

    G, R = phase(t, "gram", gram)

    def solve():
        D = G.shape[0]
        lam = args.ridge * np.trace(G) / D
        A = G + lam * np.eye(D)
        c = scipy.linalg.cho_factor(A, lower=True, overwrite_a=True, check_finite=False)
        return scipy.linalg.cho_solve(c, R, check_finite=False), lam

    theta, lam = phase(t, "solve", solve)
    t["total"] = time.perf_counter() - t0
    t["total_without_load"] = t["total"] - t["load"]
    return t, phi, Y, theta, lam


def run_lstsq(args):
    t = {}
    t0 = time.perf_counter()
    phi, Y = load_and_lift(args.data, args.width, args.scale, args.seed, t)
    theta = phase(t, "lstsq", lambda: np.linalg.lstsq(phi, Y, rcond=None)[0])
    t["total"] = time.perf_counter() - t0
    t["total_without_load"] = t["total"] - t["load"]
    return t, phi, Y, theta


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--scale", type=float, default=0.2)
    p.add_argument("--ridge", type=float, default=1e-10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=2, help="runs of the Cholesky pipeline (best kept)")
    p.add_argument("--no-lstsq", action="store_true")
    p.add_argument("--json", help="write the report here instead of stdout")
    args = p.parse_args()

    runs = []
    best = None
    for _ in range(args.repeats):
        t, phi, Y, theta, lam = run_pipeline(args)
        runs.append(t)
        if best is None or t["total"] < best[0]["total"]:
            best = (t, one_step_rmse(phi, Y, theta), lam, phi.shape)
        del phi, Y, theta
    report = {
        "rows": best[3][0],
        "features": best[3][1],
        "width": args.width,
        "scale": args.scale,
        "ridge": args.ridge,
        "lambda": float(best[2]),
        "pipeline": {"best": best[0], "runs": runs, "one_step_rmse": best[1]},
    }
    if not args.no_lstsq:
        t, phi, Y, theta = run_lstsq(args)
        report["lstsq"] = {"seconds": t, "one_step_rmse": one_step_rmse(phi, Y, theta)}
        del phi, Y, theta

    text = json.dumps(report, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
