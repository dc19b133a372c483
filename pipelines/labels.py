"""Close an event day's labels once every click that could still count has landed.

A day's labels are final ``label_maturity_days`` after it (default one day):
clicks land up to the attribution window after their impression plus delivery
delay. Closing also re-applies the behavioural-bot rule with everything known
by then, so a user who crossed the limit only through late-landing events has
the whole day excluded, as the contract asks.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

LABEL_COLUMNS = ["impression_id", "event_ts", "event_date", "user_id", "ad_id", "publisher_id", "position",
                 "device_type", "country", "is_exploration", "creative_type", "in_view_ms", "is_measured",
                 "is_viewable", "clicked", "click_id", "click_ts", "converted", "arrival_dt"]


def close_day(valid_impressions: DataFrame, attributed_clicks: DataFrame, bot_user_days: DataFrame,
              converted: DataFrame) -> DataFrame:
    """Labelled impressions of one event day.

    In: valid_impressions (silver impressions of the day, fate valid, with dt as
    arrival date); attributed_clicks (impression_id, click_id, event_ts - at most
    one per impression); bot_user_days (user_id, event_date) over the limits;
    converted (impression_id) - impressions with an attributed conversion so far.
    Out: LABEL_COLUMNS plus ``reclassified_bot`` (true rows are not labels:
    callers count and drop them).
    """
    clicks = attributed_clicks.select("impression_id", "click_id", F.col("event_ts").alias("click_ts"))
    bots = bot_user_days.select("user_id", "event_date").distinct().withColumn("reclassified_bot", F.lit(True))
    conv = converted.select("impression_id").distinct().withColumn("converted", F.lit(True))
    labelled = (valid_impressions.withColumnRenamed("dt", "arrival_dt")
                .join(clicks, on="impression_id", how="left")
                .join(bots, on=["user_id", "event_date"], how="left")
                .join(conv, on="impression_id", how="left"))
    return labelled.select(
        *[c for c in LABEL_COLUMNS if c not in ("clicked", "converted")],
        F.col("click_id").isNotNull().alias("clicked"),
        F.coalesce("converted", F.lit(False)).alias("converted"),
        F.coalesce("reclassified_bot", F.lit(False)).alias("reclassified_bot"),
    ).select(*LABEL_COLUMNS, "reclassified_bot")
