"""Distributed XGBoost with xgboost.spark.

Traps handled here:
- zeros read as missing: features go to XGBoost as one dense array column (a null
  becomes NaN) with ``missing=nan``, never as a Spark ML vector that
  VectorAssembler may compress to sparse (its zeros would become missing);
- not as a list of feature columns either: with ``features_col=[...]``,
  xgboost.spark 3.2 fails (KeyError 'values') on any Arrow batch that holds only
  train or only validation rows, which is most batches once a partition's rows
  arrive grouped by day (the gold training set is partitioned by event_date);
- repartitioning: the caller hands a frame with exactly ``num_workers``
  partitions (``balanced``), so xgboost.spark does not shuffle again;
- early stopping: validation rows ride along, flagged by a boolean column.
"""
from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.config import TrainConfig
from pipelines.train.features import FeatureSet
from pipelines.train.scorers import XgbScorer

VALID_FLAG = "_is_validation"
FEATURES = "_features"


def balanced(df: DataFrame, num_workers: int) -> DataFrame:
    """Round-robin into exactly ``num_workers`` even partitions (Spark sorts first, so retries are deterministic)."""
    return df.repartition(num_workers)


def train_and_validation(df: DataFrame, tr: TrainConfig) -> DataFrame:
    """Train and validation rows of a prepared frame, validation flagged in ``VALID_FLAG``."""
    return (df.where(F.col(tr.split_col).isin("train", "validation"))
            .withColumn(VALID_FLAG, F.col(tr.split_col) == F.lit("validation")))


def xgb_params(tr: TrainConfig) -> dict:
    """Booster parameters shared by the distributed and single-process runs (bench); objective: binary:logistic."""
    return {"max_depth": tr.max_depth, "learning_rate": tr.learning_rate, "min_child_weight": tr.min_child_weight,
            "reg_lambda": tr.reg_lambda, "tree_method": "hist",
            "eval_metric": "logloss", "random_state": tr.seed}


def feature_array(fs: FeatureSet) -> Column:
    """The features as one array<double> column in ``fs.columns`` order, a null as NaN (missing)."""
    return F.array(*[F.coalesce(F.col(c).cast("double"), F.lit(math.nan)) for c in fs.columns]).alias(FEATURES)


def train_xgb(data: DataFrame, tr: TrainConfig, fs: FeatureSet) -> tuple[XgbScorer, dict[str, list[float]]]:
    """Fit on ``data`` (train + validation, flagged, ``num_workers`` partitions); returns the scorer and curves.

    Curves: {"train_logloss": [...], "validation_logloss": [...]} per boosting round.
    """
    from xgboost.spark import SparkXGBClassifier

    clf = SparkXGBClassifier(
        features_col=FEATURES, feature_names=list(fs.columns), label_col=tr.label_col,
        validation_indicator_col=VALID_FLAG, num_workers=tr.num_workers, missing=math.nan,
        n_estimators=tr.num_rounds, early_stopping_rounds=tr.early_stopping_rounds, verbose=False, **xgb_params(tr))
    model = clf.fit(data.select(feature_array(fs), tr.label_col, VALID_FLAG))
    booster = model.get_booster()
    # Keep only the rounds up to the best one: what early stopping chose.
    best = getattr(booster, "best_iteration", None)
    if best is not None and best + 1 < booster.num_boosted_rounds():
        booster = booster[: best + 1]
    summary = model.training_summary
    curves = {f"train_{k}": list(v) for k, v in (summary.train_objective_history or {}).items()}
    curves.update({f"validation_{k}": list(v) for k, v in (summary.validation_objective_history or {}).items()})
    return XgbScorer(fs, bytes(booster.save_raw("ubj"))), curves
