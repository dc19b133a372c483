"""Roll-back points: what a stage's quality gate restores, kept until the gate has decided.

Before a stage writes, ``begin`` records the Delta version of every table its
gate guards, and the volume baselines the gate will write, in
``<warehouse>/_quality/pending/<stage>/dt=<date>.json``; the gate restores the
tables on a critical failure (``restore``) and then, or once it has published,
removes the record (``finish``). A record left behind means a run died in between: the
re-run of that date undoes the attempt first (README "Re-runs, kills and
resuming").
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from jobs.runtime import storage
from jobs.runtime.layout import Warehouse
from pipelines.config import AppConfig

log = logging.getLogger("ctr.rollback")


def table_versions(spark: SparkSession, uris: Mapping[str, str]) -> dict[str, int | None]:
    """The current Delta version of each table, None for a table that does not exist yet.

    Read from the commit files' names (``_delta_log/<version>.json``): a folder
    listing, no Spark job.
    """
    out: dict[str, int | None] = {}
    for name, uri in uris.items():
        commits = [p.rsplit("/", 1)[1] for p in storage.glob(spark, f"{uri}/_delta_log/*.json")]
        versions = [int(c[:-5]) for c in commits if c[:-5].isdigit()]
        out[name] = max(versions) if versions else None
    return out


def restore(spark: SparkSession, uris: Mapping[str, str], versions: Mapping[str, int | None]) -> dict[str, Any]:
    """Put every table back at its recorded version; remove a table that did not exist."""
    now = table_versions(spark, uris)

    def one(name: str) -> str | None:
        before, uri = versions.get(name), uris[name]
        if before is None:
            # Also what a removal killed half-way left behind (a folder delete is not atomic).
            if not storage.exists(spark, uri):
                return None
            storage.delete(spark, uri)
            return "removed (the stage created it)"
        if now[name] == before:
            return None
        DeltaTable.forPath(spark, uri).restoreToVersion(before)
        return f"restored to version {before}"

    # Independent tables: their RESTOREs run as concurrent Spark jobs.
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(zip(uris, pool.map(one, uris)))
    return {name: what for name, what in done.items() if what}


def metrics_uri(wh: Warehouse, table: str, day: date) -> str:
    """A published partition's day metrics, the baseline of later days' volume checks."""
    return f"{wh.root}/_quality/metrics/{table}/dt={day.isoformat()}.json"


class UnfinishedRun(RuntimeError):
    """Another date's run stopped inside a stage before its gate decided; that date must be re-run first."""


def pending_uri(wh: Warehouse, stage: str, day: date) -> str:
    """The record of a stage's attempt on ``day`` whose gate has not decided yet (see ``begin``)."""
    return f"{wh.root}/_quality/pending/{stage}/dt={day.isoformat()}.json"


def pending(spark: SparkSession, wh: Warehouse) -> list[tuple[date, str]]:
    """(day, stage) of every stage attempt whose gate has not decided (a killed run's), by day."""
    found = []
    for p in storage.glob(spark, f"{wh.root}/_quality/pending/*/dt=*.json"):
        where, _, day = p.removesuffix(".json").rpartition("/dt=")
        found.append((date.fromisoformat(day), where.rsplit("/", 1)[1]))
    return sorted(found)


def read_files(spark: SparkSession, uris: Iterable[str]) -> dict[str, str | None]:
    """The text of each small file (volume baselines), None for one that does not exist: what ``put_back`` restores."""
    return {uri: storage.read_text(spark, uri) if storage.exists(spark, uri) else None for uri in uris}


def put_back(spark: SparkSession, saved: Mapping[str, str | None]) -> None:
    """Every file of ``read_files`` as it was: rewritten, or removed where there was none."""
    for uri, text in saved.items():
        if text is None:
            storage.delete(spark, uri)
        else:
            storage.write_text(spark, uri, text)


def begin(spark: SparkSession, cfg: AppConfig, stage: str, day: date, written: Mapping[str, str],
          partitions: Mapping[str, date] | None = None, report: bool = False) -> dict[str, int | None]:
    """The versions ``gate`` rolls back to, recorded in the warehouse before ``stage`` writes anything for ``day``.

    The record (``pending_uri``: the Delta versions of ``written`` and the volume
    baselines the gate will write, ``metrics_uri``, as they were) stays until the
    gate has published or rolled back. A run killed in between leaves it behind,
    and the re-run of the same date first puts the tables and baselines back as
    recorded, then runs the stage as if for the first time: it never reads a
    killed attempt's writes, and its gate rolls back to the state before both.
    Any other date refuses to run meanwhile (``UnfinishedRun``, before its
    first write): it would read the killed attempt's unvalidated partitions, and
    undoing that attempt later would also undo its commits.
    """
    wh = Warehouse(cfg.paths.warehouse)
    uri = pending_uri(wh, stage, day)
    others = [(d, s) for d, s in pending(spark, wh) if d != day]
    if others:
        earlier, where = others[0]
        raise UnfinishedRun(f"the run of {earlier} stopped in stage '{where}' before its quality "
                            f"gate decided; re-run --date {earlier} first (it undoes and redoes that stage)")
    if storage.exists(spark, uri):
        record = json.loads(storage.read_text(spark, uri))
        undone = restore(spark, written, record["versions"])
        put_back(spark, record["baselines"])
        log.warning("%s dt=%s: an earlier run stopped before its quality gate decided; its writes were undone: %s",
                    stage, day, undone or "no table had changed")
        return record["versions"]
    names = [*written, *(["run_report"] if report else [])]
    baselines = [metrics_uri(wh, n, (partitions or {}).get(n, day)) for n in names]
    record = {"stage": stage, "date": day.isoformat(), "versions": table_versions(spark, written),
              "baselines": read_files(spark, baselines)}
    storage.write_json(spark, uri, record)
    return record["versions"]


def finish(spark: SparkSession, cfg: AppConfig, stage: str, day: date) -> None:
    """The stage's gate has decided (or the stage had nothing to gate): forget ``begin``'s record."""
    storage.delete(spark, pending_uri(Warehouse(cfg.paths.warehouse), stage, day))
