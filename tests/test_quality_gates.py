"""Each gate blocks each kind of violation and leaves the published tables exactly as they were."""
from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

import pytest

from jobs.runtime import storage
from jobs.runtime.layout import Warehouse
from jobs.runtime.quality import GateFailed, gate, metrics_uri, table_versions
from jobs.stages.silver import SCHEMAS
from pipelines.report import contract_counts

D = date(2025, 3, 10)
TS = datetime(2025, 3, 10, 8, 0, 0)

BRONZE_IMP = ("impression_id string, event_ts timestamp, user_id string, ad_id string, publisher_id string, "
              "position int, device_type string, country string, user_agent string, ip string, viewable_pct double, "
              "in_view_ms int, is_exploration boolean, extra map<string,string>, _source_file string, "
              "_line_hash long, _ingested_at timestamp, hour int, dt date")
ENTITY_DAY = ("entity string, key string, event_date date, impressions long, measured long, viewable long, "
              "clicks long, viewable_clicks long, clicks_after_day long, "
              "viewable_clicks_after_day long, last_impression_ts timestamp, "
              "last_click_ts timestamp, last_click_ts_in_day timestamp, users_sketch binary")
FEATURES = ("entity string, key string, as_of_date date, imps_7d long, clicks_7d long, viewable_7d long, "
            "viewable_clicks_7d long, conv_7d long, ctr_7d double, vctr_7d double, last_impression_ts timestamp, "
            "last_click_ts timestamp")
TRAINING = ("impression_id string, event_date date, event_ts timestamp, user_id string, ad_id string, label int, "
            "converted int, split string, neg_keep_rate double, f_ad_ctr_7d double, f_user_imps_7d double, "
            "c_position string")


def bronze_imp(i: int) -> dict:
    return dict(impression_id=f"i{i}", event_ts=TS, user_id="u1", ad_id="a1", publisher_id="p1", position=1,
                device_type="mobile", country="DE", user_agent="ua", ip="10.0.0.1", viewable_pct=80.0,
                in_view_ms=1500, is_exploration=False, extra=None, _source_file="f.jsonl", _line_hash=i,
                _ingested_at=TS, hour=8, dt=D)


def silver_click(i: int) -> dict:
    return dict(click_id=f"c{i}", impression_id=f"i{i}", event_ts=TS, event_date=D, user_id="u1", dwell_ms=5000,
                ip_prefix="10.0.0.0/24", ua_hash=None, bot_pattern=None, imp_event_ts=TS - timedelta(seconds=30),
                delay_s=30.0, fate="attributed", fate_detail="", dt=D)


def label(i: int) -> dict:
    return dict(impression_id=f"i{i}", event_ts=TS, event_date=D, user_id="u1", ad_id="a1", publisher_id="p1",
                position=1, device_type="mobile", country="DE", is_exploration=False, creative_type="banner",
                in_view_ms=1500, is_measured=True, is_viewable=True, clicked=i % 2 == 0,
                click_id=f"c{i}" if i % 2 == 0 else None, click_ts=TS if i % 2 == 0 else None, converted=False,
                arrival_dt=D, closed_on=D + timedelta(days=1))


def conversion_label(i: int) -> dict:
    return dict(impression_id=f"i{i}", event_date=D, converted=i == 1,
                conversion_ts=TS + timedelta(hours=60) if i == 1 else None, closed_on=D + timedelta(days=4))


def entity_day(i: int) -> dict:
    return dict(entity="ad", key=f"a{i}", event_date=D, impressions=10, measured=8, viewable=5, clicks=2,
                viewable_clicks=1, clicks_after_day=1, viewable_clicks_after_day=0, last_impression_ts=TS,
                last_click_ts=TS + timedelta(hours=16, minutes=5),
                last_click_ts_in_day=TS, users_sketch=None)


def features(i: int) -> dict:
    return dict(entity="ad", key=f"a{i}", as_of_date=D, imps_7d=100, clicks_7d=3, viewable_7d=50,
                viewable_clicks_7d=2, conv_7d=1, ctr_7d=0.03, vctr_7d=0.04, last_impression_ts=TS - timedelta(days=1),
                last_click_ts=None)


def training(i: int) -> dict:
    return dict(impression_id=f"i{i}", event_date=D, event_ts=TS, user_id="u1", ad_id="a1", label=i % 2,
                converted=0, split="train", neg_keep_rate=0.5, f_ad_ctr_7d=0.03, f_user_imps_7d=12.0, c_position="1")


# suite -> (ddl, row factory, partition column, key column, a rate column and its bad value)
TABLES = {
    "bronze_impressions": (BRONZE_IMP, bronze_imp, "dt", "impression_id", ("viewable_pct", 101.0)),
    "silver_clicks": (SCHEMAS["clicks"], silver_click, "dt", "click_id", None),
    "silver_labels": (SCHEMAS["labels"], label, "event_date", "impression_id", None),
    "silver_conversion_labels": (SCHEMAS["conversion_labels"], conversion_label, "event_date", "impression_id",
                                 None),
    "gold_entity_day": (ENTITY_DAY, entity_day, "event_date", "key", None),
    "gold_features": (FEATURES, features, "as_of_date", "key", ("ctr_7d", 1.5)),
    "gold_training_set": (TRAINING, training, "event_date", "impression_id", ("f_ad_ctr_7d", -0.1)),
}
UNIQUE = ["silver_clicks", "silver_labels", "silver_conversion_labels", "gold_entity_day", "gold_features",
          "gold_training_set"]  # bronze keeps repeats
NON_EMPTY = ["bronze_impressions", "silver_clicks", "gold_entity_day", "gold_features", "gold_training_set"]


@pytest.fixture
def cfg(tiny_cfg, tmp_path):
    return dataclasses.replace(tiny_cfg, paths=dataclasses.replace(tiny_cfg.paths, warehouse=str(tmp_path / "wh")))


def frame(spark, name, rows):
    ddl = TABLES[name][0]
    cols = [f.name for f in spark.createDataFrame([], ddl).schema.fields]
    return spark.createDataFrame([tuple(r[c] for c in cols) for r in rows], ddl)


def content(spark, uri):
    df = storage.read_delta(spark, uri)
    return df.columns, sorted(str(r) for r in df.collect())


def publish_then_break(spark, cfg, bad: dict[str, list[dict]], report=None):
    """Publish good partitions, let a "stage" overwrite them with bad rows, run the gate once; return the error.

    Asserts that every table is back exactly as it was published.
    """
    uris = {name: f"{cfg.paths.warehouse}/t/{name}" for name in bad}
    for name, uri in uris.items():
        storage.write_partition(frame(spark, name, [TABLES[name][1](i) for i in range(4)]), uri, D, TABLES[name][2])
    before, versions = {n: content(spark, u) for n, u in uris.items()}, table_versions(spark, uris)
    for name, uri in uris.items():
        storage.write_partition(frame(spark, name, bad[name]) if bad[name] else
                                spark.createDataFrame([], TABLES[name][0]), uri, D, TABLES[name][2])
        assert content(spark, uri) != before[name]
    with pytest.raises(GateFailed) as err:
        gate(spark, cfg, "test", D, uris, versions, report)
    assert {n: content(spark, u) for n, u in uris.items()} == before, "a published table changed"
    assert err.value.summary["rolled_back"] == {n: f"restored to version {versions[n]}" for n in uris}
    return str(err.value)


def test_good_partitions_pass_and_are_published(spark, cfg):
    uris = {name: f"{cfg.paths.warehouse}/t/{name}" for name in TABLES}
    versions = table_versions(spark, uris)
    for name, uri in uris.items():
        storage.write_partition(frame(spark, name, [TABLES[name][1](i) for i in range(4)]), uri, D, TABLES[name][2])
    summary = gate(spark, cfg, "test", D, uris, versions)
    assert summary["passed"] and summary["failures"] == [] and summary["warnings"] == []
    assert summary["tables"] == {name: {"delta_version": 0} for name in TABLES}
    assert versions == {name: None for name in TABLES}


def test_a_null_key_blocks(spark, cfg):
    bad = {name: [TABLES[name][1](i) for i in range(4)] for name in TABLES}
    for name, rows in bad.items():
        rows[1][TABLES[name][3]] = None
    message = publish_then_break(spark, cfg, bad)
    for name in TABLES:
        assert f"{name}: {TABLES[name][3]} has 1 null values (expected none)" in message


def test_a_duplicate_key_blocks(spark, cfg):
    message = publish_then_break(spark, cfg, {name: [TABLES[name][1](i) for i in (0, 1, 2, 2, 2)] for name in UNIQUE})
    for name in UNIQUE:
        key = {"gold_entity_day": "entity_key_event_date", "gold_features": "entity_key_as_of_date"}.get(
            name, TABLES[name][3])
        assert f"{name}: {key} has 2 duplicate values (expected unique)" in message


def test_tables_without_a_suite_go_back_with_the_failed_ones(spark, cfg):
    """Ingest's dimension snapshots and gold's priors have no suite: a failed gate restores them too."""
    uri = f"{cfg.paths.warehouse}/t/priors"
    spark.createDataFrame([("ad", 0.02)], "entity string, mean double").write.format("delta").save(uri)
    before, versions = content(spark, uri), table_versions(spark, {"gold_priors": uri})
    spark.createDataFrame([("ad", 0.9)], "entity string, mean double").write.format("delta").mode(
        "overwrite").save(uri)
    features_uri = f"{cfg.paths.warehouse}/t/gold_features"
    bad = frame(spark, "gold_features", [features(i) for i in (0, 1, 1)])
    versions.update(table_versions(spark, {"gold_features": features_uri}))
    storage.write_partition(bad, features_uri, D, "as_of_date")
    with pytest.raises(GateFailed):
        gate(spark, cfg, "test", D, {"gold_features": features_uri}, versions, unvalidated={"gold_priors": uri})
    assert content(spark, uri) == before


def test_a_rate_or_timestamp_outside_its_range_blocks(spark, cfg):
    with_rates = [n for n, t in TABLES.items() if t[4]]
    bad = {name: [TABLES[name][1](i) for i in range(4)] for name in with_rates}
    for name, rows in bad.items():
        rows[2][TABLES[name][4][0]] = TABLES[name][4][1]
    bad["bronze_impressions"][3]["event_ts"] = TS + timedelta(days=2)  # after the processed window
    message = publish_then_break(spark, cfg, bad)
    for name in with_rates:
        assert f"{name}: {TABLES[name][4][0]} has 1 values outside" in message
    assert "bronze_impressions: event_ts has 1 values outside [2025-03-03 00:00:00+00:00, " in message


def test_an_empty_partition_blocks(spark, cfg):
    message = publish_then_break(spark, cfg, {name: [] for name in NON_EMPTY})
    for name in NON_EMPTY:
        assert f"{name}: the partition has 0 rows (expected at least 1)" in message


def test_a_volume_drop_beyond_the_band_blocks(spark, cfg):
    wh = Warehouse(cfg.paths.warehouse)
    for name in TABLES:
        for k in (1, 2, 3):
            storage.write_json(spark, metrics_uri(wh, name, D - timedelta(days=k)),
                               {"rows": 40, "impressions": 80, "click_rate": 0.5})
    message = publish_then_break(spark, cfg, {name: [TABLES[name][1](i) for i in range(10, 14)] for name in TABLES})
    for name in TABLES:  # 4 rows against 40; the training set's 4 rows at keep rate 0.5 stand for 6 impressions
        if name == "gold_training_set":
            assert f"{name}: impressions is 0.075x the trailing mean (expected between 0.5x and 1.5x)" in message
        elif name == "silver_conversion_labels":   # one row per click label of its day: banded there
            assert f"{name}: rows is" not in message
        else:
            assert f"{name}: rows is 0.1x the trailing mean (expected between 0.5x and 1.5x)" in message


def test_a_trailing_click_rate_outside_the_band_warns_in_labels(spark, cfg):
    name, wh = "silver_labels", Warehouse(cfg.paths.warehouse)
    for k in (1, 2, 3):
        storage.write_json(spark, metrics_uri(wh, name, D - timedelta(days=k)), {"rows": 4, "click_rate": 0.1})
    uri = f"{cfg.paths.warehouse}/t/{name}"
    storage.write_partition(frame(spark, name, [label(i) for i in range(4)]), uri, D, "event_date")
    summary = gate(spark, cfg, "test", D, {name: uri}, {name: None})
    assert summary["passed"] and summary["warnings"] == [
        "silver_labels: click_rate is 5x the trailing mean (expected between 0.5x and 1.5x)"]


def test_a_table_still_filling_its_windows_gets_no_volume_check_and_is_no_baseline(spark, cfg):
    """gold_features grows every night until its longest window is full (volume_since): 4x is growth, not a jump."""
    name, wh = "gold_features", Warehouse(cfg.paths.warehouse)
    for k in (1, 2, 3):
        storage.write_json(spark, metrics_uri(wh, name, D - timedelta(days=k)), {"rows": 1})
    uri = f"{cfg.paths.warehouse}/t/{name}"
    storage.write_partition(frame(spark, name, [features(i) for i in range(4)]), uri, D, "as_of_date")
    still_filling = gate(spark, cfg, "test", D, {name: uri}, {name: None}, volume_since={name: D + timedelta(days=1)})
    first_full = gate(spark, cfg, "test", D, {name: uri}, {name: None}, volume_since={name: D})
    assert still_filling["passed"] and first_full["passed"]
    with pytest.raises(GateFailed, match=r"gold_features: rows is 4x the trailing mean"):
        gate(spark, cfg, "test", D, {name: uri}, {name: None})


def good_report():
    return {"date": D.isoformat(), "balance_errors": [], **contract_counts(
        {"valid": 90, "duplicate": 5, "bot_declared": 5}, {"attributed": 3, "orphan": 1}, {"impressions": 2},
        80, 40, 3)}


def test_an_unbalanced_report_blocks_and_restores_the_stage_tables(spark, cfg):
    report = good_report()
    report["impressions_raw"] += 1  # one landed record without an outcome
    message = publish_then_break(spark, cfg, {"silver_clicks": [silver_click(i) for i in range(5)]}, report)
    assert "run_report: impressions_outcome_gap is 1 (expected between 0 and 0)" in message


def test_a_balanced_report_passes_and_checks_the_funnel_order(spark, cfg):
    assert gate(spark, cfg, "test", D, {}, {}, good_report())["passed"]
    report = good_report()
    report["impressions_viewable"] = 85  # more viewable than measured
    with pytest.raises(GateFailed, match="run_report: 1 rows break impressions_measured >= impressions_viewable"):
        gate(spark, cfg, "test", D, {}, {}, report)


def test_a_table_the_stage_created_is_removed(spark, cfg):
    uri = f"{cfg.paths.warehouse}/t/new"
    versions = table_versions(spark, {"silver_clicks": uri})
    bad = [silver_click(i) for i in (1, 1)]
    storage.write_partition(frame(spark, "silver_clicks", bad), uri, D)
    with pytest.raises(GateFailed):
        gate(spark, cfg, "test", D, {"silver_clicks": uri}, versions)
    assert versions == {"silver_clicks": None} and not storage.exists(spark, uri)


def test_a_warning_does_not_block_but_is_reported(spark, cfg):
    uri = f"{cfg.paths.warehouse}/t/bronze_impressions"
    rows = [bronze_imp(i) for i in range(4)]
    rows[0]["device_type"] = "fridge"
    storage.write_partition(frame(spark, "bronze_impressions", rows), uri, D)
    summary = gate(spark, cfg, "ingest", D, {"bronze_impressions": uri}, {"bronze_impressions": None})
    assert summary["passed"] and content(spark, uri)[1] == sorted(str(r) for r in frame(
        spark, "bronze_impressions", rows).collect())
    assert summary["warnings"] == ["bronze_impressions: device_type has 1 values not in "
                                   "['ctv', 'desktop', 'mobile', 'other', 'tablet']"]
    stored = storage.read_text(spark, summary["summary"])
    assert "device_type has 1 values" in stored and storage.exists(spark, summary["data_docs"])


OBSERVABLE = ["gold_entity_day", "gold_features", "gold_training_set"]  # no distinct-count metrics in their suites


def test_checks_observed_on_the_write_judge_exactly_like_a_read_back(spark, cfg):
    """The gold gate's aggregates ride on the write (observe_checks); the verdict must not change."""
    from jobs.runtime.quality import observe_checks

    uris = {name: f"{cfg.paths.warehouse}/t/{name}" for name in OBSERVABLE}
    bad = {name: [TABLES[name][1](i) for i in (0, 1, 2, 2, 3)] for name in OBSERVABLE}  # a duplicate key
    for name, rows in bad.items():
        rows[0][TABLES[name][3]] = None  # a null key
        if TABLES[name][4]:
            rows[1][TABLES[name][4][0]] = TABLES[name][4][1]  # a rate out of range
    messages = {}
    for mode in ("read back", "observed"):
        for uri in uris.values():
            storage.delete(spark, uri)
        versions, observed = table_versions(spark, uris), {}
        for name, uri in uris.items():
            df = frame(spark, name, bad[name])
            if mode == "observed":
                df, observed[name] = observe_checks(cfg, name, df, D)
            storage.write_partition(df, uri, D, TABLES[name][2])
        with pytest.raises(GateFailed) as err:
            gate(spark, cfg, "test", D, uris, versions, observed=observed)
        assert err.value.summary["checked_on_write"] == (sorted(OBSERVABLE) if observed else [])
        messages[mode] = sorted(err.value.summary["failures"])
    assert messages["observed"] == messages["read back"]
    assert len(messages["observed"]) == 8, messages["observed"]  # 3 null keys, 3 duplicates, 2 rates


def test_observed_checks_that_do_not_match_the_written_rows_are_not_trusted(spark, cfg):
    """A clean observation of rows that are not the ones in the table: the gate reads the table back."""
    from jobs.runtime.quality import observe_checks

    name, uri = "gold_features", f"{cfg.paths.warehouse}/t/gold_features"
    versions = table_versions(spark, {name: uri})
    clean, observed = observe_checks(cfg, name, frame(spark, name, [features(i) for i in range(4)]), D)
    clean.collect()  # the observation sees 4 clean rows ...
    bad = [features(i) for i in range(5)]
    bad[0]["ctr_7d"] = 1.5
    storage.write_partition(frame(spark, name, bad), uri, D, "as_of_date")  # ... the table holds 5 other rows
    with pytest.raises(GateFailed, match="gold_features: ctr_7d has 1 values outside"):
        gate(spark, cfg, "test", D, {name: uri}, versions, observed={name: observed})


def test_a_suite_with_distinct_metrics_cannot_ride_on_a_write(spark, cfg):
    from jobs.runtime.quality import observe_checks

    with pytest.raises(ValueError, match="count distinct values"):
        observe_checks(cfg, "silver_clicks", frame(spark, "silver_clicks", [silver_click(0)]), D)
