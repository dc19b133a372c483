"""The README and docs/ stay true: every path they name exists, every link resolves, the README stays short."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# a repository path in backticks: a top-level folder of ours, then a file name with an extension
PATH = re.compile(r"`((?:jobs|pipelines|tests|bench|scripts|conf|expectations|docs)/"
                  r"[A-Za-z0-9_./-]+\.(?:py|yaml|json|md|txt|sh))")
FUNCTION = re.compile(r"`((?:jobs|pipelines)/[a-z_/]+\.py):([A-Za-z_]+)`")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_path_and_function_a_page_names_exists(page):
    text = page.read_text()
    named = {p for p in PATH.findall(text) if "*" not in p and not p.startswith("bench/results/")}  # outputs
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"{page.name} names paths that do not exist: {missing}"
    gone = [f"{p}:{fn}" for p, fn in FUNCTION.findall(text)
            if not re.search(rf"^\s*def {fn}\b|^{fn} = ", (ROOT / p).read_text(), re.M)]
    assert not gone, f"{page.name} names functions that do not exist: {gone}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text())
    broken = [t for t in links if not t.startswith(("http://", "https://")) and not (page.parent / t).exists()]
    assert not broken, f"{page.name} links to missing files: {broken}"


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
