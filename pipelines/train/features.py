"""Which columns a model reads, and the frame every trainer gets.

Generic over the table: the label, split, group, id and date columns and the
feature lists (or prefixes) come from ``TrainConfig``. Missing-value policy,
the same for every model family: a null (or NaN) numeric feature is *missing* (NaN,
never 0: a zero is a real value, e.g. no impressions yesterday), a null
categorical code is 0 (the vocabulary's unknown/rare code).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType

from pipelines.config import TrainConfig

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class FeatureSet:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def without_cross(self, marker: str) -> "FeatureSet":
        """Per-entity features only: drop every feature whose name contains ``marker``."""
        return FeatureSet(tuple(c for c in self.numeric if marker not in c),
                          tuple(c for c in self.categorical if marker not in c))


def resolve_features(df: DataFrame, tr: TrainConfig) -> FeatureSet:
    """Explicit lists win; an empty list means every column with the prefix. Raises ValueError with the reason."""
    types = {f.name: f.dataType for f in df.schema.fields}
    reserved = {tr.label_col, tr.split_col, tr.group_col, tr.date_col, tr.id_col, tr.neg_keep_rate_col}
    required = reserved - {tr.neg_keep_rate_col}
    missing = sorted(required - set(types))
    if missing:
        raise ValueError(f"training set has no column {missing[0]!r} (named in train.*_col)")

    def pick(explicit: tuple[str, ...], prefix: str) -> tuple[str, ...]:
        cols = explicit or tuple(c for c in types if c.startswith(prefix) and c not in reserved)
        absent = [c for c in cols if c not in types]
        if absent:
            raise ValueError(f"training set has no feature column {absent[0]!r}")
        wrong = [c for c in cols if not isinstance(types[c], NumericType)]
        if wrong:
            raise ValueError(f"feature column {wrong[0]!r} is {types[wrong[0]].simpleString()}, not numeric")
        return tuple(cols)

    fs = FeatureSet(pick(tr.numeric_features, tr.numeric_prefix), pick(tr.categorical_features, tr.categorical_prefix))
    if not fs.columns:
        raise ValueError(f"no feature columns: none listed and none start with {tr.numeric_prefix!r} "
                         f"or {tr.categorical_prefix!r}")
    return fs


def _missing_as_null(x: Column) -> Column:
    """NaN is missing too (pandas-built tables hold NaN where Spark would hold null)."""
    return F.when(~F.isnan(x), x)


def prepare(df: DataFrame, tr: TrainConfig, fs: FeatureSet) -> DataFrame:
    """Typed model input: id, group, split, label (0/1 int), neg_keep_rate, numeric doubles (null kept), codes (null -> 0).

    Rows with a null label or a split outside train/validation/test are dropped:
    they cannot be learned from or evaluated.
    """
    w = F.col(tr.neg_keep_rate_col).cast("double") if tr.neg_keep_rate_col in df.columns else F.lit(1.0)
    return (df.where(F.col(tr.label_col).isNotNull() & F.col(tr.split_col).isin(*SPLITS))
            .select(F.col(tr.id_col).cast("string").alias(tr.id_col),
                    F.col(tr.group_col).cast("string").alias(tr.group_col),
                    F.col(tr.date_col),
                    F.col(tr.split_col),
                    F.col(tr.label_col).cast("int").alias(tr.label_col),
                    w.alias(tr.neg_keep_rate_col),
                    *[_missing_as_null(F.col(c).cast("double")).alias(c) for c in fs.numeric],
                    *[F.coalesce(F.col(c).cast("int"), F.lit(0)).alias(c) for c in fs.categorical]))


def matrix(pdf: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """Dense float matrix, NaN for missing: the one feature layout every scorer reads."""
    if not columns:
        return np.empty((len(pdf), 0), dtype=np.float64)
    return pdf[list(columns)].astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
