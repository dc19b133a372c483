"""Make Great Expectations' Data Docs readable without the internet.

GX's page templates load Bootstrap, jQuery, Font Awesome, Vega and friends from
public CDNs, so on a machine that cannot reach them a page renders unstyled and
the index's table of runs stays empty. jobs/fetch_docs_assets.py downloads
those files once from the npm registry into .cache/docs_assets, with a
manifest.json (CDN URL -> file, and every file to copy). ``make_offline``
copies them into <site>/static/vendor and points the pages at them with
relative links, which work from file:// as well as from a web server.

Usage, after ``ctx.build_data_docs``::

    since = time.time()            # taken before the build
    ctx.build_data_docs(...)
    make_offline(site, pages_since(site, since))
"""
from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from jobs.runtime.config import REPO_ROOT

log = logging.getLogger("ctr.docs_assets")

CACHE_DIR = REPO_ROOT / ".cache" / "docs_assets"
MANIFEST = "manifest.json"
VENDOR = Path("static") / "vendor"
# The navbar logo comes from GX's S3 bucket with a per-build query string; every
# site already holds the same image in static/images, which GX copies there.
GX_IMAGE = re.compile(rb"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/"
                      rb"([\w.-]+)(?:\?[^\"'\s]*)?(?=[\"'])")
TAG = re.compile(rb"<(?:script|link)\b[^>]*>", re.I)
# GX asks for popper and bootstrap.js with crossorigin="anonymous" and their
# CDN's integrity: a browser refuses such a script from file:// (no CORS there).
# The files are the same bytes, fetched against pinned hashes; the tag drops both.
CORS_ATTRS = re.compile(rb"""\s+(?:integrity|crossorigin)(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]*))?""", re.I)
# File times come from the kernel's coarse clock, which can lag time.time() by
# a few milliseconds, and some file systems keep whole (even 2 s) seconds.
MTIME_SLACK_SECONDS = 2.0


def local_path(uri: str) -> Path | None:
    """The local path a site dir or page names (a path or a file:// URI); None for s3:// and other stores."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    return None if parsed.scheme else Path(uri)


def pages_since(site_dir: str, since: float) -> list[str]:
    """The site's HTML pages written at or after ``since`` (a time.time() taken before build_data_docs).

    By modification time rather than from GX's resource identifiers: it needs no
    GX internals (how an identifier maps to a page's path) and takes index.html,
    which every build rewrites, along with the validation pages just built. A
    page written up to MTIME_SLACK_SECONDS earlier is taken too, which costs
    nothing: make_offline leaves a page without CDN links untouched. [] for a
    site that is not on the local file system.
    """
    site = local_path(site_dir)
    if site is None or not site.is_dir():
        return []
    cutoff, found = since - MTIME_SLACK_SECONDS, []
    for folder, dirs, files in os.walk(site):
        if Path(folder) == site:
            dirs[:] = [d for d in dirs if d != "static"]
        for name in (n for n in files if n.endswith(".html")):
            path = os.path.join(folder, name)
            try:
                if os.stat(path).st_mtime >= cutoff:
                    found.append(path)
            except FileNotFoundError:  # removed since the walk listed it
                pass
    return sorted(found)


def make_offline(site_dir: str, pages: Iterable[str] | None = None) -> int:
    """Vendor the cached CDN assets into <site_dir>/static/vendor and relink ``pages`` to them.

    ``pages``: HTML files of the site (paths or file:// URIs); None rewrites every
    page, which on a large site is slow - pass index.html and the pages just
    built (``pages_since``). Files already in static/vendor are not copied again,
    and a page with no CDN link left is not rewritten. Returns the number of
    pages rewritten: 0 for a site not on the local file system (s3:// ...), and
    with one warning when the cache is missing. Never raises for I/O: Data Docs
    with CDN links still work where there is internet.
    """
    site = local_path(site_dir)
    if site is None:
        return 0
    manifest = _manifest(CACHE_DIR)
    if manifest is None:
        _warn_missing(str(CACHE_DIR / MANIFEST))
        return 0
    site = site.resolve()
    try:
        vendored = _vendor(CACHE_DIR, manifest.get("files", []), site / VENDOR)
        targets = {url.encode(): site / VENDOR / rel for url, rel in manifest.get("urls", {}).items()
                   if rel in vendored}
        # Bytes, not text, so a page's encoding need not be known; longest first, so
        # that no URL is cut short by another that begins it.
        urls = b"|".join(re.escape(u) for u in sorted(targets, key=len, reverse=True))
        cdn = re.compile(rb"(?<=[\"'])(?:" + urls + rb")(?=[\"'])") if targets else None
        pages = pages_since(str(site), float("-inf")) if pages is None else pages
        paths = [p.resolve() for p in map(local_path, pages) if p is not None]
        return sum(_rewrite(page, site, cdn, targets) for page in paths)
    except OSError as err:
        log.warning("could not point the Data Docs in %s at local assets: %s", site, err)
        return 0


def _manifest(cache: Path) -> dict | None:
    try:
        return json.loads((cache / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@functools.cache
def _warn_missing(manifest: str) -> None:
    """Once per process: every gate would otherwise repeat it."""
    log.warning("no %s (`make jars` fetches it): Data Docs keep their CDN links and need the internet to render",
                manifest)


def _vendor(cache: Path, files: list[str], dest: Path) -> set[str]:
    """Copy the cache's files missing from ``dest``; the relative paths now in ``dest``."""
    present = set()
    for rel in files:
        target = dest / rel
        if not target.is_file():
            if not (cache / rel).is_file():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = _temporary(target)
            shutil.copyfile(cache / rel, tmp)
            os.replace(tmp, target)  # a concurrent gate or a kill never leaves half a file
        present.add(rel)
    return present


def _rewrite(page: Path, site: Path, cdn: re.Pattern | None, targets: dict[bytes, Path]) -> int:
    """Point one page's CDN links at ``targets`` and GX's logo at static/images; 1 if the page changed."""
    try:
        text = page.read_bytes()
    except FileNotFoundError:
        return 0
    relative = lambda target: Path(os.path.relpath(target, page.parent)).as_posix().encode()

    def logo(m: re.Match) -> bytes:
        image = site / "static" / "images" / m[1].decode()
        return relative(image) if image.is_file() else m[0]

    def tag(m: re.Match) -> bytes:
        relinked = cdn.sub(lambda u: relative(targets[u[0]]), m[0])
        return relinked if relinked == m[0] else CORS_ATTRS.sub(b"", relinked)

    new = TAG.sub(tag, text) if cdn else text
    new = GX_IMAGE.sub(logo, new)
    if new == text:
        return 0
    tmp = _temporary(page)
    tmp.write_bytes(new)
    os.replace(tmp, page)
    return 1


def _temporary(path: Path) -> Path:
    """A name beside ``path`` that no other process or thread writes: gates may run side by side."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
