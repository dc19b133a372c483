"""CTR metrics on held-out days: pure numpy/pandas functions on (label, p, group).

The job brings a deliberately bounded set of test rows to the driver (whole
users, see ``sample_users`` in jobs/train.py); everything here is exact on it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

EPS = 1e-15


def _clip(p: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0 - EPS)


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    y, p = np.asarray(y, dtype=np.float64), _clip(p)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def entropy(ctr: float) -> float:
    """Log loss of always predicting ``ctr`` on data whose CTR is ``ctr``."""
    c = float(np.clip(ctr, EPS, 1.0 - EPS))
    return float(-(c * np.log(c) + (1.0 - c) * np.log1p(-c)))


def normalized_entropy(y: np.ndarray, p: np.ndarray) -> float:
    """Log loss over the entropy of the empirical CTR (He et al., 2014); below 1 beats a constant."""
    return log_loss(y, p) / entropy(float(np.mean(y)))


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under ROC by the rank-sum (Mann-Whitney) formula, ties counted half; nan for one class."""
    y = np.asarray(y)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(np.asarray(p, dtype=np.float64)).rank(method="average").to_numpy()
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def gauc(y: np.ndarray, p: np.ndarray, group: np.ndarray) -> float:
    """Per-group AUC averaged with impression weights, over groups holding both classes."""
    frame = pd.DataFrame({"y": np.asarray(y, dtype=np.int64), "p": np.asarray(p, dtype=np.float64),
                          "g": np.asarray(group)})
    frame["r"] = frame.groupby("g")["p"].rank(method="average")
    per = frame.groupby("g").agg(n=("y", "size"), pos=("y", "sum"),
                                 rank_pos=("r", lambda r: r[frame.loc[r.index, "y"] == 1].sum()))
    per["neg"] = per["n"] - per["pos"]
    per = per[(per["pos"] > 0) & (per["neg"] > 0)]
    if per.empty:
        return float("nan")
    per_auc = (per["rank_pos"] - per["pos"] * (per["pos"] + 1) / 2.0) / (per["pos"] * per["neg"])
    return float(np.average(per_auc, weights=per["n"]))


def calibration_deciles(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Equal-count bins of predicted CTR: decile, n, mean predicted, actual CTR, predicted/actual.

    Rows are ordered by prediction (ties broken by position, so bins stay equal-sized).
    """
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    decile = np.empty(len(p), dtype=np.int64)
    decile[order] = np.arange(len(p)) * bins // max(len(p), 1)
    frame = pd.DataFrame({"decile": decile + 1, "y": y, "p": p})
    out = frame.groupby("decile").agg(n=("y", "size"), predicted=("p", "mean"), actual=("y", "mean")).reset_index()
    out["ratio"] = np.where(out["actual"] > 0, out["predicted"] / out["actual"].where(out["actual"] > 0, 1.0), np.nan)
    return out


def overall_calibration(y: np.ndarray, p: np.ndarray) -> float:
    """Sum of predicted clicks over actual clicks; 1.0 is perfectly calibrated on average."""
    clicks = float(np.sum(y))
    return float(np.sum(p)) / clicks if clicks > 0 else float("nan")


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Row-weighted mean |predicted - actual| over the equal-count bins of ``calibration_deciles``."""
    table = calibration_deciles(y, p, bins)
    return float(np.average(np.abs(table["predicted"] - table["actual"]), weights=table["n"]))


def achievable_share(model_log_loss: float, baseline_log_loss: float, bayes_log_loss: float) -> float:
    """Share of the reduction from a constant CTR to the Bayes limit that a model captures."""
    gap = baseline_log_loss - bayes_log_loss
    return float((baseline_log_loss - model_log_loss) / gap) if gap > 0 else float("nan")


def worst_decile_calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Largest |predicted / actual - 1| over the equal-count deciles (nan if a decile has no click)."""
    ratios = calibration_deciles(y, p, bins)["ratio"].to_numpy()
    return float(np.max(np.abs(ratios - 1.0))) if len(ratios) and not np.isnan(ratios).any() else float("nan")


def against_truth(y: np.ndarray, p: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Bayes log loss and the share of achievable reduction, on the test rows whose true probability is known.

    Rows without truth (null / NaN) are left out of all three log losses - model,
    constant and Bayes - and counted in ``truth_uncovered_rows``, never silently.
    """
    truth = np.asarray(truth, dtype=np.float64)
    covered = ~np.isnan(truth)
    out = {"truth_covered_rows": float(covered.sum()), "truth_uncovered_rows": float((~covered).sum())}
    if not covered.any():
        return out
    y, p, truth = np.asarray(y)[covered], np.asarray(p)[covered], truth[covered]
    base, model, bayes = entropy(float(np.mean(y))), log_loss(y, p), log_loss(y, truth)
    out.update({"bayes_log_loss": bayes, "bayes_ne": bayes / base, "covered_ne": model / base,
                "achievable_share": achievable_share(model, base, bayes),
                # Calibration against the true probabilities: free of the clicks' sampling noise, which
                # on a day of 100k impressions moves even the truth's own label calibration by a few
                # percent overall and tens of percent in the lowest deciles (truth_label_* below).
                "truth_calibration": overall_calibration(truth, p),
                "truth_worst_decile_calibration": worst_decile_calibration(truth, p),
                "truth_label_calibration": overall_calibration(y, truth),
                "truth_label_worst_decile_calibration": worst_decile_calibration(y, truth)})
    return out


def evaluate(y: np.ndarray, p: np.ndarray, group: np.ndarray, bayes_log_loss: float | None = None) -> dict[str, float]:
    """Every scalar metric of the results table, on one set of test rows."""
    ll = log_loss(y, p)
    base = entropy(float(np.mean(y)))
    out = {"auc": auc(y, p), "log_loss": ll, "ne": ll / base, "gauc": gauc(y, p, group),
           "calibration": overall_calibration(y, p), "ece": expected_calibration_error(y, p),
           "worst_decile_calibration": worst_decile_calibration(y, p),
           "baseline_log_loss": base, "test_rows": float(len(y)), "test_ctr": float(np.mean(y))}
    if bayes_log_loss is not None:
        out["bayes_log_loss"] = bayes_log_loss
        out["achievable_share"] = achievable_share(ll, base, bayes_log_loss)
    return out
