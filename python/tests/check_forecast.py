"""Forecasts with the Python package what ``eddy forecast`` forecast, and prints how far apart they are (JSON).

Called by the Swift end-to-end tests (``Tests/EndToEndTests/PythonPackageTests.swift``), which write into DIR:
``config.json`` (``model``, ``steps``, and optional checks), ``history.npy`` ``(B, k, n + e)`` — the delay rows of
every origin as Eddy read them, external inputs after the variables — ``eddy.npy`` ``(B, H, n)`` (``eddy forecast
--out``), and where the model needs them ``future.npy`` ``(B, H − 1, e)`` and ``times.npy`` ``(B,)`` (origin times).

Optional checks in ``config.json``: ``flags`` (eddy's first diverged step per forecast, 0 for none), ``degrees``
(the same forecast with angles in degrees in and out), ``grid`` (the fields back on their grid), ``versions``
(the file rewritten as format 1–3 loads with a note and forecasts the same; a flipped bit is refused).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings

import numpy as np

import eddy


def rewrite(path: str, version: int, out: str, flip: bool = False) -> None:
    """The model file as format ``version`` without a checksum (or, with ``flip``, with one data bit flipped)."""
    raw = bytearray(open(path, "rb").read())
    n = int.from_bytes(raw[:8], "little")
    head = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    if flip:
        data[len(data) // 2] ^= 0x10
    else:
        meta = json.loads(head["__metadata__"]["eddy"])
        meta["formatVersion"] = version
        head["__metadata__"] = {"eddy": json.dumps(meta)}
    text = json.dumps(head).encode()
    text += b" " * (-(8 + len(text)) % 8)
    with open(out, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + bytes(data))


def main(folder: str) -> None:
    config = json.load(open(os.path.join(folder, "config.json")))
    def optional(name: str):
        p = os.path.join(folder, name)
        return np.load(p) if os.path.exists(p) else None
    model = eddy.load(config["model"])
    history, reference = np.load(os.path.join(folder, "history.npy")), np.load(os.path.join(folder, "eddy.npy"))
    future, times = optional("future.npy"), optional("times.npy")
    steps = int(config["steps"])
    ours = model.forecast_batch(history, steps, future_inputs=future, times=times)
    report = {"model": repr(model), "forecasts": int(ours.shape[0]), "steps": steps}
    finite = np.isfinite(reference)
    both = finite & np.isfinite(ours)
    diff = np.abs(ours - reference)
    report["max_abs"] = float(diff[both].max()) if both.any() else 0.0
    report["max_rel"] = float((diff[both] / np.maximum(1.0, np.abs(reference[both]))).max()) if both.any() else 0.0
    report["max_value"] = float(np.abs(reference[finite]).max()) if finite.any() else 0.0
    report["same_non_finite"] = bool((np.isfinite(ours) == finite).all())
    # The single-forecast form gives the same as the batch.
    single = model.forecast(history[0], steps, future_inputs=None if future is None else future[0],
                            times=None if times is None else times[0])
    report["single_vs_batch"] = float(np.abs(single - ours[0]).max())
    if "flags" in config:
        mine = model.diverged(ours)
        report["flags_eddy"] = [int(v) for v in config["flags"]]
        report["flags_python"] = [int(v) for v in mine]
        report["diverged_forecasts"] = int((np.asarray(config["flags"]) > 0).sum())
    if config.get("degrees"):
        # Angles in degrees in and out, on the origins whose history holds unit sine/cosine pairs: a gap Eddy filled
        # interpolates sine and cosine linearly, which no angle in degrees reproduces.
        n = len(model.variables)
        pairs = [i for _, i, angle in model._raw_columns() if angle]
        unit = np.all([np.abs(history[..., i] ** 2 + history[..., i + 1] ** 2 - 1) < 1e-12 for i in pairs], axis=(0, 2))
        raw_history = np.concatenate([model.to_degrees(history[unit, :, :n]), history[unit, :, n:]], axis=-1)
        deg = model.forecast_batch(raw_history, steps, future_inputs=None if future is None else future[unit],
                                   times=None if times is None else times[unit], angles="degrees")
        circular = np.abs((deg - model.to_degrees(reference[unit]) + 180) % 360 - 180)
        report["raw_variables"] = model.raw_variables
        report["degrees_forecasts"] = int(unit.sum())
        report["degrees_max_abs"] = float(circular.max())
    if config.get("grid"):
        fields = model.grid(ours)
        report["grid"] = {k: [list(v.shape), {d: len(c) for d, c in coords.items()}] for k, (v, coords) in fields.items()}
    if config.get("versions"):
        agree = []
        with tempfile.TemporaryDirectory() as tmp:
            for version in (1, 2, 3):
                path = os.path.join(tmp, f"v{version}.safetensors")
                rewrite(config["model"], version, path)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    old = eddy.load(path)
                noted = any(issubclass(w.category, eddy.NoChecksumWarning) for w in caught) and len(old.notes) == 1
                same = np.array_equal(old.forecast_batch(history, steps, future_inputs=future, times=times), ours)
                agree.append(old.format_version == version and noted and same)
            path = os.path.join(tmp, "flipped.safetensors")
            rewrite(config["model"], 4, path, flip=True)
            try:
                eddy.load(path)
                refused = False
            except eddy.ModelFileError as e:
                refused = "checksum" in str(e)
        report["old_versions_agree"] = agree
        report["flipped_bit_refused"] = refused
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
