"""CONTRACT 3.8 and 4: closing labels, report keys and balance."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipelines.conversions import attribute_conversions
from pipelines.labels import close_conversions, close_day
from pipelines.report import CONTRACT_KEYS, balance_errors, contract_counts

D = date(2025, 3, 1)


def test_close_day_labels_clicks_and_reclassifies_late_bots(spark):
    imp = spark.createDataFrame(
        [("i1", datetime(2025, 3, 1, 8), D, "u1", D), ("i2", datetime(2025, 3, 1, 9), D, "u1", D),
         ("i3", datetime(2025, 3, 1, 23), D, "bot", date(2025, 3, 2))],
        "impression_id string, event_ts timestamp, event_date date, user_id string, dt date")
    for col, ddl in [("ad_id", "string"), ("publisher_id", "string"), ("position", "int"), ("device_type", "string"),
                     ("country", "string"), ("is_exploration", "boolean"), ("creative_type", "string"),
                     ("in_view_ms", "int"), ("is_measured", "boolean"), ("is_viewable", "boolean")]:
        imp = imp.withColumn(col, F.lit(None).cast(ddl))
    clicks = spark.createDataFrame([("i2", "c2", datetime(2025, 3, 1, 9, 1)),
                                    ("i3", "c3", datetime(2025, 3, 1, 23, 1))],
                                   "impression_id string, click_id string, event_ts timestamp")
    bots = spark.createDataFrame([("bot", D)], "user_id string, event_date date")
    converted = spark.createDataFrame([("i2",), ("i2",)], "impression_id string")
    got = close_day(imp, clicks, bots, converted).select("impression_id", "clicked", "converted",
                                                         "reclassified_bot", "arrival_dt")
    assertDataFrameEqual(got, spark.createDataFrame(
        [("i1", False, False, False, D), ("i2", True, True, False, D), ("i3", True, False, True, date(2025, 3, 2))],
        "impression_id string, clicked boolean, converted boolean, reclassified_bot boolean, arrival_dt date"))


def test_conversion_labels_close_after_the_window_with_what_landed_by_then(spark):
    # Four impressions of 03-01 at 10:00, each clicked at 10:10; the conversion window is 72 h and the
    # day's conversion labels close with the night of 03-05 (label maturity 1 + 3 days).
    imp_ts, click_ts = datetime(2025, 3, 1, 10), datetime(2025, 3, 1, 10, 10)
    touch = spark.createDataFrame([(f"c{i}", f"i{i}", "u1", f"a{i}", click_ts) for i in range(1, 5)],
                                  "touch_id string, impression_id string, user_id string, ad_id string, "
                                  "touch_ts timestamp")
    conversions = spark.createDataFrame([
        ("v1", imp_ts + timedelta(hours=60), "u1", "a1", "c1", 1.0, "sale", date(2025, 3, 3)),   # 60 h: counts
        ("v2", imp_ts + timedelta(hours=80), "u1", "a2", "c2", 1.0, "sale", date(2025, 3, 4)),   # after the window
        ("v3", imp_ts + timedelta(hours=70), "u1", "a3", "c3", 1.0, "sale", date(2025, 3, 6)),   # lands after close
        ("v4", imp_ts + timedelta(hours=2), "u1", "a4", None, 1.0, "sale", date(2025, 3, 1)),    # by user and ad
    ], "conversion_id string, event_ts timestamp, user_id string, ad_id string, click_id string, value double, "
       "type string, dt date")
    decided = attribute_conversions(conversions, touch, "click", 72)
    labels = spark.createDataFrame([(f"i{i}", D) for i in range(1, 6)], "impression_id string, event_date date")
    closed = close_conversions(labels, decided, date(2025, 3, 5))
    expected = spark.createDataFrame([
        ("i1", D, True, imp_ts + timedelta(hours=60), date(2025, 3, 5)),
        ("i2", D, False, None, date(2025, 3, 5)),
        ("i3", D, False, None, date(2025, 3, 5)),   # inside the window, but it landed after the labels closed
        ("i4", D, True, imp_ts + timedelta(hours=2), date(2025, 3, 5)),
        ("i5", D, False, None, date(2025, 3, 5)),   # never clicked, no conversion
    ], "impression_id string, event_date date, converted boolean, conversion_ts timestamp, closed_on date")
    assertDataFrameEqual(closed, expected, checkRowOrder=False, ignoreNullable=True)


def test_contract_counts_have_every_key_and_balance():
    counts = contract_counts({"valid": 10, "duplicate": 2, "bot_declared": 1, "bot_behavioural": 3},
                             {"attributed": 4, "orphan": 1, "repeat": 2, "duplicate": 1, "on_bot_traffic": 1},
                             {"impressions": 5, "clicks": 2}, measured=8, viewable=6, clicked=4)
    assert set(CONTRACT_KEYS) <= set(counts)
    assert all(isinstance(counts[k], int) for k in CONTRACT_KEYS)
    assert counts["impressions_raw"] == 21 and counts["clicks_raw"] == 11
    assert balance_errors(counts, {"ingest read": {"impressions": 21, "clicks": 11}}) == []


@pytest.mark.parametrize("change, message", [
    ({"impressions_valid": 11}, "impressions_raw = 21 but its outcomes add up to 22"),
    ({"clicks_raw": 12}, "clicks_raw = 12 but its outcomes add up to 11"),
    ({"impressions_viewable": 9}, "viewable <= impressions_measured"),
])
def test_unbalanced_reports_are_named(change, message):
    counts = contract_counts({"valid": 10, "duplicate": 2, "bot_declared": 1, "bot_behavioural": 3},
                             {"attributed": 4, "orphan": 1, "repeat": 2, "duplicate": 1, "on_bot_traffic": 1},
                             {"impressions": 5, "clicks": 2}, measured=8, viewable=6, clicked=4)
    counts.update(change)
    assert any(message in e for e in balance_errors(counts, {}))


def test_lines_lost_between_ingest_and_decisions_are_caught():
    counts = contract_counts({"valid": 10}, {}, {}, 0, 0, 0)
    assert balance_errors(counts, {"ingest read": {"impressions": 11}, "bronze + quarantine hold": {"impressions": 10}}
                          ) == ["ingest read 11 impressions lines but the report accounts for 10"]


def test_which_days_a_night_closes(clean_cfg):
    from dataclasses import replace

    from pipelines.labels import click_day_closed_by, conversion_day_closed_by

    clean = replace(clean_cfg, label_maturity_days=1, conversion_maturity_days=4)
    assert click_day_closed_by(date(2025, 3, 5), clean) == date(2025, 3, 4)
    assert conversion_day_closed_by(date(2025, 3, 5), clean) == date(2025, 3, 1)
