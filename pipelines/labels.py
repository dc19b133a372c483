"""Close an event day's labels once every event that could still count has landed.

A day's click labels are final ``label_maturity_days`` after it (default one
day): clicks land up to the attribution window after their impression plus
delivery delay. Closing also re-applies the behavioural-bot rule with everything
known by then, so a user who crossed the limit only through late-landing events
has the whole day excluded, as the contract asks.

Its conversion labels close separately, ``conversion_maturity_days`` after it
(default four): a conversion counts up to ``conversion_window_hours`` (72) after
the click or viewable impression it is attributed to (pipelines/conversions.py),
so a day's conversions are complete only once that window has passed for its
last click. ``silver/labels.converted`` is what had landed by the click close
(provisional); ``silver/conversion_labels`` holds the final flag, and training
and gold's conversion features read only that.
"""
from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.config import CleanConfig
from pipelines.schemas import columns

# silver/labels without closed_on (the night writes it); the columns are pipelines/schemas.py's
LABEL_COLUMNS = [c for c in columns("silver/labels") if c != "closed_on"]
CONVERSION_LABEL_COLUMNS = columns("silver/conversion_labels")


def click_day_closed_by(night: date, clean: CleanConfig) -> date:
    """The event day whose click labels the night of arrival date ``night`` closes."""
    return night - timedelta(days=clean.label_maturity_days)


def conversion_day_closed_by(night: date, clean: CleanConfig) -> date:
    """The event day whose conversion labels the night of arrival date ``night`` closes."""
    return night - timedelta(days=clean.conversion_maturity_days)


def close_conversions(labels: DataFrame, conversions: DataFrame, closed_on) -> DataFrame:
    """Final conversion labels of one event day, closed with arrival date ``closed_on``.

    In: labels (impression_id, event_date: the day's closed click labels);
    conversions (silver/conversions: attributed_impression_id, event_ts, fate, dt =
    arrival date). A conversion counts when it was attributed (inside the window)
    and landed on or before ``closed_on``; one landing later is never in the label.
    Out: CONVERSION_LABEL_COLUMNS, one row per label; conversion_ts is the first
    attributed conversion's time (null when not converted).
    """
    landed = (conversions.where((F.col("fate") == "attributed") & (F.col("dt") <= F.lit(closed_on)))
              .groupBy(F.col("attributed_impression_id").alias("impression_id"))
              .agg(F.min("event_ts").alias("conversion_ts")))
    return (labels.select("impression_id", "event_date").join(landed, on="impression_id", how="left")
            .select("impression_id", "event_date", F.col("conversion_ts").isNotNull().alias("converted"),
                    "conversion_ts", F.lit(closed_on).cast("date").alias("closed_on")))


def close_day(valid_impressions: DataFrame, attributed_clicks: DataFrame, bot_user_days: DataFrame,
              converted: DataFrame) -> DataFrame:
    """Labelled impressions of one event day.

    In: valid_impressions (silver impressions of the day, fate valid, with dt as
    arrival date); attributed_clicks (impression_id, click_id, event_ts - at most
    one per impression); bot_user_days (user_id, event_date) over the limits;
    converted (impression_id) - impressions with an attributed conversion so far
    (provisional: the final flag closes later, ``close_conversions``).
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
