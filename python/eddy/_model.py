"""An Eddy model in NumPy: the sampled hidden layer, the normalisation and the outer weights of one of the two forms,
forecasting as ``eddy forecast`` does (``Sources/Eddy/Forecast/Forecaster.swift``).

Forms (the team's METHOD.md, "Two recurrent forms"): with the dictionary ``Ψ(z) = [1, z, φ(zW + b)]`` of the delay
window ``z_t = [x_t, x_{t−1}, …, x_{t−k+1}]`` (standardised, newest first) and standardised inputs ``u``,

* recurrent: ``x_{t+1} = [Ψ(z_t), u_t] [A; B]``, the prediction shifted into the window and re-lifted every step;
* Koopman: ``g_0 = Ψ(z_t)``, ``g_{h+1} = [g_h, u_{t+h}] [K; B]``, read out as the state columns ``1…n`` of ``g``.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._file import CALENDAR_PERIODS, read

ArrayLike = Union[np.ndarray, Sequence[Any]]
TimeLike = Union[float, int, str, np.datetime64, _dt.datetime, _dt.date]


def calendar_values(feature: str, seconds: float) -> Tuple[float, float]:
    """The (sin, cos) pair of a calendar feature (``hour``, ``doy``, ``week``) at a time in seconds since 1970
    (UTC), as ``CalendarFeature.values(at:)``: phase ``fmod(t, period) / period`` in [0, 1)."""
    period = CALENDAR_PERIODS[feature]
    phase = math.fmod(seconds, period) / period
    if phase < 0:
        phase += 1
    return math.sin(2 * math.pi * phase), math.cos(2 * math.pi * phase)


_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d*)?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?$")


def to_seconds(t: TimeLike) -> float:
    """A time as seconds since 1970-01-01 UTC: numbers as they are (the time column's own units), ISO 8601 text
    (``2013-01-01T06:00:00Z``, ``2013-01-01 06:00``, ``2013-01-01``; no offset means UTC), ``numpy.datetime64`` and
    ``datetime`` (naive means UTC)."""
    if isinstance(t, (int, float, np.integer, np.floating)) and not isinstance(t, bool):
        return float(t)
    if isinstance(t, np.datetime64):
        return float((t - np.datetime64("1970-01-01T00:00:00")) / np.timedelta64(1, "us")) / 1e6
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.timezone.utc)
        return t.timestamp()
    if isinstance(t, _dt.date):
        return float((t - _dt.date(1970, 1, 1)).days * 86_400)
    if isinstance(t, str):
        try:
            return float(t)
        except ValueError:
            pass
        m = _ISO.match(t)
        if not m:
            raise ValueError(f"cannot read '{t}' as a time (expected ISO 8601 like 2013-01-01T06:00:00Z, or a number)")
        y, mo, d, hh, mm, ss, frac, zone = m.groups()
        days = (_dt.date(int(y), int(mo), int(d)) - _dt.date(1970, 1, 1)).days
        seconds = days * 86_400 + int(hh or 0) * 3600 + int(mm or 0) * 60 + int(ss or 0)
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            seconds -= sign * (int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) >= 4 else 0))
        return float(seconds) + (float(frac) if frac and len(frac) > 1 else 0.0)
    raise TypeError(f"cannot read {t!r} as a time")


class Model:
    """A trained Eddy model loaded from its file (see :func:`load`).

    Attributes:
        path: the file it was read from.
        metadata: the model's JSON metadata (``__metadata__.eddy``) as a dict.
        tensors: every tensor by name (float64 arrays, shapes as in the README's model-file section).
        notes: what the reader noticed (a format 1–3 file carries no checksum).
    """

    def __init__(self, metadata: dict, tensors: Dict[str, np.ndarray], path: str = "", notes: Optional[List[str]] = None):
        self.path = path
        self.metadata = metadata
        self.tensors = tensors
        self.notes = list(notes or [])
        t = tensors
        self._m = len(metadata["inputs"])
        self._n = t["x_mean"].shape[0]                 # the state: variables, or EOF components with --pca
        self._k = int(metadata["delays"])
        self._width = int(metadata["width"])
        head = t["K"] if self.form == "koopman" else t["A"]
        self._theta = np.vstack([head, t["B"]]) if self._m > 0 else head
        self._eof = ("eof_mean", "eof_scale", "eof_vectors") if "eof_vectors" in t else None
        rng = metadata.get("trainingRange")
        self._range = np.asarray(rng, dtype=np.float64) if rng is not None else None

    # -- what the model is ------------------------------------------------------------------------------------

    @property
    def variables(self) -> List[str]:
        """The variables the model reads and forecasts, in file order (angles as ``NAME_sin``, ``NAME_cos``)."""
        return list(self.metadata["variables"])

    @property
    def inputs(self) -> List[str]:
        """All the model's inputs, in order: the external ones, then the calendar pairs (``hour_sin``, ``hour_cos``, …)."""
        return list(self.metadata["inputs"])

    @property
    def calendar(self) -> List[str]:
        """Calendar features the model computes itself from time (``hour``, ``doy``, ``week``)."""
        return list((self.metadata.get("shaping") or {}).get("calendar") or [])

    @property
    def external_inputs(self) -> List[str]:
        """Inputs that must be given (in ``history`` after the variables, and in ``future_inputs``)."""
        return self.inputs[: self._m - 2 * len(self.calendar)]

    @property
    def angles(self) -> List[str]:
        """Raw columns that were angles in degrees, each a ``NAME_sin``, ``NAME_cos`` pair of variables."""
        return list((self.metadata.get("shaping") or {}).get("angles") or [])

    @property
    def form(self) -> str:
        """``recurrent`` or ``koopman``."""
        return str(self.metadata["form"])

    @property
    def delays(self) -> int:
        """``k``: rows of history one forecast needs."""
        return self._k

    @property
    def width(self) -> int:
        return self._width

    @property
    def dt(self) -> float:
        """The time step (seconds when the training data's times were dates)."""
        return float(self.metadata["dt"])

    @property
    def format_version(self) -> int:
        return int(self.metadata["formatVersion"])

    @property
    def components(self) -> Optional[int]:
        """EOF components the model runs on (``--pca K``), or None."""
        r = self.metadata.get("reduction")
        return int(r["components"]) if r else None

    @property
    def climatology(self) -> Optional[np.ndarray]:
        """Mean of each variable by phase of the daily cycle (``climatologyPeriod × n``, data units), when known."""
        return self.tensors.get("climatology")

    def __repr__(self) -> str:
        pca = f", {self.components} EOFs" if self.components else ""
        return (f"<eddy.Model {self.form}, {len(self.variables)} variables{pca}, {self._m} inputs, delays {self._k}, "
                f"width {self._width}, format {self.format_version}>")

    # -- forecasting ------------------------------------------------------------------------------------------

    def forecast(self, history: ArrayLike, steps: int, future_inputs: Optional[ArrayLike] = None,
                 times: Optional[Union[TimeLike, ArrayLike]] = None, angles: str = "sincos") -> np.ndarray:
        """Forecasts ``steps`` rows after the last row of ``history``, as ``eddy forecast`` does from that origin.

        Args:
            history: the last rows of one trajectory, oldest first, in data units: ``(rows, n)`` with the model's
                variables (``rows ≥ delays``; only the last ``delays`` rows are used), or ``(rows, n + e)`` with the
                ``e`` external inputs after them (a model with inputs needs the origin row's, ``history[-1, n:]``).
            steps: rows to forecast (the horizon ``H``).
            future_inputs: ``(steps − 1, e)`` (or more rows): the external inputs at the rows after the origin, the
                ones ``eddy forecast --future-inputs`` reads — row ``j`` is the input at time ``origin + (j+1)·dt``,
                driving the step to ``origin + (j+2)·dt``.
            times: for calendar inputs, the time of the origin (the last history row) or of every history row, as
                seconds since 1970, ISO 8601 text, ``numpy.datetime64`` or ``datetime``; later rows are
                ``origin + h·dt``.
            angles: ``"sincos"`` (default): angle variables are the model's ``NAME_sin``, ``NAME_cos`` pairs in
                ``history`` and in the result; ``"degrees"``: both hold the raw columns (:attr:`raw_variables`)
                with angles in degrees.

        Returns:
            ``(steps, n)`` in data units (``n`` as :attr:`variables`, or :attr:`raw_variables` with degrees).
        """
        h = np.asarray(history, dtype=np.float64)
        if h.ndim != 2:
            raise ValueError(f"history must be a (rows, columns) array, got shape {h.shape}")
        f = None if future_inputs is None else np.asarray(future_inputs, dtype=np.float64)[None]
        if times is None:
            tt = None
        elif np.ndim(times) == 0 or isinstance(times, str):
            tt = [times]
        else:
            tt = [list(times)]
        return self.forecast_batch(h[None], steps, f, tt, angles=angles)[0]

    def forecast_batch(self, histories: ArrayLike, steps: int, future_inputs: Optional[ArrayLike] = None,
                       times: Optional[ArrayLike] = None, angles: str = "sincos") -> np.ndarray:
        """Many forecasts at once (the batched :meth:`forecast`).

        Args:
            histories: ``(B, rows, n)`` or ``(B, rows, n + e)``: one history per forecast, as in :meth:`forecast`.
            steps: the horizon ``H``.
            future_inputs: ``(B, steps − 1, e)`` or more rows per forecast.
            times: ``(B,)`` origin times, or ``(B, rows)`` times of every history row.
            angles: as in :meth:`forecast`.

        Returns:
            ``(B, steps, n)`` in data units.
        """
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        if angles not in ("sincos", "degrees"):
            raise ValueError(f"angles must be 'sincos' or 'degrees', got {angles!r}")
        hist = np.asarray(histories, dtype=np.float64)
        if hist.ndim != 3:
            raise ValueError(f"histories must be a (B, rows, columns) array, got shape {hist.shape}")
        if angles == "degrees":
            raw = len(self.raw_variables)
            hist = np.concatenate([self.from_degrees(hist[..., :raw]), hist[..., raw:]], axis=-1)
        n_vars = len(self.variables)
        e = len(self.external_inputs)
        b, rows, cols = hist.shape
        if cols not in (n_vars, n_vars + e) or (e > 0 and cols != n_vars + e):
            want = f"{n_vars} variables" + (f" then the {e} external inputs ({', '.join(self.external_inputs)})" if e else "")
            raise ValueError(f"history rows hold {cols} values; the model needs {want}")
        if rows < self._k:
            raise ValueError(f"history has {rows} rows; the model needs at least its {self._k} delay rows")
        window_rows = hist[:, rows - self._k:, :n_vars]
        if not np.isfinite(window_rows).all():
            raise ValueError("the last delay rows of history hold missing or non-finite values")

        u = self._inputs(hist, steps, future_inputs, times)
        z = self._standardise(window_rows)               # (B, k, state), oldest first
        window = z[:, ::-1, :].reshape(b, self._k * self._n)
        out = self._run(window, u, steps)
        result = self._data_units(out)
        return self.to_degrees(result) if angles == "degrees" else result

    def _standardise(self, rows: np.ndarray) -> np.ndarray:
        """The standardised state of rows of variables (data units): with ``--pca`` the standardised components."""
        t = self.tensors
        x = rows
        if self._eof:
            x = ((rows - t["eof_mean"]) / t["eof_scale"]) @ t["eof_vectors"]
        return (x - t["x_mean"]) / t["x_std"]

    def _data_units(self, state: np.ndarray) -> np.ndarray:
        t = self.tensors
        x = state * t["x_std"] + t["x_mean"]
        if self._eof:
            x = t["eof_mean"] + t["eof_scale"] * (x @ t["eof_vectors"].T)
        return x

    def _inputs(self, hist: np.ndarray, steps: int, future: Optional[ArrayLike], times: Optional[ArrayLike]) -> np.ndarray:
        """Standardised inputs ``u_0 … u_{H−1}`` per forecast, ``(B, H, m)``: ``u_h`` drives the step from the row at
        ``origin + h·dt`` to the next; ``u_0`` is the origin row's."""
        b = hist.shape[0]
        m = self._m
        u = np.zeros((b, steps, m))
        if m == 0:
            return u
        n_vars, e = len(self.variables), len(self.external_inputs)
        if e > 0:
            u[:, 0, :e] = hist[:, -1, n_vars:]
            if steps > 1:
                if future is None:
                    raise ValueError(f"the model has inputs ({', '.join(self.external_inputs)}): give future_inputs, "
                                     f"{steps - 1} rows of {e} values after the origin")
                fu = np.asarray(future, dtype=np.float64)
                if fu.ndim != 3 or fu.shape[0] != b or fu.shape[1] < steps - 1 or fu.shape[2] != e:
                    raise ValueError(f"future_inputs must hold at least {steps - 1} rows of {e} values per forecast "
                                     f"(shape ({b}, {steps - 1}, {e})), got {fu.shape}")
                u[:, 1:, :e] = fu[:, : steps - 1]
        if self.calendar:
            if times is None:
                raise ValueError(f"the model's calendar inputs ({', '.join(self.calendar)}) need times: give the origin's time")
            if len(times) != b:
                raise ValueError(f"times: expected one entry per forecast ({b}), got {len(times)}")
            for c, entry in enumerate(times):
                origin = entry[-1] if isinstance(entry, (list, tuple, np.ndarray)) else entry
                t0 = to_seconds(origin)
                for h in range(steps):
                    t = t0 + h * self.dt
                    for q, feature in enumerate(self.calendar):
                        s, co = calendar_values(feature, t)
                        u[c, h, e + 2 * q] = s
                        u[c, h, e + 2 * q + 1] = co
        if not np.isfinite(u).all():
            raise ValueError("the inputs hold missing or non-finite values")
        return (u - self.tensors["u_mean"]) / self.tensors["u_std"]

    def _lift(self, window: np.ndarray) -> np.ndarray:
        """``[1, z, φ(zW + b)]`` for a batch of windows."""
        t = self.tensors
        parts = [np.ones((window.shape[0], 1)), window]
        if self._width > 0:
            a = window @ t["W"] + t["b"]
            parts.append(np.tanh(a) if self.metadata["activation"] == "tanh" else np.maximum(a, 0))
        return np.concatenate(parts, axis=1)

    def _run(self, window: np.ndarray, u: np.ndarray, steps: int) -> np.ndarray:
        """Free runs in the standardised state: ``(B, H, state)``."""
        b, n, p = window.shape[0], self._n, window.shape[1]
        out = np.empty((b, steps, n))
        if self.form == "recurrent":
            for h in range(steps):
                x = np.concatenate([self._lift(window), u[:, h]], axis=1) @ self._theta
                out[:, h] = x
                window = np.concatenate([x, window[:, : p - n]], axis=1)     # newest first
        else:
            g = self._lift(window)
            for h in range(steps):
                g = np.concatenate([g, u[:, h]], axis=1) @ self._theta
                out[:, h] = g[:, 1:1 + n]
        return out

    # -- after the forecast -----------------------------------------------------------------------------------

    def diverged(self, forecasts: ArrayLike) -> Union[int, np.ndarray]:
        """The first step (1-based) from which a forecast is flagged ``diverged`` by ``eddy forecast`` — a value
        non-finite or outside the training range by more than its width — or 0 when never.

        ``forecasts``: ``(steps, n)`` (returns an int) or ``(B, steps, n)`` (returns ``(B,)`` ints), model variables.
        """
        f = np.asarray(forecasts, dtype=np.float64)
        single = f.ndim == 2
        if single:
            f = f[None]
        bad = ~np.isfinite(f)
        if self._range is not None:
            lo, hi = self._range[:, 0], self._range[:, 1]
            width = hi - lo
            with np.errstate(invalid="ignore"):
                bad |= (f < lo - width) | (f > hi + width)
        step_bad = bad.any(axis=2)
        first = np.where(step_bad.any(axis=1), step_bad.argmax(axis=1) + 1, 0)
        return int(first[0]) if single else first

    @property
    def raw_variables(self) -> List[str]:
        """The variables with each angle's ``NAME_sin``, ``NAME_cos`` pair as one column ``NAME`` in degrees (after a
        pivot, ``NAME_sin@KEY``, ``NAME_cos@KEY`` become ``NAME@KEY``)."""
        return [name for name, _, _ in self._raw_columns()]

    def _raw_columns(self) -> List[Tuple[str, int, bool]]:
        """(raw name, first variable index, whether it is an angle pair) for each raw column."""
        v, angles = self.variables, set(self.angles)
        out: List[Tuple[str, int, bool]] = []
        i = 0
        while i < len(v):
            base, at, key = v[i].partition("@")
            if i + 1 < len(v) and base.endswith("_sin") and base[:-4] in angles and v[i + 1] == base[:-4] + "_cos" + at + key:
                out.append((base[:-4] + at + key, i, True))
                i += 2
            else:
                out.append((v[i], i, False))
                i += 1
        return out

    def to_degrees(self, values: ArrayLike) -> np.ndarray:
        """Model variables (``..., n``) to :attr:`raw_variables`: each angle pair to ``atan2(sin, cos)`` in degrees,
        in [0, 360)."""
        x = np.asarray(values, dtype=np.float64)
        cols = [np.mod(np.degrees(np.arctan2(x[..., i], x[..., i + 1])), 360.0) if angle else x[..., i]
                for _, i, angle in self._raw_columns()]
        return np.stack(cols, axis=-1)

    def from_degrees(self, values: ArrayLike) -> np.ndarray:
        """:attr:`raw_variables` (``..., r``, angles in degrees) to the model's variables, as Eddy reads them
        (``sin(v·π/180)``, ``cos(v·π/180)``)."""
        x = np.asarray(values, dtype=np.float64)
        cols: List[np.ndarray] = []
        for j, (_, _, angle) in enumerate(self._raw_columns()):
            if angle:
                r = x[..., j] * math.pi / 180
                cols += [np.sin(r), np.cos(r)]
            else:
                cols.append(x[..., j])
        return np.stack(cols, axis=-1)

    def grid(self, values: ArrayLike) -> Dict[str, Tuple[np.ndarray, Dict[str, np.ndarray]]]:
        """Gridded fields back on their grid: variables named ``VAR[DIM=VALUE:…]`` (as Eddy names netCDF grid
        points, last dimension fastest) become ``{VAR: (array (..., DIM₁, DIM₂, …), {DIM: coordinates})}``;
        a variable without ``[…]`` is a field of its own with no dimensions. Raises ``ValueError`` when the
        columns of a field do not fill its grid in C order."""
        x = np.asarray(values, dtype=np.float64)
        groups: Dict[str, List[Tuple[int, List[Tuple[str, str]]]]] = {}
        for c, name in enumerate(self.variables):
            m = re.match(r"^([^\[]*)\[(.*)\]$", name)
            var, pairs = (name, []) if not m else (m.group(1), [tuple(p.split("=", 1)) for p in m.group(2).split(":")])
            if any(len(p) != 2 for p in pairs):
                raise ValueError(f"variable '{name}' is not a grid point VAR[DIM=VALUE:…]")
            groups.setdefault(var, []).append((c, pairs))  # type: ignore[arg-type]
        out: Dict[str, Tuple[np.ndarray, Dict[str, np.ndarray]]] = {}
        for var, members in groups.items():
            dims = [k for k, _ in members[0][1]]
            labels: List[List[str]] = [[] for _ in dims]
            for _, pairs in members:
                if [k for k, _ in pairs] != dims:
                    raise ValueError(f"the grid points of '{var}' do not share their dimensions")
                for d, (_, value) in enumerate(pairs):
                    if value not in labels[d]:
                        labels[d].append(value)
            shape = [len(l) for l in labels]
            if len(members) != math.prod(shape):
                raise ValueError(f"the grid points of '{var}' do not fill a {shape} grid")
            columns = [c for c, _ in members]
            def coords(ls: List[str]) -> np.ndarray:
                try:
                    return np.array([float(s) for s in ls])
                except ValueError:
                    return np.array(ls)
            out[var] = (x[..., columns].reshape(x.shape[:-1] + tuple(shape)),
                        {d: coords(ls) for d, ls in zip(dims, labels)})
        return out


def load(path: str, verify: bool = True) -> Model:
    """Loads an Eddy model file of any format version (1–4), with the Swift reader's checks.

    Args:
        path: the ``.safetensors`` file written by ``eddy train`` or ``eddy sweep``.
        verify: check format 4's checksum of the tensor bytes (pure Python, about 10 MB/s); the checksum of the
            metadata and tensor table is always checked.

    Raises:
        ModelFileError: a truncated, corrupted or unsupported file, with a message naming it.
    """
    meta, tensors, notes = read(path, verify=verify)
    return Model(meta, tensors, path=path, notes=notes)
