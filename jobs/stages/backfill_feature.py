"""The stage behind `jobs/backfill_feature.py` (one feature group's history, alone; the check that refuses a changed
declaration without it is jobs/stages/gold.py:check_declarations).

How to run it, and what it guarantees, is that entry point's docstring (`--help`)."""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import date, timedelta

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.runtime import storage
from jobs.runtime.cli import UsageError
from jobs.runtime.layout import Warehouse
from jobs.runtime.quality import GateFailed, plan_uris, run_gate
from jobs.runtime.rollback import metrics_uri, put_back, read_files, table_versions
from jobs.stages.gold import (
    record_fingerprints,
    stored_fingerprints,
    write_conversion_partials,
    write_partials,
    write_snapshot,
)
from pipelines import declarations
from pipelines.config import AppConfig
from pipelines.gates import GatePlan, backfill_gate

log = logging.getLogger("ctr.backfill_feature")


def run_backfill_feature(spark: SparkSession, cfg: AppConfig, name: str, start: date | None = None,
                         end: date | None = None) -> dict:
    """Rebuild one group's partials, conversion partials, snapshots and priors for event days start .. end.

    Writes only that group's partitions (entity = group), so no other group's files are
    rewritten; then every rewritten day goes through the gold gate (its checks, without the
    day-over-day volume comparison: a day's partition now holds another mix of groups), and
    only when all passed is the group's fingerprint recorded. A failed gate puts every gold
    table and volume baseline back as they were before the backfill (GateFailed, exit 3).
    Default range: every closed label day.
    """
    decl, wh = cfg.gold.features, Warehouse(cfg.paths.warehouse)
    group = declarations.group_of(decl, name)
    if group is None:
        raise UsageError(f"no feature group or feature named {name!r} in {decl.path} (groups: "
                         f"{', '.join(g.name for g in decl.groups)})")
    if not storage.is_delta(spark, wh.silver("labels")) or not storage.is_delta(spark, wh.gold("entity_day")):
        raise UsageError("no closed labels or gold partials yet: run the nightly job (make backfill) first")
    lo, hi = storage.read_delta(spark, wh.silver("labels")).agg(F.min("event_date"), F.max("event_date")).first()
    first, last = max(start or lo, lo), min(end or hi, hi)
    if first > last:
        raise UsageError(f"nothing to backfill: closed labels cover {lo} .. {hi}, the range asked is "
                         f"{start or lo} .. {end or hi}")
    stored = stored_fingerprints(spark, wh) or {}
    if stored and stored.get(group.name) != group.fingerprint and first > lo:
        # the windows of the days after START would still sum partials of the old keys (or none)
        raise UsageError(f"feature group {group.name} is new or its keys changed: its whole history must be "
                         f"rebuilt, from {lo} (leave START out)")
    pending = storage.glob(spark, f"{wh.root}/_quality/pending/*/dt=*.json")
    if pending:   # that night's re-run would undo this backfill's writes along with its own
        night = pending[0].removesuffix(".json").rpartition("/dt=")[2]
        raise UsageError(f"the nightly run of {night} stopped before its quality gate decided: re-run it "
                         f"(make backfill DATE={night}) before backfilling")
    started = time.monotonic()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    plans = [backfill_gate(day) for day in days]
    versions = table_versions(spark, plan_uris(cfg, {**plans[0].checked, **plans[0].unvalidated}))
    # The same writers as the nightly gold, on a config that declares this group alone.
    alone = replace(cfg, gold=replace(cfg.gold, features=replace(decl, groups=(group,), context=())))
    log.info("backfill of feature group %s (%s): event days %s .. %s", group.name, " x ".join(group.keys), first,
             last)
    for day in days:
        write_partials(spark, alone, wh, day, entity=group.name)
    closed = storage.read_delta(spark, wh.silver("conversion_labels")).where(
        F.col("event_date").between(F.lit(first), F.lit(last))).select("event_date").distinct() \
        if storage.is_delta(spark, wh.silver("conversion_labels")) else None
    conversion_days = sorted(r[0] for r in closed.collect()) if closed is not None else []
    for day in conversion_days:
        write_conversion_partials(spark, alone, wh, day, entity=group.name)
    for day in days:   # the snapshot as of E + 1 is the one the night that closed E published
        write_snapshot(spark, alone, wh, day + timedelta(days=1), entity=group.name)
    gate_days(spark, cfg, wh, days, plans, versions)
    record_fingerprints(spark, cfg, wh, only=group.name)
    seconds = time.monotonic() - started
    log.info("backfill of %s done in %.1fs: %d partial days, %d conversion days, %d snapshots", group.name, seconds,
             len(days), len(conversion_days), len(days))
    return {"group": group.name, "features": [n for a in group.aggregations for n in a.names],
            "event_days": [first.isoformat(), last.isoformat()], "conversion_days": len(conversion_days),
            "snapshots": [(first + timedelta(days=1)).isoformat(), (last + timedelta(days=1)).isoformat()],
            "fingerprint": group.fingerprint, "seconds": round(seconds, 1)}


def gate_days(spark: SparkSession, cfg: AppConfig, wh: Warehouse, days: list[date], plans: list[GatePlan],
              versions: dict[str, int | None]) -> None:
    """The gate of every backfilled day (pipelines/gates.py:backfill_gate); on a failure, every table back at
    ``versions`` (the gate restores them) and every volume baseline as it was (the passed days rewrote theirs)."""
    saved = read_files(spark, [metrics_uri(wh, n, d) for p in plans for n, d in p.partitions.items()])
    try:
        for day, plan in zip(days, plans):
            run_gate(spark, cfg, plan, day, versions)
    except GateFailed:
        put_back(spark, saved)
        raise
