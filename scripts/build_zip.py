"""Zip the project's Python packages for spark-submit --py-files.

    python scripts/build_zip.py [dist/ctr_jobs.zip]

Executors import ``jobs`` and ``pipelines`` (models scored in mapInPandas, the
LightGBM barrier task, the generator's functions) from this zip, as they would
on a cluster where the project is not installed. Only ``.py`` files go in, in
sorted order with a fixed timestamp, so the same sources give the same bytes.
"""
from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("jobs", "pipelines")
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def sources(root: Path = ROOT) -> list[Path]:
    """Every .py file of the packages, relative to ``root``; a folder without __init__.py is refused."""
    files = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            if not (path.parent / "__init__.py").is_file():
                raise ValueError(f"{path.parent} has no __init__.py: its modules would not import from the zip")
            files.append(path.relative_to(root))
    return files


def build(out: Path, root: Path = ROOT) -> list[str]:
    """Write the zip to ``out``; returns the names it holds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    names = [p.as_posix() for p in sources(root)]
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, (root / name).read_bytes())
    tmp.replace(out)
    return names


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist" / "ctr_jobs.zip"
    print(f"{target}: {len(build(target))} modules of {', '.join(PACKAGES)}")
