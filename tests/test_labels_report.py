"""CONTRACT 3.8 and 4: closing labels, report keys and balance."""
from __future__ import annotations

from datetime import date, datetime

import pytest
from pyspark.sql import functions as F

from pipelines.labels import close_day
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
    clicks = spark.createDataFrame([("i2", "c2", datetime(2025, 3, 1, 9, 1)), ("i3", "c3", datetime(2025, 3, 1, 23, 1))],
                                   "impression_id string, click_id string, event_ts timestamp")
    bots = spark.createDataFrame([("bot", D)], "user_id string, event_date date")
    converted = spark.createDataFrame([("i2",), ("i2",)], "impression_id string")
    got = {r["impression_id"]: (r["clicked"], r["converted"], r["reclassified_bot"], r["arrival_dt"])
           for r in close_day(imp, clicks, bots, converted).collect()}
    assert got == {"i1": (False, False, False, D), "i2": (True, True, False, D),
                   "i3": (True, False, True, date(2025, 3, 2))}


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
