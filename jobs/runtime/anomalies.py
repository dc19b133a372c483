"""Metric history and the anomaly checks on it, for the quality gates (jobs/runtime/quality.py).

Every gate of the ingest, silver and gold stages that passes appends its metrics (the numbers its suites computed
in the passes the stage already made, the run report's rates, the top entities' volumes) to the Delta table
``<warehouse>/monitoring/metric_history`` (``dt, stage, source, metric, value``; one replaceWhere per night and
stage, so a re-run replaces). Before that, the gate checks the night's metrics against that history with the
suite expectations/anomalies.json (``pipelines.watch`` for the statistics): a failed critical check stops the
stage's publication like any other gate; a failed warning is reported.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.runtime import storage
from jobs.runtime.config import REPO_ROOT
from jobs.runtime.layout import Warehouse
from pipelines import quality as q
from pipelines import watch

log = logging.getLogger("ctr.anomalies")

SUITE = "anomalies"
STAGES = ("ingest", "silver", "gold")   # the stages whose nights are comparable night over night
HISTORY_DDL = "dt date, stage string, source string, metric string, value double"
# sources that record only their top entities: one missing tonight that the last night held had none
ZERO_IF_MISSING = ("publisher_volume", "ad_category_volume")


def history_uri(wh: Warehouse) -> str:
    return f"{wh.root}/monitoring/metric_history"


def numeric(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if watch.is_number(v)}


def flatten(sources: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """``{source: {name: value}}`` as ``{"source.name": value}``, numbers only."""
    return {f"{s}.{k}": v for s, values in sources.items() for k, v in numeric(values).items()}


def read_history(spark: SparkSession, wh: Warehouse, day: date, days: int, stage: str | None = None) -> \
        dict[str, list[tuple[date, float]]]:
    """metric -> [(night, value)] of the ``days`` nights before ``day`` (one small read of the history table)."""
    uri = history_uri(wh)
    if not storage.is_delta(spark, uri):
        return {}
    rows = storage.read_delta(spark, uri).where(F.col("dt").between(F.lit(day - timedelta(days=days)),
                                                                     F.lit(day - timedelta(days=1))))
    if stage:
        rows = rows.where(F.col("stage") == stage)
    out: dict[str, list[tuple[date, float]]] = {}
    for r in rows.select("dt", "source", "metric", "value").collect():
        out.setdefault(f"{r['source']}.{r['metric']}", []).append((r["dt"], r["value"]))
    return out


def record(spark: SparkSession, wh: Warehouse, day: date, stage: str,
           sources: Mapping[str, Mapping[str, Any]]) -> int:
    """Replace the night's rows of ``stage`` in the history table with ``sources``; returns the rows written."""
    rows = watch.metric_rows(day, stage, sources)
    frame = spark.createDataFrame(rows, HISTORY_DDL)
    storage.write_partition(frame, history_uri(wh), day, column="dt", only={"stage": stage})
    return len(rows)


def settings() -> dict[str, Any]:
    suite = json.loads((REPO_ROOT / "expectations" / f"{SUITE}.json").read_text(encoding="utf-8"))
    meta = suite.get("meta", {})
    return {"window_days": int(meta.get("window_days", 14)), "min_history": int(meta.get("min_history", 5)),
            "z_min_history": int(meta.get("z_min_history", 7)),
            "seasonal_min": int(meta.get("seasonal_min", 3)), "lookback_days": int(meta.get("lookback_days", 56)),
            "expectations": _between_only(suite.get("expectations", []))}


def _between_only(expectations: list[dict]) -> list[dict]:
    """The anomaly suite holds bounds on statistics: expect_column_values_to_be_between only."""
    other = sorted({e.get("type") for e in expectations} - {"expect_column_values_to_be_between"})
    if other:
        raise ValueError(f"expectations/{SUITE}.json: only expect_column_values_to_be_between is supported, "
                         f"got {', '.join(map(str, other))}")
    return expectations


def prepare(spark: SparkSession, wh: Warehouse, day: date, stage: str, sources: Mapping[str, Mapping[str, Any]],
            conf: Mapping[str, Any]) -> tuple[dict[str, float | None], dict[str, dict], list[dict]]:
    """(the one-row frame of statistics, per metric its figures, the anomaly expectations that apply)."""
    history = read_history(spark, wh, day, conf["lookback_days"], stage)
    row, info = watch.anomaly_frame(flatten(sources), history, day, conf["window_days"], conf["min_history"],
                                    conf["seasonal_min"], ZERO_IF_MISSING, conf["z_min_history"])
    _, expectations = q.split_suite({"expectations": conf["expectations"]}, list(row))
    # a check of a metric this stage does not compute (the run report's rates at ingest) is not this stage's
    return row, info, [e for e in expectations if e["kwargs"]["column"] in row]


def outside(value: float | None, kwargs: Mapping[str, Any]) -> bool:
    """Whether ``value`` breaks expect_column_values_to_be_between's bounds (a null value passes, as in GX)."""
    if value is None:
        return False
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    if isinstance(lo, dict) or isinstance(hi, dict):   # a {"$PARAMETER": ...} bound: GX resolves and judges it
        return True
    below = lo is not None and (value <= lo if kwargs.get("strict_min") else value < lo)
    above = hi is not None and (value >= hi if kwargs.get("strict_max") else value > hi)
    return below or above


def describe(column: str, kwargs: Mapping[str, Any], info: Mapping[str, dict]) -> dict:
    """A failed anomaly expectation as a flag: the metric, the statistic, today's value and its baseline."""
    metric, stat = column.rsplit("|", 1)
    figures = info.get(metric, {})
    value, mid = figures.get("value"), figures.get("median")
    observed = figures.get(stat)
    words = {"change": f"{observed:+.0%} against its trailing median" if observed is not None else "",
             "delta": f"{observed:+.4g} from its trailing median" if observed is not None else "",
             "z": f"{observed:+.1f} standard deviations from its trailing mean" if observed is not None else ""}[stat]
    baseline = "same weekday" if figures.get("seasonal") else "trailing nights"
    text = (f"{metric} is {q._num(value)}, {words} {q._num(mid)} ({figures.get('history')} {baseline}; "
            f"{stat} expected between {q._num(kwargs.get('min_value'))} and {q._num(kwargs.get('max_value'))})")
    return {"metric": metric, "stat": stat, "value": value, "median": mid, "observed": observed,
            "history": figures.get("history"), "seasonal": figures.get("seasonal"), "text": text}


def too_little_history(info: Mapping[str, dict], expectations: list[dict]) -> list[str]:
    """The checked metrics whose history is too short to judge (their checks passed)."""
    checked = {e["kwargs"]["column"].rsplit("|", 1)[0] for e in expectations}
    return sorted(m for m in checked if info[m].get("value") is not None and not info[m]["judged"])
