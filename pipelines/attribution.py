"""Decide every click's fate and attribute the valid ones (CONTRACT 3.5 and 3.6).

Precedence, first match wins (duplicates and malformed clicks never get here):

    1. orphan          no impression with that id has landed (kept; retried on later runs)
                       - unless the impression was quarantined as malformed: on_bot_traffic
    2. on_bot_traffic  the click's user agent is a declared bot, its user-day is a
                       behavioural bot, or its impression was excluded as bot traffic
    3. invalid_time    the click is earlier than its impression
    4. out_of_window   the click is more than the window after its impression
                       (exactly the window still counts)
    5. invalid_dwell   dwell_ms below the minimum (null dwell is unknown, not short)
    6. repeat          the impression already has a valid click (earlier run, or an
                       earlier click of this run)
    7. attributed      the first valid click of its impression
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def with_final_fates(clicks: DataFrame, resolutions: DataFrame) -> DataFrame:
    """Clicks with their latest fate: an orphan's resolution row replaces its orphan row.

    In: silver clicks and silver click_resolutions (same columns plus orphan_dt).
    Out: the clicks' columns, one row per decided click row.
    """
    resolved = resolutions.drop("orphan_dt")
    return clicks.join(resolved.select("click_id"), on="click_id", how="left_anti").unionByName(resolved)


def decide_clicks(pending: DataFrame, impressions: DataFrame, malformed_impression_ids: DataFrame,
                  bot_user_days: DataFrame, already_clicked: DataFrame, window_s: int,
                  min_dwell_ms: int) -> DataFrame:
    """Give each pending click a fate.

    In:
      pending: click_id, impression_id, event_ts, event_date, user_id, dwell_ms, bot_pattern, ...
      impressions: impression_id, imp_event_ts, imp_fate - one row per id (non-duplicates)
      malformed_impression_ids: impression_id - ids seen only in quarantine
      bot_user_days: user_id, event_date - behavioural-bot user-days
      already_clicked: impression_id - impressions attributed a click on an earlier run
    Out: pending's columns plus imp_event_ts, delay_s, fate, fate_detail.
    """
    imp = impressions.select("impression_id", "imp_event_ts", "imp_fate")
    bad = malformed_impression_ids.select("impression_id").distinct().withColumn("__malformed", F.lit(True))
    sivt = bot_user_days.select("user_id", "event_date").distinct().withColumn("__sivt", F.lit(True))
    done = already_clicked.select("impression_id").distinct().withColumn("__already", F.lit(True))
    df = (pending.join(imp, on="impression_id", how="left")
          .join(bad, on="impression_id", how="left")
          .join(sivt, on=["user_id", "event_date"], how="left")
          .join(done, on="impression_id", how="left"))

    found = F.col("imp_event_ts").isNotNull()
    delay_us = F.unix_micros("event_ts") - F.unix_micros("imp_event_ts")
    bot_ua = F.col("bot_pattern").isNotNull()
    sivt_user = F.coalesce("__sivt", F.lit(False))
    bot_impression = F.coalesce(F.col("imp_fate") != "valid", F.lit(False))
    short_dwell = F.coalesce(F.col("dwell_ms") < min_dwell_ms, F.lit(False))
    fate = (F.when(~found & F.coalesce("__malformed", F.lit(False)), "on_bot_traffic")
            .when(~found, "orphan")
            .when(bot_ua | sivt_user | bot_impression, "on_bot_traffic")
            .when(delay_us < 0, "invalid_time")
            .when(delay_us > window_s * 1_000_000, "out_of_window")
            .when(short_dwell, "invalid_dwell"))
    detail = (F.when(~found & F.coalesce("__malformed", F.lit(False)), F.lit("impression quarantined as malformed"))
              .when(~found, F.lit("impression not landed yet"))
              .when(bot_ua, F.concat(F.lit("user agent matches "), F.col("bot_pattern")))
              .when(sivt_user, F.lit("behavioural-bot user-day"))
              .when(bot_impression, F.concat(F.lit("impression is "), F.col("imp_fate")))
              .when(delay_us < 0, F.lit("click before impression"))
              .when(delay_us > window_s * 1_000_000, F.format_string("delay over %d s", F.lit(window_s)))
              .when(short_dwell, F.format_string("dwell %d ms < %d", "dwell_ms", F.lit(min_dwell_ms))))
    df = df.withColumn("fate", fate).withColumn("fate_detail", detail)

    valid = F.col("fate").isNull()
    first = Window.partitionBy("impression_id", valid).orderBy("event_ts", "click_id")
    rank = F.row_number().over(first)
    already = F.coalesce("__already", F.lit(False))
    df = df.withColumn("fate_detail", F.when(valid & already, F.lit("impression clicked on an earlier run"))
                       .when(valid & (rank > 1), F.lit("later click on the same impression"))
                       .otherwise(F.col("fate_detail")))
    df = df.withColumn("fate", F.when(valid & (already | (rank > 1)), "repeat")
                       .when(valid, "attributed").otherwise(F.col("fate")))
    return df.withColumn("delay_s", delay_us / 1e6).drop("__malformed", "__sivt", "__already", "imp_fate")
