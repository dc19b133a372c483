"""The nightly watch, its pure parts: metric rows for the history, anomaly statistics against that history, and
feature / score drift (PSI, Jensen-Shannon).

A metric is named ``<source>.<name>`` (``run_report.click_rate``, ``bronze_impressions.null_share_country``,
``publisher_volume.<publisher_id>``); the history table holds one row per night, stage and metric. The anomaly
suite (expectations/anomalies.json) checks three statistics of each metric against its trailing history,
as columns of a one-row frame ``<metric>|change``, ``<metric>|delta`` and ``<metric>|z`` (``anomaly_frame``):

- change: today / median of the baseline - 1 (None when that median is 0);
- delta: today - median of the baseline (for shares, where a relative change of a near-zero share says little);
- z: (today - mean) / standard deviation of the baseline (None when it does not vary).

The baseline is the same weekday's values when there are at least ``seasonal_min`` of them in the history,
else the trailing ``window_days``. With fewer than ``min_history`` values every statistic is None: the check
passes, and the metric is named in the report as having too little history. A trailing baseline gives a z only
from ``z_min_history`` values on (a week by default): five weekdays' spread misses the weekly pattern, and the
first Saturday of a young warehouse would be ten deviations "off" (measured on the drills' generated logs).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from statistics import mean, median, pstdev
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

STATS = ("change", "delta", "z")


def is_number(value: Any) -> bool:
    """A finite int, float or Decimal (what a SQL aggregate may return), not a bool."""
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool) and math.isfinite(value)


def metric_rows(day: date, stage: str, metrics: Mapping[str, Mapping[str, Any]]) -> list[tuple]:
    """(date, stage, source, metric, value) rows of the finite numbers in ``{source: {metric: value}}``."""
    return [(day, stage, source, name, float(value)) for source, values in sorted(metrics.items())
            for name, value in sorted(values.items()) if is_number(value)]


def report_rates(report: Mapping[str, Any]) -> dict[str, float | None]:
    """The rates of a night's run report that a volume alone hides: CTR, viewable, bot, duplicate and malformed
    shares, and per quarantine reason its share of the stream's lines."""
    def share(part: str | int, whole: str) -> float | None:
        n = report.get(whole) or 0
        return (report.get(part, 0) if isinstance(part, str) else part) / n if n else None

    rates = {"ctr": share("impressions_clicked", "impressions_valid"),
             "viewable_share": share("impressions_viewable", "impressions_measured"),
             "measured_share": share("impressions_measured", "impressions_valid"),
             "bot_share": share(report.get("impressions_bot_declared", 0)
                                + report.get("impressions_bot_behavioural", 0), "impressions_raw"),
             "duplicate_share": share("impressions_duplicate", "impressions_raw"),
             "impressions_malformed_share": share("impressions_malformed", "impressions_raw"),
             "clicks_malformed_share": share("clicks_malformed", "clicks_raw"),
             "clicks_orphan_share": share("clicks_orphan", "clicks_raw"),
             "clicks_attributed_share": share("clicks_attributed", "clicks_raw")}
    lines = (report.get("ingest") or {}).get("lines", {})
    for stream, reasons in ((report.get("ingest") or {}).get("quarantined_by_reason") or {}).items():
        for reason, n in reasons.items():
            if lines.get(stream):
                rates[f"quarantine_share_{stream}_{reason}"] = n / lines[stream]
    return rates


def baseline(history: Sequence[tuple[date, float]], day: date, window_days: int, seasonal_min: int) -> \
        tuple[list[float], bool]:
    """The values today is judged against, and whether they are the same weekday's (seasonal)."""
    same_weekday = [v for d, v in history if d < day and (day - d).days % 7 == 0]
    if len(same_weekday) >= seasonal_min:
        return same_weekday, True
    return [v for d, v in history if day - timedelta(days=window_days) <= d < day], False


def stats(today: float | None, values: Sequence[float], min_history: int,
          z_min_history: int | None = None) -> dict[str, float | None]:
    """change, delta and z of ``today`` against ``values`` (see the module docstring); all None with fewer than
    ``min_history`` values, z also with fewer than ``z_min_history`` (default: min_history)."""
    out: dict[str, float | None] = dict.fromkeys(STATS)
    if today is None or len(values) < min_history:
        return out
    mid, avg, spread = median(values), mean(values), pstdev(values)
    out["change"] = today / mid - 1 if mid else None
    out["delta"] = today - mid
    if len(values) >= (z_min_history or min_history):
        out["z"] = (today - avg) / spread if spread > 1e-12 * max(1.0, abs(avg)) else None
    return out


def anomaly_frame(today: Mapping[str, float | None], history: Mapping[str, Sequence[tuple[date, float]]],
                  day: date, window_days: int, min_history: int, seasonal_min: int,
                  zero_if_missing: Iterable[str] = (), z_min_history: int | None = None) -> \
        tuple[dict[str, float | None], dict[str, dict]]:
    """(the one-row frame of ``<metric>|<stat>`` columns, per metric its baseline figures for the report).

    ``history``: metric -> (date, value) of past nights. A metric of a ``zero_if_missing`` source (entity
    volumes, which only the top entities record) that the newest history night holds but today lacks is 0 today:
    a publisher whose traffic stopped is the anomaly, not a missing figure.
    """
    today = dict(today)
    prefixes = tuple(f"{s}." for s in zero_if_missing)
    newest = max((d for series in history.values() for d, _ in series if d < day), default=None)
    for metric, series in history.items():
        if metric.startswith(prefixes) and metric not in today and any(d == newest for d, _ in series):
            today[metric] = 0.0
    row: dict[str, float | None] = {}
    info: dict[str, dict] = {}
    for metric, value in sorted(today.items()):
        values, seasonal = baseline(history.get(metric, ()), day, window_days, seasonal_min)
        needed = seasonal_min if seasonal else min_history
        figures = stats(value, values, needed, None if seasonal else z_min_history)
        row.update({f"{metric}|{k}": v for k, v in figures.items()})
        info[metric] = {"value": value, "history": len(values), "seasonal": seasonal, "judged": len(values) >= needed,
                        "median": median(values) if values else None, **figures}
    return row, info


def entity_volumes(valid: DataFrame, ad_categories: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(publisher_id, n) and (ad_category, n) of a day's valid impressions.

    In: valid impressions (publisher_id, ad_id); ad_categories (ad_id, category), one row per ad. An ad without
    a category counts under ``unknown``. The impressions are aggregated by ad before the join, so only one row per
    ad meets the dimension.
    """
    by_ad = valid.groupBy("publisher_id", "ad_id").agg(F.count(F.lit(1)).alias("n"))
    publishers = by_ad.groupBy("publisher_id").agg(F.sum("n").alias("n"))
    categories = (by_ad.groupBy("ad_id").agg(F.sum("n").alias("n"))
                  .join(ad_categories.select("ad_id", "category"), on="ad_id", how="left")
                  .groupBy(F.coalesce(F.col("category"), F.lit("unknown")).alias("ad_category"))
                  .agg(F.sum("n").alias("n")))
    return publishers, categories


def top_volumes(counts: Iterable[tuple[str, int]], top: int, also: Iterable[str] = ()) -> dict[str, int]:
    """The ``top`` largest volumes, plus those named in ``also`` (last night's top, so one that fell is kept)."""
    ranked = sorted(counts, key=lambda kv: (-kv[1], str(kv[0])))
    keep = {str(k) for k, _ in ranked[:top]} | set(also)
    return {str(k): int(n) for k, n in ranked if str(k) in keep}


# -- drift -------------------------------------------------------------------------------------------------

def hash_sample(rows: int, total: int, key: str = "impression_id") -> Column:
    """True for about ``rows`` of ``total`` rows, chosen by a hash of ``key``: the same rows on a re-run."""
    if total <= rows:
        return F.lit(True)
    return F.pmod(F.xxhash64(key), F.lit(1_000_000)) < F.lit(int(rows / total * 1_000_000))

def proportions(counts: Sequence[float], floor: float = 1e-4) -> list[float]:
    """Counts as proportions, each at least ``floor`` (so an empty bin does not make PSI infinite)."""
    total = float(sum(counts))
    if total <= 0:
        return [1.0 / len(counts)] * len(counts) if counts else []
    raw = [max(c / total, floor) for c in counts]
    norm = sum(raw)
    return [p / norm for p in raw]


def psi(reference: Sequence[float], current: Sequence[float]) -> float:
    """Population stability index of two binnings of the same edges: sum((c - r) * ln(c / r))."""
    r, c = proportions(reference), proportions(current)
    return float(sum((ci - ri) * math.log(ci / ri) for ri, ci in zip(r, c)))


def jensen_shannon(reference: Sequence[float], current: Sequence[float]) -> float:
    """Jensen-Shannon divergence (log base 2, so between 0 and 1) of two count vectors over the same categories."""
    r, c = proportions(reference, 0.0), proportions(current, 0.0)

    def kl(p: Sequence[float], q: Sequence[float]) -> float:
        return sum(pi * math.log2(pi / qi) for pi, qi in zip(p, q) if pi > 0)

    m = [(a + b) / 2 for a, b in zip(r, c)]
    return float(max(0.0, (kl(r, m) + kl(c, m)) / 2))


def numeric_profile(values, bins: int) -> tuple[list[float], list[int]]:
    """(inner edges from the quantiles, counts per bin) of a numeric sample (numpy-like, NaN = missing)."""
    import numpy as np

    v = np.asarray(values, dtype="float64")
    present = v[~np.isnan(v)]
    # quantiles that are values of the sample (inverted CDF), so integer and point-mass features bin exactly
    probs = [i / bins for i in range(1, bins)]
    edges = quantile_edges(np.quantile(present, probs, method="inverted_cdf").tolist()) if present.size else []
    return edges, numeric_counts(v, edges)


QUANTILE_LEVELS = 100   # midpoints (k + 0.5) / 100 of the quantile function


def quantile_profile(values) -> tuple[list[float], float]:
    """(the present values' quantiles at QUANTILE_LEVELS midpoints, their standard deviation); ([], 0) if none."""
    import numpy as np

    v = np.asarray(values, dtype="float64")
    present = v[~np.isnan(v)]
    if not present.size:
        return [], 0.0
    levels = [(k + 0.5) / QUANTILE_LEVELS for k in range(QUANTILE_LEVELS)]
    return np.quantile(present, levels).tolist(), float(present.std())


def shift(reference: Sequence[float], current: Sequence[float], scale: float) -> float | None:
    """Wasserstein-1 distance of two samples from their quantiles (the mean gap between the quantile functions),
    over the reference's standard deviation: how far the values moved, in reference sds (Evidently's normed
    Wasserstein). None when a side has no values; a constant reference scales by 1."""
    if not reference or not current:
        return None
    gap = sum(abs(a - b) for a, b in zip(reference, current)) / len(reference)
    return gap / scale if scale > 1e-12 else gap


def numeric_level(psi_value: float, moved: float | None, missing_moved: float, warn: float, flag: float,
                  min_shift: float) -> str:
    """The level of a numeric feature: by its PSI, but "ok" when neither its values (``moved``, in reference sds)
    nor its missing share (``missing_moved``, share points) moved by ``min_shift``: a point mass a hair across a
    bin edge gives a large PSI and is not drift."""
    if (moved is None or moved < min_shift) and missing_moved < min_shift:
        return "ok"
    return drift_level(psi_value, warn, flag)


def numeric_counts(values, edges: Sequence[float]) -> list[int]:
    """Counts per bin of ``bin_index`` (0: missing, then 1 + the number of edges below the value), vectorised."""
    import numpy as np

    v = np.asarray(values, dtype="float64")
    missing = np.isnan(v)
    index = 1 + np.searchsorted(np.asarray(edges, dtype="float64"), v[~missing], side="left")
    counts = np.bincount(index, minlength=len(edges) + 2)
    counts[0] = int(missing.sum())
    return [int(c) for c in counts]


def category_profile(values, top: int) -> tuple[list[str], list[int]]:
    """(the ``top`` most frequent values, counts per bin: missing, each value, every other value)."""
    seen: dict[str, int] = {}
    for v in values:
        if v is not None and v == v:
            seen[str(v)] = seen.get(str(v), 0) + 1
    ranked = [k for k, _ in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    return ranked, category_counts(values, ranked)


def category_counts(values, categories: Sequence[str]) -> list[int]:
    """Counts per bin: missing, each of ``categories`` in order, then every other value."""
    position = {c: i + 1 for i, c in enumerate(categories)}
    counts = [0] * (len(categories) + 2)
    for v in values:
        counts[0 if v is None or v != v else position.get(str(v), len(categories) + 1)] += 1
    return counts


def quantile_edges(quantiles: Sequence[float | None]) -> list[float]:
    """Inner bin edges midway between the distinct quantile values, so each bin is centred on one of them.

    A value many rows share (a count of 0, the prior mean every key without history gets) then sits inside its
    bin, not on an edge: an edge at that very value would send the whole mass into the next bin when the value
    moves a hair (the prior is re-fitted every night) and PSI would read that as drift. Integer features get one
    bin per value among the quantiles. A constant column has no edge.
    """
    values = sorted({float(q) for q in quantiles if is_number(q)})
    return [(a + b) / 2 for a, b in zip(values, values[1:])]


def bin_index(value: float | None, edges: Sequence[float]) -> int:
    """The bin of ``value``: 0 for missing, then 1 + the number of edges it exceeds (one value; numeric_counts
    bins a whole sample the same way, vectorised)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 0
    return 1 + sum(value > e for e in edges)


def drift_level(value: float | None, warn: float, flag: float) -> str:
    if value is None:
        return "n/a"
    return "flag" if value > flag else "warn" if value > warn else "ok"
