"""The stage behind `jobs/training_set.py` (the point-in-time training set: labels joined to the snapshots a scorer
had, splits, one gate per day).

How to run it, and what it guarantees, is that entry point's docstring (`--help`)."""
from __future__ import annotations

import json
import logging
import time
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.runtime import storage
from jobs.runtime.cli import UsageError
from jobs.runtime.layout import Warehouse
from jobs.runtime.quality import GateFailed, plan_uris, restore, run_gate, table_versions
from jobs.stages.gold import check_declarations, labels_with_dimensions, write_snapshot
from pipelines import declarations
from pipelines.config import AppConfig
from pipelines.gates import training_set_gate
from pipelines.training_set import (
    TRAINING_SET_BASE_COLUMNS,
    assign_splits,
    downsample_negatives,
    join_features,
    raw_categories,
    snapshot_span,
    span,
    with_same_day_counts,
)

log = logging.getLogger("ctr.training_set")


class MissingHistory(RuntimeError):
    """The training set needs days that gold has not processed."""


def newest_closed_day(spark: SparkSession, wh: Warehouse) -> date | None:
    uri = wh.silver("labels")
    if not storage.is_delta(spark, uri):
        return None
    return storage.read_delta(spark, uri).agg(F.max("event_date")).first()[0]


def ensure_snapshots(spark: SparkSession, cfg: AppConfig, wh: Warehouse, first: date, last: date) -> None:
    """Every as-of day first .. last needs a feature snapshot; build the missing ones from partials."""
    have = set()
    if storage.is_delta(spark, wh.gold("priors")):
        have = {r[0] for r in storage.read_delta(spark, wh.gold("priors")).select("as_of_date").distinct().collect()}
    missing = [first + timedelta(days=i) for i in range((last - first).days + 1)
               if first + timedelta(days=i) not in have]
    if missing and not storage.is_delta(spark, wh.gold("entity_day")):
        raise MissingHistory("no gold partials yet: run the nightly job (or jobs/gold.py) for the days first")
    for day in missing:
        log.info("feature snapshot as of %s is missing: building it from the partials", day)
        write_snapshot(spark, cfg, wh, day)


def feature_columns(cfg: AppConfig) -> list[str]:
    """The f_* columns with_features adds, in order."""
    return declarations.feature_columns(cfg.gold.features)


def with_features(spark: SparkSession, cfg: AppConfig, wh: Warehouse, rows: DataFrame, first: date, last: date,
                  landed: str, keep: Column | None = None, few_rows: bool = False) -> DataFrame:
    """Rows of event days first .. last plus every feature: the one implementation training and scoring share.

    In: impressions with dimensions (pipelines/training_set.with_dimensions) and their
    arrival day in ``landed``. Out: rows' columns plus feature_columns(cfg), history as of
    snapshot_day (training_set.snapshot_lag_days), same-day counts over the impressions in
    ``rows`` that had landed by each row's arrival day; with ``keep``, only the rows it
    selects get the history (the others only counted); ``few_rows``: those are a small sample
    (pipelines/training_set.join_features). The snapshots must exist.
    """
    gold, ts = cfg.gold, cfg.training_set
    # Checkpointed (not only cached): the dimension joins and ten entity joins in one
    # plan make Spark's planner walk it exponentially often; a checkpoint is a leaf it plans once.
    counted = with_same_day_counts(rows, gold.entities, gold.same_day, landed=landed,
                                   max_late_days=cfg.clean.lookback_days)
    counted = (counted if keep is None else counted.where(keep)).localCheckpoint(eager=True)
    lo, hi = snapshot_span(first, last, ts.snapshot_lag_days)
    features = storage.read_delta(spark, wh.gold("features")).where(F.col("as_of_date").between(F.lit(lo), F.lit(hi)))
    priors = storage.read_delta(spark, wh.gold("priors")).where(F.col("as_of_date").between(F.lit(lo), F.lit(hi)))
    # which snapshots are small enough to broadcast (a few rows' are cut to their keys, then all broadcast)
    small = () if few_rows else tuple(r["entity"] for r in features.groupBy("entity").agg(
        F.count(F.lit(1)).alias("n")).collect() if r["n"] <= gold.broadcast_max_keys)
    return join_features(counted, features, priors, gold.entities, declarations.history_features(gold.features),
                         gold.features.context, broadcast_entities=small, lag_days=ts.snapshot_lag_days,
                         landed=landed, few_rows=few_rows)


def with_closed_conversions(spark: SparkSession, wh: Warehouse, labels: DataFrame, first: date,
                            last: date) -> tuple[DataFrame, date | None]:
    """Labels with ``converted`` from the closed conversion labels only (null on a day not closed yet),
    and the newest day of first .. last whose conversion labels closed."""
    uri = wh.silver("conversion_labels")
    closed = (storage.read_delta(spark, uri).where(F.col("event_date").between(F.lit(first), F.lit(last)))
              if storage.is_delta(spark, uri) else spark.createDataFrame([], "impression_id string, "
                                                                            "event_date date, converted boolean"))
    newest = closed.agg(F.max("event_date")).first()[0]
    out = labels.drop("converted").join(closed.select("impression_id", "converted"), on="impression_id", how="left")
    return out, newest


def run_training_set(spark: SparkSession, cfg: AppConfig, end: date | None = None) -> dict:
    wh, ts, gold = Warehouse(cfg.paths.warehouse), cfg.training_set, cfg.gold
    tr = cfg.train
    wrong = declarations.trainer_mismatches(gold.features, tr.numeric_prefix, tr.cross_marker, tr.history_pattern)
    if wrong:   # the set would be built, then trained on without (or with misjudged) features
        raise UsageError(f"{len(wrong)} declared feature name(s) do not fit the trainer's settings; the first: "
                         f"{wrong[0]}")
    check_declarations(spark, cfg, wh)
    started = time.monotonic()
    newest = newest_closed_day(spark, wh)
    if newest is None:
        raise MissingHistory("no closed labels yet: run the nightly job for a few days first")
    end = end or newest
    if end > newest:
        raise MissingHistory(f"labels are closed up to {newest}; a training set cannot end on {end}")
    first, last = span(end, ts.train_days, ts.validation_days, ts.test_days)
    log.info("training set %s .. %s (train %d, validation %d, test %d days)", first, last, ts.train_days,
             ts.validation_days, ts.test_days)
    ensure_snapshots(spark, cfg, wh, *snapshot_span(first, last, ts.snapshot_lag_days))
    rows, conversions_closed = with_closed_conversions(
        spark, wh, labels_with_dimensions(spark, cfg, wh, first, last, landed="arrival_dt"), first, last)
    rows = assign_splits(rows, last, ts.train_days, ts.validation_days, ts.test_days)
    names = feature_columns(cfg)
    joined = with_features(spark, cfg, wh, rows, first, last, landed="arrival_dt").localCheckpoint(eager=True)
    labelled = (joined.withColumn("label", F.col("clicked").cast("int"))
                .withColumn("converted", F.col("converted").cast("int")))
    out = downsample_negatives(labelled, ts.neg_keep_rate, ts.seed).select(
        *TRAINING_SET_BASE_COLUMNS, *names, *raw_categories(ts.categorical))

    manifest = {"first_day": first.isoformat(), "last_day": last.isoformat(),
                "splits": {"train": [first.isoformat(),
                                     (last - timedelta(days=ts.test_days + ts.validation_days)).isoformat()],
                           "validation": [(last - timedelta(days=ts.test_days + ts.validation_days - 1)).isoformat(),
                                          (last - timedelta(days=ts.test_days)).isoformat()],
                           "test": [(last - timedelta(days=ts.test_days - 1)).isoformat(), last.isoformat()]},
                "neg_keep_rate": ts.neg_keep_rate, "label": "label", "split": "split", "group": "user_id",
                "numeric_features": names, "categorical_features": [f"c_{c}" for c in ts.categorical],
                "windows_days": list(gold.windows_days), "snapshot_lag_days": ts.snapshot_lag_days,
                # `converted` is null on the days after this one: their conversion labels had not closed
                "conversions_closed_through": conversions_closed and conversions_closed.isoformat()}
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    plans = [training_set_gate(d) for d in days]
    gated = plan_uris(cfg, plans[0].checked)
    before = table_versions(spark, gated)
    (out.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
     .option("userMetadata", json.dumps({"training_set": manifest}))
     .partitionBy("event_date").save(wh.gold("training_set")))
    # Every day of the set through the gate (one aggregation each); the first failure restores the
    # previous set and raises, before the manifest is replaced.
    try:
        gates = [run_gate(spark, cfg, plan, d, before) for d, plan in zip(days, plans)]
    except GateFailed:
        raise  # the gate restored the previous set
    except BaseException:
        # Killed or crashed between the write and the last gate: the previous set goes back, so the
        # published set always matches gold/training_set.json.
        restore(spark, gated, before)
        raise
    versions = table_versions(spark, {"training_set": wh.gold("training_set")})
    counts = {r["split"]: (r["n"], r["clicks"]) for r in storage.read_delta(spark, wh.gold("training_set"))
              .groupBy("split").agg(F.count(F.lit(1)).alias("n"), F.sum("label").alias("clicks")).collect()}
    manifest.update({
        "path": wh.gold("training_set"), "version": versions["training_set"],
        "rows": {k: v[0] for k, v in sorted(counts.items())}, "clicks": {k: v[1] for k, v in sorted(counts.items())},
        "seconds": round(time.monotonic() - started, 1),
        "quality": {"passed": all(g["passed"] for g in gates), "seconds": round(sum(g["seconds"] for g in gates), 1),
                    "warnings": [w for g in gates for w in g["warnings"]], "data_docs": gates[-1]["data_docs"]}})
    storage.write_json(spark, wh.gold("training_set.json"), manifest)
    for split in ("train", "validation", "test"):
        n, c = counts.get(split, (0, 0))
        log.info("  %-10s %10s rows %8s clicks (%s)", split, f"{n:,}", f"{c:,}", " .. ".join(manifest["splits"][split]))
    log.info("training set version %s with %d features written in %.1fs: %s", manifest["version"],
             len(names) + len(ts.categorical), manifest["seconds"], wh.gold("training_set"))
    return manifest
