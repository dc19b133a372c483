"""The pieces under the trainers: feature resolution, missing values, numpy copies of Spark's LR, LightGBM's guards."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from jobs.runtime.config import ConfigError, load_config
from pipelines.train.features import FeatureSet, matrix, prepare, resolve_features
from tests.conftest import TINY

DDL = ("impression_id string, event_date date, user_id string, split string, label int, neg_keep_rate double, "
       "f_user_ctr_7d double, f_user_x_ad_imps_28d double, c_device int, other string")


@pytest.fixture(scope="module")
def tr():
    return load_config("local", [TINY]).train


def test_features_by_prefix_or_explicit_list_and_the_ablation_set(spark, tr):
    df = spark.createDataFrame([], DDL)
    fs = resolve_features(df, tr)
    assert fs == FeatureSet(("f_user_ctr_7d", "f_user_x_ad_imps_28d"), ("c_device",))
    assert fs.without_cross("_x_") == FeatureSet(("f_user_ctr_7d",), ("c_device",))
    assert resolve_features(df, replace(tr, numeric_features=("f_user_ctr_7d",))).numeric == ("f_user_ctr_7d",)
    with pytest.raises(ValueError, match="'other' is string: cast it to a number"):
        resolve_features(df, replace(tr, numeric_features=("other",)))
    with pytest.raises(ValueError, match="no column 'clicked'"):
        resolve_features(df, replace(tr, label_col="clicked"))


def test_prepare_keeps_null_and_nan_as_missing_zero_as_value_and_categories_raw(spark, tr):
    rows = [("a", "2025-03-01", "u", "train", 1, 0.5, None, 0.0, None, "x"),
            ("b", "2025-03-01", "u", "train", 0, 0.5, float("nan"), 2.0, 3, "x"),
            ("c", "2025-03-01", "u", "other", 0, 0.5, 1.0, 2.0, 3, "x"),
            ("d", "2025-03-01", "u", "test", None, 1.0, 1.0, 2.0, 3, "x")]
    df = spark.createDataFrame(rows, DDL.replace("event_date date", "event_date string"))
    fs = resolve_features(df, tr)
    out = prepare(df, tr, fs).orderBy("impression_id").toPandas()
    assert out["impression_id"].tolist() == ["a", "b", "d"]      # a split outside train/validation/test is left out
    assert out["label"].tolist()[:2] == [1, 0] and pd.isna(out["label"][2])   # null label: check_splits refuses it
    x = matrix(out, fs.numeric)
    assert np.isnan(x[0, 0]) and np.isnan(x[1, 0])              # null and NaN: missing
    assert x[0, 1] == 0.0 and x[1, 1] == 2.0                    # a zero stays a value
    assert out["c_device"].tolist() == [None, "3", "3"]          # categories stay raw (text) for the vocabulary


def test_zero_is_not_missing_for_xgboost():
    import xgboost as xgb

    from pipelines.train.scorers import XgbScorer

    # The label is exactly "feature is missing": a model that read zeros as missing could not learn it.
    x = np.array([[np.nan], [0.0]] * 50)
    booster = xgb.train({"max_depth": 1, "objective": "binary:logistic"},
                        xgb.DMatrix(x, label=np.array([1, 0] * 50), missing=np.nan), num_boost_round=5)
    scorer = XgbScorer(FeatureSet(("f",), ()), bytes(booster.save_raw("ubj")))
    p = scorer.predict_raw(pd.DataFrame({"f": [None, 0.0]}, dtype="float64"))
    assert p[0] > 0.7 and p[1] < 0.3


def test_numpy_lr_equals_spark_model_including_unseen_codes(spark, tr, tmp_path):
    from pyspark.ml.classification import LogisticRegressionModel

    from pipelines.train.linear import _fit

    rng = np.random.default_rng(0)
    n = 400
    pdf = pd.DataFrame({"label": rng.integers(0, 2, n).astype("int32"), "x": rng.normal(0, 1, n),
                        "c": rng.integers(0, 4, n).astype("int32")})
    pdf.loc[::7, "x"] = np.nan
    df = spark.createDataFrame(pdf).selectExpr("label", "if(isnan(x), null, x) as x", "c")
    linear, model, frame = _fit(df, "label", ("x",), ("c",), replace(tr, lr_reg_param=0.01))
    # A fitted model keeps its training summary, which holds the SparkSession; once any
    # earlier test has used DataFrame.observe (the gold gate does), Spark 4.1's session
    # is not serializable (its ObservationManager), so transform() fails "Task not
    # serializable". A saved and loaded model has no summary.
    model.write().save(str(tmp_path / "lr"))
    model = LogisticRegressionModel.load(str(tmp_path / "lr"))
    spark_p = np.array([r["probability"][1] for r in model.transform(frame).select("probability").collect()])
    codes = pdf[["c"]].to_numpy()
    ours = 1 / (1 + np.exp(-linear.logit(pdf[["x"]].to_numpy(), codes)))
    assert ours == pytest.approx(spark_p, abs=1e-9)
    # A code never seen in training lands in the encoder's "keep" slot, as in Spark.
    assert linear.logit(np.array([[0.0]]), np.array([[9]]))[0] == pytest.approx(
        linear.intercept + linear.coef_numeric[0] * 0.0 + linear.onehot[0][-1])


def test_gbdt_lr_scores_as_it_was_fitted_and_starts_from_the_trees_margin(spark, tr):
    """The LR is fitted on [ensemble margin, one-hot leaves] computed on executors; the logged scorer recomputes both
    with numpy and must give the same probabilities. An older scorer (leaves only) still scores."""
    import xgboost as xgb

    from pipelines.train.linear import MARGIN, train_gbdt_lr, with_leaves
    from pipelines.train.scorers import GbdtLrScorer, XgbScorer

    rng = np.random.default_rng(1)
    n = 600
    pdf = pd.DataFrame({"x": rng.normal(0, 1, n), "c": rng.integers(0, 3, n).astype("float64")})
    pdf["label"] = (rng.random(n) < 1 / (1 + np.exp(-(pdf["x"] * 1.5 + (pdf["c"] == 2) - 1)))).astype("int32")
    pdf.loc[::9, "x"] = np.nan
    fs = FeatureSet(("x",), ("c",))
    booster = xgb.train({"max_depth": 2, "eta": 0.3, "objective": "binary:logistic"},
                        xgb.DMatrix(pdf[["x", "c"]], label=pdf["label"], missing=np.nan), num_boost_round=8)
    trees = XgbScorer(fs, bytes(booster.save_raw("ubj")))
    df = spark.createDataFrame(pdf).selectExpr("label", "if(isnan(x), null, x) as x", "c")
    model = train_gbdt_lr(df, trees, replace(tr, gbdt_lr_trees=5, lr_reg_param=0.01))
    assert model.with_margin and model.n_trees == 5 and model.linear.numeric == (MARGIN,)
    assert model.linear.coef_numeric[0] > 0.5   # the trees' own log-odds carries most of the prediction
    design = with_leaves(df, trees, 5, ["label"], margin=True).toPandas()
    assert design[MARGIN].to_numpy() == pytest.approx(trees.margin(pdf), abs=1e-5)
    z = model.linear.logit(design[[MARGIN]].to_numpy(), design[[f"leaf_{t}" for t in range(5)]].to_numpy())
    assert model.predict_raw(pdf) == pytest.approx(1 / (1 + np.exp(-z)), abs=1e-6)
    old = GbdtLrScorer(trees, 5, replace(model.linear, numeric=(), fill=(), coef_numeric=(), coef_null=()))
    assert not old.with_margin and old.predict_raw(pdf).shape == (n,)


def test_lightgbm_refuses_an_empty_partition_before_starting(spark):
    from pipelines.train.lgbm_barrier import check_partitions

    one_row = spark.createDataFrame([(1.0, 1)], "f double, label int").repartition(2)
    with pytest.raises(ValueError, match=r"partition\(s\) \[\d\] are empty"):
        check_partitions(one_row, 2)
    counts = check_partitions(spark.range(10).repartition(2), 2)
    assert sum(counts) == 10 and min(counts) > 0
    with pytest.raises(ValueError, match="needs exactly 3 partitions, got 2"):
        check_partitions(spark.range(10).repartition(2), 3)


def test_lightgbm_splits_by_category_only_the_columns_with_few_values(tr):
    from pipelines.train.lgbm_barrier import lgbm_params, native_categories

    fs = FeatureSet(("f_a", "f_b"), ("c_device", "c_ad", "c_country"))
    sizes = {"c_device": 5, "c_ad": 2000, "c_country": 32}
    native = native_categories(fs, sizes, 32)
    assert native == ("c_device", "c_country")
    # Indices into fs.columns (f_a, f_b, c_device, c_ad, c_country): c_ad goes in as its frequency-rank code.
    assert lgbm_params(tr, fs, native)["categorical_feature"] == [2, 4]
    assert lgbm_params(tr, fs)["categorical_feature"] == [2, 3, 4]
    assert native_categories(fs, sizes, 0) == ()
    assert lgbm_params(tr, fs, ())["categorical_feature"] == []
    assert lgbm_params(tr, fs)["min_data_in_leaf"] == tr.min_child_samples


@pytest.mark.parametrize("yaml_text, message", [
    ("train:\n  models: [xgboost, catboost]\n", "unknown family 'catboost'"),
    ("train:\n  models: [gbdt_lr, lr]\n", "gbdt_lr uses the leaves of the xgboost model"),
    ("train:\n  num_workers: 0\n", "train.num_workers must be between 1 and 1024"),
    ("train:\n  calibration_tolerance: 2\n", "calibration_tolerance must be in (0, 1)"),
    ("train:\n  early_stopping_rounds: 500\n", "at most train.num_rounds"),
    ("train:\n  label_col: user_id\n", "columns must differ"),
    ("train:\n  numeric_features: [f_a]\n  categorical_features: [f_a]\n", "both numeric and categorical"),
    ("train:\n  learning_rat: 0.1\n", "did you mean 'learning_rate'"),
    ("train:\n  max_native_categories: -1\n", "train.max_native_categories must be between 0"),
    ("train:\n  min_child_samples: 0\n", "train.min_child_samples must be between 1"),
    ("train:\n  calibration: sigmoid\n", "train.calibration must be one of platt, isotonic, none"),
])
def test_bad_train_config_is_refused_before_spark(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config("local", [str(path)])
    assert message in str(err.value)
