"""MRC viewability (CONTRACT 3.7): measured when in_view_ms is known; viewable
when in_view_ms reaches 1,000 ms, or 2,000 ms for video creatives."""
from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def is_measured(in_view_ms: Column) -> Column:
    return in_view_ms.isNotNull()


def min_viewable_ms(creative_type: Column, display_ms: int, video_ms: int) -> Column:
    """An ad missing from the ads dimension is judged by the display rule."""
    return F.when(creative_type == "video", F.lit(video_ms)).otherwise(F.lit(display_ms))


def is_viewable(in_view_ms: Column, min_ms: Column) -> Column:
    return F.coalesce(in_view_ms >= min_ms, F.lit(False))
