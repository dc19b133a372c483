"""A synthetic training set with the gold contract's columns and a known logistic truth.

For tests and the training benchmark: ``p_click`` is the true click
probability, so the Bayes log loss is known. Cross-entity features carry
signal per-entity ones cannot (a user x category affinity), so the ablation
has something to find.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

TRUTH_LOGIT = {"intercept": -3.6, "user": 0.8, "ad": 0.6, "position": -0.35, "affinity": 1.1, "device": 0.3}


def synthetic_training_set(rows: int, days: int = 7, seed: int = 0, neg_keep_rate: float = 1.0,
                           start: date = date(2025, 3, 1), users: int | None = None) -> pd.DataFrame:
    """``rows`` impressions over ``days`` days: the last day is test, the one before validation, the rest train.

    With ``neg_keep_rate`` < 1 the train rows' negatives are downsampled to that share
    (so fewer rows come back) and ``neg_keep_rate`` records it.
    """
    rng = np.random.default_rng(seed)
    n_users, n_ads, n_cats = users or max(20, rows // 40), max(10, rows // 400), 8
    user_eff, ad_eff = rng.normal(0, 1, n_users), rng.normal(0, 1, n_ads)
    affinity = rng.normal(0, 1, (n_users, n_cats))
    ad_cat = rng.integers(0, n_cats, n_ads)
    u, a = rng.integers(0, n_users, rows), rng.integers(0, n_ads, rows)
    position, device = rng.integers(1, 6, rows), rng.integers(0, 4, rows)
    aff = affinity[u, ad_cat[a]]
    t = TRUTH_LOGIT
    logit = (t["intercept"] + t["user"] * user_eff[u] + t["ad"] * ad_eff[a] + t["position"] * (position - 1)
             + t["affinity"] * aff + t["device"] * (device == 1))
    p = 1.0 / (1.0 + np.exp(-logit))
    label = (rng.random(rows) < p).astype(np.int32)
    day = rng.integers(0, days, rows)
    split = np.where(day == days - 1, "test", np.where(day == days - 2, "validation", "train"))

    def noisy(x: np.ndarray, scale: float, null_share: float) -> np.ndarray:
        out = x + rng.normal(0, scale, rows)
        out[rng.random(rows) < null_share] = np.nan   # no history: missing, not zero
        return out

    ts0 = datetime.combine(start, datetime.min.time())
    frame = pd.DataFrame({
        "impression_id": [f"i{seed}_{i}" for i in range(rows)],
        "event_date": [start + timedelta(days=int(d)) for d in day],
        "event_ts": [ts0 + timedelta(days=int(d), seconds=int(s)) for d, s in zip(day, rng.integers(0, 86400, rows))],
        "user_id": [f"u{x}" for x in u], "ad_id": [f"a{x}" for x in a],
        "label": label, "converted": (label & (rng.random(rows) < 0.05)).astype(np.int32),
        "split": split, "neg_keep_rate": 1.0,
        "f_user_ctr_7d": noisy(user_eff[u], 0.3, 0.1), "f_ad_imps_1d": noisy(ad_eff[a], 0.3, 0.05),
        "f_position": position.astype(np.float64),
        "f_user_x_category_ctr_7d": noisy(aff, 0.3, 0.2),
        "f_user_x_ad_imps_28d": np.floor(rng.exponential(1.0, rows)),   # zero is common and a value
        "c_device": (device + 1).astype(np.int32), "c_category": (ad_cat[a] + 1).astype(np.int32),
        "p_click": p,
    })
    if neg_keep_rate < 1.0:
        drop = (frame["split"] == "train") & (frame["label"] == 0) & (rng.random(rows) >= neg_keep_rate)
        frame = frame[~drop].reset_index(drop=True)
        frame.loc[frame["split"] == "train", "neg_keep_rate"] = neg_keep_rate
    return frame
