"""What every row of the reliability suite shares: its data, its clean reference run, its result type.

The suite works in one folder (``--root``, default data/reliability). It
generates a few small days once (``suite.yaml``: the test fixture's volumes),
runs them cleanly in this process to get the reference state (order-independent
table checksums, gate baselines and run reports, jobs/runtime/checksums.py), and hands
each row a fresh copy of the warehouse it needs. Rows that must kill or time a
real job start ``python -m jobs.dev.faults`` (jobs/nightly.py under a kill harness) as its own process
(jobs/dev/faults.py ``nightly_process``), with the same small Spark settings as
this process so that results compare exactly.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pyspark.sql import SparkSession

from jobs.dev import faults
from jobs.dev.generate import run_generate
from jobs.runtime import checksums, hooks
from jobs.runtime.config import REPO_ROOT, load_config
from jobs.stages.nightly import run_nightly
from pipelines.config import AppConfig

log = logging.getLogger("ctr.reliability")

SUITE_YAML = Path(__file__).with_name("suite.yaml")


@dataclass
class Result:
    """One row of the table: did it pass, its figure (what the issue asks to see), and how it was measured."""

    row: int
    name: str
    passed: bool
    figure: str
    detail: str = ""
    seconds: float = 0.0
    data: dict = field(default_factory=dict)


@dataclass
class Reference:
    """A clean run of the generated days: its config, the days, and the state after each night."""

    cfg: AppConfig
    days: list[date]
    state_after: dict[date, dict]          # warehouse_state after each night
    copy_after: dict[date, Path]           # a copy of the warehouse after each night but the last
    writes: dict[date, list[tuple[str, int, str]]]  # each night's writes (stage, number, what): where kills land


class Suite:
    def __init__(self, spark: SparkSession, root: Path, seed: int = 20261124):
        self.spark, self.root, self.seed = spark, root.resolve(), seed
        self._reference: Reference | None = None
        self.options: dict = {}  # run.py's command-line choices (kills, load volumes)

    # --- configs and folders -------------------------------------------------------------------------
    def config(self, name: str, landing: Path | None = None, overrides: dict | None = None) -> AppConfig:
        """The suite's config with its own warehouse ``<root>/<name>/warehouse`` (and landing, by default
        the shared generated one)."""
        base = self.root / name
        paths = {"landing": str(landing or self.root / "base" / "landing"), "warehouse": str(base / "warehouse")}
        return load_config("local", [str(SUITE_YAML)], {"paths": paths, **(overrides or {})})

    def fresh_dir(self, name: str) -> Path:
        path = self.root / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    # --- the clean reference ---------------------------------------------------------------------------
    def reference(self) -> Reference:
        """Generate the days once and run them cleanly; every row compares against this.

        Kept in ``<root>/base`` with the version of the code it was made by
        (``code_version``): a later suite run on the same code reuses it instead
        of spending three nights on it.
        """
        if self._reference is None:
            cached = self.root / "base" / "reference.json"
            key = code_version()
            saved = json.loads(cached.read_text()) if cached.exists() else {}
            if saved.get("code_version") == key:
                self._reference = _load_reference(saved, self.config("base"))
                log.info("reference: reusing the clean run in %s (same code)", cached.parent)
                return self._reference
            started = time.monotonic()
            self.fresh_dir("base")
            cfg = self.config("base")
            days = [date.fromisoformat(d) for d in sorted(run_generate(self.spark, cfg, overwrite=True))]
            state_after, copy_after, writes = {}, {}, {}
            for i, day in enumerate(days):
                log_file = self.root / "base" / f"writes-{day}.tsv"
                listing = faults.Killer(None, str(log_file))   # kills nothing: lists the writes
                hooks.add(listing)
                try:
                    run_nightly(self.spark, cfg, day)
                finally:
                    hooks.remove(listing)
                writes[day] = [(stage, int(n), what) for stage, n, what in
                               (line.split("\t", 2) for line in log_file.read_text().splitlines())]
                state_after[day] = checksums.warehouse_state(self.spark, cfg.paths.warehouse)
                if i < len(days) - 1:
                    # Great Expectations' project is a cache of suites and docs; each copy builds its own.
                    copy_after[day] = self.root / "base" / f"after-{day}"
                    shutil.copytree(cfg.paths.warehouse, copy_after[day], ignore=shutil.ignore_patterns("gx"))
            self._reference = Reference(cfg, days, state_after, copy_after, writes)
            cached.write_text(json.dumps({"code_version": key, "days": [d.isoformat() for d in days],
                                          "state_after": {d.isoformat(): v for d, v in state_after.items()},
                                          "copy_after": {d.isoformat(): str(v) for d, v in copy_after.items()},
                                          "writes": {d.isoformat(): v for d, v in writes.items()}}))
            log.info("reference: %d clean nights in %.0fs", len(days), time.monotonic() - started)
        return self._reference

    def warehouse_after(self, day: date, name: str) -> AppConfig:
        """A config whose warehouse is a fresh copy of the reference warehouse after night ``day``."""
        ref = self.reference()
        cfg = self.config(name)
        shutil.rmtree(Path(cfg.paths.warehouse).parent, ignore_errors=True)
        shutil.copytree(ref.copy_after[day], cfg.paths.warehouse)
        return cfg

    # --- runs ------------------------------------------------------------------------------------------
    def nightly_process(self, cfg: AppConfig, day: date, kill_at: str | None = None, timeout: float = 1200,
                        extra_configs: tuple[str, ...] = ()):
        return faults.nightly_process(day, cfg.paths.landing, cfg.paths.warehouse,
                                      [str(SUITE_YAML), *extra_configs], kill_at, timeout)

    def state(self, cfg: AppConfig, moved_landing: bool = False) -> dict:
        """The warehouse's state; with ``moved_landing`` (a copy of the landing data elsewhere) without the
        columns naming landing files, which then differ from the reference's."""
        exclude = {**checksums.RUN_SPECIFIC, **(checksums.LANDING_PATHS if moved_landing else {})}
        return checksums.warehouse_state(self.spark, cfg.paths.warehouse, exclude)


def code_version() -> str:
    """What the reference run depends on: the content of the code, the configs, the suites and suite.yaml."""
    digest = hashlib.sha256(SUITE_YAML.read_bytes())
    for folder in ("jobs", "pipelines", "conf", "expectations"):
        for path in sorted((REPO_ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".yaml", ".json", ".txt"):
                digest.update(str(path.relative_to(REPO_ROOT)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _load_reference(data: dict, cfg: AppConfig) -> Reference:
    day = date.fromisoformat
    return Reference(cfg, [day(d) for d in data["days"]],
                     {day(d): v for d, v in data["state_after"].items()},
                     {day(d): Path(v) for d, v in data["copy_after"].items()},
                     {day(d): [tuple(w) for w in v] for d, v in data["writes"].items()})


def with_paths(cfg: AppConfig, **paths: str) -> AppConfig:
    return dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, **paths))


RowFn = Callable[[Suite], Result]
