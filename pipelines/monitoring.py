"""Score monitoring: how a day's stored scores did against the labels that closed later.

All figures are computed in Spark, in one pass plus a small histogram, so a day of
any size is evaluated without collecting its rows to the driver.
"""
from __future__ import annotations

import math

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

EPS = 1e-15
# AUC from a histogram of the scores: exact ties count half, as they should; distinct scores that share
# a bin (closer than 1e-5) count half too, a small error unless scores bunch within bins.
AUC_BINS = 100_000


def score_quality(scored: DataFrame, p: str = "p_click", y: str = "label", deciles: int = 10) -> dict:
    """NE, calibration (predicted / observed clicks) overall and per score decile, AUC and log loss.

    In: rows with a probability ``p`` and a 0/1 label ``y``. NE is the log loss over the
    entropy of the day's own click rate (1.0 = no better than that constant); a decile
    without clicks has calibration None. Empty input or a day without clicks (or
    without non-clicks) gives None for the figures that need both.
    """
    q = F.least(F.greatest(F.col(p).cast("double"), F.lit(EPS)), F.lit(1 - EPS))
    label = F.col(y).cast("double")
    totals = scored.agg(F.count(F.lit(1)).alias("n"), F.sum(label).alias("clicks"), F.sum(q).alias("predicted"),
                        F.sum(-(label * F.log(q) + (1 - label) * F.log(1 - q))).alias("ll")).first()
    n, clicks = totals["n"], totals["clicks"] or 0.0
    out = {"rows": n, "clicks": int(clicks), "predicted_clicks": round(totals["predicted"] or 0.0, 3),
           "log_loss": None, "ne": None, "calibration": None, "auc": None, "deciles": []}
    if not n:
        return out
    ctr = clicks / n
    out["log_loss"] = totals["ll"] / n
    if 0 < ctr < 1:
        out["ne"] = out["log_loss"] / -(ctr * math.log(ctr) + (1 - ctr) * math.log(1 - ctr))
    if clicks:
        out["calibration"] = totals["predicted"] / clicks
    # Deciles of the score: cut points from approximate quantiles (one pass), then one aggregation.
    cuts = sorted(set(scored.approxQuantile(p, [i / deciles for i in range(1, deciles)], 1e-3)))
    bucket = F.lit(0)
    for c in cuts:
        bucket = bucket + (F.col(p) > F.lit(c)).cast("int")
    rows = (scored.groupBy(bucket.alias("decile"))
            .agg(F.count(F.lit(1)).alias("n"), F.sum(label).alias("clicks"), F.sum(q).alias("predicted"))
            .orderBy("decile").collect())
    out["deciles"] = [{"decile": r["decile"] + 1, "rows": r["n"], "clicks": int(r["clicks"]),
                       "mean_p": r["predicted"] / r["n"],
                       "calibration": r["predicted"] / r["clicks"] if r["clicks"] else None} for r in rows]
    # AUC from a histogram: every positive against the negatives in lower bins, half those in its own.
    hist = (scored.groupBy(F.floor(q * AUC_BINS).alias("bin"))
            .agg(F.sum(label).alias("pos"), F.sum(1 - label).alias("neg")).orderBy("bin").collect())
    pos, neg = sum(r["pos"] for r in hist), sum(r["neg"] for r in hist)
    if pos and neg:
        below, area = 0.0, 0.0
        for r in hist:
            area += r["pos"] * (below + 0.5 * r["neg"])
            below += r["neg"]
        out["auc"] = area / (pos * neg)
    return out


def drift_warnings(quality: dict, reference_ne: float | None, ne_tolerance: float,
                   calibration_tolerance: float) -> list[str]:
    """The run report's warnings for a scored day: NE beyond the champion's test NE, calibration beyond 1."""
    warnings = []
    ne, cal = quality.get("ne"), quality.get("calibration")
    if ne is not None and reference_ne is not None and ne > reference_ne + ne_tolerance:
        warnings.append(f"NE {ne:.4f} is worse than the champion's test NE {reference_ne:.4f} by more than "
                        f"score.ne_tolerance {ne_tolerance}")
    if cal is not None and abs(cal - 1.0) > calibration_tolerance:
        warnings.append(f"calibration {cal:.4f} (predicted / observed clicks) is off 1 by more than "
                        f"score.calibration_tolerance {calibration_tolerance}")
    return warnings
