"""Vocabularies fitted on the train split and stored in the model; raw categorical tables; refused tables."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs.runtime.config import load_config
from pipelines.train import encoding
from pipelines.train.features import FeatureSet, ablations
from tests.conftest import TINY

HASHES = [-9_223_372_036_854_775_807, 9_223_372_036_854_775_806, 4_611_686_018_427_387_904, 12_345, -7]


def test_vocabulary_fitted_on_train_only_rare_unseen_and_null_are_zero(spark):
    rows = spark.createDataFrame([
        ("train", "a1", 9_223_372_036_854_775_806), ("train", "a1", 9_223_372_036_854_775_806),
        ("train", "a2", -7), ("train", "a2", -7), ("train", "a3", -7), ("train", None, None),
        ("test", "a4", 5), ("test", "a4", 5), ("test", "a4", 5)], "split string, ad string, h long")
    vocab = encoding.fit(rows.where(F.col("split") == "train"), ("ad", "h"), min_count=2, max_size=10)
    # a1 and a2 twice each: ties by value; -7 three times beats the hash seen twice.
    assert vocab.codes == {"ad": {"a1": 1, "a2": 2}, "h": {"-7": 1, "9223372036854775806": 2}}
    out = encoding.encode(rows, vocab)
    expected = spark.createDataFrame([
        ("train", 1, 2), ("train", 1, 2), ("train", 2, 1), ("train", 2, 1), ("train", 0, 1), ("train", 0, 0),
        ("test", 0, 0), ("test", 0, 0), ("test", 0, 0)], "split string, ad int, h int")
    assertDataFrameEqual(out, expected)
    # The pandas path (scoring) gives the same codes as Spark's (training), from any integer or text form.
    pdf = pd.DataFrame({"ad": ["a1", "a2", "a3", None, "a4"],
                        "h": pd.array([9_223_372_036_854_775_806, -7, -7, None, 5], dtype="Int64")})
    coded = vocab.encode_pandas(pdf)
    assert coded["ad"].tolist() == [1, 2, 0, 0, 0] and coded["h"].tolist() == [2, 1, 1, 0, 0]
    as_float = vocab.encode_pandas(pd.DataFrame({"h": [-7.0, np.nan], "ad": ["a2", "a2"]}))
    assert as_float["h"].tolist() == [1, 0]


def test_vocabulary_keeps_the_most_frequent_up_to_max_size(spark):
    rows = spark.createDataFrame([(v,) for v in "aaabbc"], "c string")
    assert encoding.fit(rows, ("c",), min_count=1, max_size=2).codes == {"c": {"a": 1, "b": 2}}


def test_ablation_feature_sets():
    cfg = load_config("local", [TINY])
    fs = FeatureSet(("f_user_ctr_7d", "f_user_x_category_ctr_7d", "f_user_hours_since_click", "f_position", "f_hour"),
                    ("c_device_type", "c_ad_id"))
    assert ablations(fs, cfg.train) == {
        "entity_only": FeatureSet(("f_user_ctr_7d", "f_user_hours_since_click", "f_position", "f_hour"),
                                  ("c_device_type", "c_ad_id")),
        "contextual_only": FeatureSet(("f_position", "f_hour"), ("c_device_type", "c_ad_id"))}
    # A table without cross features or without history gets no ablation that would equal the full model.
    plain = FeatureSet(("f_position",), ("c_ad_id",))
    assert ablations(plain, cfg.train) == {}


def _raw_table(rows: int, seed: int, days: int = 5) -> pd.DataFrame:
    """A user's table: raw string and 64-bit integer categories, no user column, no neg_keep_rate."""
    rng = np.random.default_rng(seed)
    publisher = rng.choice(HASHES, rows)
    device = rng.choice(["phone", "desktop", "tv"], rows, p=[0.6, 0.3, 0.1])
    x = rng.normal(0, 1, rows)
    logit = -1.0 + 1.2 * (publisher == HASHES[0]) - 0.8 * (device == "tv") + 0.7 * x
    day = rng.integers(0, days, rows)
    return pd.DataFrame({
        "row_id": [f"r{seed}_{i}" for i in range(rows)],
        "day": [date(2025, 1, 1) + timedelta(days=int(d)) for d in day],
        "clicked": (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64),
        "part": np.where(day == days - 1, "test", np.where(day == days - 2, "validation", "train")),
        "num_x": x, "cat_publisher": publisher.astype(np.int64), "cat_device": device})


@pytest.fixture(scope="module")
def raw_cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    cfg = load_config("local", [TINY], {
        "paths": {"landing": f"{root}/landing", "warehouse": f"{root}/warehouse"},
        "train": {"label_col": "clicked", "split_col": "part", "date_col": "day", "id_col": "row_id",
                  "numeric_prefix": "num_", "categorical_prefix": "cat_",
                  "models": ["xgboost", "lightgbm", "gbdt_lr", "lr"], "gbdt_lr_trees": 10,
                  "num_rounds": 20, "early_stopping_rounds": 5, "max_depth": 3, "num_leaves": 8,
                  "lr_max_iter": 20, "lgbm_max_valid_rows": 1000, "min_category_count": 5,
                  "calibration_tolerance": 0.5, "first_calibration_tolerance": 0.5,
                  "registered_model": "raw_ctr", "experiment": "raw-tables"}})
    return cfg, root


def test_raw_categories_train_end_to_end_and_a_registered_model_ignores_later_vocabularies(spark, raw_cfg,
                                                                                          monkeypatch):
    import mlflow

    from jobs.stages.train import run_train
    from pipelines.train.scorers import CtrModel  # noqa: F401 - the logged model unpickles it

    cfg, root = raw_cfg
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    table = f"{root}/user_table"
    first = _raw_table(600, seed=1)
    spark.createDataFrame(first).write.format("delta").save(table)
    results = {r["model"]: r for r in run_train(spark, cfg, table)}
    assert set(results) == {"xgboost", "lightgbm", "gbdt_lr", "lr"}   # no cross or history feature: no ablation
    for r in results.values():
        assert np.isnan(r["gauc"]) and 0 < r["auc"] <= 1   # no user column: GAUC skipped, the rest measured
    registered = next(r["registered"] for r in results.values() if "registered" in r)
    uri = f"models:/raw_ctr/{registered['version']}"
    probe = first.head(50)[["num_x", "cat_publisher", "cat_device"]]
    before = mlflow.pyfunc.load_model(uri).predict(probe)
    model = mlflow.pyfunc.load_model(uri).unwrap_python_model().model
    assert model.vocabulary.codes["cat_device"]["phone"] == 1   # stored inside the logged model

    # The table is rebuilt: other values, other frequencies - a different vocabulary. Retrain on it.
    rebuilt = _raw_table(600, seed=2)
    rebuilt["cat_device"] = rebuilt["cat_device"].map({"phone": "tv", "tv": "phone", "desktop": "desktop"})
    spark.createDataFrame(rebuilt).write.format("delta").mode("overwrite").save(table)
    run_train(spark, replace(cfg, train=replace(cfg.train, models=("xgboost",))), table)
    newest = mlflow.pyfunc.load_model("models:/raw_ctr/latest").unwrap_python_model().model
    assert newest.vocabulary.codes["cat_device"]["tv"] == 1
    after = mlflow.pyfunc.load_model(uri).predict(probe)
    np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("change, says", [
    (lambda df: df.drop(columns=["part"]), "no column 'part'"),
    (lambda df: df.assign(clicked=np.where(df.index % 7 == 0, 2, df["clicked"])), "not 0 or 1"),
    (lambda df: df.assign(part=df["part"].map({"train": "test", "test": "train", "validation": "validation"})),
     "not time-ordered"),
    (lambda df: df.assign(cat_device=np.linspace(0, 1, len(df))), "'cat_device' is double"),
])
def test_a_table_that_cannot_be_trained_on_exits_2_naming_the_column(spark, raw_cfg, tmp_path, capsys,
                                                                   monkeypatch, change, says):
    from mlflow.tracking import MlflowClient

    from jobs import train

    cfg, _ = raw_cfg
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    table = f"{tmp_path}/bad"
    spark.createDataFrame(change(_raw_table(300, seed=3))).write.format("delta").save(table)
    overlay = tmp_path / "raw.yaml"
    overlay.write_text(json.dumps({"train": {k: getattr(cfg.train, k) for k in (
        "label_col", "split_col", "date_col", "id_col", "numeric_prefix", "categorical_prefix",
        "registered_model", "experiment")}}))
    monkeypatch.setattr(train, "get_spark", lambda *a, **k: spark)
    code = train.main(["--config", TINY, "--config", str(overlay), "--table", table])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(err) == 1 and says in err[0], err
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert client.search_registered_models() == []
    exp = client.get_experiment_by_name("raw-tables")
    assert exp is None or client.search_runs([exp.experiment_id]) == []


def test_only_a_missing_model_or_alias_means_no_champion_other_registry_errors_raise(tmp_path, monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR
    from mlflow.tracking import MlflowClient

    from jobs.runtime import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    tracking.setup("registry-errors")
    assert tracking.champion_model("nothing_registered") is None
    MlflowClient().create_registered_model("no_alias_yet")
    assert tracking.champion_model("no_alias_yet") is None

    def down(*args, **kwargs):
        raise MlflowException("tracking server unavailable", INTERNAL_ERROR)

    monkeypatch.setattr(MlflowClient, "get_registered_model", down)
    with pytest.raises(MlflowException, match="unavailable"):
        tracking.champion_model("no_alias_yet")
    assert mlflow.active_run() is None
