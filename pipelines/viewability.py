"""MRC viewability (CONTRACT 3.7): measured when in_view_ms is known; viewable
when in_view_ms reaches 1,000 ms, or 2,000 ms for video creatives."""
from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.dedup import one_row_per_key_and_day


def creative_types_as_of(ads: DataFrame, day: date) -> DataFrame | None:
    """ad_id, creative_type from the newest ads snapshot on or before ``day`` (an impression's arrival day).

    In: the ads dimension (ad_id, creative_type, dt, _source_file, _line_hash), any days.
    Out: one row per ad of that one snapshot; None when no snapshot is that old. An ad
    missing from it is judged by the display rule (``min_viewable_ms``).
    """
    ads = ads.where(F.col("dt") <= F.lit(day))
    newest = ads.agg(F.max("dt")).first()[0]
    if newest is None:
        return None
    return one_row_per_key_and_day(ads.where(F.col("dt") == F.lit(newest)), "ad_id").select("ad_id", "creative_type")


def is_measured(in_view_ms: Column) -> Column:
    return in_view_ms.isNotNull()


def min_viewable_ms(creative_type: Column, display_ms: int, video_ms: int) -> Column:
    """An ad missing from the ads dimension is judged by the display rule."""
    return F.when(creative_type == "video", F.lit(video_ms)).otherwise(F.lit(display_ms))


def is_viewable(in_view_ms: Column, min_ms: Column) -> Column:
    return F.coalesce(in_view_ms >= min_ms, F.lit(False))
