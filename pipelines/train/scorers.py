"""Trained models as small picklable objects that score a pandas frame with numpy.

The same object scores validation and test rows in Spark (``score``, through
mapInPandas), is logged to MLflow inside ``CtrModel``, and serves the batch
scoring job: what is evaluated is what is deployed.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame

from pipelines.train.calibration import Calibrator
from pipelines.train.encoding import Vocabulary
from pipelines.train.features import FeatureSet, matrix


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass
class XgbScorer:
    features: FeatureSet
    booster_raw: bytes                      # Booster.save_raw("ubj")
    _booster: object = field(default=None, repr=False, compare=False)

    def booster(self):
        if self._booster is None:
            import xgboost as xgb

            self._booster = xgb.Booster(model_file=bytearray(self.booster_raw))
        return self._booster

    def dmatrix(self, pdf: pd.DataFrame):
        import xgboost as xgb

        # missing=NaN: a null is missing, a 0.0 is a value (see features.py).
        return xgb.DMatrix(matrix(pdf, self.features.columns), missing=np.nan,
                           feature_names=list(self.features.columns))

    def predict_raw(self, pdf: pd.DataFrame) -> np.ndarray:
        return self.booster().predict(self.dmatrix(pdf)).astype(np.float64)

    def margin(self, pdf: pd.DataFrame) -> np.ndarray:
        """The ensemble's log-odds (what ``predict_raw`` squashes)."""
        return self.booster().predict(self.dmatrix(pdf), output_margin=True).astype(np.float64)

    def leaves(self, pdf: pd.DataFrame, trees: int) -> np.ndarray:
        """Leaf node id per row and tree, for the first ``trees`` trees."""
        out = self.booster().predict(self.dmatrix(pdf), pred_leaf=True, iteration_range=(0, trees))
        return np.asarray(out, dtype=np.int64).reshape(len(pdf), -1)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_booster": None}


@dataclass
class LgbmScorer:
    features: FeatureSet
    model_str: str
    _booster: object = field(default=None, repr=False, compare=False)

    def predict_raw(self, pdf: pd.DataFrame) -> np.ndarray:
        if self._booster is None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.model_str)
        return np.asarray(self._booster.predict(matrix(pdf, self.features.columns)), dtype=np.float64)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_booster": None}


@dataclass
class OneHotLinear:
    """Logistic regression over [numeric (null -> fill), is-null indicators, one-hot codes].

    ``onehot`` holds one coefficient table per categorical input, of length
    size + 1: Spark's OneHotEncoder(dropLast=False, handleInvalid="keep") puts
    codes at or beyond ``size`` in the last slot, and so does this.
    """
    numeric: tuple[str, ...]
    fill: tuple[float, ...]
    coef_numeric: tuple[float, ...]
    coef_null: tuple[float, ...]
    onehot: tuple[tuple[float, ...], ...]
    intercept: float

    def logit(self, num: np.ndarray, codes: np.ndarray) -> np.ndarray:
        null = np.isnan(num)
        filled = np.where(null, np.asarray(self.fill), num)
        z = self.intercept + filled @ np.asarray(self.coef_numeric) + null @ np.asarray(self.coef_null)
        for j, table in enumerate(self.onehot):
            t = np.asarray(table)
            z = z + t[np.clip(codes[:, j], 0, len(t) - 1)]
        return z


@dataclass
class LrScorer:
    features: FeatureSet
    linear: OneHotLinear

    def predict_raw(self, pdf: pd.DataFrame) -> np.ndarray:
        codes = matrix(pdf, self.features.categorical).astype(np.int64)
        return _sigmoid(self.linear.logit(matrix(pdf, self.features.numeric), codes))


@dataclass
class GbdtLrScorer:
    """He et al. (2014): the trees' leaves, one-hot, into a logistic regression; with ``with_margin`` the whole
    ensemble's log-odds is the LR's one numeric input beside them (pipelines/train/linear.train_gbdt_lr)."""
    trees: XgbScorer
    n_trees: int
    linear: OneHotLinear        # numeric = () or ("gbdt_margin",); one one-hot table per tree
    with_margin: bool = False   # False: models logged before the margin input

    @property
    def features(self) -> FeatureSet:
        return self.trees.features

    def predict_raw(self, pdf: pd.DataFrame) -> np.ndarray:
        leaves = self.trees.leaves(pdf, self.n_trees)
        num = self.trees.margin(pdf).reshape(-1, 1) if self.with_margin else np.empty((len(pdf), 0))
        return _sigmoid(self.linear.logit(num, leaves))


@dataclass
class CtrModel:
    """What is logged and served: vocabulary, scorer and calibrator; ``predict`` takes raw values, gives calibrated CTR.

    The vocabulary was fitted on this model's train split and is part of the model:
    a training set rebuilt later, with other values, does not change what it scores.
    """
    family: str
    scorer: object
    calibrator: Calibrator
    vocabulary: Vocabulary | None = None   # None: categorical columns already hold codes (models before it existed)

    @property
    def features(self) -> FeatureSet:
        return self.scorer.features

    def encode(self, pdf: pd.DataFrame) -> pd.DataFrame:
        if self.vocabulary is not None:
            return self.vocabulary.encode_pandas(pdf)
        if self.features.categorical:
            return pdf.fillna({c: 0 for c in self.features.categorical})
        return pdf

    def uncalibrated(self, pdf: pd.DataFrame) -> np.ndarray:
        """The scorer's probability on raw rows (before undoing downsampling and isotonic calibration)."""
        return self.scorer.predict_raw(self.encode(pdf))

    def predict(self, pdf: pd.DataFrame) -> np.ndarray:
        """Calibrated click probability from raw feature values; null, rare and unseen categories are code 0."""
        return self.calibrator(self.uncalibrated(pdf))


def score(df: DataFrame, model: object, out_col: str, keep: list[str], method: str = "predict_raw") -> DataFrame:
    """``keep`` columns plus ``out_col`` (double): ``model.<method>`` for every row, on the executors.

    ``predict_raw`` of a scorer gives the uncalibrated probability on coded rows,
    ``uncalibrated`` of a CtrModel the same on raw rows, ``predict`` the calibrated one.
    """
    cols = list(dict.fromkeys(keep + list(model.features.columns)))

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        predict = getattr(model, method)
        for pdf in batches:
            out = pdf[keep].copy()
            out[out_col] = predict(pdf) if len(pdf) else np.empty(0)
            yield out

    schema = df.select(*keep).schema.add(out_col, "double")
    return df.select(*cols).mapInPandas(run, schema)


def importance(model: object) -> dict[str, float]:
    """Feature -> importance: total gain for trees, largest |coefficient| for LR (features on their own scale)."""
    scorer = model.scorer if isinstance(model, CtrModel) else model
    if isinstance(scorer, GbdtLrScorer):
        scorer = scorer.trees
    if isinstance(scorer, XgbScorer):
        return {k: float(v) for k, v in scorer.booster().get_score(importance_type="total_gain").items()}
    if isinstance(scorer, LgbmScorer):
        import lightgbm as lgb

        booster = lgb.Booster(model_str=scorer.model_str)
        gains = booster.feature_importance(importance_type="gain")
        return {c: float(g) for c, g in zip(scorer.features.columns, gains)}
    lin = scorer.linear
    out = {c: max(abs(a), abs(b)) for c, a, b in zip(lin.numeric, lin.coef_numeric, lin.coef_null)}
    out.update({c: max(abs(v) for v in t) for c, t in zip(scorer.features.categorical, lin.onehot)})
    return out
