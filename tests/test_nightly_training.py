"""The nightly job's training stage: skipped with a reason, or run on schedule into the report and summary."""
from __future__ import annotations

import json
import shutil
from datetime import date

import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs.runtime import storage
from jobs.runtime.config import load_config
from jobs.runtime.layout import Warehouse
from jobs.runtime.quality import GateFailed
from jobs.stages import nightly, nightly_training, score
from pipelines.declarations import history_features
from tests.conftest import TINY

MONDAY = date(2025, 3, 3)   # the generated fixture's last night
SMALL = {"training_set": {"train_days": 1, "validation_days": 1, "test_days": 1},
         "train": {"schedule": "weekly:mon", "models": ["xgboost", "lr"], "ablations": ["entity_only"],
                   "num_rounds": 10, "early_stopping_rounds": 3, "max_depth": 3, "gbdt_lr_trees": 5, "lr_max_iter": 10}}


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
    assert set(training["models"]) == {"xgboost", "xgboost_entity_only", "lr"}
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
    # the watch measured the night's drift against the set just built; its train day had no history behind it,
    # so every windowed feature (and every recency, which looks back on the longest window) is still filling
    drift = report["drift"]
    assert drift["status"] == "measured" and drift["reference"]["training_set_version"] == ts["version"]
    windowed = {f.name for f in history_features(cfg.gold.features)}
    assert {f["feature"] for f in drift["features"] if f["level"] == "filling"} == windowed
    # what was returned is what was written
    assert json.loads(storage.read_text(spark, wh.report(MONDAY)))["training"] == training


def test_the_summary_page_shows_the_metrics_and_the_run_links(spark, trained_night):
    cfg, report, _ = trained_night
    summary = storage.read_text(spark, f"{Warehouse(cfg.paths.warehouse).report_dir(MONDAY)}/summary.md")
    assert "## Training" in summary and "Training-set gate: passed" in summary
    header = ("| model | auc | log_loss | ne | gauc | calibration | ece | achievable_share | train_seconds "
              "| MLflow run |")
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


@pytest.fixture(scope="module")
def scored(spark, trained_night):
    """The Monday's landed impressions scored with the model the night trained (made champion if it was not)."""
    from jobs.stages.score import run_score

    cfg, report, client = trained_night
    reg = report["training"]["registered"]
    client.set_registered_model_alias(cfg.train.registered_model, "champion", reg["version"])
    return cfg, run_score(spark, cfg, MONDAY), reg


def test_scoring_writes_every_valid_impression_that_landed_on_the_day(spark, scored):
    cfg, result, reg = scored
    wh = Warehouse(cfg.paths.warehouse)
    landed = storage.read_delta(spark, wh.silver("impressions")).where(
        (F.col("dt") == F.lit(MONDAY)) & (F.col("fate") == "valid"))
    out = storage.read_delta(spark, result["table"])
    assert sorted(out.columns) == sorted(score.SCORE_COLUMNS)
    assertDataFrameEqual(out.select("impression_id", "event_ts", "event_date", "user_id", "ad_id", "dt"),
                         landed.select("impression_id", "event_ts", "event_date", "user_id", "ad_id", "dt"))
    assert result["rows"] == landed.count() > 1000
    stats = out.agg(F.min("p_click"), F.max("p_click"), F.countDistinct("model_version", "model_alias"),
                    F.sum((F.col("snapshot_date") != F.date_sub("event_date", 1)).cast("int")),
                    F.min("features_version")).first()
    assert 0 < stats[0] < stats[1] < 1 and stats[2] == 1 and stats[3] == 0 and stats[4] is not None
    assert out.select("model_version").first()[0] == str(reg["version"])
    score.run_score(spark, cfg, MONDAY)   # a re-run replaces the day
    assert storage.read_delta(spark, result["table"]).count() == result["rows"]


def test_a_scored_impression_that_closes_has_the_training_rows_features_column_by_column(spark, scored):
    """Training/serving parity: the features scoring used are the training set's, for every row in both."""
    from jobs.stages.training_set import feature_columns

    cfg, _, _ = scored
    rows, _, _ = score.landed_rows(spark, cfg, MONDAY)
    columns = ["impression_id", *feature_columns(cfg), *[f"c_{c}" for c in cfg.training_set.categorical]]
    training = storage.read_delta(spark, Warehouse(cfg.paths.warehouse).gold("training_set")).select(*columns)
    served = rows.select(*columns)
    both = served.join(training.select("impression_id"), on="impression_id")
    # Every scored row but the behavioural bots reclassified when the labels closed reaches training,
    # late deliveries of the Sunday (validation split) included.
    assert both.count() >= 0.95 * served.count()
    late = rows.where(F.col("event_date") < F.lit(MONDAY)).select("impression_id").join(both, on="impression_id")
    assert late.count() > 0
    assertDataFrameEqual(both, training.join(served.select("impression_id"), on="impression_id"))


def test_the_drift_sample_has_the_full_runs_features_for_its_users(spark, scored):
    """landed_rows(sample_rows=...) keeps whole users and cuts the snapshots to their keys: the rows it gives are
    exactly the full run's rows of those users, same-day counts included."""
    from jobs.stages.training_set import feature_columns

    cfg, _, _ = scored
    columns = ["impression_id", "user_id", *feature_columns(cfg), *[f"c_{c}" for c in cfg.training_set.categorical]]
    landed = score.landed_rows(spark, cfg, MONDAY)[0]
    full = landed.select(*columns)
    sample = score.landed_rows(spark, cfg, MONDAY, sample_rows=300)[0].select(*columns)
    n, users = sample.count(), sample.select("user_id").distinct().count()
    assert 0 < n < full.count() and users > 10
    assertDataFrameEqual(sample, full.join(sample.select("user_id").distinct(), on="user_id", how="left_semi")
                         .select(*columns))
    # the drift's new day: the same rows and features, minus the late deliveries of earlier days
    own = score.landed_rows(spark, cfg, MONDAY, sample_rows=300, own_day_only=True)[0].select(*columns)
    assert landed.where(F.col("event_date") < F.lit(MONDAY)).count() > 0
    assertDataFrameEqual(own, landed.where(F.col("event_date") == F.lit(MONDAY)).select(*columns)
                         .join(own.select("user_id").distinct(), on="user_id", how="left_semi").select(*columns))
    assert own.count() > 0


def test_scoring_needs_silver_a_snapshot_a_champion_and_its_features(spark, scored, tmp_path):
    from dataclasses import replace

    from jobs.runtime.cli import UsageError

    cfg, _, _ = scored
    with pytest.raises(UsageError, match="no valid impressions landed on 2025-03-20.*make backfill DATE=2025-03-20"):
        score.run_score(spark, cfg, date(2025, 3, 20))
    nobody = replace(cfg, train=replace(cfg.train, registered_model="nobody"))
    with pytest.raises(UsageError, match="'nobody' has no champion yet"):
        score.run_score(spark, nobody, MONDAY)
    decl = cfg.gold.features   # the same declarations without their same-day counts
    no_same_day = replace(decl, groups=tuple(
        replace(g, aggregations=tuple(a for a in g.aggregations if a.op != "same_day_count")) for g in decl.groups))
    fewer = replace(cfg, gold=replace(cfg.gold, features=no_same_day))
    with pytest.raises(UsageError, match="needs feature column\\(s\\) f_user_imps_today, f_user_x_ad_imps_today"):
        score.run_score(spark, fewer, MONDAY)
    with pytest.raises(UsageError, match="--table needs --out"):
        score.run_score(spark, cfg, MONDAY, table=str(tmp_path / "rows"))
    with pytest.raises(UsageError, match="no gold feature snapshot as of 2025-02-28 .*make backfill DATE=2025-02-28"):
        score.landed_rows(spark, cfg, date(2025, 3, 1))
    # the first night's snapshot was published (its run report says so) but holds no history to score with
    with pytest.raises(score.NothingToScore, match="as of 2025-03-01, which the impressions landed on 2025-03-02 "
                                                   "need, holds no history yet"):
        score.landed_rows(spark, cfg, date(2025, 3, 2))
    empty = replace(cfg, paths=replace(cfg.paths, warehouse=str(tmp_path / "empty")))
    with pytest.raises(UsageError, match="no silver impressions"):
        score.run_score(spark, empty, MONDAY)


def test_closed_scores_are_monitored_into_a_table_and_the_models_run(spark, scored):
    from jobs.runtime.layout import resolve_uri

    cfg, _, reg = scored
    m = score.monitor_day(spark, cfg, MONDAY, MONDAY)   # label_maturity_days 0 here: Monday's labels are closed
    assert m["rows"] > 1000 and m["unlabelled"] >= 0 and 0 < m["ne"] < 1.5 and 0.5 < m["auc"] <= 1
    assert m["coverage"] > 0.95 and not m["partial"]   # the whole landing of the day was scored
    # up to 10 buckets by decile cut points: fewer when the calibrated scores tie (isotonic steps)
    assert 1 <= len(m["deciles"]) <= 10 and sum(d["rows"] for d in m["deciles"]) == m["rows"]
    assert m["model_version"] == str(reg["version"])
    table = storage.read_delta(spark, resolve_uri(cfg.paths.warehouse, cfg.score.monitoring_table)).collect()
    assert [(r["event_date"], r["rows"]) for r in table] == [(MONDAY, m["rows"])]
    history = MlflowClient().get_metric_history(reg["run_id"] if "run_id" in reg else
                                                MlflowClient().get_model_version(cfg.train.registered_model,
                                                                                 reg["version"]).tags["run_id"],
                                                "scored_ne")
    assert [(h.step, round(h.value, 9)) for h in history] == [(20250303, round(m["ne"], 9))]


def test_the_catalog_lists_every_declared_feature_with_its_data_and_its_value_in_the_champion(spark, scored):
    from jobs.stages.catalog import run_catalog
    from pipelines import declarations

    cfg, _, _ = scored
    paths = run_catalog(spark, cfg)
    md, page = storage.read_text(spark, paths["markdown"]), storage.read_text(spark, paths["html"])
    lines = [line.strip("| ").split(" | ") for line in md.splitlines() if line.startswith("| f_")]
    rows = {cells[0]: cells for cells in lines}
    # each declared feature once (grouped by aggregation, so not in the training set's column order)
    assert len(lines) == len(rows) and sorted(rows) == sorted(declarations.feature_columns(cfg.gold.features))
    assert all(rows[n][10].endswith("%") for n in rows)                 # null share in the training set
    assert rows["f_user_imps_1d"][11].endswith("%") and rows["f_user_ctr_7d"][11].endswith("%")  # default share
    assert rows["f_hour"][11] == "-"                                    # a contextual feature has no default
    assert rows["f_user_imps_1d"][9] == "2025-03-02"    # the first snapshot with data: the one after the first day
    shares = [float(r[12].rstrip("%")) for r in rows.values()]   # of the champion's importance (c_* take the rest)
    assert 0 < sum(shares) <= 100.5 and max(shares) > 0
    # the entity_only ablation of the same training left out exactly the cross-entity features
    assert {n for n, r in rows.items() if r[13].startswith("entity_only ")} == {n for n in rows if "_x_" in n}
    for name in rows:
        assert f"<code>{name}</code>" in page
    assert "<script" not in page and "src=" not in page and "@import" not in page and "://" not in page
