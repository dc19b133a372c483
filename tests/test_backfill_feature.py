"""One feature group backfilled alone: the same rows the nightly gold wrote, only its own files rewritten, and a
declaration change refused until its backfill ran."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs.runtime import storage
from jobs.runtime.cli import UsageError
from jobs.runtime.config import load_config
from jobs.runtime.layout import Warehouse
from jobs.stages.backfill_feature import run_backfill_feature
from jobs.stages.gold import check_declarations, labels_with_dimensions, stored_fingerprints
from pipelines import declarations
from pipelines.features import ENTITY_KEY_COLUMNS
from tests.conftest import TINY

TABLES = ("entity_day", "conversion_day", "features", "priors")
NEW_GROUP = """\
groups:
  device_x_category:
    keys: [device_type, ad_category]
    description: how an ad category does on a device type
    owner: tests
    since: 2026-12-06
    aggregations:
      - {op: count, input: impressions, description: d, windows: {1: f_device_x_category_imps_1d}}
      - {op: rate, input: clicks, description: d, windows: {7: f_device_x_category_ctr_7d}}
"""


@pytest.fixture(scope="module")
def copy(spark, generated, tmp_path_factory):
    """A copy of the three generated nights' warehouse."""
    base, _, _ = generated
    root = tmp_path_factory.mktemp("backfill")
    shutil.copytree(base.paths.warehouse, root / "warehouse")
    paths = {"landing": base.paths.landing, "warehouse": str(root / "warehouse")}
    return load_config("local", [TINY], {"paths": paths})


def files(spark, uri: str) -> dict[str, set[str]]:
    """Entity -> the Delta data files of its partitions, as the table's current version lists them."""
    out: dict[str, set[str]] = {}
    for f in storage.read_delta(spark, uri).inputFiles():
        entity = next((p[len("entity="):] for p in f.split("/") if p.startswith("entity=")), "?")
        out.setdefault(entity, set()).add(f)
    return out


def test_a_backfilled_group_gets_the_rows_the_nightly_wrote_and_no_other_file_changes(spark, copy):
    wh = Warehouse(copy.paths.warehouse)
    assert stored_fingerprints(spark, wh) == {g.name: g.fingerprint for g in copy.gold.features.groups}
    before = {t: files(spark, wh.gold(t)) for t in TABLES}
    def publisher_rows(table: str):
        df = storage.read_delta(spark, wh.gold(table)).where(F.col("entity") == "publisher")
        # an HLL sketch's bytes depend on the order it saw its users in; its estimate does not
        return (df.withColumn("users_sketch", F.hll_sketch_estimate("users_sketch"))
                if "users_sketch" in df.columns else df)

    expected = {t: publisher_rows(t).localCheckpoint() for t in TABLES}
    out = run_backfill_feature(spark, copy, "f_publisher_ctr_7d")   # a feature names its group
    assert out["group"] == "publisher" and out["event_days"] == ["2025-03-01", "2025-03-02"]
    for t in TABLES:
        after = files(spark, wh.gold(t))
        assert {e: f for e, f in after.items() if e != "publisher"} == \
               {e: f for e, f in before[t].items() if e != "publisher"}, t       # no other group's file rewritten
        if "publisher" in before[t]:
            assert after["publisher"].isdisjoint(before[t]["publisher"]), t     # its own were
        assertDataFrameEqual(publisher_rows(t), expected[t])
    # the commits say what they replaced: only publisher partitions (its fingerprint was already stored)
    history = storage.table_history(spark, wh.gold("features"), 2)
    assert all(h.startswith("WRITE") and "entity = 'publisher'" in h for h in history), history
    assert stored_fingerprints(spark, wh)["publisher"] == out["fingerprint"]


def test_a_new_group_is_refused_until_backfilled_then_built_like_any_other(spark, copy, tmp_path):
    path = tmp_path / "features.yaml"
    shipped = Path(copy.gold.features.path).read_text()
    assert shipped.count("\ngroups:\n") == 1
    path.write_text(shipped.replace("\ngroups:\n", "\n" + NEW_GROUP))   # the new group first, then the shipped
    cfg = replace(copy, gold=replace(copy.gold, features=declarations.read(path, copy.gold.windows_days,
                                                                           ENTITY_KEY_COLUMNS)))
    wh = Warehouse(cfg.paths.warehouse)
    with pytest.raises(UsageError, match=r"new, with no history yet: device_x_category.*make backfill-feature "
                                         r"NAME=device_x_category"):
        check_declarations(spark, cfg, wh)
    with pytest.raises(UsageError, match=r"device_x_category is new or its keys changed: its whole history must be "
                                         r"rebuilt, from 2025-03-01 \(leave START out\)"):
        run_backfill_feature(spark, cfg, "device_x_category", start=date(2025, 3, 2))
    run_backfill_feature(spark, cfg, "device_x_category", end=date(2025, 3, 2))
    check_declarations(spark, cfg, wh)   # passes now
    snap = storage.read_delta(spark, wh.gold("features")).where(
        (F.col("entity") == "device_x_category") & (F.col("as_of_date") == date(2025, 3, 3)))
    day = labels_with_dimensions(spark, cfg, wh, date(2025, 3, 2), date(2025, 3, 2))
    known = day.where(F.col("device_type").isNotNull() & F.col("ad_category").isNotNull())
    assert known.count() > 0 and snap.agg(F.sum("imps_1d")).first()[0] == known.count()
    both_days = labels_with_dimensions(spark, cfg, wh, date(2025, 3, 1), date(2025, 3, 2))   # the longest window
    assert snap.count() == both_days.where(F.col("device_type").isNotNull() & F.col("ad_category").isNotNull()) \
        .select("device_type", "ad_category").distinct().count()
    assert stored_fingerprints(spark, wh)["device_x_category"] == cfg.gold.features.groups[0].fingerprint
    # a changed key is refused the same way
    changed = path.read_text().replace("keys: [device_type, ad_category]", "keys: [device_type, country]")
    path.write_text(changed)
    cfg2 = replace(cfg, gold=replace(cfg.gold, features=declarations.read(path, cfg.gold.windows_days,
                                                                          ENTITY_KEY_COLUMNS)))
    with pytest.raises(UsageError, match=r"changed since their data was built \(keys, user sketches or sums\): "
                                         r"device_x_category"):
        check_declarations(spark, cfg2, wh)


def test_a_declared_sum_backfills_its_group_alone_adds_its_column_and_passes_the_gold_gate(spark, copy, tmp_path):
    path = tmp_path / "features.yaml"
    shipped = Path(copy.gold.features.path).read_text()
    anchor = "      - {op: distinct_count, input: user_id, description: \"Distinct users, HLL sketches merged over " \
             "the window.\",\n         windows: {1: f_ad_users_1d, 7: f_ad_users_7d, 28: f_ad_users_28d}}\n"
    assert shipped.count(anchor) == 1
    path.write_text(shipped.replace(anchor, anchor + "      - {op: sum, input: in_view_ms, description: time in view,"
                                                     " windows: {7: f_ad_in_view_ms_7d}}\n", 1))
    cfg = replace(copy, gold=replace(copy.gold, features=declarations.read(path, copy.gold.windows_days,
                                                                           ENTITY_KEY_COLUMNS)))
    wh = Warehouse(cfg.paths.warehouse)
    with pytest.raises(UsageError, match=r"changed since their data was built \(keys, user sketches or sums\): ad\b"):
        check_declarations(spark, cfg, wh)
    before = {t: files(spark, wh.gold(t)) for t in TABLES}
    out = run_backfill_feature(spark, cfg, "ad")
    check_declarations(spark, cfg, wh)   # passes now
    for t in TABLES:
        after = files(spark, wh.gold(t))
        assert {e: f for e, f in after.items() if e != "ad"} == {e: f for e, f in before[t].items() if e != "ad"}, t
    # each backfilled day went through the gold gate, and passed
    for day in out["event_days"]:
        summary = json.loads(storage.read_text(spark, f"{wh.root}/_quality/runs/dt={day}/backfill_feature.json"))
        assert summary["passed"] and summary["failures"] == [], summary
    snap = storage.read_delta(spark, wh.gold("features")).where(F.col("as_of_date") == date(2025, 3, 3))
    assert snap.where(F.col("entity") != "ad").where(F.col("sum_in_view_ms_7d").isNotNull()).count() == 0
    labels = labels_with_dimensions(spark, cfg, wh, date(2025, 3, 1), date(2025, 3, 2))
    expected = labels.where(F.col("ad_id").isNotNull()).groupBy(F.col("ad_id").alias("key")).agg(
        F.coalesce(F.sum("in_view_ms").cast("double"), F.lit(0.0)).alias("sum_in_view_ms_7d"))
    assertDataFrameEqual(snap.where(F.col("entity") == "ad").select("key", "sum_in_view_ms_7d"), expected,
                         checkRowOrder=False)


def test_a_backfill_whose_gate_fails_puts_every_gold_table_and_baseline_back(spark, copy, monkeypatch):
    from jobs.runtime import quality
    from jobs.runtime.quality import GateFailed
    from jobs.runtime.rollback import table_versions

    wh = Warehouse(copy.paths.warehouse)
    uris = {t: wh.gold(t) for t in TABLES}
    versions = table_versions(spark, uris)
    baselines = {p: storage.read_text(spark, p) for p in storage.glob(spark, f"{wh.root}/_quality/metrics/gold_*/*")}
    stored = stored_fingerprints(spark, wh)
    real = quality.load_suite

    calls: list[str] = []

    def strict(name: str) -> dict:   # the second day's snapshot breaks a check: the first day has passed by then
        calls.append(name)
        suite = real(name)
        if calls.count("gold_features") == 2 and name == "gold_features":
            suite = {**suite, "expectations": [*suite["expectations"], {
                "type": "expect_table_row_count_to_be_between", "kwargs": {"max_value": 0},
                "meta": {"severity": "critical"}}]}
        return suite

    monkeypatch.setattr(quality, "load_suite", strict)
    with pytest.raises(GateFailed, match="backfill_feature"):
        run_backfill_feature(spark, copy, "publisher")
    after = table_versions(spark, uris)
    assert all(after[t] >= versions[t] for t in TABLES)        # restored by new commits (RESTORE)
    for t in TABLES:
        assertDataFrameEqual(storage.read_delta(spark, uris[t]).drop("users_sketch"),
                             spark.read.format("delta").option("versionAsOf", versions[t]).load(uris[t])
                             .drop("users_sketch"))
    assert calls.count("gold_features") == 2
    assert set(storage.glob(spark, f"{wh.root}/_quality/metrics/gold_*/*")) == set(baselines)
    assert {p: storage.read_text(spark, p) for p in baselines} == baselines
    assert stored_fingerprints(spark, wh) == stored
