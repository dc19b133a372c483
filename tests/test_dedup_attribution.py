"""CONTRACT 3.2, 3.5, 3.6: duplicates, invalid clicks, attribution, orphans, repeats."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from pyspark.testing import assertDataFrameEqual

from pipelines.attribution import decide_clicks
from pipelines.dedup import flag_duplicates

T0 = datetime(2025, 3, 1, 12, 0, 0)
D = date(2025, 3, 1)
BRONZE = "impression_id string, event_ts timestamp, hour int, _source_file string, _line_hash long"


def test_earliest_copy_wins_even_when_the_later_copy_lands_first(spark):
    today = spark.createDataFrame([
        ("i1", T0 + timedelta(seconds=1), 8, "a", 1),   # later copy, landed first (hour 8)
        ("i1", T0, 9, "b", 2),                          # original, landed an hour later: kept
        ("i2", T0, 9, "b", 3),
        ("i2", T0, 9, "b", 3),                          # byte-identical re-delivery
        ("i3", T0 - timedelta(days=1), 9, "b", 4),      # re-delivered on a later day, earlier ts
    ], BRONZE)
    seen = spark.createDataFrame([("i3",), ("i3",)], "impression_id string")  # a day keeps its duplicate rows
    got = flag_duplicates(today, seen, "impression_id").select("impression_id", "hour", "is_duplicate")
    expected = spark.createDataFrame([("i1", 8, True), ("i1", 9, False), ("i2", 9, False), ("i2", 9, True),
                                      ("i3", 9, True)], "impression_id string, hour int, is_duplicate boolean")
    assertDataFrameEqual(got, expected)


PENDING = ("click_id string, impression_id string, event_ts timestamp, event_date date, user_id string, "
           "dwell_ms int, bot_pattern string")


def decide(spark, clicks, impressions, malformed=(), sivt=(), already=(), window_s=1800, min_dwell=1000):
    pending = spark.createDataFrame(clicks, PENDING)
    imps = spark.createDataFrame(impressions, "impression_id string, imp_event_ts timestamp, imp_fate string")
    bad = spark.createDataFrame([(i,) for i in malformed], "impression_id string")
    bots = spark.createDataFrame(list(sivt), "user_id string, event_date date")
    done = spark.createDataFrame([(i,) for i in already], "impression_id string")
    rows = [(r["click_id"], r["fate"]) for r in decide_clicks(pending, imps, bad, bots, done, window_s,
                                                               min_dwell).collect()]
    fates = dict(rows)
    assert len(fates) == len(rows), f"a click decided more than once: {sorted(rows)}"   # no doubled rows hidden
    return fates


def click(cid, imp, seconds, dwell=5000, user="u1", bot=None):
    return (cid, imp, T0 + timedelta(seconds=seconds), D, user, dwell, bot)


def test_window_edges_and_time_order(spark):
    imps = [(f"i{n}", T0, "valid") for n in range(6)]
    clicks = [click("at_edge", "i0", 1800), click("past_edge", "i1", 1800.000001), click("same_instant", "i2", 0),
              click("before", "i3", -0.001), click("inside", "i4", 5), click("way_after", "i5", 7200)]
    assert decide(spark, clicks, imps) == {"at_edge": "attributed", "past_edge": "out_of_window",
                                           "same_instant": "attributed", "before": "invalid_time",
                                           "inside": "attributed", "way_after": "out_of_window"}


def test_dwell_edges(spark):
    imps = [(f"i{n}", T0, "valid") for n in range(4)]
    clicks = [click("d999", "i0", 10, 999), click("d1000", "i1", 10, 1000), click("dnull", "i2", 10, None),
              click("d0", "i3", 10, 0)]
    assert decide(spark, clicks, imps) == {"d999": "invalid_dwell", "d1000": "attributed", "dnull": "attributed",
                                           "d0": "invalid_dwell"}


def test_bot_traffic_orphans_and_malformed_impressions(spark):
    imps = [("ibot", T0, "bot_declared"), ("isivt", T0, "bot_behavioural"), ("ok1", T0, "valid"),
            ("ok2", T0, "valid")]
    clicks = [click("on_bot_imp", "ibot", 10), click("on_sivt_imp", "isivt", 10),
              click("bot_ua", "ok1", 10, bot="bot"), click("sivt_user", "ok2", 10, user="heavy"),
              click("orphan", "nowhere", 10), click("on_malformed", "broken", 10)]
    got = decide(spark, clicks, imps, malformed=["broken"], sivt=[("heavy", D)])
    assert got == {"on_bot_imp": "on_bot_traffic", "on_sivt_imp": "on_bot_traffic", "bot_ua": "on_bot_traffic",
                   "sivt_user": "on_bot_traffic", "orphan": "orphan", "on_malformed": "on_bot_traffic"}


def test_first_valid_click_counts_and_repeats_across_runs(spark):
    imps = [("i1", T0, "valid"), ("i2", T0, "valid")]
    clicks = [click("second", "i1", 20), click("first", "i1", 10), click("short_first", "i1", 5, dwell=10),
              click("after_earlier_run", "i2", 30)]
    got = decide(spark, clicks, imps, already=["i2"])
    assert got == {"first": "attributed", "second": "repeat", "short_first": "invalid_dwell",
                   "after_earlier_run": "repeat"}


def test_precedence_bot_beats_time_and_dwell(spark):
    imps = [("i1", T0, "bot_declared")]
    assert decide(spark, [click("c", "i1", -5, dwell=1)], imps) == {"c": "on_bot_traffic"}


def test_decide_clicks_never_multiplies_rows(spark):
    """Every lookup lists its key twice, and each key matches a click: still one row per click."""
    imps = [("i1", T0, "valid"), ("i2", T0, "valid"), ("i3", T0, "valid")]
    clicks = [click("c1", "i1", 10), click("c2", "i2", 10, user="heavy"), click("c3", "i3", 10),
              click("c4", "broken", 10)]
    pending = spark.createDataFrame(clicks, PENDING)
    out = decide_clicks(pending, spark.createDataFrame(imps, "impression_id string, imp_event_ts timestamp, "
                                                             "imp_fate string"),
                        spark.createDataFrame([("broken",), ("broken",)], "impression_id string"),
                        spark.createDataFrame([("heavy", D), ("heavy", D)], "user_id string, event_date date"),
                        spark.createDataFrame([("i3",), ("i3",)], "impression_id string"), 1800, 1000)
    # whole frame: a doubled row fails it (drop any .distinct() of decide_clicks' lookups and it does)
    assertDataFrameEqual(out.select("click_id", "fate"), spark.createDataFrame(
        [("c1", "attributed"), ("c2", "on_bot_traffic"), ("c3", "repeat"), ("c4", "on_bot_traffic")],
        "click_id string, fate string"))


def test_a_resolution_replaces_its_orphan_row(spark):
    from pipelines.attribution import with_final_fates

    clicks = spark.createDataFrame([("c1", "orphan", D), ("c2", "attributed", D), ("c2", "duplicate", D)],
                                   "click_id string, fate string, dt date")
    resolutions = spark.createDataFrame([("c1", "attributed", date(2025, 3, 2), D)],
                                        "click_id string, fate string, dt date, orphan_dt date")
    got = with_final_fates(clicks, resolutions)
    expected = spark.createDataFrame([("c1", "attributed", date(2025, 3, 2)), ("c2", "attributed", D),
                                      ("c2", "duplicate", D)], "click_id string, fate string, dt date")
    assertDataFrameEqual(got, expected)
