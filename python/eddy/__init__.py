"""Eddy models in pure NumPy: load a model file written by the ``eddy`` command-line tool and forecast with it
exactly as ``eddy forecast`` does.

>>> import eddy
>>> model = eddy.load("out/weather.safetensors")
>>> model.variables, model.inputs
>>> model.forecast(history, steps=24, times=history_times)     # (24, n) in data units
"""

from ._file import CURRENT_FORMAT_VERSION, ModelFileError, NoChecksumWarning, fnv1a64
from ._model import Model, calendar_values, load, to_seconds

__all__ = ["load", "Model", "ModelFileError", "NoChecksumWarning", "CURRENT_FORMAT_VERSION", "calendar_values",
           "to_seconds", "fnv1a64"]
__version__ = "0.1.0"
