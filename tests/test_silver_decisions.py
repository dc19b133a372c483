"""pipelines/silver.py on inline frames: the impression fate precedence with viewability, and which rows a
night's clicks write where (CONTRACT 3.2-3.7)."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipelines import silver
from pipelines.schemas import columns, ddl

T0 = datetime(2025, 3, 1, 12, 0, 0)
D = date(2025, 3, 1)
FLAGGED_IMPRESSIONS = ("impression_id string, event_ts timestamp, event_date date, user_id string, ad_id string, "
                       "publisher_id string, position int, device_type string, country string, ip_prefix string, "
                       "ua_hash string, bot_pattern string, is_exploration boolean, viewable_pct double, "
                       "in_view_ms int, dt date, is_duplicate boolean")


def impression(iid, user, ad, bot=None, in_view=None, dup=False, exploration=None):
    return (iid, T0, D, user, ad, "p1", 1, "mobile", "US", "10.0.0.0", "h", bot, exploration, None, in_view, D, dup)


def test_impression_fate_precedence_and_viewability(spark, clean_cfg):
    clean = replace(clean_cfg, viewable_min_ms_display=1000, viewable_min_ms_video=2000)
    flagged = spark.createDataFrame([
        impression("dup", "u_bot", "a_video", bot="crawler", in_view=5000, dup=True),  # duplicate beats all
        impression("declared", "u_bot", "a_video", bot="crawler", in_view=1500),      # declared beats behavioural
        impression("behavioural", "u_bot", "a_display", in_view=1000),                # exactly 1,000 ms: viewable
        impression("video_short", "u1", "a_video", in_view=1999, exploration=True),   # video needs 2,000 ms
        impression("video_long", "u1", "a_video", in_view=2000),
        impression("unknown_ad", "u1", "a_missing", in_view=1000),                    # not in ads: display rule
        impression("unmeasured", "u1", "a_display"),                                  # null in_view_ms
    ], FLAGGED_IMPRESSIONS)
    bot_days = spark.createDataFrame([("u_bot", D, "500 impressions")], "user_id string, event_date date, "
                                                                        "sivt_reason string")
    ads = spark.createDataFrame([("a_video", "video"), ("a_display", "display")], "ad_id string, creative_type string")

    out = silver.decide_impressions(flagged, bot_days, ads, clean)

    assert out.columns == silver.IMPRESSION_COLUMNS == columns("silver/impressions")
    expected = spark.createDataFrame([
        ("dup", "video", False, True, True, "duplicate", "impression_id delivered before"),
        ("declared", "video", False, True, False, "bot_declared", "user agent matches crawler"),
        ("behavioural", "display", False, True, True, "bot_behavioural", "user-day: 500 impressions"),
        ("video_short", "video", True, True, False, "valid", None),
        ("video_long", "video", False, True, True, "valid", None),
        ("unknown_ad", None, False, True, True, "valid", None),
        ("unmeasured", "display", False, False, False, "valid", None),
    ], "impression_id string, creative_type string, is_exploration boolean, is_measured boolean, "
       "is_viewable boolean, fate string, fate_detail string")
    assertDataFrameEqual(out.select(*expected.columns), expected)


PREPARED_CLICKS = ("click_id string, impression_id string, event_ts timestamp, event_date date, user_id string, "
                   "dwell_ms int, ip_prefix string, ua_hash string, bot_pattern string, dt date, is_duplicate boolean")
DECIDED = ddl("silver/click_resolutions")


def click(cid, iid, dup=False):
    return (cid, iid, T0, D, "u1", 3000, "10.0.0.0", "h", None, D, dup)


def decided(cid, iid, fate, orphan_dt=None):
    return (cid, iid, T0, D, "u1", 3000, "10.0.0.0", "h", None, None, None, fate, None, orphan_dt, D)


def test_pending_clicks_are_todays_first_copies_and_waiting_orphans(spark):
    today = spark.createDataFrame([click("c1", "i1"), click("c1", "i1", dup=True), click("c0", "i0", dup=True)],
                                  PREPARED_CLICKS)
    earlier = date(2025, 2, 27)
    retries = spark.createDataFrame([decided("c9", "i9", "orphan", earlier)], DECIDED).withColumn("dt", F.lit(earlier))

    got = silver.pending_clicks(today, retries, D)

    assert got.columns == [*silver.PENDING_COLUMNS, "dt"]
    assertDataFrameEqual(got.select("click_id", "orphan_dt", "dt"), spark.createDataFrame(
        [("c1", None, D), ("c9", earlier, D)], "click_id string, orphan_dt date, dt date"))


def test_click_day_rows_every_click_once_and_resolutions_apart(spark):
    today = spark.createDataFrame([click("c1", "i1"), click("c2", "i2"), click("c1", "i1", dup=True),
                                   click("c0", "i0", dup=True)], PREPARED_CLICKS)
    earlier = date(2025, 2, 27)
    fates = spark.createDataFrame([
        decided("c1", "i1", "attributed"), decided("c2", "i2", "orphan"),
        decided("c8", "i8", "attributed", earlier),   # an earlier orphan whose impression landed today
        decided("c9", "i9", "orphan", earlier),       # still orphan: not written again
    ], DECIDED)

    clicks, resolutions = silver.click_day_rows(fates, today)

    assert clicks.columns == columns("silver/clicks")
    assert resolutions.columns == columns("silver/click_resolutions")
    assertDataFrameEqual(clicks.select("click_id", "fate", "fate_detail"), spark.createDataFrame([
        ("c1", "attributed", None), ("c2", "orphan", None), ("c1", "duplicate", "click_id delivered before"),
        ("c0", "duplicate", "click_id delivered before")], "click_id string, fate string, fate_detail string"))
    assertDataFrameEqual(resolutions.select("click_id", "fate", "orphan_dt"), spark.createDataFrame(
        [("c8", "attributed", earlier)], "click_id string, fate string, orphan_dt date"))
