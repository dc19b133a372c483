"""Killed nights resume: SIGKILL the nightly job in each stage, re-run it, and get exactly a clean run's tables.

Three generated tiny days. A clean warehouse runs them in this process. A second
warehouse starts as a copy of the clean one after night 1 and runs night 2 as
``python -m jobs.dev.faults`` (jobs/nightly.py) subprocesses that kill themselves by SIGKILL
(``CTR_TEST_KILL_AT``, jobs/dev/faults.py) in ingest, in the middle of a silver
write, and in gold between its gate's writes; then night 2 runs to the end and
night 3 follows. Both warehouses must then hold the same tables (order-
independent checksums, jobs/runtime/checksums.py), the same volume baselines and run
reports, and no id twice in silver.
"""
from __future__ import annotations

import dataclasses
import shutil
import signal
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from jobs.dev import faults
from jobs.dev.generate import run_generate
from jobs.runtime import checksums, storage
from jobs.runtime.config import load_config
from jobs.runtime.layout import Warehouse
from jobs.runtime.quality import GateFailed
from jobs.runtime.rollback import UnfinishedRun
from jobs.stages import silver
from jobs.stages.ingest import enforce_retention
from jobs.stages.nightly import run_nightly

TINY = str(Path(__file__).parent / "conf" / "tiny.yaml")
# The subprocesses: as small as the session's Spark (local[2], 2 shuffle partitions), so results match exactly.
SMALL = """spark:
  master: "local[2]"
  driver_memory: 1g
  conf:
    spark.ui.enabled: "false"
    spark.default.parallelism: "2"
    spark.databricks.delta.snapshotPartitions: "2"
"""


def with_warehouse(cfg, root):
    return dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, warehouse=str(root)))


def nightly(cfg, day: date, small_yaml: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    """The nightly job for ``day`` as its own process (optionally killing itself at ``kill_at``)."""
    # A hang fails the test instead of stalling the suite.
    return faults.nightly_process(day, cfg.paths.landing, cfg.paths.warehouse, [TINY, str(small_yaml)], kill_at)


def state(spark, root) -> dict:
    return checksums.warehouse_state(spark, str(root))


def assert_same_state(got: dict, want: dict) -> None:
    differences = checksums.state_differences(got, want)
    assert not differences, differences


@pytest.fixture(scope="module")
def clean(spark, tmp_path_factory):
    """Generated days, a clean run of them, and a copy of its warehouse after night 1."""
    root = tmp_path_factory.mktemp("resume")
    cfg = load_config("local", [TINY], {"paths": {"landing": str(root / "landing"),
                                                  "warehouse": str(root / "clean")}})
    days = [date.fromisoformat(d) for d in sorted(run_generate(spark, cfg, overwrite=True))]
    run_nightly(spark, cfg, days[0])
    # Great Expectations' project is a cache of suites and docs; the copy builds its own.
    shutil.copytree(cfg.paths.warehouse, root / "after_night_1", ignore=shutil.ignore_patterns("gx"))
    for day in days[1:]:
        run_nightly(spark, cfg, day)
    small = root / "small.yaml"
    small.write_text(SMALL)
    return cfg, days, state(spark, cfg.paths.warehouse), root / "after_night_1", small


def test_a_night_killed_in_every_stage_resumes_to_exactly_the_clean_tables(spark, clean, tmp_path):
    cfg, days, want, after_night_1, small = clean
    killed = with_warehouse(cfg, tmp_path / "killed")
    shutil.copytree(after_night_1, killed.paths.warehouse)
    wh = Warehouse(killed.paths.warehouse)
    night_1_silver = {n: checksums.table_checksum(spark, wh.silver(n)) for n in silver.SCHEMAS}
    # Before the 3rd write of ingest (bronze impressions written, clicks not); 0.5 s into silver's 3rd
    # write (impressions committed, clicks in flight); before gold's 6th write (partials and features
    # committed, the gate's first volume baseline written, the second not).
    for kill_at in ("ingest:3", "silver:3:0.5", "gold:6"):
        run = nightly(killed, days[1], small, kill_at)
        assert run.returncode == -signal.SIGKILL, f"{kill_at}: exit {run.returncode}\n{run.stderr[-3000:]}"
        assert "CTR_TEST_KILL_AT: killing the job" in run.stderr
        if kill_at.startswith("silver"):
            # A later date may not run on top of the unfinished one ...
            with pytest.raises(UnfinishedRun, match=f"re-run --date {days[1]} first"):
                silver.run_silver(spark, killed, days[2])
            # ... and a re-run whose gate fails rolls back past the killed attempt, to the night before.
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(silver, "balance_errors", lambda report, sources: ["forced by the test"])
                with pytest.raises(GateFailed):
                    silver.run_silver(spark, killed, days[1])
            assert {n: checksums.table_checksum(spark, wh.silver(n)) for n in silver.SCHEMAS} == night_1_silver
    # A kill while Great Expectations rewrote its project files (it writes them in place) leaves them cut short.
    gx_dir = Path(wh.root, "_quality", "gx")
    for path in (gx_dir / "great_expectations.yml", gx_dir / "validation_definitions" / "silver_clicks.metrics.json"):
        path.write_text(path.read_text()[:200])
    done = nightly(killed, days[1], small)
    assert done.returncode == 0, done.stderr[-3000:]
    run_nightly(spark, killed, days[2])

    assert not list(Path(wh.root, "_quality", "pending").rglob("*.json"))
    assert_same_state(state(spark, wh.root), want)
    for name, key in (("impressions", "impression_id"), ("clicks", "click_id")):
        decided = storage.read_delta(spark, wh.silver(name)).where(F.col("fate") != "duplicate")
        assert decided.count() == decided.select(key).distinct().count() > 0
    for name, key in (("click_resolutions", "click_id"), ("labels", "impression_id")):
        table = storage.read_delta(spark, wh.silver(name))
        assert table.count() == table.select(key).distinct().count() > 0


def test_rerunning_a_date_changes_only_the_run_specific_columns(spark, clean):
    cfg, days, want, _, _ = clean
    tables = {t: f"{cfg.paths.warehouse}/{t}" for t in want["tables"]}
    before = {t: checksums.table_checksum(spark, uri, exclude={}) for t, uri in tables.items()}
    run_nightly(spark, cfg, days[1])
    after = {t: checksums.table_checksum(spark, uri, exclude={}) for t, uri in tables.items()}
    changed = {(t, c) for t in tables for c in before[t] if before[t][c] != after[t][c]}
    # The re-run rewrote night 2's bronze partitions with its own ingest time, and nothing else changed.
    assert {c for _, c in changed} == {*checksums.RUN_SPECIFIC, checksums.WHOLE_ROW}
    assert {t for t, _ in changed} >= {"bronze/impressions", "bronze/clicks", "bronze/quarantine"}
    assert all(set(checksums.RUN_SPECIFIC) & set(before[t]) for t, _ in changed)
    assert checksums.baselines(cfg.paths.warehouse) == want["baselines"]
    assert checksums.reports(cfg.paths.warehouse) == want["reports"]


def test_retention_vacuums_what_a_run_killed_after_its_delete_left(spark, tmp_path):
    cfg = load_config("local", [TINY])
    wh = Warehouse(str(tmp_path / "wh"))
    day = date(2025, 3, 10)
    rows = spark.createDataFrame([(1, day - timedelta(days=5)), (2, day)], "x int, dt date")
    rows.write.format("delta").partitionBy("dt").save(wh.bronze("clicks"))
    DeltaTable.forPath(spark, wh.bronze("clicks")).delete(F.col("dt") < F.lit(day - timedelta(days=1)))
    old = tmp_path / "wh" / "bronze" / "clicks" / f"dt={day - timedelta(days=5)}"
    assert list(old.glob("*.parquet"))  # the killed run deleted the rows; their files remain
    ingest = dataclasses.replace(cfg.ingest, bronze_retention_days=1, vacuum_retain_hours=0)
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    try:
        enforce_retention(spark, wh, ["clicks"], ingest, day)
    finally:
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "true")
    assert not list(old.glob("*.parquet"))
    assert [r["x"] for r in storage.read_delta(spark, wh.bronze("clicks")).collect()] == [2]
