"""Shared by the Python parts of the scripts in Scripts/ (they run with PYTHONPATH set to this folder)."""
import json
import os


def write_json(out):
    """Writes `out` to $JSON_OUT (the script's --json FILE or BENCH_JSON) when one is given, and says what it did."""
    path = os.environ.get("JSON_OUT")
    if path:
        with open(path, "w") as f:
            f.write(json.dumps(out, indent=1) + "\n")
        print(f"\nJSON written to {path}")
    else:
        print("\n(no --json FILE / BENCH_JSON given; JSON not written)")
