"""A PEP 517 build backend with no dependencies, so ``pip install ./python`` works offline and in a fresh virtual
environment (setuptools without ``wheel`` cannot build a wheel). It packs ``eddy/*.py`` into a pure-Python wheel
with the fields of ``pyproject.toml``'s ``[project]`` table (name, version, description, requires-python,
dependencies)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _project() -> Dict[str, object]:
    text = open(os.path.join(HERE, "pyproject.toml"), encoding="utf-8").read()
    table = text.split("[project]", 1)[1].split("\n[", 1)[0]
    out: Dict[str, object] = {}
    for key in ("name", "version", "description", "requires-python"):
        m = re.search(rf'^{key}\s*=\s*"([^"]*)"', table, re.M)
        if m:
            out[key] = m.group(1)
    m = re.search(r"^dependencies\s*=\s*\[([^\]]*)\]", table, re.M)
    out["dependencies"] = re.findall(r'"([^"]+)"', m.group(1)) if m else []
    return out


def _metadata() -> str:
    p = _project()
    lines = ["Metadata-Version: 2.1", f"Name: {p['name']}", f"Version: {p['version']}"]
    if "description" in p:
        lines.append(f"Summary: {p['description']}")
    if "requires-python" in p:
        lines.append(f"Requires-Python: {p['requires-python']}")
    lines += [f"Requires-Dist: {d}" for d in p["dependencies"]]  # type: ignore[union-attr]
    readme = os.path.join(HERE, "README.md")
    if os.path.exists(readme):
        lines.append("Description-Content-Type: text/markdown")
        return "\n".join(lines) + "\n\n" + open(readme, encoding="utf-8").read()
    return "\n".join(lines) + "\n"


def _dist() -> str:
    p = _project()
    return f"{re.sub(r'[-_.]+', '_', str(p['name']))}-{p['version']}"


def _files() -> List[str]:
    root = os.path.join(HERE, "eddy")
    return sorted(os.path.join("eddy", f) for f in os.listdir(root) if f.endswith(".py"))


def get_requires_for_build_wheel(config_settings: Optional[dict] = None) -> List[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[dict] = None) -> List[str]:
    return []


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(wheel_directory: str, config_settings: Optional[dict] = None, metadata_directory: Optional[str] = None) -> str:
    dist = _dist()
    name = f"{dist}-py3-none-any.whl"
    info = f"{dist}.dist-info"
    entries = [(f, open(os.path.join(HERE, f), "rb").read()) for f in _files()]
    entries += [(f"{info}/METADATA", _metadata().encode()),
                (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: eddy_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
                (f"{info}/top_level.txt", b"eddy\n")]
    record = "\n".join([_record_line(n, d) for n, d in entries] + [f"{info}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in entries + [(f"{info}/RECORD", record.encode())]:
            z.writestr(n, d)
    return name


def build_sdist(sdist_directory: str, config_settings: Optional[dict] = None) -> str:
    dist = _dist()
    name = f"{dist}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as t:
        for f in _files() + ["pyproject.toml", "README.md", "_build/eddy_build.py"]:
            t.add(os.path.join(HERE, f), arcname=f"{dist}/{f}")
        data = _metadata().encode()
        ti = tarfile.TarInfo(f"{dist}/PKG-INFO")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    return name
