"""Data Docs offline: CDN links relinked to vendored copies, and the npm fetch behind them (no Spark, no network)."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import re
import tarfile
import urllib.error
from pathlib import Path

import pytest

from jobs import fetch_docs_assets as fetch
from jobs.runtime import docs_assets

BOOTSTRAP_CSS = "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"
BOOTSTRAP_JS = "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js"
VEGA = "https://cdn.jsdelivr.net/npm/vega@5"
VEGA_LITE = "https://cdn.jsdelivr.net/npm/vega-lite@5"
FONT_AWESOME = "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css"
NOT_CACHED = "https://code.jquery.com/jquery-3.7.1.min.js"
LOGO = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=20261206T211310Z&dataContextId=9"

PAGE = f"""<html><head>
<link rel="stylesheet" href="{BOOTSTRAP_CSS}"/>
<link rel="stylesheet" href='{FONT_AWESOME}'>
</head><body>
<img src="{LOGO}" alt="Great Expectations"/>
<a href="https://greatexpectations.io">Great Expectations</a>
<script src="{VEGA}"></script>
<script src="{VEGA_LITE}"></script>
<script src="{NOT_CACHED}"></script>
<script src="{BOOTSTRAP_JS}" integrity="sha384-JjSm" crossorigin="anonymous"></script>
</body></html>
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A docs-asset cache as jobs/fetch_docs_assets.py leaves it, minus jQuery."""
    root = tmp_path / "cache"
    urls = {BOOTSTRAP_CSS: "bootstrap-4.3.1/dist/css/bootstrap.min.css",
            BOOTSTRAP_JS: "bootstrap-4.3.1/dist/js/bootstrap.min.js",
            VEGA: "vega-5.33.1/build/vega.min.js",
            VEGA_LITE: "vega-lite-5.23.0/build/vega-lite.min.js",
            FONT_AWESOME: "fontawesome-free-6.6.0/css/all.min.css"}
    files = [*urls.values(), "fontawesome-free-6.6.0/webfonts/fa-solid-900.woff2"]
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"/* {rel} */")
    (root / docs_assets.MANIFEST).write_text(json.dumps({"urls": urls, "files": files}))
    monkeypatch.setattr(docs_assets, "CACHE_DIR", root)
    return root


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "local_site"
    for page in (root / "index.html", root / "validations" / "a" / "b" / "page.html"):
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(PAGE)
    (root / "static" / "images").mkdir(parents=True)
    (root / "static" / "images" / "logo-long.png").write_bytes(b"png")
    return root


def links(page: Path) -> list[str]:
    return re.findall(r"""(?:href|src)=["']([^"']+)["']""", page.read_text())


def test_pages_are_relinked_to_vendored_files_relative_to_each_page(cache, site):
    index, nested = site / "index.html", site / "validations" / "a" / "b" / "page.html"

    assert docs_assets.make_offline(str(site), [str(index), f"file://{nested}"]) == 2

    assert links(index) == ["static/vendor/bootstrap-4.3.1/dist/css/bootstrap.min.css",
                            "static/vendor/fontawesome-free-6.6.0/css/all.min.css",
                            "static/images/logo-long.png",
                            "https://greatexpectations.io",
                            "static/vendor/vega-5.33.1/build/vega.min.js",
                            "static/vendor/vega-lite-5.23.0/build/vega-lite.min.js",
                            NOT_CACHED,
                            "static/vendor/bootstrap-4.3.1/dist/js/bootstrap.min.js"]
    up = "../../../"
    assert links(nested) == [f"{up}static/vendor/bootstrap-4.3.1/dist/css/bootstrap.min.css",
                             f"{up}static/vendor/fontawesome-free-6.6.0/css/all.min.css",
                             f"{up}static/images/logo-long.png",
                             "https://greatexpectations.io",
                             f"{up}static/vendor/vega-5.33.1/build/vega.min.js",
                             f"{up}static/vendor/vega-lite-5.23.0/build/vega-lite.min.js",
                             NOT_CACHED,
                             f"{up}static/vendor/bootstrap-4.3.1/dist/js/bootstrap.min.js"]
    for page in (index, nested):
        local = [href for href in links(page) if not href.startswith("https://")]
        assert all((page.parent / href).is_file() for href in local), local
        # a browser refuses a crossorigin script from file://; the SRI goes with it
        assert "crossorigin" not in page.read_text() and "integrity" not in page.read_text()
    # the webfonts Font Awesome's CSS loads as ../webfonts/ are copied beside it
    assert (site / "static/vendor/fontawesome-free-6.6.0/webfonts/fa-solid-900.woff2").is_file()


def test_a_second_run_copies_and_rewrites_nothing(cache, site):
    assert docs_assets.make_offline(str(site)) == 2  # None: every page
    vendored = site / "static/vendor/vega-5.33.1/build/vega.min.js"
    vendored.write_text("already here")
    before = (site / "index.html").read_text()

    assert docs_assets.make_offline(str(site)) == 0
    assert vendored.read_text() == "already here"
    assert (site / "index.html").read_text() == before


def test_only_the_given_pages_are_rewritten(cache, site):
    assert docs_assets.make_offline(f"file://{site}", [str(site / "index.html")]) == 1
    assert BOOTSTRAP_CSS in (site / "validations/a/b/page.html").read_text()


def test_a_site_off_the_local_file_system_is_left_alone(cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    assert docs_assets.make_offline("s3://bucket/gx/local_site", ["s3://bucket/gx/local_site/index.html"]) == 0
    assert docs_assets.pages_since("s3://bucket/gx/local_site", 0.0) == []
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_without_the_cache_pages_keep_their_cdn_links_and_one_warning_says_so(site, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(docs_assets, "CACHE_DIR", tmp_path / "never_fetched")
    with caplog.at_level(logging.WARNING, logger="ctr.docs_assets"):
        assert docs_assets.make_offline(str(site)) == 0
        assert docs_assets.make_offline(str(site)) == 0
    assert len(caplog.records) == 1 and "need the internet" in caplog.records[0].getMessage()
    assert (site / "index.html").read_text() == PAGE
    assert not (site / "static" / "vendor").exists()


def test_pages_since_finds_the_pages_written_at_or_after_a_time_and_not_static_files(site):
    since = 1_800_000_000.0
    fresh, old = site / "validations/a/b/page.html", site / "validations/a/old.html"
    old.write_text(PAGE)
    (site / "static" / "notes.html").write_text("not a page of results")
    for path, mtime in [(site / "index.html", since + 5), (fresh, since), (old, since - 60),
                        (site / "static" / "notes.html", since + 5)]:
        os.utime(path, (mtime, mtime))

    assert docs_assets.pages_since(str(site), since) == [str(site / "index.html"), str(fresh)]


# -- jobs/fetch_docs_assets.py, with the registry replaced by a tarball made here


def tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@pytest.fixture
def registry(monkeypatch):
    """One npm package whose tarball a fake download serves; the URLs it was asked for."""
    data = tarball({"css/all.min.css": b"@font-face{src:url(../webfonts/fa.woff2)}",
                    "webfonts/fa.woff2": b"font", "js/all.js": b"not wanted", "../../escape.css": b"x"})
    package = fetch.Package("@fortawesome/fontawesome-free", "6.6.0", integrity(data),
                            {"css/all.min.css": (FONT_AWESOME,), "webfonts/": ()})
    asked = []
    monkeypatch.setattr(fetch, "PACKAGES", (package,))
    monkeypatch.setattr(fetch, "download", lambda url: asked.append(url) or data)
    return asked


def test_fetch_unpacks_the_wanted_files_once_and_maps_their_urls(registry, tmp_path, site, monkeypatch, capsys):
    assert fetch.main(tmp_path / "cache") == 0
    assert fetch.main(tmp_path / "cache") == 0

    assert registry == ["https://registry.npmjs.org/@fortawesome/fontawesome-free/-/fontawesome-free-6.6.0.tgz"]
    assert "already cached" in capsys.readouterr().out.splitlines()[-1]
    manifest = json.loads((tmp_path / "cache" / fetch.MANIFEST).read_text())
    assert manifest == {"urls": {FONT_AWESOME: "fontawesome-free-6.6.0/css/all.min.css"},
                        "files": ["fontawesome-free-6.6.0/css/all.min.css", "fontawesome-free-6.6.0/webfonts/fa.woff2"]}
    assert not list(tmp_path.rglob("escape.css")) and not list(tmp_path.rglob("all.js"))

    monkeypatch.setattr(docs_assets, "CACHE_DIR", tmp_path / "cache")
    assert docs_assets.make_offline(str(site), [str(site / "index.html")]) == 1
    assert "static/vendor/fontawesome-free-6.6.0/css/all.min.css" in links(site / "index.html")


def test_fetch_without_the_registry_says_so_in_one_line_and_exits_0(tmp_path, monkeypatch, capsys):
    def offline(url):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(fetch, "download", offline)
    assert fetch.main(tmp_path / "cache") == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "Data Docs will need the internet" in out[0]
    assert not (tmp_path / "cache" / fetch.MANIFEST).exists()


def test_fetch_refuses_a_tarball_that_does_not_match_its_pinned_hash(registry, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fetch, "download", lambda url: tarball({"css/all.min.css": b"tampered"}))
    assert fetch.main(tmp_path / "cache") == 0
    assert "does not match its pinned sha512" in capsys.readouterr().out
    assert not (tmp_path / "cache" / "fontawesome-free-6.6.0").exists()
