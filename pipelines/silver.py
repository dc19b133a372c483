"""Bronze -> silver decisions for impressions and clicks of one arrival date.

Every bronze record gets exactly one ``fate`` and a ``fate_detail`` saying why,
so an analyst can ask why traffic was excluded. Raw IPs and user agents stop
here (see privacy.py).
"""
from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.bots import matched_bot_pattern
from pipelines.config import CleanConfig
from pipelines.privacy import KEY_COLUMN, keyed_hash, truncate_ip, with_hash_key
from pipelines.viewability import is_measured, is_viewable, min_viewable_ms

IMPRESSION_COLUMNS = ["impression_id", "event_ts", "event_date", "user_id", "ad_id", "publisher_id", "position",
                      "device_type", "country", "ip_prefix", "ua_hash", "bot_pattern", "is_exploration",
                      "viewable_pct", "in_view_ms", "creative_type", "is_measured", "is_viewable", "fate",
                      "fate_detail", "dt"]
CLICK_COLUMNS = ["click_id", "impression_id", "event_ts", "event_date", "user_id", "dwell_ms", "ip_prefix",
                 "ua_hash", "bot_pattern", "imp_event_ts", "delay_s", "fate", "fate_detail", "dt"]


def prepare(bronze: DataFrame, clean: CleanConfig) -> DataFrame:
    """Add event_date, the declared-bot verdict and privacy-safe network fields; drop raw ip/user_agent."""
    return (with_hash_key(bronze, clean.ua_hash_key)
            .withColumn("event_date", F.to_date("event_ts"))
            .withColumn("bot_pattern", matched_bot_pattern(F.col("user_agent"), clean.bot_patterns))
            .withColumn("ip_prefix", truncate_ip(F.col("ip")))
            .withColumn("ua_hash", keyed_hash(F.col("user_agent"), F.col(KEY_COLUMN)))
            .drop("ip", "user_agent", "extra", "_ingested_at", KEY_COLUMN))


def decide_impressions(flagged: DataFrame, bot_user_days: DataFrame, ads: DataFrame,
                       clean: CleanConfig) -> DataFrame:
    """Fate of each impression: duplicate, bot_declared, bot_behavioural or valid; plus viewability.

    In: flagged (prepared bronze impressions with is_duplicate), bot_user_days
    (user_id, event_date, sivt_reason), ads (ad_id, creative_type - one row per ad).
    Out: IMPRESSION_COLUMNS.
    """
    sivt = bot_user_days.select("user_id", "event_date", "sivt_reason")
    df = (flagged.join(sivt, on=["user_id", "event_date"], how="left")
          .join(ads.select("ad_id", "creative_type"), on="ad_id", how="left"))
    fate = (F.when(F.col("is_duplicate"), "duplicate")
            .when(F.col("bot_pattern").isNotNull(), "bot_declared")
            .when(F.col("sivt_reason").isNotNull(), "bot_behavioural")
            .otherwise("valid"))
    detail = (F.when(F.col("is_duplicate"), F.lit("impression_id delivered before"))
              .when(F.col("bot_pattern").isNotNull(), F.concat(F.lit("user agent matches "), F.col("bot_pattern")))
              .when(F.col("sivt_reason").isNotNull(), F.concat(F.lit("user-day: "), F.col("sivt_reason"))))
    min_ms = min_viewable_ms(F.col("creative_type"), clean.viewable_min_ms_display, clean.viewable_min_ms_video)
    return df.withColumn("is_exploration", F.coalesce("is_exploration", F.lit(False))).select(
        *[c for c in IMPRESSION_COLUMNS if c not in ("is_measured", "is_viewable", "fate", "fate_detail")],
        is_measured(F.col("in_view_ms")).alias("is_measured"),
        is_viewable(F.col("in_view_ms"), min_ms).alias("is_viewable"),
        fate.alias("fate"),
        detail.alias("fate_detail"),
    ).select(*IMPRESSION_COLUMNS)


PENDING_COLUMNS = ["click_id", "impression_id", "event_ts", "event_date", "user_id", "dwell_ms", "ip_prefix", "ua_hash",
                   "bot_pattern", "orphan_dt"]


def pending_clicks(flagged: DataFrame, retries: DataFrame, day: date) -> DataFrame:
    """The clicks a night decides: today's first copies, and earlier orphans still waiting for their impression.

    In: flagged (prepared bronze clicks of ``day`` with is_duplicate); retries (earlier
    silver orphan clicks not yet resolved, with orphan_dt, the day they were left orphan).
    Out: PENDING_COLUMNS plus dt = ``day``; orphan_dt is null for today's clicks.
    """
    new = flagged.where(~F.col("is_duplicate")).withColumn("orphan_dt", F.lit(None).cast("date"))
    return (new.select(*PENDING_COLUMNS).unionByName(retries.select(*PENDING_COLUMNS))
            .withColumn("dt", F.lit(day)))


def click_day_rows(decided: DataFrame, flagged: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(silver/clicks rows, silver/click_resolutions rows) of one night.

    In: decided (pending_clicks with their fates, from attribution.decide_clicks);
    flagged (today's prepared clicks with is_duplicate).
    Every click that landed today is one row of silver/clicks: its fate if it was
    decided, ``duplicate`` if its click_id was delivered before (today or on an
    earlier day). An earlier orphan whose impression has now landed is a
    click_resolutions row (CLICK_COLUMNS plus orphan_dt); one still orphan is not
    written again (it stays orphan and is retried on later nights).
    """
    dups = flagged.where(F.col("is_duplicate")).select(
        *[F.col(c) if c in flagged.columns else F.lit(None).alias(c) for c in CLICK_COLUMNS
          if c not in ("fate", "fate_detail")],
        F.lit("duplicate").alias("fate"), F.lit("click_id delivered before").alias("fate_detail"))
    clicks = decided.where(F.col("orphan_dt").isNull()).select(*CLICK_COLUMNS).unionByName(
        dups.select(*CLICK_COLUMNS))
    resolved = decided.where(F.col("orphan_dt").isNotNull() & (F.col("fate") != "orphan"))
    return clicks, resolved.select(*CLICK_COLUMNS[:-1], "orphan_dt", "dt")


def user_days(*frames: DataFrame) -> DataFrame:
    """Distinct (user_id, event_date) across frames: the user-days a run must judge."""
    out = None
    for f in frames:
        part = f.select("user_id", "event_date")
        out = part if out is None else out.unionByName(part)
    return out.distinct()
