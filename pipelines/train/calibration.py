"""Undo negative downsampling, then a calibration map fitted on the validation days.

``train.calibration`` picks the map: ``platt`` (the default: a slope and an intercept on
the log-odds), ``isotonic`` (a monotone step function) or ``none``. Measured on
`make bench-quality` (docs/training.md, "Calibration"): isotonic fitted on one validation
day learns that day's noise - LightGBM's share of the achievable log-loss reduction fell
from 0.759 to 0.740 through it, Platt 0.757. The calibrator is the keep rate plus a few
floats, so it pickles into the logged model and applies with numpy alone.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from pyspark.ml.regression import IsotonicRegression
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.config import CALIBRATION_METHODS as METHODS

log = logging.getLogger("ctr.train")


def undo_downsampling(p: np.ndarray | Column, w: float) -> np.ndarray | Column:
    """q = p / (p + (1 - p) / w): a model trained with share w of negatives over-predicts by 1/w in odds.

    The one formula, for scores in numpy (scoring, evaluation) and in a Spark column (calibration fitting).
    """
    if not isinstance(p, Column):
        p = np.asarray(p, dtype=np.float64)
    return p / (p + (1.0 - p) / w)


_EDGE = 1e-7   # probabilities are clipped to [_EDGE, 1 - _EDGE] before their log-odds


@dataclass(frozen=True)
class Calibrator:
    neg_keep_rate: float
    knots_x: tuple[float, ...] = ()   # empty: no isotonic step
    knots_y: tuple[float, ...] = ()
    platt: tuple[float, ...] = ()     # (slope, intercept) on the log-odds; empty: no Platt step

    def __call__(self, p: np.ndarray) -> np.ndarray:
        q = undo_downsampling(p, self.neg_keep_rate)
        if self.platt:
            q = np.clip(q, _EDGE, 1.0 - _EDGE)
            z = self.platt[0] * np.log(q / (1.0 - q)) + self.platt[1]
            return 1.0 / (1.0 + np.exp(-z))
        if not self.knots_x:
            return q
        # Linear between knots, flat beyond the ends: what Spark's IsotonicRegressionModel does.
        return np.interp(q, np.asarray(self.knots_x), np.asarray(self.knots_y))

    @property
    def method(self) -> str:
        return "platt" if self.platt else "isotonic" if self.knots_x else "none"


def fit_calibrator(method: str, df: DataFrame, score_col: str, label_col: str, neg_keep_rate: float) -> Calibrator:
    """The ``method`` (METHODS) fitted on the rows of ``df``: its validation rows."""
    if method == "platt":
        return fit_platt(df, score_col, label_col, neg_keep_rate)
    if method == "isotonic":
        return fit_isotonic(df, score_col, label_col, neg_keep_rate)
    if method == "none":
        return Calibrator(float(neg_keep_rate))
    raise ValueError(f"unknown calibration method {method!r}: one of {', '.join(METHODS)}")


def fit_platt(df: DataFrame, score_col: str, label_col: str, neg_keep_rate: float) -> Calibrator:
    """Platt scaling: a logistic regression of the label on the log-odds of the corrected score.

    Two parameters, so one validation day's noise moves them little (an isotonic map has a
    step per block). Spark ML fits it where the rows are; only the two numbers come back.
    """
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    w = float(neg_keep_rate)
    q = F.least(F.greatest(undo_downsampling(F.col(score_col), w), F.lit(_EDGE)), F.lit(1.0 - _EDGE))
    data = df.select(F.log(q / (1.0 - q)).alias("z"), F.col(label_col).cast("double").alias("label"))
    data = VectorAssembler(inputCols=["z"], outputCol="features").transform(data)
    model = LogisticRegression(featuresCol="features", labelCol="label", regParam=0.0, standardization=False,
                               maxIter=100, tol=1e-9).fit(data)
    slope, intercept = float(model.coefficients[0]), float(model.intercept)
    if not (math.isfinite(slope) and math.isfinite(intercept)):
        # Validation rows of one class only (no click at all): nothing to fit a map on.
        log.warning("Platt calibration not fitted (slope %s, intercept %s: the validation rows hold one class "
                    "only); the model's probabilities are used as they are", slope, intercept)
        return Calibrator(w)
    return Calibrator(w, platt=(slope, intercept))


def fit_isotonic(df: DataFrame, score_col: str, label_col: str, neg_keep_rate: float,
                 prior_rows: float = 1.0) -> Calibrator:
    """Fit on the validation rows of ``df`` (score = uncorrected model probability), with Spark ML.

    Spark's pool-adjacent-violators runs distributed; only its knots come back.
    """
    w = float(neg_keep_rate)
    q = undo_downsampling(F.col(score_col), w)
    data = df.select(q.alias("q"), F.col(label_col).cast("double").alias("label"))
    model = IsotonicRegression(isotonic=True, featuresCol="q", labelCol="label").fit(data)
    xs, ys = model.boundaries.toArray(), model.predictions.toArray()
    # A block without clicks gets 0.0 (and one of only clicks 1.0): one click there later
    # costs a log loss of 35. Shrink each block's CTR toward its mean corrected score
    # by `prior_rows` pseudo-rows, then restore monotonicity.
    blocks = (model.transform(data).groupBy("prediction")
              .agg(F.count("*").alias("n"), F.sum("label").alias("clicks"), F.avg("q").alias("q")).collect())
    by_value = {float(b["prediction"]): b for b in blocks}
    smoothed = []
    for y in ys:
        b = by_value.get(float(y))
        smoothed.append((b["clicks"] + prior_rows * b["q"]) / (b["n"] + prior_rows) if b else float(y))
    smoothed = np.maximum.accumulate(np.asarray(smoothed))
    return Calibrator(w, tuple(float(x) for x in xs), tuple(float(y) for y in smoothed))
