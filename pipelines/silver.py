"""Bronze -> silver decisions for impressions and clicks of one arrival date.

Every bronze record gets exactly one ``fate`` and a ``fate_detail`` saying why,
so an analyst can ask why traffic was excluded. Raw IPs and user agents stop
here (see privacy.py).
"""
from __future__ import annotations

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


def user_days(*frames: DataFrame) -> DataFrame:
    """Distinct (user_id, event_date) across frames: the user-days a run must judge."""
    out = None
    for f in frames:
        part = f.select("user_id", "event_date")
        out = part if out is None else out.unionByName(part)
    return out.distinct()
