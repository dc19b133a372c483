"""CONTRACT 3.1: every malformed kind gets a reason; well-formed lines parse exactly."""
from __future__ import annotations

from datetime import date, datetime

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipelines.parsing import bronze_rows, classify_lines, likely_renames, quarantine_rows
from pipelines.schemas import ADS, CLICKS, IMPRESSIONS

GOOD = ('{"impression_id":"i1","event_ts":"2025-03-01T08:12:03.250Z","user_id":"u1","ad_id":"a1",'
        '"publisher_id":"p1","position":2,"in_view_ms":1000,"viewable_pct":55.5,"is_exploration":false}')


def classify(spark, cfg, lines, spec=IMPRESSIONS, day=date(2025, 3, 1)):
    df = spark.createDataFrame([(line, "f.jsonl", day, 8) for line in lines],
                               "value string, source_file string, dt date, hour int")
    return classify_lines(df, spec, cfg.ingest)


def reasons(spark, cfg, lines, spec=IMPRESSIONS):
    return [(r["reason"], r["detail"]) for r in classify(spark, cfg, lines, spec).select("reason", "detail").collect()]


@pytest.mark.parametrize("line, reason, detail", [
    ("", "empty_line", None),
    ("   ", "empty_line", None),
    ('{"impression_id":"i1"', "invalid_json", "not a JSON object"),
    ('["i1"]', "invalid_json", "not a JSON object"),
    ('"text"', "invalid_json", "not a JSON object"),
    ("null", "invalid_json", "not a JSON object"),
    ('1,"x":{"a":"b"}', "invalid_json", "not a JSON object"),   # wrapped, it would be a valid object
    (GOOD.replace('{"impression_id":"i1",', '{"impression_id":"i1","impression_id":"i2",'), "invalid_json",
     "duplicate key"),
    # Spark's JSON reader ignores what follows the first value: two records on one line must not become one.
    (GOOD + GOOD.replace('"i1"', '"i2"'), "invalid_json", "more after the JSON object"),
    (GOOD + "," + GOOD.replace('"i1"', '"i2"'), "invalid_json", "more after the JSON object"),
    (GOOD + " x", "invalid_json", "more after the JSON object"),
    (GOOD + '},"__ctr_line_end__":1}', "invalid_json", "more after the JSON object"),
    (GOOD + '},"__ctr_line_end__":{}}', "invalid_json", "more after the JSON object"),
    # what would continue the wrapper's object: a key after the record
    (GOOD + ',"b":2', "invalid_json", "more after the JSON object"),
    (GOOD + ',"b":{"c":"1"}', "invalid_json", "more after the JSON object"),
    (GOOD + ',"v":{"c":"1"}', "invalid_json", "more after the JSON object"),
    (GOOD.replace('"user_id":"u1",', ""), "missing_field", "user_id"),
    (GOOD.replace('"impression_id":"i1"', '"impression_id":""'), "missing_field", "impression_id"),
    (GOOD.replace('"impression_id":"i1"', '"impression_id":null'), "missing_field", "impression_id"),
    (GOOD.replace('"ad_id":"a1","publisher_id":"p1",', ""), "missing_field", "ad_id,publisher_id"),
    (GOOD.replace('"position":2', '"position":"top"'), "wrong_type", "position"),
    (GOOD.replace('"position":2', '"position":2.5'), "wrong_type", "position"),
    (GOOD.replace('"user_id":"u1"', '"user_id":{"id":1}'), "wrong_type", "user_id"),
    (GOOD.replace('"is_exploration":false', '"is_exploration":"yes"'), "wrong_type", "is_exploration"),
    (GOOD.replace("2025-03-01T08:12:03.250Z", "2025-02-30T25:61:00Z"), "bad_timestamp", "event_ts"),
    (GOOD.replace('"2025-03-01T08:12:03.250Z"', "1740816723"), "bad_timestamp", "event_ts"),
    (GOOD.replace("2025-03-01T08:12:03.250Z", "2025-03-01 08:12:03"), "bad_timestamp", "event_ts"),
    (GOOD.replace("2025-03-01T08:12:03.250Z", "2025-03-01"), "bad_timestamp", "event_ts"),
    (GOOD.replace('"position":2', '"position":0'), "invalid_value", "position"),
    (GOOD.replace('"in_view_ms":1000', '"in_view_ms":2147483648'), "wrong_type", "in_view_ms"),
    (GOOD.replace('"viewable_pct":55.5', '"viewable_pct":100.5'), "invalid_value", "viewable_pct"),
    (GOOD.replace('"in_view_ms":1000', '"in_view_ms":-1'), "invalid_value", "in_view_ms"),
    (GOOD.replace("2025-03-01T08:12:03.250Z", "1970-01-01T00:00:00Z"), "timestamp_out_of_range", None),
    (GOOD.replace("2025-03-01T08:12:03.250Z", "2100-01-01T00:00:00Z"), "timestamp_out_of_range", None),
    (GOOD.replace('"user_id":"u1"', '"user_id":"\ufffd"'), "invalid_utf8", None),
])
def test_each_malformed_kind_gets_its_reason(spark, tiny_cfg, line, reason, detail):
    got = reasons(spark, tiny_cfg, [line])
    assert got[0][0] == reason
    if detail is not None:
        assert got[0][1] == detail


def test_event_time_bounds_are_inclusive_of_lateness_and_skew(spark, tiny_cfg):
    # arrival day 2025-03-01, lag 7 days, skew 60 min: [2025-02-22T00:00, 2025-03-02T01:00)
    lines = [GOOD.replace("2025-03-01T08:12:03.250Z", ts) for ts in
             ["2025-02-22T00:00:00Z", "2025-02-21T23:59:59.999Z", "2025-03-02T00:59:59Z", "2025-03-02T01:00:00Z",
              "2025-03-01t08:12:03z"]]
    assert [r for r, _ in reasons(spark, tiny_cfg, lines)] == [None, "timestamp_out_of_range", None,
                                                               "timestamp_out_of_range", None]


def test_line_too_long_is_quarantined_without_parsing(spark, tiny_cfg):
    huge = GOOD.replace('"u1"', '"' + "x" * (tiny_cfg.ingest.max_line_bytes + 1) + '"')
    assert reasons(spark, tiny_cfg, [huge])[0][0] == "line_too_long"


def test_well_formed_line_parses_every_field_and_keeps_extras(spark, tiny_cfg):
    line = ("\ufeff" + GOOD.replace("2025-03-01T08:12:03.250Z", "2025-03-01T09:12:03.250+01:00")
            .replace('"position":2', '"position":"2"').replace("}", ',"sdk_version":"4.2.1","geo":{"lat":1}}'))
    rows = bronze_rows(classify(spark, tiny_cfg, [line]), IMPRESSIONS, F.lit(None).cast("timestamp"))
    expected = spark.createDataFrame(
        [("i1", datetime(2025, 3, 1, 8, 12, 3, 250000), "u1", "a1", "p1", 2, 1000, 55.5, False,
          {"sdk_version": "4.2.1", "geo": '{"lat":1}'})],
        "impression_id string, event_ts timestamp, user_id string, ad_id string, publisher_id string, "
        "position int, in_view_ms int, viewable_pct double, is_exploration boolean, extra map<string,string>")
    assertDataFrameEqual(rows.select(*expected.columns), expected)


def test_quarantine_keeps_raw_line_file_and_record_id(spark, tiny_cfg):
    bad = GOOD.replace('"position":2', '"position":"top"')
    q = quarantine_rows(classify(spark, tiny_cfg, [bad, GOOD]), IMPRESSIONS, F.lit(None).cast("timestamp"))
    expected = spark.createDataFrame([("impressions", "i1", "wrong_type", "position", bad, "f.jsonl", 8,
                                       date(2025, 3, 1))],
                                     "stream string, record_id string, reason string, detail string, "
                                     "raw_line string, source_file string, hour int, dt date")
    assertDataFrameEqual(q.select(*expected.columns), expected)


def test_click_dwell_and_dimension_domains(spark, tiny_cfg):
    click = ('{"click_id":"c1","impression_id":"i1","event_ts":"2025-03-01T08:12:03Z","user_id":"u1",'
             '"dwell_ms":%s}')
    assert [r for r, _ in reasons(spark, tiny_cfg, [click % "0", click % "-1", click % '"long"'], CLICKS)] == [
        None, "invalid_value", "wrong_type"]
    ad = '{"ad_id":"a1","creative_type":"%s"}'
    assert [r for r, _ in reasons(spark, tiny_cfg, [ad % "video", ad % "hologram"], ADS)] == [None, "invalid_value"]


def test_likely_renames_match_contract_fields_up_to_case_and_separators():
    assert likely_renames(["inViewMs", "In-View-Ms", "sdk_version", "in_view_ms", "userid", "view_ms"],
                          IMPRESSIONS) == {"In-View-Ms": "in_view_ms", "inViewMs": "in_view_ms", "userid": "user_id"}
    assert likely_renames(["dwellMs", "position"], CLICKS) == {"dwellMs": "dwell_ms"}


def test_report_names_unknown_fields_and_likely_renames(spark):
    from jobs.stages.silver import unknown_fields

    imp = spark.createDataFrame([({"inViewMs": "1500", "sdk": "5"},), ({"sdk": "5"},), (None,)],
                                "extra map<string,string>")
    clk = spark.createDataFrame([(None,)], "extra map<string,string>")
    assert unknown_fields({"impressions": imp, "clicks": clk}) == {
        "impressions": {"fields": {"inViewMs": 1, "sdk": 2}, "likely_renames": {"inViewMs": "in_view_ms"}},
        "clicks": {"fields": {}, "likely_renames": {}}}
