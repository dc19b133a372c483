"""CONTRACT 3.3, 3.4, 3.7 and 5: bot verdicts, MRC viewability edges, privacy."""
from __future__ import annotations

from datetime import date

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipelines.bots import behavioural_bot_user_days, matched_bot_pattern
from pipelines.privacy import KEY_COLUMN, keyed_hash, truncate_ip, with_hash_key
from pipelines.viewability import creative_types_as_of, is_measured, is_viewable, min_viewable_ms


def test_viewability_edges_display_and_video(spark):
    rows = [(None, "banner"), (999, "banner"), (1000, "banner"), (1000, "native"), (1999, "video"),
            (2000, "video"), (1500, None), (0, "banner")]
    df = spark.createDataFrame(rows, "in_view_ms int, creative_type string")
    min_ms = min_viewable_ms(F.col("creative_type"), 1000, 2000)
    got = df.select("in_view_ms", "creative_type", is_measured(F.col("in_view_ms")).alias("measured"),
                    is_viewable(F.col("in_view_ms"), min_ms).alias("viewable"))
    expected = spark.createDataFrame(
        [(None, "banner", False, False), (999, "banner", True, False), (1000, "banner", True, True),
         (1000, "native", True, True), (1999, "video", True, False), (2000, "video", True, True),
         (1500, None, True, True), (0, "banner", True, False)],
        "in_view_ms int, creative_type string, measured boolean, viewable boolean")
    assertDataFrameEqual(got, expected)


def test_declared_bot_patterns_case_insensitive_first_match(spark):
    """The patterns are the test's own, so the verdicts do not hang on the order of conf/bot_patterns.txt."""
    patterns = ["Bot", "curl/", "wget", "python-requests", "headlesschrome", "chrome", "slurp"]
    agents = ["Mozilla/5.0 (compatible; Googlebot/2.1)", "CURL/8.4.0", "curl-like agent", "Mozilla/5.0 Firefox/120",
              "Wget/1.21", "python-requests/2.31", None, "HeadlessChrome/120", "Yahoo! Slurp", "Mozilla/5.0 Chrome/120"]
    df = spark.createDataFrame([(a,) for a in agents], "ua string")
    got = df.select("ua", matched_bot_pattern(F.col("ua"), patterns).alias("pattern"))
    expected = spark.createDataFrame(
        list(zip(agents, ["bot", "curl/", None, None, "wget", "python-requests", None,
                          "headlesschrome",   # both headlesschrome and chrome match: the first listed wins
                          "slurp", "chrome"])),
        "ua string, pattern string")
    assertDataFrameEqual(got, expected)
    reversed_first = df.select(matched_bot_pattern(F.col("ua"), ["chrome", "headlesschrome"]).alias("p"))
    assert [r["p"] for r in reversed_first.collect()][7] == "chrome"


def test_the_default_bot_list_is_the_contracts(clean_cfg):
    """CONTRACT 3.3's default list, in any order."""
    assert sorted(p.lower() for p in clean_cfg.bot_patterns) == sorted(
        ["bot", "spider", "crawl", "slurp", "headless", "phantomjs", "python-requests", "curl/", "wget"])


def test_behavioural_bots_strictly_over_the_limits(spark):
    d = date(2025, 3, 1)
    imps = [("u_at", d)] * 3 + [("u_over", d)] * 4 + [("u_over", date(2025, 3, 2))] * 2
    clicks = [("c_at", d)] * 2 + [("c_over", d)] * 3
    imp_df = spark.createDataFrame(imps, "user_id string, event_date date")
    clk_df = spark.createDataFrame(clicks, "user_id string, event_date date")
    got = behavioural_bot_user_days(imp_df, clk_df, max_impressions=3, max_clicks=2)
    expected = spark.createDataFrame([("u_over", d, 4, 0, "4 impressions > 3"), ("c_over", d, 0, 3, "3 clicks > 2")],
                                     "user_id string, event_date date, impressions long, clicks long, "
                                     "sivt_reason string")
    assertDataFrameEqual(got, expected)


def test_ip_truncation_v4_v6_and_garbage(spark):
    ips = ["203.0.113.77", "2001:db8:a:b::1", "2001:0db8::1", "::1", "fe80:1:2:3:4:5:6:7", "not-an-ip", None,
           "2001:db8:bdd2:6d43:2c9d:2dc2:2bf3:1", "203.0.113.77:51234", "1.2.3.4::", "1:2:3:4:5:6:7:8:9",
           "2001::db8::1", "12345::1"]
    df = spark.createDataFrame([(i,) for i in ips], "ip string")
    got = [r[0] for r in df.select(truncate_ip(F.col("ip"))).collect()]
    assert got == ["203.0.113.0/24", "2001:db8:a::/48", "2001:db8:0::/48", "0:0:0::/48", "fe80:1:2::/48", None, None,
                   "2001:db8:bdd2::/48", "203.0.113.0/24", None, None, None, None]


def hashed(df, key):
    return [r[0] for r in with_hash_key(df, key).select(keyed_hash(F.col("ua"), F.col(KEY_COLUMN))).collect()]


def test_keyed_hash_needs_a_key_and_hides_the_value(spark):
    df = spark.createDataFrame([("Mozilla/5.0",), (None,)], "ua string")
    assert hashed(df, None) == [None, None]
    first, other = hashed(df, "k1-secret"), hashed(df, "k2-secret")
    assert first[1] is None and len(first[0]) == 64 and "Mozilla" not in first[0] and first[0] != other[0]
    assert first == hashed(df, "k1-secret")


def test_hash_key_stays_out_of_query_plans_and_config_repr(spark, clean_cfg):
    import dataclasses

    df = with_hash_key(spark.createDataFrame([("Mozilla/5.0",)], "ua string"), "k1-secret")
    plan = df.select(keyed_hash(F.col("ua"), F.col(KEY_COLUMN)))._jdf.queryExecution().toString()
    assert "k1-secret" not in plan
    assert "k1-secret" not in repr(dataclasses.replace(clean_cfg, ua_hash_key="k1-secret"))


def test_only_judged_user_days_are_judged_counting_all_but_duplicates(spark):
    from pipelines.bots import bot_user_days_among, counted_events

    d = date(2025, 3, 1)
    imps = spark.createDataFrame([("u1", d, "valid")] * 2 + [("u1", d, "bot_declared"), ("u1", d, "duplicate")]
                                 + [("u2", d, "valid")] * 4, "user_id string, event_date date, fate string")
    counted = counted_events(imps, F.col("fate") == "duplicate")
    judged = spark.createDataFrame([("u1", d)], "user_id string, event_date date")
    no_clicks = spark.createDataFrame([], "user_id string, event_date date")
    got = bot_user_days_among(judged, counted, no_clicks, max_impressions=2, max_clicks=5)
    # u1: 3 counted (the declared bot's impression counts, the duplicate does not) > 2; u2 is over too, not judged
    assertDataFrameEqual(got, spark.createDataFrame(
        [("u1", d, 3, 0, "3 impressions > 2")],
        "user_id string, event_date date, impressions long, clicks long, sivt_reason string"))


def test_creative_types_from_the_newest_ads_snapshot_by_the_arrival_day(spark):
    ads = spark.createDataFrame([
        ("a1", "display", date(2025, 3, 1), "f1", 1),
        ("a2", "video", date(2025, 3, 1), "f1", 2),      # gone from the newer snapshot: not known on 03-03
        ("a1", "video", date(2025, 3, 2), "f2", 2),      # listed twice on one day: the first line wins
        ("a1", "display", date(2025, 3, 2), "f2", 1),
        ("a3", "video", date(2025, 3, 4), "f4", 1),      # published after the arrival day
    ], "ad_id string, creative_type string, dt date, _source_file string, _line_hash long")
    assertDataFrameEqual(creative_types_as_of(ads, date(2025, 3, 3)),
                         spark.createDataFrame([("a1", "display")], "ad_id string, creative_type string"))
    assert creative_types_as_of(ads, date(2025, 2, 28)) is None
