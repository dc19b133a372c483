"""Assemble the generated logs, their manifest and the expected run-report counts.

The manifest has one row per landed line with the fate the contract assigns it
on its arrival day (and, for an orphan click, the day and fate of its later
resolution). Expected counts are a group-by over it, so the pipeline's run
reports can be checked key by key.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from math import ceil

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.dev.generator import anomalies, delivery, dims, events
from pipelines.config import CleanConfig, GeneratorConfig

IMP_COLS = delivery.IMPRESSION_FIELDS + ["creative_type", "gen_key", "arrival_ts", "fate"]
CLICK_COLS = delivery.CLICK_FIELDS + ["gen_key", "arrival_ts", "imp_arrival_ts", "intended_fate"]
IMPRESSION_FATES = ["malformed", "duplicate", "bot_declared", "bot_behavioural", "valid"]
CLICK_FATES = ["malformed", "duplicate", "orphan", "invalid_dwell", "invalid_time", "out_of_window",
               "on_bot_traffic", "repeat", "attributed"]


@dataclass(frozen=True)
class Generated:
    lines: DataFrame        # stream, dt, hour, line, gen_key
    dim_lines: DataFrame    # stream (users|ads|campaigns|publishers), dt, line
    manifest: DataFrame     # stream, record_id, gen_key, dt, fate, reason, measured, viewable, clicked_known,
    #                         resolved_on, resolved_fate
    truth: DataFrame        # clean impressions with their true click probability
    user_day_load: DataFrame  # natural users' impressions and clicks per event day (must stay under the limits)


def _union(frames: list[DataFrame | None], cols: list[str]) -> DataFrame:
    present = [f.select(*cols) for f in frames if f is not None]
    out = present[0]
    for f in present[1:]:
        out = out.unionByName(f)
    return out


def generate(spark: SparkSession, cfg: GeneratorConfig, clean: CleanConfig) -> Generated:
    last_day = cfg.start_date + timedelta(days=cfg.days - 1)
    n_users = max(10, ceil(cfg.impressions_per_day / dims.expected_user_activity(cfg)))
    users = dims.users(spark, cfg, n_users)
    ads, pubs, camps = dims.ads(spark, cfg), dims.publishers(spark, cfg), dims.campaigns(spark, cfg)
    seg_aff, pub_aff = dims.affinities(spark, cfg)
    days = dims.days(spark, cfg)

    clean_imp = events.impressions(users, days, ads, pubs, seg_aff, pub_aff, cfg).withColumn("fate", F.lit("valid"))
    clean_imp = clean_imp.persist()
    natural = events.natural_clicks(clean_imp, cfg, clean)
    givt_imp, givt_clk = anomalies.declared_bots(spark, days, ads, pubs, cfg)
    sivt_imp, sivt_clk = anomalies.behavioural_bots(spark, days, ads, pubs, cfg, clean)
    impressions = _union([clean_imp, delivery.duplicate_impressions(clean_imp, cfg), givt_imp, sivt_imp], IMP_COLS)
    clicks = _union([natural, anomalies.repeat_clicks(natural, cfg, clean),
                     anomalies.click_anomalies(clean_imp, cfg, clean), givt_clk, sivt_clk,
                     anomalies.orphan_clicks(spark, days, cfg), delivery.duplicate_clicks(natural, cfg)], CLICK_COLS)
    in_range = F.to_date("arrival_ts").between(F.lit(cfg.start_date), F.lit(last_day))
    impressions = impressions.where(in_range)
    clicks = clicks.where(in_range)
    convs = delivery.conversions(natural, cfg, clean).where(in_range)
    bad_imp = delivery.malformed_lines(spark, days, cfg, "impressions")
    bad_clk = delivery.malformed_lines(spark, days, cfg, "clicks")

    def landed(df: DataFrame, stream: str) -> DataFrame:
        return df.select(F.lit(stream).alias("stream"), F.to_date("arrival_ts").alias("dt"),
                         F.hour("arrival_ts").alias("hour"), "line", "gen_key")

    lines = (landed(delivery.render(impressions, delivery.IMPRESSION_FIELDS, cfg.seed), "impressions")
             .unionByName(landed(delivery.render(clicks, delivery.CLICK_FIELDS, cfg.seed), "clicks"))
             .unionByName(landed(delivery.render(convs, delivery.CONVERSION_FIELDS, cfg.seed), "conversions"))
             .unionByName(landed(bad_imp, "impressions"))
             .unionByName(landed(bad_clk, "clicks")))
    manifest = build_manifest(impressions, clicks, bad_imp, bad_clk, clean, last_day)
    truth = clean_imp.where(in_range).select(
        "impression_id", "event_ts", "user_id", "ad_id", "publisher_id", "position", "p_click", "clicked",
        F.to_date("arrival_ts").alias("arrival_dt"), F.to_date("event_ts").alias("dt"))
    natural_user = F.col("user_id").startswith("u")
    load = (impressions.where((F.col("fate") != "duplicate") & natural_user)
            .select("user_id", F.to_date("event_ts").alias("event_date"), F.lit(1).alias("imp"), F.lit(0).alias("clk"))
            .unionByName(clicks.where((F.col("intended_fate") != "duplicate") & natural_user)
                         .select("user_id", F.to_date("event_ts").alias("event_date"), F.lit(0).alias("imp"),
                                 F.lit(1).alias("clk")))
            .groupBy("user_id", "event_date").agg(F.sum("imp").alias("impressions"), F.sum("clk").alias("clicks")))
    return Generated(lines, dimension_lines(users, ads, camps, pubs, days), manifest, truth, load)


def dimension_lines(users: DataFrame, ads: DataFrame, camps: DataFrame, pubs: DataFrame,
                    days: DataFrame) -> DataFrame:
    """One full snapshot of each dimension per day, as JSON lines."""
    ts = "yyyy-MM-dd'T'HH:mm:ss'Z'"
    snapshots = [
        ("users", users.select("user_id", "segment", "device_type", "geo",
                               F.date_format("created_at", ts).alias("created_at"))),
        ("ads", ads.select("ad_id", "campaign_id", "creative_type", "category")),
        ("campaigns", camps.select("campaign_id", "advertiser_id", "objective", "budget",
                                   F.date_format("start_date", "yyyy-MM-dd").alias("start_date"),
                                   F.date_format("end_date", "yyyy-MM-dd").alias("end_date"))),
        ("publishers", pubs.select("publisher_id", "name", "category", "domain")),
    ]
    out = None
    for name, df in snapshots:
        rows = df.crossJoin(F.broadcast(days.select(F.col("day").alias("dt")))).select(
            F.lit(name).alias("stream"), "dt", F.to_json(F.struct(*df.columns)).alias("line"))
        out = rows if out is None else out.unionByName(rows)
    return out


def build_manifest(impressions: DataFrame, clicks: DataFrame, bad_imp: DataFrame, bad_clk: DataFrame,
                   clean: CleanConfig, last_day) -> DataFrame:
    threshold = F.when(F.col("creative_type") == "video", clean.viewable_min_ms_video).otherwise(
        clean.viewable_min_ms_display)
    arrival = F.to_date("arrival_ts")
    imp_dt = F.to_date("imp_arrival_ts")
    imp_dt = F.when(imp_dt <= F.lit(last_day), imp_dt)
    intended = F.col("intended_fate")
    click_fate = (F.when(intended == "duplicate", "duplicate")
                  .when((intended == "orphan") | imp_dt.isNull() | (imp_dt > arrival), "orphan")
                  .otherwise(intended))
    click_rows = clicks.select(
        F.lit("clicks").alias("stream"), F.col("click_id").alias("record_id"), "gen_key", "impression_id",
        arrival.alias("dt"), click_fate.alias("fate"), F.lit(None).cast("string").alias("reason"),
        F.lit(None).cast("boolean").alias("measured"), F.lit(None).cast("boolean").alias("viewable"),
        F.lit(None).cast("boolean").alias("clicked_known"),
        F.when((click_fate == "orphan") & (intended != "orphan"), imp_dt).alias("resolved_on"),
        F.when((click_fate == "orphan") & (intended != "orphan") & imp_dt.isNotNull(), intended).alias(
            "resolved_fate"))
    attributed = click_rows.where(F.coalesce("resolved_fate", "fate") == "attributed").select(
        "impression_id", F.col("dt").alias("click_dt"))
    imp_rows = impressions.select(
        F.lit("impressions").alias("stream"), F.col("impression_id").alias("record_id"), "gen_key", "impression_id",
        arrival.alias("dt"), "fate", F.lit(None).cast("string").alias("reason"),
        ((F.col("fate") == "valid") & F.col("in_view_ms").isNotNull()).alias("measured"),
        ((F.col("fate") == "valid") & (F.col("in_view_ms") >= threshold)).alias("viewable"))
    imp_rows = imp_rows.join(attributed, on="impression_id", how="left").select(
        *[c for c in imp_rows.columns],
        ((F.col("fate") == "valid") & F.coalesce(F.col("click_dt") <= F.col("dt"), F.lit(False))).alias(
            "clicked_known"),
        F.lit(None).cast("date").alias("resolved_on"), F.lit(None).cast("string").alias("resolved_fate"))
    bad = [b.select(F.lit(stream).alias("stream"), F.lit(None).cast("string").alias("record_id"), "gen_key",
                    F.lit(None).cast("string").alias("impression_id"), arrival.alias("dt"),
                    F.lit("malformed").alias("fate"), "reason",
                    F.lit(False).alias("measured"), F.lit(False).alias("viewable"),
                    F.lit(False).alias("clicked_known"),
                    F.lit(None).cast("date").alias("resolved_on"), F.lit(None).cast("string").alias("resolved_fate"))
           for stream, b in (("impressions", bad_imp), ("clicks", bad_clk))]
    cols = ["stream", "record_id", "gen_key", "impression_id", "dt", "fate", "reason", "measured", "viewable",
            "clicked_known", "resolved_on", "resolved_fate"]
    return imp_rows.select(*cols).unionByName(click_rows.select(*cols)).unionByName(
        bad[0].select(*cols)).unionByName(bad[1].select(*cols))


def expected_counts(manifest: DataFrame) -> dict[str, dict]:
    """The run-report counts the manifest implies, per arrival date (driver-side, small)."""
    rows = manifest.groupBy("stream", "dt", "fate").agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.col("measured").cast("int")).alias("measured"),
        F.sum(F.col("viewable").cast("int")).alias("viewable"),
        F.sum(F.col("clicked_known").cast("int")).alias("clicked")).collect()
    resolved = manifest.where(F.col("resolved_fate").isNotNull()).groupBy("resolved_on", "resolved_fate").count()
    out: dict[str, dict] = {}

    def day(d) -> dict:
        key = d.isoformat()
        if key not in out:
            out[key] = {f"impressions_{f}": 0 for f in ["raw"] + IMPRESSION_FATES}
            out[key].update({"impressions_measured": 0, "impressions_viewable": 0})
            out[key].update({f"clicks_{f}": 0 for f in ["raw"] + CLICK_FATES})
            out[key].update({"impressions_clicked": 0, "orphans_resolved": {}})
        return out[key]

    for r in rows:
        counts = day(r["dt"])
        prefix = "impressions" if r["stream"] == "impressions" else "clicks"
        counts[f"{prefix}_raw"] += r["n"]
        counts[f"{prefix}_{r['fate']}"] += r["n"]
        if prefix == "impressions" and r["fate"] == "valid":
            counts["impressions_measured"] += r["measured"] or 0
            counts["impressions_viewable"] += r["viewable"] or 0
            counts["impressions_clicked"] += r["clicked"] or 0
    for r in resolved.collect():
        day(r["resolved_on"])["orphans_resolved"][r["resolved_fate"]] = r["count"]
    return dict(sorted(out.items()))
