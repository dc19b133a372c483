"""Score monitoring's figures, computed in Spark, against the textbook definitions."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from pipelines.monitoring import drift_warnings, score_quality


def test_score_quality_matches_log_loss_auc_and_calibration_by_decile(spark):
    rng = np.random.default_rng(5)
    p = rng.uniform(0.001, 0.3, 4000).round(4)   # rounded: ties, as real scores have
    y = (rng.uniform(size=p.size) < p * 1.2).astype(int)
    frame = spark.createDataFrame([(float(a), int(b)) for a, b in zip(p, y)], "p_click double, label int")
    got = score_quality(frame)
    ctr = y.mean()
    assert got["rows"] == 4000 and got["clicks"] == y.sum()
    assert got["log_loss"] == pytest.approx(log_loss(y, p), rel=1e-9)
    assert got["ne"] == pytest.approx(log_loss(y, p) / -(ctr * np.log(ctr) + (1 - ctr) * np.log(1 - ctr)), rel=1e-9)
    assert got["calibration"] == pytest.approx(p.sum() / y.sum(), rel=1e-9)
    assert got["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-4)
    deciles = got["deciles"]
    assert [d["decile"] for d in deciles] == list(range(1, 11)) and sum(d["rows"] for d in deciles) == 4000
    assert all(350 <= d["rows"] <= 450 for d in deciles)           # approximate cut points, ties at the edges
    assert deciles[0]["mean_p"] < deciles[-1]["mean_p"]
    assert sum(d["clicks"] for d in deciles) == y.sum()
    # the model under-predicts by 1/1.2 everywhere: every decile with clicks says so
    assert np.mean([d["calibration"] for d in deciles if d["calibration"]]) == pytest.approx(1 / 1.2, abs=0.15)


def test_score_quality_of_an_empty_or_click_free_day_has_no_ratio_figures(spark):
    empty = score_quality(spark.createDataFrame([], "p_click double, label int"))
    assert empty == {"rows": 0, "clicks": 0, "predicted_clicks": 0.0, "log_loss": None, "ne": None,
                     "calibration": None, "auc": None, "deciles": []}
    none = score_quality(spark.createDataFrame([(0.1, 0), (0.2, 0)], "p_click double, label int"))
    assert none["ne"] is None and none["calibration"] is None and none["auc"] is None
    assert none["log_loss"] == pytest.approx(-(np.log(0.9) + np.log(0.8)) / 2)


def test_drift_warnings_name_the_figure_and_the_tolerance():
    assert drift_warnings({"ne": 0.92, "calibration": 1.04}, 0.90, 0.03, 0.05) == []
    assert drift_warnings({"ne": 0.94, "calibration": 0.93}, 0.90, 0.03, 0.05) == [
        "NE 0.9400 is worse than the champion's test NE 0.9000 by more than score.ne_tolerance 0.03",
        "calibration 0.9300 (predicted / observed clicks) is off 1 by more than score.calibration_tolerance 0.05"]
    assert drift_warnings({"ne": None, "calibration": None}, None, 0.03, 0.05) == []
