"""The nightly job's training stage: skipped with a reason, or run on schedule into the report and summary."""
from __future__ import annotations

import json
import shutil
from datetime import date

import pytest
from mlflow.tracking import MlflowClient

from jobs import nightly, nightly_training, storage
from jobs.config import load_config
from jobs.layout import Warehouse
from jobs.quality import GateFailed
from tests.conftest import TINY

MONDAY = date(2025, 3, 3)   # the generated fixture's last night
SMALL = {"training_set": {"train_days": 1, "validation_days": 1, "test_days": 1},
         "train": {"schedule": "weekly:mon", "models": ["xgboost", "lr"], "ablation": False, "num_rounds": 10,
                   "early_stopping_rounds": 3, "max_depth": 3, "gbdt_lr_trees": 5, "lr_max_iter": 10}}


def test_generated_nights_record_why_they_did_not_train(spark, generated):
    cfg, _, reports = generated
    assert {d: r["training"] for d, r in reports.items()} == {
        "2025-03-01": {"schedule": "weekly:sun", "status": "skipped",
                       "reason": "not due: train.schedule is weekly:sun and 2025-03-01 is a Saturday"},
        "2025-03-02": {"schedule": "weekly:sun", "status": "skipped",
                       "reason": "not enough history: the training set needs 7 closed label days (2025-02-23 .. "
                                 "2025-03-01: train 5, validation 1, test 1); no labels yet for 6 of them: "
                                 "2025-02-23, 2025-02-24, 2025-02-25, ..."},
        "2025-03-03": {"schedule": "weekly:sun", "status": "skipped",
                       "reason": "not due: train.schedule is weekly:sun and 2025-03-03 is a Monday"}}
    summary = storage.read_text(spark, f"{Warehouse(cfg.paths.warehouse).report_dir(date(2025, 3, 2))}/summary.md")
    assert "## Training\n\nSkipped: not enough history: the training set needs 7 closed label days" in summary


@pytest.fixture(scope="module")
def trained_night(spark, generated, tmp_path_factory):
    """A copy of the generated warehouse, then its Monday night again with train.schedule weekly:mon.

    The three generated nights closed two label days; to have the three a 1/1/1-day training set
    needs without generating and running a fourth night, the re-run closes its own day too
    (label_maturity_days 0). Two small model families, tracked in a throwaway MLflow store.
    """
    base, _, _ = generated
    root = tmp_path_factory.mktemp("nightly_training")
    shutil.copytree(base.paths.warehouse, root / "warehouse")
    cfg = load_config("local", [TINY], {**SMALL, "clean": {"label_maturity_days": 0},
                                        "paths": {"landing": base.paths.landing, "warehouse": str(root / "warehouse")}})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        report = nightly.run_nightly(spark, cfg, MONDAY)
        yield cfg, report, MlflowClient()


def test_a_due_night_builds_the_training_set_trains_and_links_the_runs(spark, trained_night):
    cfg, report, client = trained_night
    wh = Warehouse(cfg.paths.warehouse)
    training = report["training"]
    assert training["status"] == "trained" and training["schedule"] == "weekly:mon"
    ts = training["training_set"]
    assert ts["path"] == wh.gold("training_set") and (ts["first_day"], ts["last_day"]) == ("2025-03-01", "2025-03-03")
    assert ts["splits"] == {"train": ["2025-03-01", "2025-03-01"], "validation": ["2025-03-02", "2025-03-02"],
                            "test": ["2025-03-03", "2025-03-03"]}
    assert ts["quality"]["passed"]
    assert set(training["models"]) == {"xgboost", "lr"}
    experiment = client.get_experiment_by_name(cfg.train.experiment).experiment_id
    assert training["experiment_id"] == experiment
    for family, m in training["models"].items():
        run = client.get_run(m["run_id"])
        assert run.info.run_name == family and run.data.metrics["ne"] == pytest.approx(m["ne"], abs=1e-6)
        # the runs trained on exactly the table version the report names
        assert json.loads(run.inputs.dataset_inputs[0].dataset.source)["delta_table_version"] == str(ts["version"])
        assert m["run_url"] == f"http://127.0.0.1:5000/#/experiments/{experiment}/runs/{m['run_id']}"
    reg = training["registered"]
    version = client.get_model_version_by_alias(cfg.train.registered_model, reg["alias"])
    assert version.version == reg["version"]
    assert version.tags["run_id"] == training["models"][reg["family"]]["run_id"]
    assert report["stage_seconds"]["train"] >= training["seconds"] > 0
    # what was returned is what was written
    assert json.loads(storage.read_text(spark, wh.report(MONDAY)))["training"] == training


def test_the_summary_page_shows_the_metrics_and_the_run_links(spark, trained_night):
    cfg, report, _ = trained_night
    summary = storage.read_text(spark, f"{Warehouse(cfg.paths.warehouse).report_dir(MONDAY)}/summary.md")
    assert "## Training" in summary and "Training-set gate: passed" in summary
    header = "| model | auc | log_loss | ne | gauc | calibration | ece | achievable_share | train_seconds | MLflow run |"
    assert header in summary
    for family, m in report["training"]["models"].items():
        row = next(line for line in summary.splitlines() if line.startswith(f"| {family} |"))
        assert f"{m['ne']:.4f}" in row and f"({m['run_url']})" in row
    assert f"as **{report['training']['registered']['alias']}**" in summary
    assert "| train |" in summary  # the stage's time


def test_a_training_failure_is_recorded_in_the_report_and_raised(spark, tmp_path, monkeypatch):
    cfg = load_config("local", [TINY], {"paths": {"warehouse": str(tmp_path / "wh")}})
    report = {"date": "2025-03-09", "balanced": True, "balance_errors": [], "closed_day": {"event_date": "2025-03-08"}}
    monkeypatch.setattr(nightly, "funnel_lines", lambda r: [])
    monkeypatch.setattr(nightly_training, "plan", lambda *a: {"schedule": "weekly:sun", "status": "running",
                                                              "first_day": "2025-03-02", "last_day": "2025-03-08"})
    failure = GateFailed({"stage": "training_set", "date": "2025-03-04", "failures": ["rows is 0"],
                          "results": "r", "data_docs": "d"})

    def fails(spark_, cfg_, section):
        # the report is already on disk, marked running, before training starts
        on_disk = json.loads(storage.read_text(spark, Warehouse(cfg.paths.warehouse).report(date(2025, 3, 9))))
        assert on_disk["training"]["status"] == "running"
        raise failure

    monkeypatch.setattr(nightly_training, "run", fails)
    try:
        with pytest.raises(GateFailed) as raised:
            nightly.train_stage(spark, cfg, date(2025, 3, 9), report, {}, None)
    finally:  # run_nightly would clear the stage's job group
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    assert raised.value is failure
    wh = Warehouse(cfg.paths.warehouse)
    written = json.loads(storage.read_text(spark, wh.report(date(2025, 3, 9))))
    assert written["training"]["status"] == "failed"
    assert written["training"]["error"].startswith("GateFailed: quality gate 'training_set' failed for 2025-03-04")
    assert "**FAILED**: GateFailed" in storage.read_text(spark, f"{wh.report_dir(date(2025, 3, 9))}/summary.md")


def test_plan_finds_the_closed_days_a_training_set_needs(spark, tmp_path):
    wh = Warehouse(str(tmp_path / "wh"))
    cfg = load_config("local", [TINY], {**SMALL, "paths": {"warehouse": wh.root}})
    days = [date(2025, 2, 27), date(2025, 2, 28), date(2025, 3, 1), date(2025, 3, 3)]  # 03-02 never closed
    spark.createDataFrame([(f"i{i}", d) for i, d in enumerate(days)], "impression_id string, event_date date") \
        .write.format("delta").partitionBy("event_date").save(wh.silver("labels"))
    assert nightly_training.plan(spark, cfg, date(2025, 3, 2), {"event_date": "2025-03-01"}, True) == {
        "schedule": "weekly:mon", "forced": True, "status": "running", "first_day": "2025-02-27",
        "last_day": "2025-03-01"}
    gap = nightly_training.plan(spark, cfg, date(2025, 3, 4), {"event_date": "2025-03-03"}, True)
    assert gap["status"] == "skipped" and gap["reason"] == (
        "not enough history: the training set needs 3 closed label days (2025-03-01 .. 2025-03-03: train 1, "
        "validation 1, test 1); no labels yet for 1 of them: 2025-03-02")
