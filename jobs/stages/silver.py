"""The stage behind `jobs/silver.py` (silver: every record that landed decided (duplicates, bots, click fates,
conversions), labels closed, the run report's counts, the silver gate).

How to run it, and what it guarantees, is that entry point's docstring (`--help`)."""
from __future__ import annotations

import logging
import time
from datetime import date, timedelta

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.runtime import anomalies, storage
from jobs.runtime.layout import Warehouse
from jobs.runtime.quality import begin_gate, run_gate
from pipelines import silver, watch
from pipelines.attribution import decide_clicks, with_final_fates
from pipelines.bots import behavioural_bot_user_days, bot_user_days_among, counted_events
from pipelines.config import AppConfig, CleanConfig
from pipelines.conversions import conversion_fates, touchpoints
from pipelines.dedup import flag_duplicates, one_row_per_key_and_day
from pipelines.gates import silver_gate
from pipelines.labels import (
    LABEL_COLUMNS,
    click_day_closed_by,
    close_conversions,
    close_day,
    conversion_day_closed_by,
)
from pipelines.parsing import likely_renames
from pipelines.report import balance_errors, contract_counts, funnel_lines
from pipelines.schemas import ALL_STREAMS, TABLES, ddl
from pipelines.viewability import creative_types_as_of

log = logging.getLogger("ctr.silver")

SCHEMAS = {table.removeprefix("silver/"): ddl(table) for table in TABLES if table.startswith("silver/")}
PARTITION = {"labels": "event_date", "conversion_labels": "event_date"}


def ensure_tables(spark: SparkSession, wh: Warehouse) -> None:
    for name, schema in SCHEMAS.items():
        uri = wh.silver(name)
        if not storage.is_delta(spark, uri):
            empty = spark.createDataFrame([], schema)
            empty.write.format("delta").mode("append").partitionBy(PARTITION.get(name, "dt")).save(uri)


def window(df: DataFrame, lo: date, hi: date, column: str = "dt") -> DataFrame:
    return df.where(F.col(column).between(F.lit(lo), F.lit(hi)))


def latest_ads(spark: SparkSession, wh: Warehouse, day: date) -> DataFrame:
    """The creative type of each ad at ``day``'s arrival (pipelines/viewability.creative_types_as_of)."""
    uri = wh.bronze("ads")
    ads = creative_types_as_of(storage.read_delta(spark, uri), day) if storage.is_delta(spark, uri) else None
    if ads is None:
        log.warning("no ads snapshot on or before %s: every impression is judged by the display rule", day)
        return spark.createDataFrame([], "ad_id string, creative_type string")
    return ads


def watched_volumes(spark: SparkSession, cfg: AppConfig, wh: Warehouse, day: date) -> dict[str, dict[str, int]]:
    """The valid impressions of tonight's top publishers and ad categories (and of last night's top ones), for the
    metric history: one aggregation of the night's partition by publisher and ad, the ads snapshot joined after."""
    valid = storage.read_delta(spark, wh.silver("impressions")).where(
        (F.col("dt") == F.lit(day)) & (F.col("fate") == "valid"))
    uri = wh.bronze("ads")
    ads = (one_row_per_key_and_day(storage.read_delta(spark, uri).where(F.col("dt") <= F.lit(day)), "ad_id")
           if storage.is_delta(spark, uri) else spark.createDataFrame([], "ad_id string, category string, dt date"))
    latest = Window.partitionBy("ad_id").orderBy(F.col("dt").desc())
    ads = ads.withColumn("_newest", F.row_number().over(latest)).where(F.col("_newest") == 1)
    publishers, categories = watch.entity_volumes(valid.select("publisher_id", "ad_id"), ads)
    last_night = anomalies.read_history(spark, wh, day, 1, "silver")
    top = cfg.monitoring.top_entities
    out = {}
    for source, frame, key in (("publisher_volume", publishers, "publisher_id"),
                               ("ad_category_volume", categories, "ad_category")):
        had = [m.removeprefix(f"{source}.") for m in last_night if m.startswith(f"{source}.")]
        out[source] = watch.top_volumes([(r[key], r["n"]) for r in frame.collect()], top, had)
    return out


def fate_counts(df: DataFrame) -> dict[str, int]:
    return {r["fate"]: r["n"] for r in df.groupBy("fate").agg(F.count(F.lit(1)).alias("n")).collect()}


def run_silver(spark: SparkSession, cfg: AppConfig, day: date, lines_read: dict[str, int] | None = None) -> dict:
    """Decide every record that landed on ``day``, close the matured day, and return the run report."""
    clean, wh = cfg.clean, Warehouse(cfg.paths.warehouse)
    started = time.monotonic()
    # the partitions of the labels this night closes are the ones checked
    plan = silver_gate(click_day_closed_by(day, clean), conversion_day_closed_by(day, clean))
    versions = begin_gate(spark, cfg, plan, day)
    ensure_tables(spark, wh)
    lo, yesterday = day - timedelta(days=clean.lookback_days), day - timedelta(days=1)
    prior = {name: window(storage.read_delta(spark, wh.silver(name)), lo, yesterday)
             for name in ("impressions", "clicks", "click_resolutions")}
    today = {name: storage.read_delta(spark, wh.bronze(name)).where(F.col("dt") == F.lit(day))
             for name in ("impressions", "clicks")}
    imp = flag_duplicates(silver.prepare(today["impressions"], clean), prior["impressions"].select("impression_id"),
                          "impression_id").persist(StorageLevel.MEMORY_AND_DISK)
    clk = flag_duplicates(silver.prepare(today["clicks"], clean), prior["clicks"].select("click_id"),
                          "click_id").persist(StorageLevel.MEMORY_AND_DISK)
    retries = (prior["clicks"].where(F.col("fate") == "orphan")
               .join(prior["click_resolutions"].select("click_id"), on="click_id", how="left_anti")
               .withColumn("orphan_dt", F.col("dt")))
    sivt = judge_behavioural_bots(imp, clk, retries, prior, clean).persist(StorageLevel.MEMORY_AND_DISK)

    imp_out = silver.decide_impressions(imp, sivt, latest_ads(spark, wh, day), clean)
    storage.write_partition(imp_out, wh.silver("impressions"), day)
    decide_click_day(spark, wh, day, clk, retries, prior, sivt, clean)
    decide_conversions(spark, cfg, wh, day)

    report = day_report(spark, wh, day, clean)
    report["closed_day"] = close_labels(spark, cfg, wh, day)
    report["closed_conversions"] = close_conversion_labels(spark, cfg, wh, day)
    report["unknown_fields"] = unknown_fields(today)
    sources = {"bronze + quarantine hold": stored_counts(spark, wh, day, report)}
    if lines_read:
        sources["ingest read"] = lines_read
    errors = balance_errors(report, sources)
    report["balanced"] = not errors
    report["balance_errors"] = errors
    spark.catalog.clearCache()
    if errors:
        log.error("run report does not balance: %s", "; ".join(errors))
    t = time.monotonic()
    volumes = watched_volumes(spark, cfg, wh, day)
    volumes_seconds = time.monotonic() - t
    report["quality"] = {"silver": run_gate(spark, cfg, plan, day, versions, report, extra_metrics=volumes)}
    watched = report["quality"]["silver"].get("anomalies")
    if watched:   # the watch's share of the night: its volumes aggregation too
        watched["seconds"] = round(watched["seconds"] + volumes_seconds, 2)
    log.info("silver dt=%s done in %.1fs", day, time.monotonic() - started)
    for line in funnel_lines(report):
        log.info("  %s", line)
    return report


def judge_behavioural_bots(imp: DataFrame, clk: DataFrame, retries: DataFrame, prior: dict[str, DataFrame],
                           clean) -> DataFrame:
    """Behavioural-bot user-days among those this run judges, counted over everything known so far."""
    decided = F.col("fate") == "duplicate"   # earlier days' rows carry their fate, today's their flag
    known_imp = counted_events(prior["impressions"], decided).unionByName(counted_events(imp, F.col("is_duplicate")))
    known_clk = counted_events(prior["clicks"], decided).unionByName(counted_events(clk, F.col("is_duplicate")))
    return bot_user_days_among(silver.user_days(imp, clk, retries), known_imp, known_clk,
                               clean.max_impressions_per_user_day, clean.max_clicks_per_user_day)


def decide_click_day(spark: SparkSession, wh: Warehouse, day: date, clk: DataFrame, retries: DataFrame,
                     prior: dict[str, DataFrame], sivt: DataFrame, clean) -> None:
    """Write silver/clicks (today's clicks) and silver/click_resolutions (earlier orphans resolved today)."""
    lo = day - timedelta(days=clean.lookback_days)
    # Impressions decided up to and including today (today's were just written).
    decided_imp = window(storage.read_delta(spark, wh.silver("impressions")), lo, day).where(
        F.col("fate") != "duplicate").select("impression_id", F.col("event_ts").alias("imp_event_ts"),
                                              F.col("fate").alias("imp_fate"))
    malformed_ids = (window(storage.read_delta(spark, wh.quarantine), lo, day)
                     .where((F.col("stream") == "impressions") & F.col("record_id").isNotNull())
                     .select(F.col("record_id").alias("impression_id"))
                     .join(decided_imp.select("impression_id"), "impression_id", "left_anti"))
    already = with_final_fates(prior["clicks"], prior["click_resolutions"]).where(
        F.col("fate") == "attributed").select("impression_id")
    decided = decide_clicks(silver.pending_clicks(clk, retries, day), decided_imp, malformed_ids, sivt, already,
                            clean.attribution_window_s, clean.min_dwell_ms).persist(StorageLevel.MEMORY_AND_DISK)
    clicks, resolutions = silver.click_day_rows(decided, clk)
    storage.write_partition(clicks, wh.silver("clicks"), day)
    storage.write_partition(resolutions, wh.silver("click_resolutions"), day)


def stored_counts(spark: SparkSession, wh: Warehouse, day: date, report: dict) -> dict[str, int]:
    """Rows of ``day`` in bronze plus quarantine, per stream: what the report must account for.

    Bronze is counted directly, independently of the silver decisions the
    report's outcomes come from; the quarantine count is the report's own.
    """
    return {stream: storage.read_delta(spark, wh.bronze(stream)).where(F.col("dt") == F.lit(day)).count()
            + report[f"{stream}_malformed"] for stream in ("impressions", "clicks")}


def day_report(spark: SparkSession, wh: Warehouse, day: date, clean: CleanConfig) -> dict:
    """The contract's counts for the records that landed on ``day``, read back from the written tables."""
    part = lambda name: storage.read_delta(spark, wh.silver(name)).where(F.col("dt") == F.lit(day))
    imp, clk, res = part("impressions"), part("clicks"), part("click_resolutions")
    malformed = {r["stream"]: r["n"] for r in storage.read_delta(spark, wh.quarantine).where(
        F.col("dt") == F.lit(day)).groupBy("stream").agg(F.count(F.lit(1)).alias("n")).collect()}
    # One pass over the day's impressions: outcomes, viewability, and valid ones
    # whose event day had already closed when they landed (counted, in no labels).
    closed_before = click_day_closed_by(day, clean)
    by_fate = {r["fate"]: r for r in imp.groupBy("fate").agg(
        F.count(F.lit(1)).alias("n"), F.sum(F.col("is_measured").cast("int")).alias("m"),
        F.sum(F.col("is_viewable").cast("int")).alias("v"),
        F.sum((F.col("event_date") < F.lit(closed_before)).cast("int")).alias("late")).collect()}
    valid = by_fate.get("valid")
    attributed = with_final_fates(clk, res).where(F.col("fate") == "attributed").select("impression_id")
    clicked = imp.where(F.col("fate") == "valid").join(attributed, "impression_id", "left_semi").count()
    report = {"date": day.isoformat(), **contract_counts(
        {f: r["n"] for f, r in by_fate.items()}, fate_counts(clk), malformed,
        (valid["m"] or 0) if valid else 0, (valid["v"] or 0) if valid else 0, clicked)}
    report["orphans_resolved"] = fate_counts(res)
    report["impressions_valid_after_close"] = (valid["late"] or 0) if valid else 0
    report["conversions"] = fate_counts(part("conversions"))
    return report


def unknown_fields(bronze_today: dict[str, DataFrame]) -> dict[str, dict]:
    """Per stream, the fields outside the contract in the day's bronze (records holding each) and those that
    look like a renamed contract field, whose values would otherwise turn into silent nulls after bronze."""
    out = {}
    for stream, df in bronze_today.items():
        fields = {r["field"]: r["n"] for r in df.select(F.explode(F.map_keys("extra")).alias("field"))
                  .groupBy("field").agg(F.count(F.lit(1)).alias("n")).collect()}
        renames = likely_renames(fields, ALL_STREAMS[stream])
        for unknown, known in renames.items():
            log.warning("%s: %d records carry %r, which looks like %r renamed: its values stay in bronze's extra "
                        "and are not read as %s", stream, fields[unknown], unknown, known, known)
        out[stream] = {"fields": dict(sorted(fields.items())), "likely_renames": renames}
    return out


def decide_conversions(spark: SparkSession, cfg: AppConfig, wh: Warehouse, day: date) -> None:
    """silver/conversions for one arrival date: duplicates, then attribution within the window."""
    clean = cfg.clean
    lo = day - timedelta(days=clean.lookback_days)
    bronze_uri = wh.bronze("conversions")
    if not storage.is_delta(spark, bronze_uri):
        return
    bronze = storage.read_delta(spark, bronze_uri).where(F.col("dt") == F.lit(day))
    prior = window(storage.read_delta(spark, wh.silver("conversions")), lo, day - timedelta(days=1))
    flagged = flag_duplicates(bronze, prior.select("conversion_id"), "conversion_id")
    imp = window(storage.read_delta(spark, wh.silver("impressions")), lo, day).where(F.col("fate") == "valid")
    clicks = None
    if clean.conversion_attribution == "click":
        clicks = with_final_fates(window(storage.read_delta(spark, wh.silver("clicks")), lo, day),
                                  window(storage.read_delta(spark, wh.silver("click_resolutions")), lo, day)
                                  ).where(F.col("fate") == "attributed")
    touch = touchpoints(clean.conversion_attribution, imp, clicks)
    decided = conversion_fates(flagged, touch, clean.conversion_attribution, clean.conversion_window_hours)
    storage.write_partition(decided, wh.silver("conversions"), day)


def close_labels(spark: SparkSession, cfg: AppConfig, wh: Warehouse, day: date) -> dict:
    """Write silver/labels for the event day whose labels matured with this run."""
    clean = cfg.clean
    event_day = click_day_closed_by(day, clean)
    lo = event_day - timedelta(days=1)
    imp = window(storage.read_delta(spark, wh.silver("impressions")), lo, day).where(
        F.col("event_date") == F.lit(event_day))
    clicks = with_final_fates(window(storage.read_delta(spark, wh.silver("clicks")), lo, day),
                              window(storage.read_delta(spark, wh.silver("click_resolutions")), lo, day))
    attributed = clicks.where(F.col("fate") == "attributed").select("impression_id", "click_id", "event_ts")
    duplicate = F.col("fate") == "duplicate"
    sivt = behavioural_bot_user_days(counted_events(imp, duplicate),
                                     counted_events(clicks.where(F.col("event_date") == F.lit(event_day)), duplicate),
                                     clean.max_impressions_per_user_day, clean.max_clicks_per_user_day)
    converted = window(storage.read_delta(spark, wh.silver("conversions")), lo, day).where(
        F.col("fate") == "attributed").select(F.col("attributed_impression_id").alias("impression_id"))
    labelled = close_day(imp.where(F.col("fate") == "valid"), attributed, sivt, converted).persist()
    labels = labelled.where(~F.col("reclassified_bot")).select(*LABEL_COLUMNS, F.lit(day).alias("closed_on"))
    storage.write_partition(labels, wh.silver("labels"), event_day, column="event_date")
    stats = labelled.agg(F.sum((~F.col("reclassified_bot")).cast("int")).alias("n"),
                         F.sum((F.col("clicked") & ~F.col("reclassified_bot")).cast("int")).alias("c"),
                         F.sum(F.col("reclassified_bot").cast("int")).alias("r"),
                         F.sum((F.col("converted") & ~F.col("reclassified_bot")).cast("int")).alias("v")).first()
    labelled.unpersist()
    return {"event_date": event_day.isoformat(), "impressions": stats["n"] or 0, "clicked": stats["c"] or 0,
            "converted_so_far": stats["v"] or 0, "reclassified_bot_behavioural": stats["r"] or 0}


def close_conversion_labels(spark: SparkSession, cfg: AppConfig, wh: Warehouse, day: date) -> dict:
    """Write silver/conversion_labels for the event day whose conversion window closed with this run."""
    event_day = conversion_day_closed_by(day, cfg.clean)
    labels = storage.read_delta(spark, wh.silver("labels")).where(F.col("event_date") == F.lit(event_day))
    conversions = window(storage.read_delta(spark, wh.silver("conversions")), event_day - timedelta(days=1), day)
    closed = close_conversions(labels, conversions, day).persist()
    storage.write_partition(closed, wh.silver("conversion_labels"), event_day, column="event_date")
    stats = closed.agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("converted").cast("int")).alias("v")).first()
    closed.unpersist()
    log.info("silver dt=%s: conversion labels of %s closed: %d of %d impressions converted", day, event_day,
             stats["v"] or 0, stats["n"])
    return {"event_date": event_day.isoformat(), "impressions": stats["n"], "converted": stats["v"] or 0}
