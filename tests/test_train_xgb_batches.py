"""xgboost.spark on partitions whose rows arrive grouped by split, as the gold training set's do."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from jobs.runtime.config import load_config
from pipelines.train.features import FeatureSet
from pipelines.train.xgb import VALID_FLAG, balanced, train_xgb
from tests.conftest import TINY

BATCH = "spark.sql.execution.arrow.maxRecordsPerBatch"


def test_xgboost_trains_when_arrow_batches_hold_one_split_only(spark):
    # Input partitions of train rows only and of validation rows only (a training set partitioned by
    # event_date is read so): round-robin hands each worker a block from each, and batches of 50 rows
    # hold one split only. xgboost.spark's list-of-columns input failed on those (KeyError 'values').
    rng = np.random.default_rng(5)
    n = 600
    pdf = pd.DataFrame({"f_a": rng.normal(size=n), "f_b": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
                        "c_x": rng.integers(0, 3, n).astype("int32")})
    pdf["label"] = (pdf["f_a"] + 0.5 * rng.normal(size=n) > 0.8).astype("int32")
    pdf[VALID_FLAG] = np.arange(n) >= 400
    # checkpointed: two local frames would be folded into one partition, and the rows mixed
    parts = [spark.createDataFrame(pdf[pdf[VALID_FLAG] == v]).localCheckpoint() for v in (False, True)]
    data = balanced(parts[0].unionByName(parts[1]), 2)
    tr = replace(load_config("local", [TINY]).train, num_workers=2, num_rounds=20, early_stopping_rounds=3,
                 max_depth=2)
    previous = spark.conf.get(BATCH)
    spark.conf.set(BATCH, "50")
    try:
        scorer, curves = train_xgb(data, tr, FeatureSet(("f_a", "f_b"), ("c_x",)))
    finally:
        spark.conf.set(BATCH, previous)
    assert len(curves["validation_logloss"]) >= 3
    assert scorer.booster().feature_names == ["f_a", "f_b", "c_x"]
    p = scorer.predict_raw(pdf)
    positives, negatives = p[pdf["label"] == 1], p[pdf["label"] == 0]
    assert (positives[:, None] > negatives[None, :]).mean() > 0.8  # AUC: it learnt f_a, NaNs and all
