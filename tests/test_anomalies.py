"""The metric history and its anomaly checks inside a real gate (Delta history table, GX suite
expectations/anomalies.json), and the night pages they feed."""
from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta

import pytest
from pyspark.sql import functions as F

from jobs.runtime import anomalies, storage
from jobs.runtime.layout import Warehouse
from jobs.runtime.quality import GateFailed, gate
from pipelines import night_page
from pipelines.report import contract_counts

D = date(2025, 3, 31)


@pytest.fixture
def cfg(tiny_cfg, tmp_path):
    return dataclasses.replace(tiny_cfg, paths=dataclasses.replace(tiny_cfg.paths, warehouse=str(tmp_path / "wh")))


def report(valid: int, clicked: int) -> dict:
    """A balanced run report of ``valid`` valid impressions (plus 10 duplicates), ``clicked`` of them clicked."""
    return {"date": D.isoformat(), "balance_errors": [], **contract_counts(
        {"valid": valid, "duplicate": 10}, {"attributed": clicked}, {}, valid, valid // 2, clicked)}


def seed(spark, wh, nights: int, publishers: dict[str, int]) -> None:
    """``nights`` normal nights before D in the history: 1,000 valid impressions, 30 clicks, steady publishers."""
    for k in range(1, nights + 1):
        r = report(1000 + k, 30)
        anomalies.record(spark, wh, D - timedelta(days=k), "silver",
                         {"run_report": {"impressions_raw": r["impressions_raw"]}, "rates": {"ctr": 30 / (1000 + k)},
                          "publisher_volume": publishers})


def flagged(summary: dict) -> set[tuple[str, str]]:
    return {(f["metric"], f["stat"]) for f in summary["anomalies"]["flags"]}


def test_a_normal_night_raises_nothing_and_is_recorded(spark, cfg):
    wh = Warehouse(cfg.paths.warehouse)
    seed(spark, wh, 6, {"p1": 500, "p2": 300})
    summary = gate(spark, cfg, "silver", D, {}, {}, report(1003, 30),
                   extra_metrics={"publisher_volume": {"p1": 510, "p2": 290}})
    assert summary["passed"] and not summary["warnings"] and flagged(summary) == set()
    judged = {"publisher_volume.p1", "publisher_volume.p2", "rates.ctr", "run_report.impressions_raw"}
    assert not judged & set(summary["anomalies"]["too_little_history"]) and summary["anomalies"]["checked"] > 0
    tonight = {m: v[-1] for m, v in anomalies.read_history(spark, wh, D + timedelta(days=1), 1).items()}
    assert tonight["publisher_volume.p1"] == (D, 510.0) and tonight["run_report.impressions_raw"] == (D, 1013.0)


def test_a_halved_publisher_and_a_collapsed_ctr_are_flagged_by_name(spark, cfg):
    wh = Warehouse(cfg.paths.warehouse)
    seed(spark, wh, 6, {"p1": 500, "p2": 300, "p3": 100})
    # p2 halves; p3 fell out of tonight's top list: it counts as 0, not as missing
    summary = gate(spark, cfg, "silver", D, {}, {}, report(1003, 10),
                   extra_metrics={"publisher_volume": {"p1": 500, "p2": 150}})
    assert summary["passed"], "the default anomaly checks warn"
    assert flagged(summary) >= {("publisher_volume.p2", "change"), ("publisher_volume.p3", "change"),
                                ("rates.ctr", "change")}
    assert ("publisher_volume.p1", "change") not in flagged(summary)
    assert any("publisher_volume.p2 is 150, -50% against its trailing median 300" in w for w in summary["warnings"])


def test_too_little_history_passes_and_says_so(spark, cfg):
    wh = Warehouse(cfg.paths.warehouse)
    seed(spark, wh, 3, {"p1": 500})
    summary = gate(spark, cfg, "silver", D, {}, {}, report(100, 30), extra_metrics={"publisher_volume": {"p1": 5}})
    assert summary["passed"] and flagged(summary) == set()
    assert {"publisher_volume.p1", "rates.ctr", "run_report.impressions_raw"} <= set(
        summary["anomalies"]["too_little_history"])


def test_a_critical_anomaly_stops_publication_and_records_nothing(spark, cfg, monkeypatch):
    wh = Warehouse(cfg.paths.warehouse)
    seed(spark, wh, 6, {"p1": 500})
    settings = anomalies.settings()
    critical = [{"type": "expect_column_values_to_be_between",
                 "kwargs": {"column": "re:^publisher_volume\\..*\\|change$", "min_value": -0.35, "max_value": 0.5},
                 "meta": {"batch": "metrics", "severity": "critical"}}]
    monkeypatch.setattr(anomalies, "settings", lambda: {**settings, "expectations": critical})
    with pytest.raises(GateFailed, match="anomalies: publisher_volume.p1 is 100, -80% against its trailing median"):
        gate(spark, cfg, "silver", D, {}, {}, report(1000, 30), extra_metrics={"publisher_volume": {"p1": 100}})
    assert D not in {d for v in anomalies.read_history(spark, wh, D + timedelta(days=1), 1).values() for d, _ in v}


def test_bounds_are_judged_as_gx_judges_them():
    between = {"min_value": -0.3, "max_value": 0.5}
    assert [anomalies.outside(v, between) for v in (None, -0.3, 0.5, -0.31, 0.51)] == [False, False, False, True,
                                                                                       True]
    assert anomalies.outside(0.5, {**between, "strict_max": True}) and not anomalies.outside(0.0, {"min_value": 0})
    assert anomalies.outside(0.0, {"min_value": {"$PARAMETER": "x"}})   # GX resolves parameters


def test_rerecording_a_night_replaces_its_rows(spark, cfg):
    wh = Warehouse(cfg.paths.warehouse)
    for value in (1.0, 2.0):
        anomalies.record(spark, wh, D, "ingest", {"bronze_impressions": {"rows": value}})
    anomalies.record(spark, wh, D, "silver", {"run_report": {"impressions_raw": 7}})
    rows = storage.read_delta(spark, anomalies.history_uri(wh)).collect()
    assert sorted((r["stage"], r["source"], r["metric"], r["value"]) for r in rows) == [
        ("ingest", "bronze_impressions", "rows", 2.0), ("silver", "run_report", "impressions_raw", 7.0)]


def test_a_night_reads_the_history_once_and_writes_it_once(spark, cfg, monkeypatch):
    wh = Warehouse(cfg.paths.warehouse)
    anomalies.record(spark, wh, D - timedelta(days=1), "silver", {"run_report": {"impressions_raw": 5}})
    anomalies.record(spark, wh, D, "gold", {"gold_feature_keys": {"user": 3}})   # an earlier run of the night
    reads, writes = [], []
    read, write = anomalies._read, anomalies._write
    monkeypatch.setattr(anomalies, "_read", lambda *a: reads.append(a[2:]) or read(*a))
    monkeypatch.setattr(anomalies, "_write", lambda *a: writes.append(a[3]) or write(*a))
    with anomalies.one_night(spark, wh, D, 30):
        assert anomalies.read_history(spark, wh, D, 14, "silver") == {"run_report.impressions_raw": [
            (D - timedelta(days=1), 5.0)]}
        anomalies.record(spark, wh, D, "ingest", {"bronze_impressions": {"rows": 9}})
        anomalies.record(spark, wh, D, "silver", {"run_report": {"impressions_raw": 6}})
        assert anomalies.read_history(spark, wh, D, 14, "ingest") == {}   # tonight is not its own history
        # the night page's trends include tonight, as recorded after the first read
        assert anomalies.read_history(spark, wh, D + timedelta(days=1), 30, "silver") == {
            "run_report.impressions_raw": [(D - timedelta(days=1), 5.0), (D, 6.0)]}
        assert writes == []
    assert reads == [(D - timedelta(days=30), D)] and writes == [("ingest", "silver")]
    # one write of the stages the night recorded; the gold rows of the earlier run stay
    rows = storage.read_delta(spark, anomalies.history_uri(wh)).where(F.col("dt") == F.lit(D)).collect()
    assert sorted((r["stage"], r["source"], r["value"]) for r in rows) == [
        ("gold", "gold_feature_keys", 3.0), ("ingest", "bronze_impressions", 9.0), ("silver", "run_report", 6.0)]
    # outside a night each read goes to the table
    assert anomalies.read_history(spark, wh, D + timedelta(days=1), 30)["bronze_impressions.rows"] == [(D, 9.0)]
    assert len(reads) == 2
    # a stage that recorded before the night's first read is in what that read holds
    nxt = D + timedelta(days=1)
    with anomalies.one_night(spark, wh, nxt, 30):
        anomalies.record(spark, wh, nxt, "ingest", {"bronze_impressions": {"rows": 4}})
        assert anomalies.read_history(spark, wh, nxt + timedelta(days=1), 30, "ingest") == {
            "bronze_impressions.rows": [(D, 9.0), (nxt, 4.0)]}


def test_a_night_holds_the_checks_lookback_or_its_pages_trend_even_with_an_unreadable_suite(monkeypatch):
    assert anomalies.nights_held(30) == anomalies.settings()["lookback_days"] == 56
    assert anomalies.nights_held(90) == 90

    def broken():
        raise ValueError("expectations/anomalies.json: only expect_column_values_to_be_between is supported")

    monkeypatch.setattr(anomalies, "settings", broken)   # the gates report it; the night still starts
    assert anomalies.nights_held(30) == anomalies.LOOKBACK_DAYS


def test_every_anomaly_check_matches_a_metric_some_stage_records():
    """A check whose name or regex matches nothing would never check anything (a typo passes silently)."""
    import re

    from jobs.runtime.quality import load_suite
    from pipelines import watch
    from pipelines.quality import report_metrics

    r = {**report(1000, 30), "ingest": {"lines": {"impressions": 1010}, "quarantined_by_reason": {
        "impressions": {"invalid_json": 3}}}}
    names = [f"run_report.{m}" for m in report_metrics(r)] + [f"rates.{m}" for m in watch.report_rates(r)]
    for suite in ("bronze_impressions", "bronze_clicks", "gold_entity_day"):
        names += [f"{suite}.rows"] + [f"{suite}.{m}" for m in load_suite(suite)["meta"].get("metrics", {})]
    names += ["publisher_volume.p-1", "ad_category_volume.sports"]
    columns = [f"{n}|{stat}" for n in names for stat in watch.STATS]
    for e in anomalies.settings()["expectations"]:
        column = e["kwargs"]["column"]
        matched = ([c for c in columns if re.search(column[3:], c)] if column.startswith("re:")
                   else [c for c in columns if c == column])
        assert matched, f"{column} matches no metric the stages record"
        assert e["meta"]["severity"] in ("warning", "critical")


def test_the_night_page_is_self_contained_and_shows_the_flags():
    r = report(1003, 10)
    r.update(balanced=True, stage_seconds={"ingest": 10.0, "silver": 20.0},
             quality={"silver": {"passed": True, "warnings": ["anomalies: publisher_volume.p2 is 150"], "failures": [],
                                 "seconds": 1.5, "anomalies": {"checked": 3, "too_little_history": [], "flags": [
                                     {"metric": "publisher_volume.p2", "stat": "change", "value": 150.0,
                                      "median": 300.0, "observed": -0.5, "severity": "warning"}]}}},
             drift={"status": "measured", "reference": {"training_set_version": 3, "train_days": ["a", "b"],
                                                        "rows": 500}, "rows": 100, "flagged": 1, "warned": 0,
                    "features": [{"feature": "f_position", "measure": "psi", "value": 1.2, "level": "flag",
                                  "missing_share": 0.0}]})
    trends = {"impressions landed": [(D - timedelta(days=1), 1000.0), (D, 1013.0)], "CTR %": []}
    page = night_page.night_html(r, trends, {"run report (JSON)": "run_report.json"})
    assert "publisher_volume.p2" in page and "f_position" in page and "WARNINGS" in page
    assert "<script" not in page and "<link" not in page and "http" not in page
    assert night_page.status(r) == "warn" and night_page.status(r, error="GateFailed: x") == "failed"
    index = night_page.index_html({"2025-03-30": {"status": "ok", "page": "dt=2025-03-30/night.html"},
                                   "2025-03-31": {"status": "failed", "page": "dt=2025-03-31/night.html"}})
    assert index.index("2025-03-31") < index.index("2025-03-30") and "FAILED" in index


def test_the_drill_figures_are_json_serialisable(spark, cfg):
    """The gate summary goes into the run report as JSON: the anomaly section must serialise."""
    wh = Warehouse(cfg.paths.warehouse)
    seed(spark, wh, 6, {"p1": 500})
    summary = gate(spark, cfg, "silver", D, {}, {}, report(1000, 30), extra_metrics={"publisher_volume": {"p1": 100}})
    assert json.loads(json.dumps(summary))["anomalies"]["flags"][0]["metric"] == "publisher_volume.p1"


def test_score_drift_compares_tonights_scores_with_the_same_champions_last_nights(spark, cfg):
    from jobs.runtime.layout import resolve_uri
    from jobs.stages.watch import score_drift

    def night(day: date, version: str, scores: list[float]) -> None:
        rows = [(f"{day}-{i}", p, version, day) for i, p in enumerate(scores)]
        storage.write_partition(spark.createDataFrame(rows, "impression_id string, p_click double, "
                                                            "model_version string, dt date"),
                                resolve_uri(cfg.paths.warehouse, cfg.train.scores_table), day)

    usual = [0.01 * (1 + i % 9) for i in range(900)]
    for k in (1, 2, 3):
        night(D - timedelta(days=k), "4", usual)
    night(D - timedelta(days=4), "3", [0.5] * 900)   # another champion's scores are no baseline
    night(D, "4", usual)
    same = score_drift(spark, cfg, D)
    assert same["status"] == "measured" and same["psi"] < 0.01 and same["level"] == "ok"
    assert same["reference_rows"] == 2700 and same["rows"] == 900
    night(D, "4", [p * 3 for p in usual])
    assert score_drift(spark, cfg, D)["level"] == "flag"
    night(D, "5", usual)   # a new champion: nothing of its own to compare with yet
    assert score_drift(spark, cfg, D) == {"model_version": "5",
                                          "status": "no earlier scores of this champion to compare with"}
