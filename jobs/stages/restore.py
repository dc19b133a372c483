"""The stage behind `jobs/restore.py` (restore points: what every night records before it writes, and putting the
warehouse back to one).

How to run it, and what it guarantees, is that entry point's docstring (`--help`)."""
from __future__ import annotations

import json
import logging
import time
from datetime import date

from pyspark.sql import SparkSession

from jobs.runtime import storage
from jobs.runtime.checksums import delta_tables
from jobs.runtime.cli import UsageError
from jobs.runtime.layout import Warehouse
from jobs.runtime.rollback import restore, table_versions

log = logging.getLogger("ctr.restore")


def point_uri(wh: Warehouse, day: date) -> str:
    return f"{wh.root}/_quality/restore_points/dt={day.isoformat()}.json"


def _baseline_files(spark: SparkSession, wh: Warehouse) -> list[str]:
    root = f"{wh.root}/_quality/metrics"
    base = storage.glob(spark, wh.root)[0].rstrip("/") if storage.exists(spark, wh.root) else wh.root
    if not storage.exists(spark, root):
        return []
    # Without a local file system's .crc side files (they go with their file).
    return [p.removeprefix(base + "/") for p in storage.list_files(spark, root)
            if not p.rsplit("/", 1)[1].startswith(".")]


def record_point(spark: SparkSession, wh: Warehouse, day: date) -> None:
    """Before the night's first write: the restore point, unless an earlier run of this date left one."""
    uri = point_uri(wh, day)
    if storage.exists(spark, uri):
        return
    tables = delta_tables(spark, wh.root) if storage.exists(spark, wh.root) else []
    versions = table_versions(spark, {t: f"{wh.root}/{t}" for t in tables})
    storage.write_json(spark, uri, {"date": day.isoformat(), "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                         time.gmtime()),
                                    "tables": versions, "baselines": _baseline_files(spark, wh)})


def later_nights(spark: SparkSession, wh: Warehouse, day: date) -> list[str]:
    """Dates after ``day`` that have a run report or a restore point."""
    found = storage.glob(spark, f"{wh.root}/reports/dt=*") + storage.glob(
        spark, f"{wh.root}/_quality/restore_points/dt=*.json")
    dates = {p.rstrip("/").rsplit("dt=", 1)[1].removesuffix(".json") for p in found}
    return sorted(d for d in dates if d > day.isoformat())


def restore_night(spark: SparkSession, wh: Warehouse, day: date, including_later: bool = False,
                  dry_run: bool = False) -> dict:
    """Put the warehouse back as it was before ``day``'s first run; returns what was (or would be) done."""
    uri = point_uri(wh, day)
    if not storage.exists(spark, uri):
        raise UsageError(f"no restore point for {day} in {wh.root} (the night never ran here, or ran before "
                         "restore points existed); restore by hand as README 'Restoring by hand' says")
    later = later_nights(spark, wh, day)
    if later and not including_later:
        raise UsageError(f"nights after {day} ran since ({', '.join(later)}); restoring {day} would undo them "
                         "too: pass --including-later-nights to do that")
    point = json.loads(storage.read_text(spark, uri))
    now = delta_tables(spark, wh.root)
    recorded = point["tables"]
    uris = {t: f"{wh.root}/{t}" for t in sorted(set(now) | set(recorded))}
    versions = {t: recorded.get(t) for t in uris}
    current = table_versions(spark, uris)
    plan = {t: ("remove (created since)" if versions[t] is None else f"version {current[t]} -> {versions[t]}")
            for t in uris if current[t] != versions[t]}
    kept = set(point["baselines"])
    base = storage.glob(spark, wh.root)[0].rstrip("/")
    baselines = [b for b in _baseline_files(spark, wh) if b not in kept]
    reports = [f"{wh.root}/reports/dt={d}" for d in [day.isoformat(), *later]
               if storage.exists(spark, f"{wh.root}/reports/dt={d}")]
    out = {"date": day.isoformat(), "point_recorded_at": point["recorded_at"], "tables": plan,
           "baselines_removed": len(baselines), "reports_removed": reports, "dry_run": dry_run}
    if dry_run:
        return out
    restore(spark, uris, versions)
    for b in baselines:
        storage.delete(spark, f"{base}/{b}")
    for r in reports:
        storage.delete(spark, r)
    for d in later:
        storage.delete(spark, point_uri(wh, date.fromisoformat(d)))
    return out
