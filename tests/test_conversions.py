"""Conversions attributed to their click, or the last click / viewable impression, within the window."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from pipelines.conversions import attribute_conversions

T0 = datetime(2025, 3, 1, 12)
CONV = "conversion_id string, event_ts timestamp, user_id string, ad_id string, click_id string, value double, " \
       "type string, dt date"
TOUCH = "touch_id string, impression_id string, user_id string, ad_id string, touch_ts timestamp"


def fates(spark, convs, touches, mode="click", hours=72):
    out = attribute_conversions(spark.createDataFrame(convs, CONV), spark.createDataFrame(touches, TOUCH), mode, hours)
    rows = [(r["conversion_id"], (r["fate"], r["attributed_click_id"], r["attributed_impression_id"]))
            for r in out.collect()]
    got = dict(rows)
    assert len(got) == len(rows) == len(convs), f"a conversion lost or decided twice: {sorted(rows)}"
    return got


def conv(cid, hours_after, click=None, user="u1", ad="a1"):
    return (cid, T0 + timedelta(hours=hours_after), user, ad, click, 10.0, "purchase", date(2025, 3, 1))


def test_named_click_inside_and_outside_the_window(spark):
    touches = [("c1", "i1", "u1", "a1", T0), ("c2", "i2", "u1", "a1", T0 + timedelta(hours=1))]
    got = fates(spark, [conv("in", 72, "c1"), conv("edge_out", 72.001, "c1"), conv("before", -1, "c1"),
                        conv("unknown_click", 1, "c9")], touches)
    assert got == {"in": ("attributed", "c1", "i1"), "edge_out": ("unattributed", None, None),
                   "before": ("unattributed", None, None), "unknown_click": ("unattributed", None, None)}


def test_unnamed_conversion_takes_the_last_click_of_user_and_ad(spark):
    touches = [("c1", "i1", "u1", "a1", T0), ("c2", "i2", "u1", "a1", T0 + timedelta(hours=2)),
               ("c3", "i3", "u1", "a1", T0 + timedelta(hours=9)), ("c4", "i4", "u2", "a1", T0 + timedelta(hours=3)),
               ("c5", "i5", "u1", "a2", T0 + timedelta(hours=3))]
    got = fates(spark, [conv("last", 5), conv("other_user", 5, user="u3")], touches)
    assert got == {"last": ("attributed", "c2", "i2"), "other_user": ("unattributed", None, None)}


def test_viewable_impression_mode(spark):
    touches = [("i1", "i1", "u1", "a1", T0), ("i2", "i2", "u1", "a1", T0 + timedelta(hours=1))]
    got = fates(spark, [conv("v", 2, click="ignored-in-this-mode")], touches, mode="viewable_impression")
    assert got == {"v": ("attributed", None, "i2")}


def test_touchpoints_per_mode(spark):
    from pyspark.testing import assertDataFrameEqual

    from pipelines.conversions import touchpoints

    imps = spark.createDataFrame([("i1", "u1", "a1", T0, True), ("i2", "u1", "a2", T0, False)],
                                 "impression_id string, user_id string, ad_id string, event_ts timestamp, "
                                 "is_viewable boolean")
    clicks = spark.createDataFrame([("c2", "i2", "u1", T0 + timedelta(minutes=1)),
                                    ("c9", "gone", "u1", T0)],   # its impression is not valid: no touchpoint
                                   "click_id string, impression_id string, user_id string, event_ts timestamp")
    schema = "touch_id string, impression_id string, user_id string, ad_id string, touch_ts timestamp"
    assertDataFrameEqual(touchpoints("click", imps, clicks),
                         spark.createDataFrame([("c2", "i2", "u1", "a2", T0 + timedelta(minutes=1))], schema))
    assertDataFrameEqual(touchpoints("viewable_impression", imps, None),
                         spark.createDataFrame([("i1", "i1", "u1", "a1", T0)], schema))


def test_conversion_fates_keep_every_row_duplicates_as_such(spark):
    from pyspark.sql import functions as F

    from pipelines.conversions import conversion_fates

    flagged = spark.createDataFrame([conv("v1", 1, "c1"), conv("v1", 2, "c1")], CONV).withColumn(
        "is_duplicate", F.col("event_ts") > F.lit(T0 + timedelta(hours=1, minutes=30)))
    touches = spark.createDataFrame([("c1", "i1", "u1", "a1", T0)], TOUCH)
    got = sorted((r["conversion_id"], r["fate"], r["attributed_click_id"])
                 for r in conversion_fates(flagged, touches, "click", 72).collect())
    assert got == [("v1", "attributed", "c1"), ("v1", "duplicate", None)]
