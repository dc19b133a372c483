"""Which columns a model reads, and the frame every trainer gets.

Generic over the table: the label, split, group, id and date columns and the
feature lists (or prefixes) come from ``TrainConfig``. Missing-value policy,
the same for every model family: a null (or NaN) numeric feature is *missing* (NaN,
never 0: a zero is a real value, e.g. no impressions yesterday). A categorical
feature stays raw here (as text); the trainer's vocabulary (encoding.py), fitted on
the train split, turns it into codes, with null, rare and unseen values as 0.

A table that cannot be trained on raises ``TableError`` naming the column and the
fix; jobs/train.py turns it into exit 2 before any MLflow run starts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType

from pipelines.config import TrainConfig
from pipelines.train.encoding import NotEncodable, check_encodable

SPLITS = ("train", "validation", "test")


class TableError(ValueError):
    """The training table cannot be trained on as it is; the message names the column and the fix."""


@dataclass(frozen=True)
class FeatureSet:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def without_cross(self, marker: str) -> FeatureSet:
        """Per-entity features only: drop every feature whose name contains ``marker``."""
        return FeatureSet(tuple(c for c in self.numeric if marker not in c),
                          tuple(c for c in self.categorical if marker not in c))

    def split_history(self, pattern: str) -> tuple[FeatureSet, FeatureSet]:
        """(contextual, history): the features whose name does not / does match the regex ``pattern``."""
        history = re.compile(pattern)

        def part(keep: bool) -> FeatureSet:
            return FeatureSet(tuple(c for c in self.numeric if bool(history.search(c)) == keep),
                              tuple(c for c in self.categorical if bool(history.search(c)) == keep))

        return part(False), part(True)


ABLATIONS = ("entity_only", "contextual_only", "history_only")


def ablations(fs: FeatureSet, tr: TrainConfig) -> dict[str, FeatureSet]:
    """The feature sets of train.ablations: name -> features; one that drops nothing or everything is left out.

    entity_only drops cross-entity features (train.cross_marker), contextual_only the
    windowed history (train.history_pattern), history_only keeps nothing but that history.
    """
    contextual, history = fs.split_history(tr.history_pattern)
    subsets = {"entity_only": fs.without_cross(tr.cross_marker), "contextual_only": contextual,
               "history_only": history}
    out = {name: subsets[name] for name in tr.ablations}
    return {name: sub for name, sub in out.items() if sub.columns and sub != fs}


def resolve_features(df: DataFrame, tr: TrainConfig) -> FeatureSet:
    """Explicit lists win; an empty list means every column with the prefix. Raises TableError with the reason.

    Required: the label, split, date and id columns. The group (user) column and the
    neg_keep_rate column are optional: without a group GAUC is skipped, without a
    keep rate every row counts once (1.0).
    """
    types = {f.name: f.dataType for f in df.schema.fields}
    reserved = {tr.label_col, tr.split_col, tr.group_col, tr.date_col, tr.id_col, tr.neg_keep_rate_col}
    for col, key in ((tr.label_col, "label_col"), (tr.split_col, "split_col"), (tr.date_col, "date_col"),
                     (tr.id_col, "id_col")):
        if col not in types:
            raise TableError(f"training table has no column {col!r}: add it, or name the right one in "
                             f"train.{key}")

    def pick(explicit: tuple[str, ...], prefix: str, kind: str) -> tuple[str, ...]:
        cols = explicit or tuple(c for c in types if c.startswith(prefix) and c not in reserved)
        absent = [c for c in cols if c not in types]
        if absent:
            raise TableError(f"training table has no feature column {absent[0]!r} (listed in train.{kind}_features)")
        return tuple(cols)

    fs = FeatureSet(pick(tr.numeric_features, tr.numeric_prefix, "numeric"),
                    pick(tr.categorical_features, tr.categorical_prefix, "categorical"))
    wrong = [c for c in fs.numeric if not isinstance(types[c], NumericType)]
    if wrong:
        raise TableError(f"numeric feature column {wrong[0]!r} is {types[wrong[0]].simpleString()}: cast it to a "
                         f"number, or list it under train.categorical_features")
    try:
        check_encodable(df, fs.categorical)
    except NotEncodable as err:
        raise TableError(str(err)) from None
    if not fs.columns:
        raise TableError(f"no feature columns: none listed in train.numeric_features / categorical_features and "
                         f"none start with {tr.numeric_prefix!r} or {tr.categorical_prefix!r}")
    return fs


def _missing_as_null(x: Column) -> Column:
    """NaN is missing too (pandas-built tables hold NaN where Spark would hold null)."""
    return F.when(~F.isnan(x), x)


def prepare(df: DataFrame, tr: TrainConfig, fs: FeatureSet) -> DataFrame:
    """Typed model input: id, group, split, label, neg_keep_rate, numeric doubles (null kept), raw categories as text.

    Rows whose split is outside train/validation/test are left out (they are neither
    learned from nor evaluated); the label is checked to be 0/1 by ``check_splits``.
    Without a group column the group is null (GAUC is then skipped).
    """
    w = F.col(tr.neg_keep_rate_col).cast("double") if tr.neg_keep_rate_col in df.columns else F.lit(1.0)
    group = F.col(tr.group_col) if tr.group_col in df.columns else F.lit(None)
    label = F.col(tr.label_col).cast("double")
    return (df.where(F.col(tr.split_col).isin(*SPLITS))
            .select(F.col(tr.id_col).cast("string").alias(tr.id_col),
                    group.cast("string").alias(tr.group_col),
                    F.col(tr.date_col),
                    F.col(tr.split_col),
                    # Anything but 0/1 (0.5, "yes", null) becomes null here and check_splits refuses it.
                    F.when(label.isin(0.0, 1.0), label.cast("int")).alias(tr.label_col),
                    w.alias(tr.neg_keep_rate_col),
                    *[_missing_as_null(F.col(c).cast("double")).alias(c) for c in fs.numeric],
                    *[F.col(c).cast("string").alias(c) for c in fs.categorical]))


def matrix(pdf: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """Dense float matrix, NaN for missing: the one feature layout every scorer reads."""
    if not columns:
        return np.empty((len(pdf), 0), dtype=np.float64)
    return pdf[list(columns)].astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
