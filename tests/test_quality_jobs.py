"""The gates inside the jobs: exit code 3, nothing published, later stages not run."""
from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import date
from pathlib import Path

import pytest

from jobs import ingest as ingest_job
from jobs import nightly as nightly_job
from jobs.runtime import storage
from jobs.runtime.cli import EXIT_GATE
from jobs.runtime.layout import Warehouse
from jobs.runtime.quality import GateFailed
from jobs.stages import silver
from pipelines.gates import ingest_gate
from tests.test_pipeline_e2e import checksum

D = date(2025, 4, 2)
TINY = str(Path(__file__).parent / "conf" / "tiny.yaml")


def land(root, stream, line):
    hour = root / stream / f"dt={D}" / "hour=09"
    hour.mkdir(parents=True, exist_ok=True)
    (hour / "a.jsonl").write_text(line + "\n")
    return hour / "a.jsonl"


def contents(spark, wh):
    tables = {**{name: f"{wh.root}/{path}" for name, path in ingest_gate().checked.items()},
              "bronze_users": wh.bronze("users")}
    return {name: sorted(str(r) for r in storage.read_delta(spark, uri).drop("_ingested_at").collect())
            for name, uri in tables.items()}


def test_a_failed_ingest_gate_exits_3_keeps_bronze_and_stops_the_night(spark, tmp_path, capsys):
    landing, wh = tmp_path / "landing", Warehouse(str(tmp_path / "wh"))
    land(landing, "impressions", '{"impression_id":"i1","event_ts":"2025-04-02T09:00:00Z","user_id":"u1",'
                                 '"ad_id":"a1","publisher_id":"p1"}')
    clicks = land(landing, "clicks", '{"click_id":"c1","impression_id":"i1","event_ts":"2025-04-02T09:00:05Z",'
                                     '"user_id":"u1"}')
    users = landing / "dims" / "users" / f"dt={D}" / "a.jsonl"
    users.parent.mkdir(parents=True)
    users.write_text('{"user_id":"u1","segment":"shoppers","device_type":"mobile","geo":"DE"}\n')
    argv = ["--date", str(D), "--landing", str(landing), "--warehouse", wh.root, "--config", TINY]
    assert ingest_job.main(argv) == 0
    before = contents(spark, wh)

    clicks.write_text("")  # the clicks of the night went missing upstream ...
    users.write_text('{"user_id":"u2","segment":"gamers","device_type":"desktop","geo":"FR"}\n')  # ... and a new
    # snapshot of the users came: a failed gate takes it back with the rest, though it has no suite of its own
    assert nightly_job.main(argv) == EXIT_GATE
    err = capsys.readouterr().err
    assert "quality gate 'ingest' failed for 2025-04-02" in err
    assert "bronze_clicks: the partition has 0 rows (expected at least 1)" in err
    assert contents(spark, wh) == before
    assert not storage.exists(spark, wh.silver("impressions")) and not storage.exists(spark, wh.report(D))
    stored = json.loads(storage.read_text(spark, f"{wh.root}/_quality/runs/dt={D}/ingest.json"))
    assert not stored["passed"]
    # tables whose (empty) partitions were rewritten without a new commit need no restore
    assert {"bronze_impressions": "restored to version 0", "bronze_clicks": "restored to version 0"}.items() \
        <= stored["rolled_back"].items()
    # the stopped night has its page, FAILED with the gate's words, and the index lists it so
    page = storage.read_text(spark, f"{wh.report_dir(D)}/night.html")
    assert "FAILED" in page and "bronze_clicks: the partition has 0 rows (expected at least 1)" in page
    assert json.loads(storage.read_text(spark, f"{wh.root}/reports/nights.json"))[str(D)]["status"] == "failed"


def test_a_failed_silver_gate_restores_every_silver_table(spark, generated, tmp_path, monkeypatch):
    cfg, expected, _ = generated
    shutil.copytree(cfg.paths.warehouse, tmp_path / "wh")
    copy = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, warehouse=str(tmp_path / "wh")))
    wh = Warehouse(copy.paths.warehouse)
    tables = [wh.silver(n) for n in silver.SCHEMAS]
    before = {t: checksum(spark, t) for t in tables}
    report_before = storage.read_text(spark, wh.report(date.fromisoformat(sorted(expected)[1])))

    monkeypatch.setattr(silver, "balance_errors", lambda report, sources: ["bronze holds 1 more impression"])
    with pytest.raises(GateFailed, match=r"run_report: balance_errors is 1 \(expected between 0 and 0\)"):
        silver.run_silver(spark, copy, date.fromisoformat(sorted(expected)[1]))
    assert {t: checksum(spark, t) for t in tables} == before
    assert storage.read_text(spark, wh.report(date.fromisoformat(sorted(expected)[1]))) == report_before
