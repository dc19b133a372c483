"""Undo negative downsampling, then isotonic calibration fitted on the validation days.

The calibrator is two short float arrays (isotonic knots) plus the keep rate,
so it pickles into the logged model and applies with numpy alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.ml.regression import IsotonicRegression
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def undo_downsampling(p: np.ndarray | Column, w: float) -> np.ndarray | Column:
    """q = p / (p + (1 - p) / w): a model trained with share w of negatives over-predicts by 1/w in odds.

    The one formula, for scores in numpy (scoring, evaluation) and in a Spark column (calibration fitting).
    """
    if not isinstance(p, Column):
        p = np.asarray(p, dtype=np.float64)
    return p / (p + (1.0 - p) / w)


@dataclass(frozen=True)
class Calibrator:
    neg_keep_rate: float
    knots_x: tuple[float, ...] = ()   # empty: no isotonic step
    knots_y: tuple[float, ...] = ()

    def __call__(self, p: np.ndarray) -> np.ndarray:
        q = undo_downsampling(p, self.neg_keep_rate)
        if not self.knots_x:
            return q
        # Linear between knots, flat beyond the ends: what Spark's IsotonicRegressionModel does.
        return np.interp(q, np.asarray(self.knots_x), np.asarray(self.knots_y))


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
