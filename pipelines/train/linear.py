"""Logistic regressions with Spark ML: the raw-feature baseline, and GBDT+LR on tree leaves.

Both design matrices are [numeric (null -> train mean), is-null indicators,
one-hot codes]; the fitted coefficients are copied into ``OneHotLinear`` so
the logged model scores with numpy alone (tests check it equals Spark's).
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark.ml.classification import LogisticRegression, LogisticRegressionModel
from pyspark.ml.feature import OneHotEncoder, VectorAssembler
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType

from pipelines.config import TrainConfig
from pipelines.train.features import FeatureSet
from pipelines.train.scorers import GbdtLrScorer, LrScorer, OneHotLinear, XgbScorer

FEATURES = "_lr_features"
MARGIN = "gbdt_margin"


def _fit(train: DataFrame, label: str, numeric: tuple[str, ...], categorical: tuple[str, ...],
         tr: TrainConfig, standardization: bool = True) -> tuple[OneHotLinear, LogisticRegressionModel, DataFrame]:
    """Fit LR on train rows; numeric nulls filled with the train mean and flagged.

    ``standardization`` scales each input by its spread before the L2 penalty: right for
    numeric inputs on different scales, wrong for one-hot leaves alone, where it divides a
    rare leaf's penalty by its small spread and lets a few rows set its weight.

    Returns the numpy copy, Spark's model and its design frame (the last two for tests).
    """
    means = train.agg(*[F.avg(c).alias(c) for c in numeric]).first() if numeric else {}
    fill = tuple(float(means[c]) if means[c] is not None else 0.0 for c in numeric)
    filled = [F.coalesce(F.col(c), F.lit(v)).alias(f"_n{i}") for i, (c, v) in enumerate(zip(numeric, fill))]
    nulls = [F.col(c).isNull().cast("double").alias(f"_z{i}") for i, c in enumerate(numeric)]
    frame = train.select(F.col(label).cast("double").alias("label"), *filled, *nulls,
                         *[F.col(c).alias(f"_c{j}") for j, c in enumerate(categorical)])
    onehot_cols = [f"_o{j}" for j in range(len(categorical))]
    if categorical:
        encoder = OneHotEncoder(inputCols=[f"_c{j}" for j in range(len(categorical))], outputCols=onehot_cols,
                                dropLast=False, handleInvalid="keep").fit(frame)
        sizes = list(encoder.categorySizes)
        frame = encoder.transform(frame)
    else:
        sizes = []
    inputs = [f"_n{i}" for i in range(len(numeric))] + [f"_z{i}" for i in range(len(numeric))] + onehot_cols
    frame = VectorAssembler(inputCols=inputs, outputCol=FEATURES).transform(frame)
    model: LogisticRegressionModel = LogisticRegression(
        featuresCol=FEATURES, labelCol="label", regParam=tr.lr_reg_param, elasticNetParam=0.0,
        maxIter=tr.lr_max_iter, standardization=standardization).fit(frame)
    coef = model.coefficients.toArray()
    k = len(numeric)
    tables, at = [], 2 * k
    for size in sizes:
        tables.append(tuple(float(v) for v in coef[at: at + size + 1]))   # + 1: the "keep" slot
        at += size + 1
    linear = OneHotLinear(numeric, fill, tuple(float(v) for v in coef[:k]),
                          tuple(float(v) for v in coef[k:2 * k]), tuple(tables), float(model.intercept))
    return linear, model, frame


def train_lr(train: DataFrame, tr: TrainConfig, fs: FeatureSet) -> LrScorer:
    """Plain logistic regression on the raw features (the baseline of the results table)."""
    return LrScorer(fs, _fit(train, tr.label_col, fs.numeric, fs.categorical, tr)[0])


def with_leaves(df: DataFrame, trees: XgbScorer, n_trees: int, keep: list[str], margin: bool = False) -> DataFrame:
    """``keep`` plus leaf_0 .. leaf_{n-1}: the leaf each row falls in, per tree (executors, via the booster); with
    ``margin``, also ``gbdt_margin``: the whole ensemble's log-odds."""
    cols = list(dict.fromkeys(keep + list(trees.features.columns)))
    leaf_cols = [f"leaf_{t}" for t in range(n_trees)]

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            leaves = trees.leaves(pdf, n_trees) if len(pdf) else np.empty((0, n_trees), dtype=np.int64)
            out = pdf[keep].reset_index(drop=True)
            if margin:
                out[MARGIN] = trees.margin(pdf) if len(pdf) else np.empty(0)
            yield pd.concat([out, pd.DataFrame(leaves.astype(np.int32), columns=leaf_cols)], axis=1)

    schema = df.select(*keep).schema
    if margin:
        schema = schema.add(MARGIN, DoubleType())
    for c in leaf_cols:
        schema = schema.add(c, IntegerType())
    return df.select(*cols).mapInPandas(run, schema)


def train_gbdt_lr(train: DataFrame, trees: XgbScorer, tr: TrainConfig) -> GbdtLrScorer:
    """LR over the one-hot leaves of the first ``gbdt_lr_trees`` trees (fewer if early stopping kept fewer) and the
    whole ensemble's log-odds.

    He et al. (2014) feed the leaves alone; then the LR must relearn from one-hot columns, under one L2 penalty,
    what the boosting had fitted, and on bench-quality it came out worse than the trees it was built on. With the
    ensemble's margin as an input, the LR starts from the trees' own prediction (a weight near 1) and the leaves
    only correct it where the train rows say so: no worse than the trees unless the corrections overfit.
    """
    n_trees = min(tr.gbdt_lr_trees, trees.booster().num_boosted_rounds())
    leaves = with_leaves(train, trees, n_trees, [tr.label_col], margin=True)
    linear = _fit(leaves, tr.label_col, (MARGIN,), tuple(f"leaf_{t}" for t in range(n_trees)), tr,
                  standardization=False)[0]
    return GbdtLrScorer(trees, n_trees, linear, with_margin=True)
