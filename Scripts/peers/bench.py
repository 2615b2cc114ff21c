#!/usr/bin/env python3
"""Head-to-head benchmark: Eddy against the methods people use today (issue 7). Run by Scripts/bench_peers.sh.

For every task, on the same arrays, splits, origins and metrics (common.py), sequentially:
  Eddy, recurrent and Koopman forms × SWIM and random features, width and ridge from one `eddy sweep` on the
  validation windows; the linear delay model (Eddy width 0); persistence; the Python reference (swimnetworks
  SWIM + NumPy lstsq readout) at Eddy's SWIM width; an echo state network (reservoirpy) at the same width with
  a search of the same size as one form × sampler of Eddy's sweep; LSTM and GRU (PyTorch, BPTT, early stopping).
Writes a Markdown report and a JSON file.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import Timer, climate_kl, score, test_metrics  # noqa: E402
import tasks as task_defs  # noqa: E402
from eddy_models import RCONDS, EddyTask  # noqa: E402

ALL_TASKS = ["vdp", "lorenz63", "rossler", "lorenz96", "weather"]
QUICK_TASKS = ALL_TASKS


def log(msg):
    print(f"[bench_peers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Runner:
    def __init__(self, task, quick):
        self.task, self.quick = task, quick
        t = task
        self.val = t.split_window(t.val, t.val_horizon)
        self.test = t.split_window(t.test, t.horizon)
        self.clim = None
        if t.climate is not None:
            L = t.climate.shape[1] - t.warm
            self.clim = t.split_window(t.climate, L) + (L,)
        self.rows = []

    def evaluate(self, forecast_fn):
        """forecast_fn(which, hist, U, H) -> standardised forecasts; returns (val score, test, climate KL)."""
        t = self.task
        h, u, truth = self.val
        val = score(forecast_fn("val", h, u, t.val_horizon), truth, t.score_steps)
        h, u, truth = self.test
        test = test_metrics(t, forecast_fn("test", h, u, t.horizon), truth)
        kl = None
        if self.clim is not None:
            h, u, truth, L = self.clim
            kl = climate_kl(forecast_fn("climate", h, u, L), truth)
        return val, test, kl

    def add(self, model, family, config, fit_seconds, selection_seconds, forecast_fn, extra=None, val=None):
        with Timer() as tm:
            v, test, kl = self.evaluate(forecast_fn)
        row = {"model": model, "family": family, "config": config, "val_score": v,
               "fit_seconds": fit_seconds, "selection_seconds": selection_seconds,
               "test": test, "climate_kl": kl, "evaluation_seconds": tm.seconds}
        if extra:
            row.update(extra)
        self.rows.append(row)
        vpt = test.get("vpt", {}).get("median_lyapunov_times")
        log(f"  {model:<28} val {v:.3e}  test mse {test['mse_mean']:.3e}"
            + (f"  vpt {vpt:.2f} LT" if vpt is not None else "")
            + (f"  kl {kl:.3f}" if kl is not None else "") + f"  fit {fit_seconds:.3f} s")
        return row


def run_eddy(r, eddy, workdir):
    t = r.task
    et = EddyTask(eddy, t, workdir)
    log(f"  eddy sweep: widths {t.eddy_widths}, ridges {t.eddy_ridges}, forms recurrent,koopman, samplers swim,random")
    sweep, sweep_s = et.sweep()
    n_cand = len(sweep["candidates"])
    picks = {}
    combos = [("Eddy recurrent SWIM", "recurrent", "swim", False), ("Eddy recurrent random", "recurrent", "random", False),
              ("Eddy Koopman SWIM", "koopman", "swim", False), ("Eddy Koopman random", "koopman", "random", False),
              ("Linear delay model (Eddy w=0)", "recurrent", "swim", True)]
    check = None
    for name, form, sampler, linear in combos:
        c = et.pick(sweep, form, sampler, linear)
        if c is None:
            log(f"  {name}: no finite candidate in the sweep")
            continue
        model, fit_s, report = et.train_model(name.split()[1].lower() + "-" + sampler + ("-linear" if linear else ""),
                                              c["width"], c["ridge"], form, sampler, solver_args=et.candidate_args(c))
        fc = lambda which, h, u, H, model=model: et.forecast(model, which, H)
        row = r.add(name, "eddy", {"width": c["width"], "ridge": c["ridge"], "form": form,
                                   "sampler": sampler if not linear else None, "delays": t.delays,
                                   "sweep_score": c["score"]},
                    fit_s, sweep_s, fc,
                    extra={"eddy_train_seconds_internal": report.get("seconds", {}).get("total"),
                           "condition": report.get("condition"), "warnings": report.get("warnings", [])})
        picks[(form, sampler, linear)] = (c, model, row)
        if check is None and not linear:
            ev = et.evaluate_check(model, t.horizon)
            check = {"model": name, "eddy_evaluate_mse_standardised": ev["mse_standardised"],
                     "harness_mse_mean": row["test"]["mse_mean"],
                     "relative_difference": abs(ev["mse_standardised"] - row["test"]["mse_mean"])
                     / max(abs(row["test"]["mse_mean"]), 1e-300)}
            if t.lyapunov:
                check["eddy_evaluate_vpt_lyapunov_times"] = ev["valid_prediction_time"]["median_lyapunov_times"]
                check["harness_vpt_lyapunov_times"] = row["test"]["vpt"]["median_lyapunov_times"]
    r.eddy_task = et
    return {"sweep_seconds": sweep_s, "candidates": n_cand, "candidates_per_form_sampler":
            (len(t.eddy_widths) - (1 if 0 in t.eddy_widths else 0)) * (len(t.eddy_ridges) + 1) * len(RCONDS),
            "sweep_internal_seconds": sweep["seconds"], "check_against_eddy_evaluate": check}, picks


def run_persistence(r):
    n = r.task.n
    fc = lambda which, h, u, H: np.repeat(h[:, -1:, :n], H, axis=1)
    r.add("Persistence", "baseline", {}, 0.0, 0.0, fc)


def run_reference(r, width, quick):
    from reference import SwimReference, delay_pairs
    t = r.task
    train = [t.standardise(a) for a in t.train]
    pairs = delay_pairs(t, train)
    rconds = [1e-10, 1e-8] if quick else [1e-12, 1e-10, 1e-8, 1e-6]
    best = None
    with Timer() as sel:
        for rc in rconds:
            m = SwimReference(t, width, rcond=rc).fit(None, pairs=pairs)
            h, u, truth = r.val
            v = score(m.forecast(h, u, t.val_horizon), truth, t.score_steps)
            log(f"  reference rcond {rc:g}: val {v:.3e}, fit {m.fit_seconds:.2f} s")
            if best is None or (np.isfinite(v) and (not np.isfinite(best[0]) or v < best[0])):
                best = (v, m)
    m = best[1]
    r.add("Python reference (swimnetworks+lstsq)", "reference",
          {"width": width, "rcond": m.rcond, "delays": t.delays, "rconds_searched": rconds},
          m.fit_seconds, sel.seconds, lambda which, h, u, H: m.forecast(h, u, H))
    et = getattr(r, "eddy_task", None)
    if et is not None:
        # Eddy with the reference's own solve: SVD least squares on the rows, no ridge, the same rcond.
        model, fit_s, report = et.train_model("recurrent-swim-lstsq", width, 0.0, "recurrent", "swim",
                                              solver_args=("--solver", "lstsq", "--rcond", f"{m.rcond:g}"))
        r.add("Eddy recurrent SWIM, lstsq", "eddy",
              {"width": width, "ridge": 0.0, "rcond": m.rcond, "solver": "lstsq", "form": "recurrent",
               "sampler": "swim", "delays": t.delays},
              fit_s, None, lambda which, h, u, H: et.forecast(model, which, H),
              extra={"eddy_train_seconds_internal": report.get("seconds", {}).get("total"),
                     "condition": report.get("condition"), "warnings": report.get("warnings", [])})


def run_esn(r, units, budget, quick):
    import esn
    t = r.task
    washout = min(t.warm, 50)
    grid = [(sr, lr) for sr in esn.SPECTRAL_RADII for lr in esn.LEAK_RATES]
    ridges = esn.RIDGES
    best = None
    with Timer() as sel:
        for sr, lr in grid:
            st = esn.ESNStates(t, units, sr, lr, washout)
            for rg in ridges:
                model, ridge_s = st.readout(rg)
                h, u, truth = r.val
                v = score(model.forecast(h, u, t.val_horizon), truth, t.score_steps)
                if best is None or (np.isfinite(v) and (not np.isfinite(best[0]) or v < best[0])):
                    best = (v, model, sr, lr, rg, st.seconds + ridge_s)
            log(f"  esn sr {sr} lr {lr}: states {st.seconds:.2f} s, best val so far {best[0]:.3e}")
    v, model, sr, lr, rg, fit_s = best
    h, u, _ = r.test
    diff = model.check_against_library(h, u, min(t.horizon, 50))
    r.add("ESN (reservoirpy)", "esn",
          {"units": units, "sr": sr, "lr": lr, "ridge": rg, "input_scaling": 1.0, "connectivity": 0.1,
           "washout": washout, "candidates": len(grid) * len(ridges), "eddy_budget": budget},
          fit_s, sel.seconds, lambda which, h, u, H: model.forecast(h, u, H),
          extra={"max_difference_vs_reservoirpy_step": diff})


def run_rnn(r, cell, quick, time_cap):
    import rnn
    t = r.task
    train = [t.standardise(a) for a in t.train]
    h, u, truth = r.val
    if quick:
        kw = dict(max_epochs=30, patience=6, batches_per_epoch=25, time_cap=time_cap)
    else:
        kw = dict(max_epochs=300, patience=30, batches_per_epoch=100, time_cap=time_cap)
    m = rnn.RNNModel(t, cell).fit(train, h, u, truth, **kw)
    info = {k: v for k, v in m.info.items() if k != "history"}
    log(f"  {cell}: {info}")
    r.add(f"{cell.upper()} (PyTorch, BPTT)", "rnn",
          {"hidden": rnn.HIDDEN, "layers": rnn.LAYERS, "seq": rnn.SEQ, "batch": rnn.BATCH, "lr": rnn.LR, **kw},
          m.fit_seconds, m.fit_seconds, lambda which, hh, uu, H: m.forecast(hh, uu, H),
          extra={"training": m.info})


# ------------------------------------------------------------------------------------------------ report

def fmt(x, kind="e"):
    if x is None:
        return "–"
    if isinstance(x, float) and not np.isfinite(x):
        return "inf" if x > 0 else "nan"
    if kind == "s":
        return f"{x:.3g}" if x < 100 else f"{x:.0f}"
    if kind == "f":
        return f"{x:.2f}"
    return f"{x:.2e}"


def task_table(res):
    t = res["task"]
    lines = [f"### {t['title']}", "", *(f"- {n}" for n in t["notes"]), ""]
    steps = t["report_steps"]
    head = ["model", "config", "val score"] + [f"MSE@{s}" for s in steps] + ["MSE mean"]
    if t["lyapunov"]:
        head.append("VPT (Λt)")
    head += ["climate KL", "fit s", "selection s"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * 2 + "---:|" * (len(head) - 2))
    for row in res["rows"]:
        c = row["config"]
        if row["family"] == "eddy" and c.get("solver") == "lstsq":
            cfg = f"w {c['width']}, lstsq rcond {c['rcond']:g}"
        elif row["family"] == "eddy":
            cfg = f"w {c['width']}, α {c['ridge']:g}"
        elif row["family"] == "reference":
            cfg = f"w {c['width']}, rcond {c['rcond']:g}"
        elif row["family"] == "esn":
            cfg = f"{c['units']} units, sr {c['sr']}, lr {c['lr']}, ridge {c['ridge']:g}"
        elif row["family"] == "rnn":
            tr = row["training"]
            cfg = f"{c['hidden']} units, {tr['epochs']} ep (best {tr['best_epoch']}, {tr['stopped']})"
        else:
            cfg = ""
        te = row["test"]
        cells = [row["model"], cfg, fmt(row["val_score"])] + [fmt(te["mse_at"][str(s)]) for s in steps] + [fmt(te["mse_mean"])]
        if t["lyapunov"]:
            v = te["vpt"]
            cells.append(f"{v['median_lyapunov_times']:.2f}" + (f" ({v['censored']} cens.)" if v["censored"] else ""))
        cells += [fmt(row["climate_kl"], "f") if row["climate_kl"] is not None else "–",
                  fmt(row["fit_seconds"], "s"), fmt(row["selection_seconds"], "s")]
        if te["non_finite_forecasts"]:
            cells[0] += f" ({te['non_finite_forecasts']} non-finite)"
        lines.append("| " + " | ".join(cells) + " |")
    e = res.get("eddy", {})
    if e.get("check_against_eddy_evaluate"):
        ch = e["check_against_eddy_evaluate"]
        lines += ["", f"Check: `eddy evaluate` on the same test windows gives standardised MSE "
                      f"{ch['eddy_evaluate_mse_standardised']:.4e} for {ch['model']}, this harness "
                      f"{ch['harness_mse_mean']:.4e} (relative difference {ch['relative_difference']:.1e})."]
    lines += ["", f"Eddy's sweep: {e.get('candidates')} candidates ({e.get('candidates_per_form_sampler')} per form × "
                  f"sampler) in {fmt(e.get('sweep_seconds'), 's')} s, shared by the Eddy rows (their 'selection s')."]
    return "\n".join(lines)


def goals(results):
    """The issue's goals, task by task, from the rows."""
    out = []
    for name, res in results.items():
        rows = {r["model"]: r for r in res["rows"]}
        eddy_rows = [r for r in res["rows"] if r["family"] == "eddy" and r["config"]["width"] > 0
                     and r["selection_seconds"] is not None and np.isfinite(r["val_score"])]
        if not eddy_rows:
            continue
        best = min(eddy_rows, key=lambda r: r["val_score"])
        g = {"task": name, "eddy_best": best["model"], "eddy_val": best["val_score"],
             "eddy_fit_seconds": best["fit_seconds"], "eddy_sweep_seconds": best["selection_seconds"]}
        for cell in ("LSTM", "GRU"):
            r = rows.get(f"{cell} (PyTorch, BPTT)")
            if r is None:
                continue
            speed = r["fit_seconds"] / best["fit_seconds"]
            speed_sweep = r["fit_seconds"] / best["selection_seconds"]
            g[cell.lower()] = {"val": r["val_score"], "fit_seconds": r["fit_seconds"], "speedup_fit": speed,
                               "speedup_including_sweep": speed_sweep,
                               "eddy_val_not_worse": bool(best["val_score"] <= r["val_score"]),
                               "met": bool(speed >= 100 and best["val_score"] <= r["val_score"])}
        swim = rows.get("Eddy recurrent SWIM")
        esn_r = rows.get("ESN (reservoirpy)")
        if swim and esn_r:
            acc = swim["test"]["mse_mean"] <= esn_r["test"]["mse_mean"]
            e = {"eddy_test_mse": swim["test"]["mse_mean"], "esn_test_mse": esn_r["test"]["mse_mean"],
                 "eddy_val": swim["val_score"], "esn_val": esn_r["val_score"],
                 "width": swim["config"]["width"], "eddy_fit_seconds": swim["fit_seconds"],
                 "esn_fit_seconds": esn_r["fit_seconds"], "eddy_sweep_seconds": swim["selection_seconds"],
                 "esn_search_seconds": esn_r["selection_seconds"], "accurate": bool(acc),
                 "faster_fit": bool(swim["fit_seconds"] < esn_r["fit_seconds"]),
                 "faster_selection": bool(swim["selection_seconds"] < esn_r["selection_seconds"])}
            if "vpt" in swim["test"]:
                e["eddy_vpt"] = swim["test"]["vpt"]["median_lyapunov_times"]
                e["esn_vpt"] = esn_r["test"]["vpt"]["median_lyapunov_times"]
                e["accurate"] = bool(acc and e["eddy_vpt"] >= e["esn_vpt"])
            e["met"] = bool(e["accurate"] and e["faster_fit"])
            g["esn"] = e
        ref = rows.get("Python reference (swimnetworks+lstsq)")
        same = rows.get("Eddy recurrent SWIM, lstsq")
        if ref:
            g["reference"] = {}
            for key, e in (("sweep (qr)", swim), ("lstsq", same)):
                if e is None:
                    continue
                ratio = e["test"]["mse_mean"] / ref["test"]["mse_mean"] if ref["test"]["mse_mean"] > 0 else None
                x = {"eddy_model": e["model"], "eddy_fit_seconds": e["fit_seconds"],
                     "reference_fit_seconds": ref["fit_seconds"], "speedup": ref["fit_seconds"] / e["fit_seconds"],
                     "eddy_test_mse": e["test"]["mse_mean"], "reference_test_mse": ref["test"]["mse_mean"],
                     "mse_ratio": ratio}
                if "vpt" in e["test"]:
                    # chaotic: the same accuracy means the same valid prediction time (within 10%)
                    x["eddy_vpt"] = e["test"]["vpt"]["median_lyapunov_times"]
                    x["reference_vpt"] = ref["test"]["vpt"]["median_lyapunov_times"]
                    same_acc = x["eddy_vpt"] >= 0.9 * x["reference_vpt"]
                else:
                    same_acc = ratio is not None and ratio <= 1.5
                x["same_accuracy"] = bool(same_acc)
                x["met"] = bool(e["fit_seconds"] < ref["fit_seconds"] and same_acc)
                g["reference"][key] = x
        out.append(g)
    return out


def goals_markdown(gs):
    lines = ["### Goals", "",
             "| task | Eddy (best on validation) | vs LSTM: speed-up (fit / incl. sweep), val | vs GRU | "
             "vs ESN (same width, budget): test MSE, VPT, fit s | vs Python reference: speed-up, MSE ratio |",
             "|---|---|---|---|---|---|"]
    yes = lambda b: "**met**" if b else "missed"
    for g in gs:
        cells = [g["task"], f"{g['eddy_best']} (val {g['eddy_val']:.2e}, fit {g['eddy_fit_seconds']:.3g} s)"]
        for cell in ("lstm", "gru"):
            x = g.get(cell)
            cells.append("–" if x is None else
                         f"{x['speedup_fit']:.3g}× / {x['speedup_including_sweep']:.2g}×, val {x['val']:.2e} "
                         f"({'Eddy ≤' if x['eddy_val_not_worse'] else 'Eddy >'}): {yes(x['met'])}")
        e = g.get("esn")
        if e is None:
            cells.append("–")
        else:
            s = f"{e['eddy_test_mse']:.2e} vs {e['esn_test_mse']:.2e}"
            if "eddy_vpt" in e:
                s += f", VPT {e['eddy_vpt']:.2f} vs {e['esn_vpt']:.2f}"
            s += f", fit {e['eddy_fit_seconds']:.3g} vs {e['esn_fit_seconds']:.3g} s: {yes(e['met'])}"
            cells.append(s)
        x = g.get("reference")
        cells.append("–" if not x else "; ".join(
            f"{k}: {v['speedup']:.1f}×, MSE {v['mse_ratio']:.2g}×"
            + (f", VPT {v['eddy_vpt']:.2f} vs {v['reference_vpt']:.2f}" if "eddy_vpt" in v else "")
            + f": {yes(v['met'])}" for k, v in x.items()))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "LSTM/GRU goal: Eddy's fit at least 100× faster and its validation score not worse. ESN goal "
                  "(Van der Pol and Lorenz-63 in the issue; shown for all): Eddy recurrent SWIM's test MSE (and VPT) "
                  "at least as good, fit faster. Reference goal: Eddy recurrent SWIM fits faster at the same width "
                  "with the same accuracy: test MSE within 1.5× of the reference's, or for the chaotic systems a valid "
                  "prediction time at least 0.9× the reference's (sweep (qr): the sweep's choice, solved by its default qr; lstsq: Eddy with the "
                  "reference's solver and rcond, `--solver lstsq --ridge 0`)."]
    return "\n".join(lines)


def clean(o):
    """JSON without NaN/Infinity: non-finite numbers become null."""
    if isinstance(o, dict):
        return {str(k): clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean(v) for v in o]
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        o = o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o


def versions():
    v = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("scipy", "reservoirpy", "torch", "swimnetworks"):
        try:
            m = __import__(mod)
            v[mod] = getattr(m, "__version__", None)
        except Exception as exc:  # noqa: BLE001
            v[mod] = f"unavailable: {exc}"
    if v.get("swimnetworks") is None:
        try:
            from importlib.metadata import version
            v["swimnetworks"] = version("swimnetworks")
        except Exception:  # noqa: BLE001
            pass
    return v


def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "loadavg_at_start": list(os.getloadavg())}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eddy", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tasks", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--md", default=None)
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(HERE)))
    ap.add_argument("--rnn-time-cap", type=float, default=None, help="seconds per LSTM/GRU training")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(os.cpu_count() or 1)

    names = args.tasks.split(",") if args.tasks else (QUICK_TASKS if args.quick else ALL_TASKS)
    for n in names:
        if n not in ALL_TASKS:
            sys.exit(f"bench_peers: unknown task {n} (known: {','.join(ALL_TASKS)})")
    cap = args.rnn_time_cap or (12.0 if args.quick else 600.0)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "mode": "quick" if args.quick else "full", "tasks": names, "machine": machine(),
            "versions": versions(), "rnn_time_cap_seconds": cap,
            "eddy": {"path": args.eddy, "version": subprocess.run([args.eddy, "--version"], capture_output=True,
                                                                  text=True).stdout.strip()}}
    log(f"mode {meta['mode']}, tasks {','.join(names)}, load average {meta['machine']['loadavg_at_start']}")
    t_start = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="bench-peers-")
    results = {}
    for name in names:
        log(f"task {name}: building data")
        with Timer() as tb:
            task = task_defs.build(name, args.eddy, workdir, args.quick, args.root)
        r = Runner(task, args.quick)
        res = {"task": {"name": task.name, "title": task.title, "variables": task.variables, "inputs": task.inputs,
                        "dt": task.dt, "lyapunov": task.lyapunov, "delays": task.delays, "history": task.warm,
                        "horizon": task.horizon, "val_horizon": task.val_horizon, "score_steps": task.score_steps,
                        "report_steps": task.report_steps, "notes": task.notes,
                        "train_rows": int(sum(len(a) for a in task.train)), "val_origins": int(len(task.val)),
                        "test_origins": int(len(task.test)),
                        "climate_runs": 0 if task.climate is None else int(len(task.climate)),
                        "climate_steps": 0 if task.climate is None else int(task.climate.shape[1] - task.warm),
                        "data_seconds": tb.seconds},
               "rows": r.rows, "errors": []}
        results[name] = res
        eddy_info, picks = {}, {}
        steps = [("eddy", lambda: run_eddy(r, args.eddy, workdir)),
                 ("persistence", lambda: run_persistence(r))]
        for label, fn in steps:
            try:
                out = fn()
                if label == "eddy":
                    eddy_info, picks = out
            except Exception as exc:  # noqa: BLE001
                log(f"  {label} failed: {exc}")
                res["errors"].append({"model": label, "error": str(exc), "trace": traceback.format_exc()})
        res["eddy"] = eddy_info
        swim = picks.get(("recurrent", "swim", False))
        width = swim[0]["width"] if swim else max(task.eddy_widths)
        budget = eddy_info.get("candidates_per_form_sampler", 24)
        for label, fn in [("reference", lambda: run_reference(r, width, args.quick)),
                          ("esn", lambda: run_esn(r, width, budget, args.quick)),
                          ("lstm", lambda: run_rnn(r, "lstm", args.quick, cap)),
                          ("gru", lambda: run_rnn(r, "gru", args.quick, cap))]:
            log(f"task {name}: {label}")
            try:
                fn()
            except Exception as exc:  # noqa: BLE001
                log(f"  {label} failed: {exc}")
                res["errors"].append({"model": label, "error": str(exc), "trace": traceback.format_exc()})
    meta["total_seconds"] = time.perf_counter() - t_start
    gs = goals(results)
    doc = {"meta": meta, "results": results, "goals": gs}

    md = [f"## Eddy against its peers ({meta['mode']} mode)", "",
          f"{meta['date']}; {meta['machine']['cpu']}, {meta['machine']['cores']} cores, "
          f"{meta['machine']['memory_gib']} GiB; load average at start "
          f"{', '.join(f'{x:.2f}' for x in meta['machine']['loadavg_at_start'])}; eddy {meta['eddy']['version']}; "
          + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + f". Total {meta['total_seconds']:.0f} s.",
          "",
          "Scores are standardised MSE (training mean and std per variable) from free runs; 'val score' is the "
          "validation score every model was selected or early-stopped on; VPT in Lyapunov times (Λt), median over "
          "test origins, threshold 0.5; climate KL: histogram KL(truth ‖ model) of long free runs, mean over "
          "variables; 'fit s': wall time of the final model's training; 'selection s': the whole hyperparameter "
          "search (Eddy: the one sweep shared by its rows).", ""]
    for name, res in results.items():
        md.append(task_table(res))
        for e in res["errors"]:
            md.append(f"\n**{e['model']} failed:** {e['error'].splitlines()[0] if e['error'] else ''}")
        md.append("")
    md.append(goals_markdown(gs))
    text = "\n".join(md) + "\n"
    print(text)
    if args.md:
        os.makedirs(os.path.dirname(os.path.abspath(args.md)), exist_ok=True)
        open(args.md, "w").write(text)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(clean(doc), f, indent=1, default=str)
        log(f"wrote {args.json}")
    if not args.keep:
        subprocess.run(["rm", "-rf", workdir])
    else:
        log(f"kept {workdir}")


if __name__ == "__main__":
    main()
