"""Download the CSS, JS and fonts Great Expectations' Data Docs load from CDNs, once, into .cache/docs_assets.

Run by `make jars`. GX's pages link Bootstrap, jQuery, Font Awesome, Vega and
more on public CDNs, so without the internet they render unstyled and the
index's table stays empty. The same files are in the packages' npm tarballs:
this takes the few files the pages use out of each (checked against its pinned
sha512) and writes manifest.json - which CDN URL is which file, and every file
to copy - for jobs/runtime/docs_assets.py to vendor into each site. A package
already unpacked is not fetched again. Without the npm registry it says so in
one line and exits 0: the pipeline runs as before, its Data Docs keep their CDN
links and need the internet to render.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from jobs.runtime.docs_assets import CACHE_DIR, MANIFEST

REGISTRY = "https://registry.npmjs.org"
TIMEOUT_SECONDS = 20  # per socket read: a firewalled registry must not hold up `make` long
DONE = ".files.json"  # written last in a package's folder: the files unpacked there


@dataclass(frozen=True)
class Package:
    """An npm tarball, and the files the Data Docs take from it: path in the package -> the CDN URLs it serves.

    A path ending in "/" takes the whole folder (Font Awesome's webfonts, which its
    CSS loads as ../webfonts/...); the package's layout is kept so such links work.
    """
    name: str
    version: str
    integrity: str  # npm's dist.integrity of the tarball
    files: dict[str, tuple[str, ...]]

    @property
    def folder(self) -> str:
        return f"{self.name.rsplit('/', 1)[-1]}-{self.version}"

    @property
    def tarball(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"


UNPKG_TABLE = "https://unpkg.com/bootstrap-table@"
FILTER_CONTROL = "dist/extensions/filter-control/bootstrap-table-filter-control"
# The URLs of great_expectations/render/view/templates (GX 1.24). The pages ask
# for bootstrap-table's filter-control CSS at 1.19.0 and all else at 1.19.1:
# the two releases' CSS differ only in the version in the banner, so 1.19.1
# serves both. jsDelivr answers vega@5 (and vega-lite@5, vega-embed@6) with the
# newest release's build/*.min.js; these are the newest at the time of writing.
PACKAGES = (
    Package("bootstrap", "4.3.1",
            "sha512-rXqOmH1VilAt2DyPzluTi2blhk17bO7ef+zLLPlWvG494pDxcM234pJ8wTc/6R40UWizAIIMgxjvxZg5kmsbag==",
            {"dist/css/bootstrap.min.css": ("https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css",),
             "dist/js/bootstrap.min.js": ("https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js",)}),
    Package("bootstrap-table", "1.19.1",
            "sha512-WvV+l1AI/C+zThaKmfHmi/IuayVNB0qdFyEhFx1jyZhO0oLtNJNANkCR3rvJf6Dkh72dsLElxpE/bzK9seEQLA==",
            {"dist/bootstrap-table.min.css": (f"{UNPKG_TABLE}1.19.1/dist/bootstrap-table.min.css",),
             "dist/bootstrap-table.min.js": (f"{UNPKG_TABLE}1.19.1/dist/bootstrap-table.min.js",),
             f"{FILTER_CONTROL}.min.js": (f"{UNPKG_TABLE}1.19.1/{FILTER_CONTROL}.min.js",),
             f"{FILTER_CONTROL}.css": (f"{UNPKG_TABLE}1.19.0/{FILTER_CONTROL}.css",),
             f"{FILTER_CONTROL}.min.css": (f"{UNPKG_TABLE}1.19.0/{FILTER_CONTROL}.min.css",)}),
    Package("jquery", "3.7.1",
            "sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizgkpLfg==",
            {"dist/jquery.min.js": ("https://code.jquery.com/jquery-3.7.1.min.js",)}),
    Package("popper.js", "1.12.9",
            "sha512-s0EEi9xiSCdqz9lV4IiVH5yIZnDX/U1t0tCjB+0jXx9jW8lrR7kOpVupiUg175ogqVoudpDXHF1p6dKATCHMeg==",
            {"dist/umd/popper.min.js": ("https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js",)}),
    Package("@fortawesome/fontawesome-free", "6.6.0",
            "sha512-60G28ke/sXdtS9KZCpZSHHkCbdsOGEhIUGlwq6yhY74UpTiToIh8np7A8yphhM4BWsvNFtIvLpi4co+h9Mr9Ow==",
            {"css/all.min.css": ("https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css",),
             "webfonts/": ()}),
    Package("bootstrap-datepicker", "1.9.0",
            "sha512-9rYYbaVOheGYxjOr/+bJCmRPihfy+LkLSg4fIFMT9Od8WwWB/MB50w0JO1eBgKUMbb7PFHQD5uAfI3ArAxZRXA==",
            {"dist/css/bootstrap-datepicker.min.css":
                 ("https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css",),
             "dist/js/bootstrap-datepicker.min.js":
                 ("https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js",)}),
    Package("vega", "5.33.1",
            "sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw==",
            {"build/vega.min.js": ("https://cdn.jsdelivr.net/npm/vega@5",)}),
    Package("vega-lite", "5.23.0",
            "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==",
            {"build/vega-lite.min.js": ("https://cdn.jsdelivr.net/npm/vega-lite@5",)}),
    Package("vega-embed", "6.29.0",
            "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==",
            {"build/vega-embed.min.js": ("https://cdn.jsdelivr.net/npm/vega-embed@6",)}),
    Package("@forevolve/bootstrap-dark", "1.1.0",
            "sha512-A3ucpEpxPoTVO490lZZCfjPXxv832l7mm1IxX3bXyxvgwnPGXDLyh7dWrphXKO8YBAu3EswbBEu3VSW8NRMW3A==",
            {"dist/css/bootstrap-prefers-dark.css":
                 ("https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css",)}),
)


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        return response.read()


def unpack(package: Package, tarball: bytes, cache: Path) -> list[str]:
    """The package's files written under cache/<folder>; their paths relative to cache."""
    algorithm, _, expected = package.integrity.partition("-")
    if base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode() != expected:
        raise ValueError(f"{package.tarball} does not match its pinned {algorithm}")
    folder, written = cache / package.folder, set()
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for member in tar.getmembers():
            path = PurePosixPath(*PurePosixPath(member.name).parts[1:])  # npm's top folder, usually package/
            wanted = any(str(path) == f or (f.endswith("/") and str(path).startswith(f)) for f in package.files)
            if not member.isfile() or not wanted or ".." in path.parts:
                continue
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            written.add(f"{package.folder}/{path}")
    missing = [f for f in package.files if not any(w.startswith(f"{package.folder}/{f}") for w in written)]
    if missing:
        raise ValueError(f"{package.tarball} has no {', '.join(missing)}")
    (folder / DONE).write_text(json.dumps(sorted(written)), encoding="utf-8")
    return sorted(written)


def cached(package: Package, cache: Path) -> list[str] | None:
    try:
        return json.loads((cache / package.folder / DONE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_manifest(cache: Path, files: dict[str, list[str]]) -> None:
    """CDN URL -> file, for the packages in ``files`` (package folder -> its files), and every file to copy."""
    urls = {url: f"{p.folder}/{path}" for p in PACKAGES if p.folder in files
            for path, served in p.files.items() for url in served}
    manifest = {"urls": dict(sorted(urls.items())), "files": sorted(f for fs in files.values() for f in fs)}
    tmp = cache / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, cache / MANIFEST)


def main(cache: Path = CACHE_DIR) -> int:
    cache.mkdir(parents=True, exist_ok=True)
    files, fetched, size = {}, 0, 0
    try:
        for package in PACKAGES:
            present = cached(package, cache)
            if present is None:
                tarball = download(package.tarball)
                present = unpack(package, tarball, cache)
                fetched, size = fetched + 1, size + len(tarball)
            files[package.folder] = present
    except (OSError, ValueError, tarfile.TarError) as err:  # URLError and timeouts are OSErrors
        print(f"could not fetch the Data Docs assets from the npm registry ({err}): "
              f"Data Docs will need the internet to render")
        return 0
    finally:
        if files:  # what was fetched serves, even if not all was
            write_manifest(cache, files)
    if fetched:
        print(f"fetched {fetched} npm packages ({size / 1e6:.1f} MB) for Data Docs into {cache}")
    else:
        print(f"Data Docs assets already cached in {cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
