"""At-least-once delivery: keep one copy per id (CONTRACT 3.2)."""
from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F


def is_first_copy(id_col: str) -> Column:
    """True for the copy with the earliest event_ts among one arrival day's copies.

    Ties (byte-identical re-deliveries) are broken by arrival hour, file and line
    hash so the choice is the same on every re-run.
    """
    w = Window.partitionBy(id_col).orderBy("event_ts", "hour", "_source_file", "_line_hash")
    return F.row_number().over(w) == 1


def flag_duplicates(today: DataFrame, seen_ids: DataFrame, id_col: str) -> DataFrame:
    """Add ``is_duplicate``: a later copy within the day, or an id already decided on an earlier day.

    A re-delivery on a later day is a duplicate even when its event_ts is
    earlier: the first day's decision is published and stays.
    ``seen_ids`` holds ``id_col``; an id may appear more than once there (a day
    keeps its own duplicate rows), so it is made distinct before the join.
    """
    seen = seen_ids.select(id_col).distinct().withColumn("__seen", F.lit(True))
    flagged = today.withColumn("__first", is_first_copy(id_col)).join(seen, on=id_col, how="left")
    return flagged.withColumn("is_duplicate", ~F.col("__first") | F.coalesce("__seen", F.lit(False))).drop(
        "__first", "__seen")


def one_row_per_key_and_day(snapshots: DataFrame, key: str) -> DataFrame:
    """A dimension snapshot that lists a key twice on one day: the same row wins on every re-run."""
    first = Window.partitionBy(key, "dt").orderBy("_source_file", "_line_hash")
    return snapshots.withColumn("__n", F.row_number().over(first)).where(F.col("__n") == 1).drop("__n")
