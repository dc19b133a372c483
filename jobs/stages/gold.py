"""The stage behind `jobs/gold.py` (gold: the closed day's partials, the snapshot as of the next day, priors, the gold
gate).

How to run it, and what it guarantees, is that entry point's docstring (`--help`)."""
from __future__ import annotations

import functools
import logging
import time
from datetime import date, timedelta

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.runtime import storage
from jobs.runtime.cli import UsageError
from jobs.runtime.layout import Warehouse
from jobs.runtime.quality import ObservedChecks, begin_gate, observe_checks, run_gate
from jobs.runtime.rollback import finish
from pipelines.config import AppConfig
from pipelines.dedup import one_row_per_key_and_day
from pipelines.features import (
    CONVERSION_PARTIAL_COLUMNS,
    daily_conversions,
    daily_partials,
    fit_beta_priors,
    partial_columns,
    snapshot_columns,
    window_snapshot,
    with_smoothed_rates,
)
from pipelines.gates import gold_gate
from pipelines.labels import click_day_closed_by, conversion_day_closed_by
from pipelines.schemas import columns, ddl
from pipelines.training_set import with_dimensions

log = logging.getLogger("ctr.gold")

DIMENSION_KEYS = {"users": "user_id", "ads": "ad_id", "campaigns": "campaign_id", "publishers": "publisher_id"}
PARTIALS_DDL = ddl("gold/entity_day")
CONVERSIONS_DDL = ddl("gold/conversion_day")
PRIORS_COLUMNS = columns("gold/priors")


def dimensions(spark: SparkSession, wh: Warehouse, first: date, last: date,
               lookback_days: int) -> tuple[dict[str, DataFrame], dict[str, list[date]]]:
    """The dimension snapshots days first .. last can see, one row per key and delivery day, and each one's
    delivery days (pipelines/training_set.with_dimensions): one small job over the four partition columns, so
    which snapshot a fact day sees is a literal, not a scan and a join per use.

    Snapshots land daily, so looking back ``lookback_days`` (gold.dimension_lookback_days) before
    ``first`` finds the one in force without reading every snapshot ever delivered.
    """
    rows, days = {}, {name: [] for name in DIMENSION_KEYS}
    for name, key in DIMENSION_KEYS.items():
        uri = wh.bronze(name)
        if storage.is_delta(spark, uri):
            rows[name] = storage.read_delta(spark, uri).where(
                F.col("dt").between(F.lit(first - timedelta(days=lookback_days)), F.lit(last)))
        else:  # no snapshot yet: every attribute is unknown, which the features tolerate
            cols = {"users": "segment", "ads": "campaign_id string, category", "campaigns": "advertiser_id",
                    "publishers": "category"}[name]
            rows[name] = spark.createDataFrame([], f"{key} string, {cols} string, dt date, _source_file string, "
                                                   "_line_hash long")
    delivered = functools.reduce(DataFrame.unionAll, [
        frame.select(F.lit(name).alias("name"), "dt").distinct() for name, frame in rows.items()])
    for name, day in delivered.collect():
        days[name].append(day)
    return ({name: one_row_per_key_and_day(frame, DIMENSION_KEYS[name]) for name, frame in rows.items()},
            {name: sorted(d) for name, d in days.items()})


def labels_with_dimensions(spark: SparkSession, cfg: AppConfig, wh: Warehouse, first: date, last: date,
                           landed: str | None = None) -> DataFrame:
    """Labels of event days first .. last with their dimensions (``landed``: see with_dimensions)."""
    labels = storage.read_delta(spark, wh.silver("labels")).where(F.col("event_date").between(F.lit(first),
                                                                                              F.lit(last)))
    dims, delivered = dimensions(spark, wh, first, last, cfg.gold.dimension_lookback_days)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return with_dimensions(labels, days, dims["users"], dims["ads"], dims["campaigns"], dims["publishers"], landed,
                           delivered)


def by_entity(spark: SparkSession, uri: str) -> tuple[str, ...]:
    """Partition by ``entity`` too (so one group's rows are its own files), unless the table exists without it:
    one an older release created keeps its partitioning."""
    return ("entity",) if not storage.is_delta(spark, uri) or "entity" in storage.partition_columns(spark, uri) \
        else ()


def _only(entity: str | None) -> dict[str, str] | None:
    return {"entity": entity} if entity else None


def write_partials(spark: SparkSession, cfg: AppConfig, wh: Warehouse, event_day: date,
                   checked_for: date | None = None, entity: str | None = None) -> ObservedChecks | None:
    """Write event day E's partials; with ``checked_for`` (the arrival date), the gate's checks ride on the write;
    with ``entity``, replace only that group's rows (its config declares it alone: backfill_feature)."""
    gold = cfg.gold
    if not storage.is_delta(spark, wh.gold("entity_day")):
        spark.createDataFrame([], PARTIALS_DDL).write.format("delta").partitionBy("event_date", "entity").save(
            wh.gold("entity_day"))
    # Persisted: the counts and the distinct-user sketches are two aggregations of the same rows.
    events = labels_with_dimensions(spark, cfg, wh, event_day, event_day).persist(StorageLevel.MEMORY_AND_DISK)
    partials = daily_partials(events, gold.entities, gold.distinct_users_for, gold.sums).select(
        *partial_columns(gold.sums))
    checks = None
    if checked_for:
        partials, checks = observe_checks(cfg, "gold_entity_day", partials, checked_for, event_day)
    # a newly declared sum adds its column to the table (the other groups' files keep theirs: null)
    storage.write_partition(partials, wh.gold("entity_day"), event_day, "event_date",
                            also_partition_by=by_entity(spark, wh.gold("entity_day")), only=_only(entity),
                            add_columns=bool(gold.sums))
    events.unpersist()
    return checks


def write_conversion_partials(spark: SparkSession, cfg: AppConfig, wh: Warehouse, event_day: date,
                              entity: str | None = None) -> int:
    """Write event day C's conversions per entity key from its closed conversion labels; returns the conversions."""
    uri = wh.gold("conversion_day")
    if not storage.is_delta(spark, uri):
        spark.createDataFrame([], CONVERSIONS_DDL).write.format("delta").partitionBy("event_date", "entity").save(uri)
    closed = storage.read_delta(spark, wh.silver("conversion_labels")).where(
        F.col("event_date") == F.lit(event_day)).select("impression_id", "converted")
    events = (labels_with_dimensions(spark, cfg, wh, event_day, event_day).drop("converted")   # the provisional flag
              .join(closed, on="impression_id", how="inner"))
    partials = daily_conversions(events, cfg.gold.entities).select(*CONVERSION_PARTIAL_COLUMNS).persist()
    storage.write_partition(partials, uri, event_day, "event_date", also_partition_by=by_entity(spark, uri),
                            only=_only(entity))
    converted = closed.where("converted").count()
    partials.unpersist()
    return converted


def write_snapshot(spark: SparkSession, cfg: AppConfig, wh: Warehouse, as_of: date,
                   checked_for: date | None = None, entity: str | None = None
                   ) -> tuple[dict[str, int], ObservedChecks | None]:
    """Assemble the windows as of ``as_of`` from partials; returns keys per entity (and the observed checks,
    as ``write_partials``; ``entity`` as there)."""
    gold = cfg.gold
    conversions_uri = wh.gold("conversion_day")
    conversions = storage.read_delta(spark, conversions_uri) if storage.is_delta(spark, conversions_uri) else None
    partials = storage.read_delta(spark, wh.gold("entity_day"))
    if entity:
        partials = partials.where(F.col("entity") == entity)
        conversions = conversions.where(F.col("entity") == entity) if conversions is not None else None
    raw = window_snapshot(partials, as_of, gold.windows_days, cfg.clean.label_maturity_days, conversions,
                          cfg.clean.conversion_maturity_days, gold.sums).persist()
    priors = fit_beta_priors(raw, gold.windows_days, gold.prior).withColumn("as_of_date", F.lit(as_of)).persist()
    storage.write_partition(priors.select(*PRIORS_COLUMNS), wh.gold("priors"), as_of, "as_of_date",
                            also_partition_by=by_entity(spark, wh.gold("priors")), only=_only(entity))
    features = with_smoothed_rates(raw, priors, gold.windows_days, gold.sums).select(
        *snapshot_columns(gold.windows_days, gold.sums))
    checks = None
    if checked_for:
        features, checks = observe_checks(cfg, "gold_features", features, checked_for, as_of)
    storage.write_partition(features, wh.gold("features"), as_of, "as_of_date", also_partition_by=("entity",),
                            only=_only(entity), add_columns=bool(gold.sums))
    keys = {r["entity"]: r["n"] for r in raw.groupBy("entity").agg(F.count(F.lit(1)).alias("n")).collect()}
    for r in priors.where(F.col("window_days") == max(gold.windows_days)).orderBy("entity", "rate").collect():
        log.info("  prior %-22s %-4s %2dd: mean %.4f strength %9.1f from %d keys", r["entity"], r["rate"],
                 r["window_days"], r["mean"], r["strength"], r["keys"])
    raw.unpersist()
    priors.unpersist()
    return keys, checks


FINGERPRINT = "ctr.features.fingerprint."   # + group: a gold/features table property


def stored_fingerprints(spark: SparkSession, wh: Warehouse) -> dict[str, str] | None:
    """Group -> fingerprint of the declaration its data was built with; None before any snapshot."""
    uri = wh.gold("features")
    if not storage.is_delta(spark, uri):
        return None
    props = storage.table_properties(spark, uri)
    return {k[len(FINGERPRINT):]: v for k, v in props.items() if k.startswith(FINGERPRINT)}


def record_fingerprints(spark: SparkSession, cfg: AppConfig, wh: Warehouse, only: str | None = None) -> None:
    """Store the fingerprint of every declared group whose stored one differs (with ``only``, of that group, and of
    the others only when none is stored yet: a warehouse from before fingerprints adopts them); forget groups no
    longer declared, so one declared again later counts as new (its partials stopped meanwhile)."""
    declared = {g.name: g.fingerprint for g in cfg.gold.features.groups}
    stored = stored_fingerprints(spark, wh) or {}
    wanted = declared if only is None or not stored else {only: declared[only]}
    todo = {g: fp for g, fp in wanted.items() if stored.get(g) != fp}
    if todo:
        storage.set_table_properties(spark, wh.gold("features"), {FINGERPRINT + g: fp for g, fp in todo.items()})
    gone = [FINGERPRINT + g for g in stored if g not in declared]
    if gone and only is None:
        storage.unset_table_properties(spark, wh.gold("features"), gone)


def check_declarations(spark: SparkSession, cfg: AppConfig, wh: Warehouse) -> None:
    """Refuse (exit 2) when a declared group's stored data was built under another declaration, or a new group has
    no history yet.

    What a group's stored data depends on is its keys and whether its partials carry user
    sketches (FeatureGroup.fingerprint). A warehouse from before fingerprints adopts the
    declarations as they are.
    """
    declared = {g.name: g.fingerprint for g in cfg.gold.features.groups}
    stored = stored_fingerprints(spark, wh)
    if not stored:   # a fresh warehouse, or one built before fingerprints: nothing to compare with
        return
    changed = sorted(g for g in declared if g in stored and stored[g] != declared[g])
    new = sorted(g for g in declared if g not in stored)
    if changed or new:
        parts = ([f"changed since their data was built (keys, user sketches or sums): {', '.join(changed)}"] if changed
                 else []) + ([f"new, with no history yet: {', '.join(new)}"] if new else [])
        raise UsageError(f"feature group(s) {'; '.join(parts)}. Gold would mix them with data of the old "
                         f"declaration or leave their history empty: run `make backfill-feature "
                         f"NAME={(changed + new)[0]}` (jobs/backfill_feature.py) for each first "
                         f"({cfg.gold.features.path})")


def run_gold(spark: SparkSession, cfg: AppConfig, day: date, closed_labels: int = 1) -> dict:
    """Partials for the event day that closed with arrival date ``day``, then the snapshot as of the day after."""
    wh = Warehouse(cfg.paths.warehouse)
    check_declarations(spark, cfg, wh)
    started = time.monotonic()
    event_day = click_day_closed_by(day, cfg.clean)
    as_of = event_day + timedelta(days=1)
    conversion_day = conversion_day_closed_by(day, cfg.clean)
    # what begin() records does not depend on the volume history (the plan is made again for the gate)
    versions = begin_gate(spark, cfg, gold_gate(event_day, None, max(cfg.gold.windows_days)), day)
    # The gate's aggregate checks ride on the two writes (one pass each); it reads back only the keys.
    checked_for = day if closed_labels else None
    partial_checks = write_partials(spark, cfg, wh, event_day, checked_for)
    converted = write_conversion_partials(spark, cfg, wh, conversion_day)
    keys, snapshot_checks = write_snapshot(spark, cfg, wh, as_of, checked_for)
    # The declarations this warehouse's features are built with, read after begin() may have undone a killed attempt.
    record_fingerprints(spark, cfg, wh)
    seconds = time.monotonic() - started
    log.info("gold dt=%s: partials of %s, features as of %s (%s keys) in %.1fs", day, event_day, as_of,
             f"{sum(keys.values()):,}", seconds)
    out = {"partials_event_date": event_day.isoformat(), "conversions_event_date": conversion_day.isoformat(),
           "conversions": converted, "features_as_of": as_of.isoformat(),
           "feature_keys": dict(sorted(keys.items())), "seconds": round(seconds, 1)}
    if closed_labels:
        first = storage.read_delta(spark, wh.gold("entity_day")).agg(F.min("event_date")).first()[0]
        out["quality"] = run_gate(spark, cfg, gold_gate(event_day, first, max(cfg.gold.windows_days)), day, versions,
                                  observed={"gold_entity_day": partial_checks, "gold_features": snapshot_checks},
                                  extra_metrics={"gold_feature_keys": keys})
    else:  # the first night of a history has no closed day yet: empty gold is expected, not a failure
        log.info("gold dt=%s: no labels closed for %s, nothing to validate", day, event_day)
        finish(spark, cfg, "gold", day)
    return out
