"""Calibration formula, every metric on hand-computable data, and the champion gate."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from pipelines.train import metrics as m
from pipelines.train.calibration import Calibrator, fit_calibrator, fit_isotonic, fit_platt, undo_downsampling
from pipelines.train.gate import champion_not_scored, contender, decide_promotion

Y = np.array([0, 0, 1, 1])
P = np.array([0.1, 0.4, 0.35, 0.8])


def test_undo_downsampling_by_hand_and_round_trip():
    # p = 0.5 with a tenth of negatives kept: odds 1 -> 0.1, so q = 1/11.
    assert undo_downsampling(np.array([0.5]), 0.1)[0] == pytest.approx(1 / 11)
    assert undo_downsampling(np.array([0.2, 0.7]), 1.0) == pytest.approx([0.2, 0.7])
    # Downsampling multiplies the odds by 1/w; the formula undoes exactly that.
    q, w = np.array([0.01, 0.03, 0.5]), 0.25
    p = (q / (1 - q) / w) / (1 + q / (1 - q) / w)
    assert undo_downsampling(p, w) == pytest.approx(q)


def test_undo_downsampling_on_a_spark_column_is_the_numpy_formula(spark):
    from pyspark.sql import functions as F

    p, w = [0.01, 0.2, 0.5, 0.97], 0.25
    got = [r["q"] for r in spark.createDataFrame([(x,) for x in p], "p double")
           .select(undo_downsampling(F.col("p"), w).alias("q")).collect()]
    assert got == pytest.approx(list(undo_downsampling(np.array(p), w)), rel=1e-15)


def test_calibrator_interpolates_between_knots_and_is_flat_beyond():
    cal = Calibrator(1.0, (0.1, 0.3), (0.0, 0.2))
    assert cal(np.array([0.0, 0.1, 0.2, 0.3, 0.9])) == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.2])
    assert Calibrator(0.5)(np.array([0.5])) == pytest.approx([1 / 3])


def test_isotonic_on_spark_matches_pool_adjacent_violators(spark):
    # Scores 0.1..0.4 with labels 0,1,0,1: PAV pools the middle pair to 0.5.
    df = spark.createDataFrame([(0.1, 0), (0.2, 1), (0.3, 0), (0.4, 1)], "p double, label int")
    cal = fit_isotonic(df, "p", "label", 1.0, prior_rows=0.0)
    assert cal(np.array([0.1, 0.2, 0.3, 0.4])) == pytest.approx([0.0, 0.5, 0.5, 1.0])
    # One pseudo-row at the block's mean score keeps a click-less block off 0.0.
    smoothed = fit_isotonic(df, "p", "label", 1.0, prior_rows=1.0)
    assert smoothed(np.array([0.1, 0.25, 0.4])) == pytest.approx([0.1 / 2, (1 + 0.25) / 3, (1 + 0.4) / 2])
    # With w < 1 the knots sit at corrected scores: q(0.5, w=0.5) = 1/3.
    assert fit_isotonic(df, "p", "label", 0.5).knots_x[0] == pytest.approx(0.1 / (0.1 + 0.9 / 0.5))


def test_platt_on_spark_matches_a_logistic_fit_on_the_log_odds(spark):
    # Labels drawn from sigmoid(2 * logit(q) - 1): the fitted slope and intercept are the
    # maximum-likelihood ones, which sklearn's unpenalised logistic regression finds too.
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    q = rng.uniform(0.01, 0.5, 4000)
    z = np.log(q / (1 - q))
    y = (rng.uniform(size=q.size) < 1 / (1 + np.exp(-(2 * z - 1)))).astype(int)
    df = spark.createDataFrame([(float(a), int(b)) for a, b in zip(q, y)], "p double, label int")
    cal = fit_platt(df, "p", "label", 1.0)
    ref = LogisticRegression(penalty=None, tol=1e-10, max_iter=1000).fit(z[:, None], y)
    assert cal.platt == pytest.approx((ref.coef_[0][0], ref.intercept_[0]), abs=1e-4)
    assert cal.method == "platt"
    assert cal(q) == pytest.approx(ref.predict_proba(z[:, None])[:, 1], abs=1e-5)
    # With w < 1 the fit is on the corrected score: the same labels on scores inflated by
    # downsampling at w = 0.5 give the same map of the corrected score.
    inflated = q / (q + (1 - q) * 0.5)
    df_w = spark.createDataFrame([(float(a), int(b)) for a, b in zip(inflated, y)], "p double, label int")
    assert fit_platt(df_w, "p", "label", 0.5).platt == pytest.approx(cal.platt, abs=1e-4)


def test_calibration_methods_and_an_older_pickled_calibrator(spark):
    import pickle

    df = spark.createDataFrame([(0.1, 0), (0.2, 1), (0.3, 0), (0.4, 1)], "p double, label int")
    assert fit_calibrator("none", df, "p", "label", 0.5) == Calibrator(0.5)
    assert fit_calibrator("isotonic", df, "p", "label", 1.0).method == "isotonic"
    # No click among the validation rows: no map to fit, the probabilities pass through.
    no_clicks = spark.createDataFrame([(0.1, 0), (0.2, 0), (0.3, 0)], "p double, label int")
    assert fit_calibrator("platt", no_clicks, "p", "label", 0.5) == Calibrator(0.5)
    with pytest.raises(ValueError, match="one of platt, isotonic, none"):
        fit_calibrator("sigmoid", df, "p", "label", 1.0)
    # A calibrator pickled before the Platt field existed (no 'platt' in its state) still applies its knots.
    old = Calibrator(1.0, (0.1, 0.3), (0.0, 0.2))
    state = pickle.dumps(old).replace(b"platt", b"plaXX")
    restored = pickle.loads(state)
    assert restored(np.array([0.2])) == pytest.approx([0.1]) and restored.method == "isotonic"


def test_log_loss_and_entropy_by_hand():
    expected = -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4
    assert m.log_loss(Y, P) == pytest.approx(expected)
    assert m.log_loss(Y, P) == pytest.approx(sk_log_loss(Y, P))
    assert m.entropy(0.5) == pytest.approx(math.log(2))
    assert m.normalized_entropy(Y, P) == pytest.approx(expected / math.log(2))
    assert m.normalized_entropy(Y, np.full(4, 0.5)) == pytest.approx(1.0)


def test_auc_by_hand_with_ties_and_against_sklearn():
    # Pairs (pos, neg): (0.35 vs 0.1) win, (0.35 vs 0.4) lose, 0.8 wins both: 3/4.
    assert m.auc(Y, P) == pytest.approx(0.75)
    assert m.auc(np.array([0, 1]), np.array([0.3, 0.3])) == pytest.approx(0.5)
    assert math.isnan(m.auc(np.array([1, 1]), np.array([0.1, 0.2])))
    rng = np.random.default_rng(3)
    y, p = rng.integers(0, 2, 500), np.round(rng.random(500), 2)
    assert m.auc(y, p) == pytest.approx(roc_auc_score(y, p))


def test_gauc_weights_users_by_impressions_and_skips_one_class_users():
    y = np.array([1, 0, 1, 0, 0, 0, 1, 1, 0])
    p = np.array([0.9, 0.1, 0.2, 0.8, 0.5, 0.3, 0.4, 0.4, 0.4])
    g = np.array(["a", "a", "b", "b", "b", "b", "c", "c", "c"])
    # a: AUC 1 (2 imps); b: pos 0.2 below all three negs -> 0 (4 imps); c: ties -> 0.5 (3 imps).
    assert m.gauc(y, p, g) == pytest.approx((2 * 1.0 + 4 * 0.0 + 3 * 0.5) / 9)
    assert m.gauc(np.array([1, 1, 0]), np.array([0.1, 0.2, 0.3]), np.array(["x", "x", "y"])) != m.gauc(
        np.array([1, 1, 0]), np.array([0.1, 0.2, 0.3]), np.array(["x", "x", "x"]))


def test_calibration_deciles_overall_and_ece_by_hand():
    y = np.array([0, 0, 0, 1] * 5)
    p = np.repeat([0.1, 0.2, 0.3, 0.4, 0.5], 4)
    table = m.calibration_deciles(y, p, bins=5)
    assert table["n"].tolist() == [4] * 5
    assert table["predicted"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert table["actual"].tolist() == pytest.approx([0.25] * 5)
    assert table["ratio"].tolist() == pytest.approx([0.4, 0.8, 1.2, 1.6, 2.0])
    assert m.overall_calibration(y, p) == pytest.approx(0.3 * 20 / 5)
    assert m.expected_calibration_error(y, p, bins=5) == pytest.approx((0.15 + 0.05 + 0.05 + 0.15 + 0.25) / 5)


def test_achievable_share():
    assert m.achievable_share(0.14, 0.16, 0.12) == pytest.approx(0.5)
    assert m.achievable_share(0.12, 0.16, 0.12) == pytest.approx(1.0)
    assert math.isnan(m.achievable_share(0.1, 0.12, 0.12))
    out = m.evaluate(Y, P, np.array(["a"] * 4), bayes_log_loss=0.5)
    assert out["achievable_share"] == pytest.approx((math.log(2) - m.log_loss(Y, P)) / (math.log(2) - 0.5))


def test_calibration_against_the_truth_is_free_of_the_clicks_noise():
    truth = np.array([0.01] * 50 + [0.1] * 50)
    y = np.zeros(100)
    y[[0, 50, 51, 52, 53, 54, 55, 56, 57]] = 1        # 1 click where 0.5 were due, 8 where 5 were
    p = truth * 1.02                                   # a model 2% high everywhere
    out = m.against_truth(y, p, truth)
    assert out["truth_calibration"] == pytest.approx(1.02)
    assert out["truth_worst_decile_calibration"] == pytest.approx(0.02)
    assert out["truth_label_calibration"] == pytest.approx(5.5 / 9)
    assert math.isnan(out["truth_label_worst_decile_calibration"])   # four deciles without a click
    # Rows without truth are left out of these too.
    out = m.against_truth(np.append(y, 1), np.append(p, 0.9), np.append(truth, np.nan))
    assert out["truth_calibration"] == pytest.approx(1.02) and out["truth_uncovered_rows"] == 1


@pytest.mark.parametrize("new, champion, promote, why", [
    ({"ne": 0.80, "calibration": 1.01}, None, True, "no champion yet; NE 0.80000 < 1, calibration 1.0100"),
    ({"ne": 0.80, "calibration": 1.06}, None, True, "(outside the 2% a later model must meet)"),
    ({"ne": 0.80, "calibration": 0.899}, None, False, "no champion yet, but calibration 0.8990 is not within 10%"),
    ({"ne": 1.0, "calibration": 1.0}, None, False, "does not beat a constant"),
    ({"ne": 0.80, "calibration": 1.021}, {"ne": 0.9, "calibration": 1.0}, False, "not within 2%"),
    ({"ne": 0.80, "calibration": 0.979}, {"ne": 0.9, "calibration": 1.0}, False, "not within 2%"),
    ({"ne": 0.80, "calibration": 1.02}, {"ne": 0.80, "calibration": 1.0}, True, "<= champion's"),
    ({"ne": 0.80, "calibration": 0.98}, {"ne": 0.81, "calibration": 1.0}, True, "<= champion's"),
    ({"ne": 0.8001, "calibration": 1.0}, {"ne": 0.80, "calibration": 1.0}, False, "worse than the champion's"),
    ({"ne": 0.7, "calibration": float("nan")}, None, False, "is not a number"),
])
def test_champion_gate(new, champion, promote, why):
    decided, reason = decide_promotion(new, champion, tolerance=0.02, first_tolerance=0.10)
    assert decided is promote and why in reason


def test_contender_is_the_lowest_ne_model_and_never_an_ablation():
    assert contender({"xgboost": 0.92, "xgboost_entity_only": 0.90, "lightgbm": 0.93, "lr": 0.95}) == "xgboost"
    assert contender({"xgboost": 0.92, "lightgbm": 0.91}) == "lightgbm"
    with pytest.raises(ValueError, match="no model competes"):
        contender({"xgboost_entity_only": 0.90})


def test_a_champion_that_cannot_be_scored_stays():
    promote, reason = champion_not_scored("3", RuntimeError("missing column f_x"))
    assert promote is False and reason == ("champion v3 could not be scored on these test days "
                                           "(missing column f_x); left in place")
