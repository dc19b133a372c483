"""Conversions: attributed to a click (or a viewable impression) within a window.

Mode ``click``: a conversion naming its click_id belongs to that click when the
click is attributed and the conversion falls within the window after it;
without a click_id, to the user's last attributed click on the same ad within
the window before it. Mode ``viewable_impression``: to the user's last viewable
valid impression of the ad within the window. Conversions are decided on their
arrival day with the clicks and impressions known by then.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

CONVERSION_COLUMNS = ["conversion_id", "event_ts", "user_id", "ad_id", "click_id", "value", "type",
                      "attributed_click_id", "attributed_impression_id", "fate", "dt"]


def _in_window(later: str, earlier: str, window_hours: int) -> F.Column:
    gap = F.unix_micros(later) - F.unix_micros(earlier)
    return (gap >= 0) & (gap <= window_hours * 3_600_000_000)


def attribute_conversions(conversions: DataFrame, touchpoints: DataFrame, mode: str, window_hours: int) -> DataFrame:
    """Fate of each (non-duplicate) conversion: attributed or unattributed.

    In: conversions (conversion_id, event_ts, user_id, ad_id, click_id, value,
    type, dt); touchpoints (touch_id, impression_id, user_id, ad_id, touch_ts):
    attributed clicks in mode ``click`` (touch_id = click_id), viewable valid
    impressions in mode ``viewable_impression``.
    Out: CONVERSION_COLUMNS.
    """
    touch = touchpoints.select("touch_id", "impression_id", F.col("user_id").alias("t_user"),
                               F.col("ad_id").alias("t_ad"), "touch_ts")
    in_window = _in_window("event_ts", "touch_ts", window_hours)
    # Two equi-joins, never a nested loop: by the named click, or by user and ad.
    by_name = F.col("click_id").isNotNull() if mode == "click" else F.lit(False)
    named = conversions.where(by_name).join(touch, on=(F.col("click_id") == F.col("touch_id")) & in_window,
                                            how="left")
    unnamed = conversions.where(~by_name).join(
        touch, on=(F.col("user_id") == F.col("t_user")) & (F.col("ad_id") == F.col("t_ad")) & in_window, how="left")
    last = Window.partitionBy("conversion_id").orderBy(F.col("touch_ts").desc_nulls_last(), F.col("touch_id"))
    chosen = (named.unionByName(unnamed).withColumn("__rank", F.row_number().over(last))
              .where(F.col("__rank") == 1))
    found = F.col("touch_id").isNotNull()
    return chosen.select(
        *CONVERSION_COLUMNS[:7],
        F.when(found & F.lit(mode == "click"), F.col("touch_id")).alias("attributed_click_id"),
        F.col("impression_id").alias("attributed_impression_id"),
        F.when(found, "attributed").otherwise("unattributed").alias("fate"),
        "dt",
    )


def touchpoints(mode: str, valid_impressions: DataFrame, attributed_clicks: DataFrame | None) -> DataFrame:
    """What a conversion can be attributed to under ``mode`` (clean.conversion_attribution).

    ``click``: the attributed clicks on valid impressions (touch_id = click_id, touch_ts = the click's time);
    ``viewable_impression``: the valid viewable impressions (touch_id = impression_id).
    In: valid impressions (impression_id, user_id, ad_id, event_ts, is_viewable); in mode ``click`` the
    attributed clicks (click_id, impression_id, user_id, event_ts; final fates, orphans resolved).
    Out: touch_id, impression_id, user_id, ad_id, touch_ts.
    """
    if mode == "click":
        return attributed_clicks.join(valid_impressions.select("impression_id", "ad_id"), on="impression_id",
                                      how="inner").select(
            F.col("click_id").alias("touch_id"), "impression_id", "user_id", "ad_id",
            F.col("event_ts").alias("touch_ts"))
    return valid_impressions.where("is_viewable").select(F.col("impression_id").alias("touch_id"), "impression_id",
                                                         "user_id", "ad_id", F.col("event_ts").alias("touch_ts"))


def conversion_fates(flagged: DataFrame, touch: DataFrame, mode: str, window_hours: int) -> DataFrame:
    """Every landed conversion with its fate: duplicates (``is_duplicate``, pipelines/dedup.py) as such, the
    others attributed or not (attribute_conversions). Out: CONVERSION_COLUMNS, one row per flagged row."""
    decided = attribute_conversions(flagged.where(~F.col("is_duplicate")), touch, mode, window_hours)
    dups = flagged.where(F.col("is_duplicate")).select(
        *CONVERSION_COLUMNS[:7], F.lit(None).cast("string").alias("attributed_click_id"),
        F.lit(None).cast("string").alias("attributed_impression_id"), F.lit("duplicate").alias("fate"), "dt")
    return decided.unionByName(dups)
