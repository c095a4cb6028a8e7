"""Wheels of the runtime dependencies, for installing Shoal's wheel into a clean virtual
environment where the package index cannot serve them all (an offline mirror lacking a few, or
no network at all).

Each wheel is repacked from the distribution installed in the interpreter running the tests:
the same files pip installed here, with a fresh RECORD. Only the closure of the requirements
the wheel under test declares (its extras left out) is repacked, so a runtime import of a
package it does not declare still fails in the clean environment.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata as metadata
import io
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Written by the installer, not part of a wheel.
_INSTALLER_FILES = ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD")


def declared_requirements(wheel: Path) -> list[Requirement]:
    """The wheel's Requires-Dist, those of its extras left out."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(name).decode()
    return _runtime([line.split(":", 1)[1].strip() for line in text.splitlines()
                     if line.startswith("Requires-Dist:")])  # fmt: skip


def _runtime(lines: list[str]) -> list[Requirement]:
    out = []
    for line in lines:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            out.append(req)
    return out


def closure(requirements: list[Requirement]) -> list[metadata.Distribution]:
    """The installed distributions those requirements need, transitively."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(requirements)
    while todo:
        req = todo.pop()
        key = canonicalize_name(req.name)
        if key in seen:
            continue
        dist = metadata.distribution(req.name)
        seen[key] = dist
        todo.extend(_runtime(dist.requires or []))
    return list(seen.values())


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def repack(dist: metadata.Distribution, into: Path) -> Path:
    """``dist`` as a wheel file in ``into``, built from its installed files."""
    name = canonicalize_name(dist.metadata["Name"]).replace("-", "_")
    wheel_text = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip().split("-") for line in wheel_text.splitlines()
            if line.startswith("Tag:")]  # fmt: skip
    # Several Tag lines (py2-none-any, py3-none-any) make one compressed tag (py2.py3-none-any).
    tag = "-".join(".".join(dict.fromkeys(t[i] for t in tags)) for i in range(3))
    target = into / f"{name}-{dist.version}-{tag}.whl"
    rows: list[tuple[str, str, str]] = []
    record_name = ""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in dist.files or []:
            rel = str(file)
            base = rel.rsplit("/", 1)[-1]
            if ".dist-info/" in rel and base == "RECORD":
                record_name = rel
            if (
                rel.startswith("..")
                or "__pycache__" in rel
                or (".dist-info/" in rel and base in _INSTALLER_FILES)
            ):
                continue  # scripts are made again from entry_points.txt by pip
            data = Path(str(file.locate())).read_bytes()
            zf.writestr(rel, data)
            rows.append((rel, _record_hash(data), str(len(data))))
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([*rows, (record_name, "", "")])
        zf.writestr(record_name, out.getvalue())
    return target


def build(wheel: Path, into: Path) -> list[Path]:
    """Repacked wheels of everything ``wheel`` needs at run time, in ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    return [repack(dist, into) for dist in closure(declared_requirements(wheel))]
