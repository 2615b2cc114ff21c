"""Unit tests of the Python package that need no ``eddy`` binary (the model files of the fuzzing corpus). The
agreement with ``eddy forecast`` is tested from Swift (``Tests/EndToEndTests/PythonPackageTests.swift``)."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
import unittest
import warnings

import numpy as np

import eddy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "Fuzz", "corpus", "FuzzModelFile")


def corpus(name: str) -> str:
    return os.path.join(CORPUS, name)


class LoadingTests(unittest.TestCase):
    def test_version_4_loads_with_its_checksum(self) -> None:
        m = eddy.load(corpus("tiny.safetensors"))
        self.assertEqual(m.format_version, 4)
        self.assertEqual(m.variables, ["x", "y"])
        self.assertEqual(m.notes, [])
        k = eddy.load(corpus("tiny-koopman.safetensors"))
        self.assertEqual(k.form, "koopman")

    def test_version_3_loads_with_a_note(self) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = eddy.load(corpus("tiny-v3-no-checksum.safetensors"))
        self.assertEqual(m.format_version, 3)
        self.assertTrue(any(issubclass(w.category, eddy.NoChecksumWarning) for w in caught))
        self.assertIn("no checksum", m.notes[0])

    def test_damaged_files_are_refused_naming_the_file(self) -> None:
        raw = open(corpus("tiny.safetensors"), "rb").read()
        n = int.from_bytes(raw[:8], "little")
        cases = {
            "truncated": raw[: len(raw) - 8],
            "flipped data bit": raw[:-3] + bytes([raw[-3] ^ 1]) + raw[-2:],
            "trailing bytes": raw + b"\0" * 8,
            "text": b"hello, world",
            "duplicate key": raw[:8 + 1] + b'"W":{"dtype":"F64","shape":[0],"data_offsets":[0,0]},' + raw[8 + 1:],
        }
        with tempfile.TemporaryDirectory() as tmp:
            for what, data in cases.items():
                if what == "duplicate key":
                    # Keep the header length right for the inserted text.
                    extra = len(data) - len(raw)
                    data = (n + extra).to_bytes(8, "little") + data[8:]
                path = os.path.join(tmp, "m.safetensors")
                open(path, "wb").write(data)
                with self.assertRaises(eddy.ModelFileError, msg=what) as e:
                    eddy.load(path)
                self.assertIn(path, str(e.exception), what)

    def test_fnv1a64_matches_the_reference_vectors(self) -> None:
        self.assertEqual(eddy.fnv1a64(b""), 0xCBF29CE484222325)
        self.assertEqual(eddy.fnv1a64(b"a"), 0xAF63DC4C8601EC8C)
        self.assertEqual(eddy.fnv1a64(b"foobar"), 0x85944171F73967E8)


class InputTests(unittest.TestCase):
    def test_times(self) -> None:
        self.assertEqual(eddy.to_seconds("1970-01-02"), 86_400.0)
        self.assertEqual(eddy.to_seconds("2013-01-01T06:00:00Z"), 1_357_020_000.0)
        self.assertEqual(eddy.to_seconds("2013-01-01 06:00"), 1_357_020_000.0)
        self.assertEqual(eddy.to_seconds("2013-01-01T08:00:00+02:00"), 1_357_020_000.0)
        self.assertEqual(eddy.to_seconds(np.datetime64("2013-01-01T06:00")), 1_357_020_000.0)
        self.assertEqual(eddy.to_seconds(dt.datetime(2013, 1, 1, 6)), 1_357_020_000.0)
        self.assertEqual(eddy.to_seconds(12.5), 12.5)
        with self.assertRaises(ValueError):
            eddy.to_seconds("yesterday")

    def test_calendar(self) -> None:
        s, c = eddy.calendar_values("hour", 6 * 3600)
        self.assertAlmostEqual(s, 1.0, places=15)
        self.assertAlmostEqual(c, 0.0, places=15)
        s, c = eddy.calendar_values("hour", -6 * 3600)     # before 1970: the phase wraps into [0, 1)
        self.assertAlmostEqual(s, -1.0, places=15)

    def test_shapes_are_checked(self) -> None:
        m = eddy.load(corpus("tiny.safetensors"))
        with self.assertRaises(ValueError):
            m.forecast(np.zeros((1, 3)), 2)
        with self.assertRaises(ValueError):
            m.forecast(np.zeros((0, 2)), 2)
        with self.assertRaises(ValueError):
            m.forecast(np.full((1, 2), np.nan), 2)
        f = m.forecast(np.zeros((5, 2)), 4)
        self.assertEqual(f.shape, (4, 2))
        np.testing.assert_allclose(m.forecast_batch(np.zeros((3, 1, 2)), 4)[1], f, rtol=1e-13, atol=1e-15)


class AngleAndGridTests(unittest.TestCase):
    def model(self, variables, angles=()) -> eddy.Model:
        m = eddy.load(corpus("tiny.safetensors"))
        meta = dict(m.metadata, variables=list(variables), shaping={"angles": list(angles), "calendar": [], "inputs": []})
        return eddy.Model(meta, m.tensors)

    def test_degrees_round_trip(self) -> None:
        m = self.model(["temp", "dir_sin@EWR", "dir_cos@EWR", "dir_sin", "dir_cos"], angles=["dir"])
        self.assertEqual(m.raw_variables, ["temp", "dir@EWR", "dir"])
        raw = np.array([[10.0, 350.0, 90.0], [11.0, 0.0, 180.0]])
        back = m.to_degrees(m.from_degrees(raw))
        np.testing.assert_allclose(np.where(back > 359.999, back - 360, back), raw, atol=1e-12)

    def test_grid(self) -> None:
        names = [f"q[lat={lat}:lon={lon}]" for lat in (-10, 10) for lon in (0, 90, 180)] + ["p"]
        m = self.model(names)
        values = np.arange(2 * 7, dtype=float).reshape(2, 7)
        g = m.grid(values)
        self.assertEqual(g["q"][0].shape, (2, 2, 3))
        np.testing.assert_array_equal(g["q"][1]["lon"], [0, 90, 180])
        self.assertEqual(g["q"][0][1, 1, 2], values[1, 5])
        self.assertEqual(g["p"][0].shape, (2,))


if __name__ == "__main__":
    unittest.main()
