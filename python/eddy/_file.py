"""Reading an Eddy model file: safetensors (an 8-byte little-endian header length, a JSON header giving each float64
tensor's shape and byte range, then the bytes) with Eddy's metadata as a JSON string under ``__metadata__.eddy``.

The checks follow the Swift reader (``Sources/Eddy/Model/ModelFile.swift``): sizes before anything is used, no
duplicate JSON keys, F64 tensors that tile the data exactly, the tensors the metadata implies and no others, and
format 4's FNV-1a checksum over the metadata, the tensor table and the tensor bytes.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any, Dict, List, Tuple

import numpy as np

#: The newest format version this package reads (the one ``eddy`` writes).
CURRENT_FORMAT_VERSION = 5
MAX_HEADER_LENGTH = 100_000_000
CHECKSUM_KEY = "eddy_checksum"

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF


class ModelFileError(ValueError):
    """A file that is not a usable Eddy model (truncated, corrupted, another format or version)."""


class NoChecksumWarning(UserWarning):
    """A model file of format 1–3: it carries no checksum, so damage to its weights cannot be detected."""


def fnv1a64(data: bytes, value: int = _FNV_OFFSET) -> int:
    """FNV-1a, 64 bit, as ``FNV1a64`` in the Swift sources (continuing from ``value``)."""
    h = value
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _MASK
    return h


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ModelFileError(f"duplicate key '{k}'")
        out[k] = v
    return out


def _strict_json(text: str, path: str, what: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except ModelFileError as e:
        raise ModelFileError(f"{path}: corrupted model file: {what} is not valid JSON ({e})") from None
    except ValueError as e:
        raise ModelFileError(f"{path}: corrupted model file: {what} is not valid JSON ({e})") from None


def _checksum_text(metadata_text: str, table: List[Tuple[str, dict]], data_hash: int) -> str:
    h = fnv1a64(metadata_text.encode("utf-8"))
    h = fnv1a64(b"\n", h)
    for name, info in sorted(table, key=lambda t: t[0]):
        shape = ",".join(str(s) for s in info["shape"])
        offsets = ",".join(str(o) for o in info["data_offsets"])
        h = fnv1a64(f"{name}:{info['dtype']}:{shape}:{offsets};".encode("utf-8"), h)
    return f"fnv1a64:{data_hash:016x}:{h:016x}"


def expected_tensors(meta: dict, path: str) -> List[Tuple[str, List[int]]]:
    """The tensors (name, shape) a model with this metadata has, after checking the metadata's sizes."""

    def bad(what: str) -> ModelFileError:
        return ModelFileError(f"{path}: corrupted model metadata: {what}")

    try:
        outputs = len(meta["variables"])
        m = len(meta["inputs"])
        delays = int(meta["delays"])
        width = int(meta["width"])
        form = meta["form"]
        dt = float(meta["dt"])
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"missing or unreadable field {e}") from None
    if outputs == 0:
        raise bad("no variables")
    reduction = meta.get("reduction")
    n = int(reduction["components"]) if reduction else outputs
    if not 1 <= n <= outputs:
        raise bad(f"{n} EOF components for {outputs} variables (expected 1…{outputs})")
    if delays < 1:
        raise bad(f"delays {delays} (expected at least 1)")
    if width < 0:
        raise bad(f"width {width} (expected at least 0)")
    if not (math.isfinite(dt) and dt > 0):
        raise bad(f"time step dt {dt} (expected a finite number > 0)")
    if form not in ("recurrent", "koopman"):
        raise bad(f"form '{form}' (expected recurrent or koopman)")
    if meta.get("activation") not in ("tanh", "relu"):
        raise bad(f"activation '{meta.get('activation')}' (expected tanh or relu)")
    shaping = meta.get("shaping") or {}
    calendar = len(shaping.get("calendar") or [])
    if 2 * calendar > m:
        raise bad(f"{calendar} calendar features need {2 * calendar} inputs, the model has {m}")
    for c in shaping.get("calendar") or []:
        if c not in CALENDAR_PERIODS:
            raise bad(f"unknown calendar feature '{c}'")
    rng = meta.get("trainingRange")
    if rng is not None and (len(rng) != outputs or any(len(r) != 2 for r in rng)):
        raise bad(f"trainingRange must hold [minimum, maximum] for each of the {outputs} variables")
    period = meta.get("climatologyPeriod")
    if period is not None and period <= 0:
        raise bad(f"climatologyPeriod {period} (expected at least 1)")
    if reduction and len(reduction["componentVariance"]) != n:
        raise bad(f"reduction lists {len(reduction['componentVariance'])} component variances for {n} components")
    p = n * delays
    d = 1 + p + width
    r = d if form == "koopman" else n
    out: List[Tuple[str, List[int]]] = [("W", [p, width]), ("b", [width]), ("x_mean", [n]), ("x_std", [n])]
    if m > 0:
        out += [("u_mean", [m]), ("u_std", [m])]
    out += [("K", [d, d]), ("C", [d, n])] if form == "koopman" else [("A", [d, n])]
    if m > 0:
        out.append(("B", [m, r]))
    if period is not None:
        out.append(("climatology", [period, outputs]))
    if reduction:
        out += [("eof_mean", [outputs]), ("eof_scale", [outputs]), ("eof_std", [outputs]), ("eof_vectors", [outputs, n])]
    return out


#: Calendar features and their periods in seconds (``CalendarFeature`` in ``Sources/Eddy/Data/Shaping.swift``).
CALENDAR_PERIODS = {"hour": 86_400.0, "doy": 365.2425 * 86_400.0, "week": 7 * 86_400.0}


def read(path: str, verify: bool = True) -> Tuple[dict, Dict[str, np.ndarray], List[str]]:
    """Reads and checks a model file: (metadata, tensors by name, notes).

    ``verify=False`` skips format 4's checksum of the tensor bytes (the metadata's is always checked; the byte
    checksum runs at about 10 MB/s in pure Python).
    """
    with open(path, "rb") as f:
        raw = f.read()
    size = len(raw)
    if size < 8:
        raise ModelFileError(f"{path}: not an Eddy model file (only {size} bytes; expected a safetensors file)")
    claimed = int.from_bytes(raw[:8], "little")
    if not (2 <= claimed <= size - 8 and claimed <= MAX_HEADER_LENGTH):
        raise ModelFileError(f"{path}: not an Eddy model file or truncated (header length {claimed}, file size {size} bytes)")
    try:
        header_text = raw[8:8 + claimed].decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFileError(f"{path}: corrupted model file: its header is not UTF-8") from None
    header = _strict_json(header_text, path, "its header")
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: corrupted model file: its header is not a JSON object")
    extra = header.pop("__metadata__", None)
    if not isinstance(extra, dict) or not isinstance(extra.get("eddy"), str):
        raise ModelFileError(f"{path}: a safetensors file without Eddy metadata (__metadata__.eddy); not an Eddy model")
    meta_text: str = extra["eddy"]
    meta = _strict_json(meta_text, path, "its metadata")
    if not isinstance(meta, dict) or meta.get("format") != "eddy-model":
        raise ModelFileError(f"{path}: not an Eddy model (format '{meta.get('format') if isinstance(meta, dict) else None}')")
    version = meta.get("formatVersion")
    if not isinstance(version, int) or not 1 <= version <= CURRENT_FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format version {version} is not supported; this package reads versions 1…{CURRENT_FORMAT_VERSION}")

    # The tensor table: F64, non-negative shapes, byte ranges of exactly the shape's size tiling the data.
    data_start = 8 + claimed
    data_size = size - data_start
    table: List[Tuple[str, dict]] = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) - {"dtype", "shape", "data_offsets"}:
            raise ModelFileError(f"{path}: corrupted model file: tensor '{name}' has an unreadable entry")
        if info.get("dtype") != "F64":
            raise ModelFileError(f"{path}: tensor '{name}' has dtype {info.get('dtype')}; Eddy model files hold F64 only")
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise ModelFileError(f"{path}: corrupted model file: tensor '{name}' has a bad shape {shape}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise ModelFileError(f"{path}: corrupted model file: tensor '{name}' has data_offsets {offsets}")
        if offsets[1] - offsets[0] != 8 * math.prod(shape):
            raise ModelFileError(f"{path}: corrupted model file: tensor '{name}' of shape {shape} does not fill its data_offsets {offsets}")
        table.append((name, info))
    ordered = sorted(table, key=lambda t: (t[1]["data_offsets"][0], t[1]["data_offsets"][1], t[0]))
    end = 0
    for name, info in ordered:
        begin = info["data_offsets"][0]
        if begin != end:
            raise ModelFileError(f"{path}: corrupted model file: tensor '{name}' (bytes {info['data_offsets']}) "
                                 + ("overlaps the previous one" if begin < end else f"leaves {begin - end} unused bytes before it"))
        end = info["data_offsets"][1]
    if end != data_size:
        raise ModelFileError(f"{path}: " + (f"truncated model file: the tensors need {end} bytes of data, the file has {data_size}"
                                            if end > data_size else f"corrupted model file: {data_size - end} trailing bytes after the last tensor"))

    notes: List[str] = []
    stored = extra.get(CHECKSUM_KEY)
    if stored is not None:
        parts = stored.split(":") if isinstance(stored, str) else []
        if len(parts) != 3 or parts[0] != "fnv1a64" or len(parts[1]) != 16 or len(parts[2]) != 16:
            raise ModelFileError(f"{path}: corrupted model file: unreadable checksum '{stored}'")
        try:
            data_hash = int(parts[1], 16)
            int(parts[2], 16)
        except ValueError:
            raise ModelFileError(f"{path}: corrupted model file: unreadable checksum '{stored}'") from None
        if _checksum_text(meta_text, table, data_hash) != stored:
            raise ModelFileError(f"{path}: corrupted model file: the metadata or tensor table does not match the file's checksum (a damaged copy)")
        if verify and fnv1a64(raw[data_start:]) != data_hash:
            raise ModelFileError(f"{path}: corrupted model file: the tensor data do not match the file's checksum (a damaged copy or a flipped bit)")
    elif version >= 4:
        raise ModelFileError(f"{path}: corrupted model file: format version {version} requires a checksum (__metadata__.{CHECKSUM_KEY}) and it is missing")
    else:
        notes.append(f"{path}: model format version {version} carries no checksum, so damage to its weights cannot be detected")
        warnings.warn(notes[-1], NoChecksumWarning, stacklevel=3)

    expected = expected_tensors(meta, path)
    by_name = dict(table)
    for name, shape in expected:
        if name not in by_name:
            raise ModelFileError(f"{path}: model file lacks tensor '{name}'")
        if by_name[name]["shape"] != shape:
            raise ModelFileError(f"{path}: tensor '{name}' is F64 {by_name[name]['shape']}, the metadata needs F64 {shape}")
    unexpected = sorted(set(by_name) - {n for n, _ in expected})
    if unexpected:
        raise ModelFileError(f"{path}: corrupted model file: unexpected tensor '{unexpected[0]}' (not part of a model with this metadata)")

    tensors: Dict[str, np.ndarray] = {}
    for name, info in table:
        b, e = info["data_offsets"]
        tensors[name] = np.frombuffer(raw, dtype="<f8", count=(e - b) // 8, offset=data_start + b).astype(np.float64).reshape(info["shape"])

    def finite(*names: str) -> bool:
        return all(np.isfinite(tensors[n]).all() for n in names if n in tensors)

    if not finite("W", "b", "A", "K", "B"):
        raise ModelFileError(f"{path}: corrupted model file: non-finite weights")
    if not finite("x_mean", "u_mean"):
        raise ModelFileError(f"{path}: corrupted model file: a normalisation mean (x_mean, u_mean) is not finite")
    for n in ("x_std", "u_std"):
        if n in tensors and not (np.isfinite(tensors[n]).all() and (tensors[n] > 0).all()):
            raise ModelFileError(f"{path}: corrupted model file: a normalisation standard deviation (x_std, u_std) is not a finite number > 0")
    if "climatology" in tensors and np.isinf(tensors["climatology"]).any():
        raise ModelFileError(f"{path}: corrupted model file: an infinite climatology value")
    if "eof_vectors" in tensors:
        if not finite("eof_mean", "eof_std", "eof_vectors") or not (np.isfinite(tensors["eof_scale"]).all() and (tensors["eof_scale"] > 0).all()):
            raise ModelFileError(f"{path}: corrupted model file: non-finite EOFs or a scale that is not positive")
    return meta, tensors, notes
