"""The stage behind `jobs/score.py` (scoring: the impressions that landed on a day scored with the champion; monitoring
of stored scores once labels close).

How to run it, and what it guarantees, is that entry point's docstring (`--help`)."""
from __future__ import annotations

import json
import logging
import time
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.runtime import storage
from jobs.runtime.cli import UsageError
from jobs.runtime.layout import Warehouse
from jobs.runtime.rollback import table_versions
from pipelines.config import AppConfig
from pipelines.schemas import ddl
from pipelines.train.scorers import score
from pipelines.training_set import raw_categories, snapshot_day, snapshot_span, with_dimensions
from pipelines.watch import hash_sample

log = logging.getLogger("ctr.score")

SCORE_COLUMNS = ("impression_id", "event_ts", "event_date", "user_id", "ad_id", "p_click", "model_name",
                 "model_version", "model_alias", "snapshot_date", "features_version", "scored_at", "dt")


class NothingToScore(UsageError):
    """No champion yet, or no history to score with: the nightly stage skips, the job exits 2."""


def published_snapshots(spark: SparkSession, wh: Warehouse, first: date, last: date) -> dict[date, bool]:
    """The as-of days first .. last whose feature snapshot a nightly run published -> whether it holds history.

    Priors have rows for any snapshot with history; a snapshot without any history (the
    first night of a warehouse) has no rows at all, so the night's run report, which
    names the snapshot its gold stage wrote, tells that one apart from a missing one.
    """
    have: dict[date, bool] = {}
    if storage.is_delta(spark, wh.gold("priors")):
        have = {r[0]: True for r in storage.read_delta(spark, wh.gold("priors")).where(
            F.col("as_of_date").between(F.lit(first), F.lit(last))).select("as_of_date").distinct().collect()}
    for i in range((last - first).days + 1):
        day = first + timedelta(days=i)
        if day not in have and storage.exists(spark, wh.report(day)):
            gold = json.loads(storage.read_text(spark, wh.report(day))).get("gold", {})
            if gold.get("features_as_of") == day.isoformat():
                have[day] = False
    return have


def landed_rows(spark: SparkSession, cfg: AppConfig, day: date, sample_rows: int | None = None,
                own_day_only: bool = False) -> tuple[DataFrame, date, date]:
    """The valid impressions that landed on ``day`` with every feature a scorer of ``day`` could have had.

    Same-day counts see every valid impression of the rows' event days that had landed by
    ``day`` (the lookback window), so a late delivery's count includes its own day's
    earlier landings. Returns the rows (silver columns, dimensions, snapshot_date, f_* and
    c_* columns) and their first and last event day. UsageError when a needed input is
    missing. ``sample_rows``: only about that many of the day's rows, those of a hash sample of the users, for
    the drift measure (jobs/stages/watch.py); ``own_day_only``: only the rows whose event day is ``day`` (no late
    deliveries of earlier days: one feature snapshot to read, and of the lookback's silver only the files that
    hold that event day, by Delta's file statistics).
    """
    from jobs.stages.gold import check_declarations, dimensions
    from jobs.stages.training_set import with_features

    wh, ts = Warehouse(cfg.paths.warehouse), cfg.training_set
    check_declarations(spark, cfg, wh)   # a changed group's snapshots would give its features old-key values
    if not storage.is_delta(spark, wh.silver("impressions")):
        raise UsageError(f"no silver impressions at {wh.silver('impressions')}: run `make backfill DATE={day}` first")
    lo = day - timedelta(days=cfg.clean.lookback_days)
    valid = storage.read_delta(spark, wh.silver("impressions")).where(
        F.col("dt").between(F.lit(lo), F.lit(day)) & (F.col("fate") == "valid"))
    if own_day_only:
        valid = valid.where(F.col("event_date") == F.lit(day))
    span = valid.where(F.col("dt") == F.lit(day)).agg(F.min("event_date").alias("lo"), F.max("event_date").alias("hi"),
                                                      F.count(F.lit(1)).alias("n")).first()
    if not span["n"]:
        raise UsageError(f"no valid impressions {f'of {day} ' if own_day_only else ''}landed on {day} in "
                         f"{wh.silver('impressions')}: run `make backfill DATE={day}` first")
    first, last = span["lo"], span["hi"]
    lo_snap, hi_snap = snapshot_span(first, last, ts.snapshot_lag_days, landed_by=day)
    have = published_snapshots(spark, wh, lo_snap, hi_snap)
    if hi_snap not in have:
        raise UsageError(f"no gold feature snapshot as of {hi_snap} (published by the nightly run of {hi_snap}), "
                         f"which the impressions landed on {day} need: run `make backfill DATE={hi_snap}` first")
    if not have[hi_snap]:
        # Every rate would be null: rows no model here was trained on (measured: calibration off 20x).
        raise NothingToScore(f"the feature snapshot as of {hi_snap}, which the impressions landed on {day} need, "
                             f"holds no history yet (the warehouse's first night): nothing a model trained on "
                             f"history can score; the next night's landing can be scored")
    older = [lo_snap + timedelta(days=i) for i in range((hi_snap - lo_snap).days)
             if lo_snap + timedelta(days=i) not in have]
    if older:
        # Late deliveries of days before the warehouse's first snapshot: their keys get no history (null rates),
        # where the training set builds such a snapshot from the partials - the one known parity gap (README).
        log.warning("no feature snapshot as of %s: late impressions of those days are scored without history",
                    ", ".join(map(str, older)))
    population = valid.where(F.col("event_date").between(F.lit(first), F.lit(last)))
    dims, delivered = dimensions(spark, wh, first - timedelta(days=1), last, cfg.gold.dimension_lookback_days)
    if sample_rows is not None:
        # A sample of users, not of impressions: every impression of a sampled user stays, so its same-day
        # counts (declared only for groups keyed by user_id) are exact, and the rest is never joined - nor the
        # other users' dimension rows.
        sampled = hash_sample(sample_rows, span["n"], key="user_id")
        population = population.where(sampled)
        dims["users"] = dims["users"].where(sampled)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    rows = with_dimensions(population, days, dims["users"], dims["ads"], dims["campaigns"], dims["publishers"],
                           landed="dt", snapshot_days=delivered)
    keep = F.col("dt") == F.lit(day)
    featured = with_features(spark, cfg, wh, rows, first, last, landed="dt", keep=keep,
                             few_rows=sample_rows is not None)
    return (featured.select("*", snapshot_day(F.col("event_date"), ts.snapshot_lag_days, F.col("dt"))
                            .alias("snapshot_date"), *raw_categories(ts.categorical)), first, last)


def run_score(spark: SparkSession, cfg: AppConfig, day: date, table: str | None = None, out: str | None = None) -> dict:
    """Score ``day`` with the champion; returns what was written (table, rows, model, seconds)."""
    from jobs.runtime import tracking
    from jobs.runtime.layout import resolve_uri

    started = time.monotonic()
    tr, wh = cfg.train, Warehouse(cfg.paths.warehouse)
    if table and not out:   # its rows have other columns than gold/scores: never mixed into it
        raise UsageError("--table needs --out: the scores of a table's rows go to a table of their own")
    out = out or resolve_uri(cfg.paths.warehouse, tr.scores_table)
    tracking.setup(tr.experiment)
    current = tracking.champion_model(tr.registered_model)   # a registry failure raises: exit 1
    if current is None:
        raise NothingToScore(f"registered model {tr.registered_model!r} has no champion yet: train one first "
                         f"(`make train`, or the nightly job with --train)")
    model, version = current
    if table:
        if not storage.is_delta(spark, table):
            raise UsageError(f"--table {table} is not a Delta table")
        rows = storage.read_delta(spark, table).where(F.col(tr.date_col) == F.lit(day))
        if not rows.limit(1).count():
            raise UsageError(f"--table {table} has no rows whose {tr.date_col} is {day}")
        keep, partition = [tr.id_col, tr.group_col, tr.date_col], tr.date_col
    else:
        rows, _, _ = landed_rows(spark, cfg, day)
        keep, partition = [c for c in SCORE_COLUMNS if c in ("impression_id", "event_ts", "event_date", "user_id",
                                                               "ad_id", "snapshot_date", "dt")], "dt"
    missing = [c for c in model.features.columns if c not in rows.columns]
    if missing:
        raise UsageError(f"the champion ({tr.registered_model} v{version}) needs feature column(s) "
                         f"{', '.join(missing[:5])} that {'--table' if table else 'the scoring rows'} lack: "
                         f"rebuild the features with the configuration it was trained with, or train a new champion")
    rows = rows.localCheckpoint(eager=True)
    features_version = None if table else table_versions(spark, {"f": wh.gold("features")})["f"]
    scored = score(rows, model, "p_click", keep, method="predict").select(
        *keep, "p_click", F.lit(tr.registered_model).alias("model_name"), F.lit(str(version)).alias("model_version"),
        F.lit("champion").alias("model_alias"),
        *([] if table else [F.lit(features_version).cast("long").alias("features_version")]),
        F.current_timestamp().alias("scored_at"))
    if not table:
        scored = scored.select(*SCORE_COLUMNS)
    storage.write_partition(scored, out, day, column=partition)
    n = storage.read_delta(spark, out).where(F.col(partition) == F.lit(day)).count()
    seconds = round(time.monotonic() - started, 1)
    log.info("scored %s impressions of %s with %s v%s (%s) in %.1fs into %s", f"{n:,}", day, tr.registered_model,
             version, model.family, seconds, out)
    return {"table": out, "rows": n, "model_name": tr.registered_model, "model_version": str(version),
            "family": model.family, "features_version": features_version, "seconds": seconds}


MONITORING_DDL = ddl("gold/score_monitoring")


def monitor_day(spark: SparkSession, cfg: AppConfig, event_day: date, evaluated_on: date) -> dict | None:
    """Evaluate the stored scores of ``event_day``'s impressions against its closed labels.

    Returns None when nothing of that day was scored. Otherwise writes one row (replaced on
    a re-run) to score.monitoring_table and returns the figures with ``coverage`` (scored
    and labelled rows over the day's labels). When coverage reaches score.min_coverage it
    also logs ``scored_ne`` / ``scored_calibration`` / ``scored_auc`` on the MLflow run of
    the model version that scored most of the rows (step = the day as yyyymmdd) and warns
    when NE or calibration moved beyond score.ne_tolerance / score.calibration_tolerance.
    """
    from mlflow.tracking import MlflowClient

    from jobs.runtime import tracking
    from jobs.runtime.layout import resolve_uri
    from pipelines.monitoring import drift_warnings, score_quality

    tr, sc, wh = cfg.train, cfg.score, Warehouse(cfg.paths.warehouse)
    scores_uri = resolve_uri(cfg.paths.warehouse, tr.scores_table)
    if not storage.is_delta(spark, scores_uri) or "event_date" not in storage.read_delta(spark, scores_uri).columns:
        return None
    scores = storage.read_delta(spark, scores_uri).where(
        F.col("dt").between(F.lit(event_day - timedelta(days=1)), F.lit(evaluated_on))
        & (F.col("event_date") == F.lit(event_day)))
    labels = storage.read_delta(spark, wh.silver("labels")).where(F.col("event_date") == F.lit(event_day)).select(
        "impression_id", F.col("clicked").cast("int").alias("label")).persist()
    joined = scores.join(labels, on="impression_id", how="left").persist()
    try:
        total = joined.count()
        if not total:
            return None
        labelled = joined.where(F.col("label").isNotNull())
        quality = score_quality(labelled)
        coverage = quality["rows"] / max(labels.count(), 1)
        version = (joined.groupBy("model_name", "model_version").count().orderBy(F.desc("count")).first())
    finally:
        joined.unpersist()
        labels.unpersist()
    tracking.setup(tr.experiment)
    client = MlflowClient()
    run_id = client.get_model_version(version["model_name"], version["model_version"]).tags.get("run_id")
    reference = client.get_run(run_id).data.metrics.get("ne") if run_id else None
    # A day only partly scored (say, only its late deliveries, scored the night they landed) is no
    # sample of the day: its figures are kept, but it raises no warning and draws no point in MLflow.
    partial = coverage < sc.min_coverage
    warnings = [] if partial else drift_warnings(quality, reference, sc.ne_tolerance, sc.calibration_tolerance)
    out = {"event_date": event_day.isoformat(), "unlabelled": total - quality["rows"], "coverage": coverage,
           "partial": partial, **quality,
           "model_name": version["model_name"], "model_version": version["model_version"], "reference_ne": reference,
           "warnings": warnings}
    row = {**{k: out[k] for k in ("rows", "unlabelled", "coverage", "clicks", "predicted_clicks", "log_loss", "ne",
                                   "calibration", "auc", "model_name", "model_version", "reference_ne")},
           "event_date": event_day, "deciles": json.dumps(quality["deciles"]), "warnings": json.dumps(warnings),
           "evaluated_on": evaluated_on}
    names = [c.split()[0] for c in MONITORING_DDL.split(", ")]
    frame = spark.createDataFrame([tuple(row[n] for n in names)], MONITORING_DDL)
    storage.write_partition(frame, resolve_uri(cfg.paths.warehouse, sc.monitoring_table), event_day, "event_date",
                            add_columns=True)
    if run_id and not partial:
        step = int(event_day.strftime("%Y%m%d"))
        for key in ("ne", "calibration", "auc"):
            if out[key] is not None:
                client.log_metric(run_id, f"scored_{key}", out[key], step=step)
    for w in warnings:
        log.warning("scores of %s: %s", event_day, w)
    log.info("scores of %s against closed labels: %s rows (%.1f%% of the day's labels%s), NE %s, calibration %s, "
             "AUC %s", event_day, f"{quality['rows']:,}", 100 * coverage, ": partial, no warnings" if partial else "",
             _fmt(out["ne"]), _fmt(out["calibration"]), _fmt(out["auc"]))
    return out


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"
