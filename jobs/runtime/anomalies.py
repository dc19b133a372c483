"""Metric history and the anomaly checks on it, for the quality gates (jobs/runtime/quality.py).

Every gate of the ingest, silver and gold stages that passes appends its metrics (the numbers its suites computed
in the passes the stage already made, the run report's rates, the top entities' volumes) to the Delta table
``<warehouse>/monitoring/metric_history`` (``dt, stage, source, metric, value``, partitioned by night; a replaceWhere
of the night's stages, so a re-run replaces its own rows). Before that, the gate
checks the night's metrics against that history with the suite expectations/anomalies.json (``pipelines.watch``
for the statistics): a failed critical check stops the stage's publication like any other gate; a failed warning
is reported. A nightly run reads the history once and writes it once (one_night).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
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
LOOKBACK_DAYS = 56   # the nights a seasonal baseline is searched in, unless the suite's meta says otherwise


def history_uri(wh: Warehouse) -> str:
    return f"{wh.root}/monitoring/metric_history"


def numeric(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if watch.is_number(v)}


def flatten(sources: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """``{source: {name: value}}`` as ``{"source.name": value}``, numbers only."""
    return {f"{s}.{k}": v for s, values in sources.items() for k, v in numeric(values).items()}


@dataclass
class _Night:
    """The history one nightly run works with: read once (``rows``, None until the first read), and the night's
    metrics per stage (``pending``) written together at its end."""
    first: date
    day: date
    rows: list[tuple] | None = None
    pending: dict[str, list[tuple]] = field(default_factory=dict)


_nights: dict[str, _Night] = {}   # history uri -> the night running on it (inside one_night)


def _read(spark: SparkSession, uri: str, first: date, last: date) -> list[tuple]:
    if not storage.is_delta(spark, uri):
        return []
    return [tuple(r) for r in storage.read_delta(spark, uri).where(F.col("dt").between(F.lit(first), F.lit(last)))
            .select("dt", "stage", "source", "metric", "value").collect()]


def _write(spark: SparkSession, uri: str, day: date, stages: tuple[str, ...], rows: list[tuple]) -> None:
    """Replace the night's rows of ``stages`` with ``rows`` (one file, one commit)."""
    frame = spark.createDataFrame(rows, HISTORY_DDL).coalesce(1)
    storage.write_partition(frame, uri, day, column="dt", only={"stage": stages})


@contextmanager
def one_night(spark: SparkSession, wh: Warehouse, day: date, days: int) -> Iterator[None]:
    """A nightly run's history: inside it, the ``days`` nights before ``day`` and ``day`` itself are read once
    (at the first read_history), and what record() is given is held - a later read of the night sees it - and
    written at flush(), or at the end, together: one read and one write of the table a night instead of one each
    per stage (each a Delta commit and a snapshot to load again, seconds apiece)."""
    uri = history_uri(wh)
    _nights[uri] = _Night(day - timedelta(days=days), day)
    try:
        yield
    finally:
        try:
            flush(spark, wh)   # normally done already (the watch stage flushes and reports a failure)
        except Exception:   # the night's own outcome (or error) is the one to keep
            log.exception("could not record the night's metrics in %s", uri)
        finally:
            _nights.pop(uri, None)


def nights_held(trend_nights: int) -> int:
    """The nights before tonight a nightly run reads (one_night): its checks' lookback, its page's trends. A suite
    that cannot be read is the gates' to report (their checks then do not run): the default then."""
    try:
        lookback = settings()["lookback_days"]
    except (OSError, ValueError, TypeError):
        lookback = LOOKBACK_DAYS
    return max(lookback, trend_nights)


def flush(spark: SparkSession, wh: Warehouse) -> int:
    """Write what the night's stages recorded (inside one_night); returns the rows written."""
    night = _nights.get(history_uri(wh))
    if night is None or not night.pending:
        return 0
    stages, rows = tuple(sorted(night.pending)), [r for s in sorted(night.pending) for r in night.pending[s]]
    night.pending = {}
    _write(spark, history_uri(wh), night.day, stages, rows)
    return len(rows)


def read_history(spark: SparkSession, wh: Warehouse, day: date, days: int, stage: str | None = None) -> \
        dict[str, list[tuple[date, float]]]:
    """metric -> [(night, value)] of the ``days`` nights before ``day`` (one small read of the history table, or
    none inside one_night)."""
    uri, first, last = history_uri(wh), day - timedelta(days=days), day - timedelta(days=1)
    night = _nights.get(uri)
    if night and night.first <= first and last <= night.day:
        if night.rows is None:   # what the table holds, with what the night recorded before this first read
            held = {(night.day, st) for st in night.pending}
            night.rows = [r for r in _read(spark, uri, night.first, night.day) if (r[0], r[1]) not in held] + [
                r for st in night.pending.values() for r in st]
        rows = [r for r in night.rows if first <= r[0] <= last]
    else:
        rows = _read(spark, uri, first, last)
    out: dict[str, list[tuple[date, float]]] = {}
    for dt, st, source, metric, value in rows:
        if stage is None or st == stage:
            out.setdefault(f"{source}.{metric}", []).append((dt, value))
    return out


def record(spark: SparkSession, wh: Warehouse, day: date, stage: str,
           sources: Mapping[str, Mapping[str, Any]]) -> int:
    """Replace the night's rows of ``stage`` in the history table with ``sources`` - at once, or inside one_night
    of that night at its flush; returns the rows."""
    rows = watch.metric_rows(day, stage, sources)
    uri = history_uri(wh)
    night = _nights.get(uri)
    if night is None or night.day != day:
        _write(spark, uri, day, (stage,), rows)
        return len(rows)
    night.pending[stage] = rows
    if night.rows is not None:   # what a later read of the night sees
        night.rows = [r for r in night.rows if not (r[0] == day and r[1] == stage)] + rows
    return len(rows)


def settings() -> dict[str, Any]:
    suite = json.loads((REPO_ROOT / "expectations" / f"{SUITE}.json").read_text(encoding="utf-8"))
    meta = suite.get("meta", {})
    return {"window_days": int(meta.get("window_days", 14)), "min_history": int(meta.get("min_history", 5)),
            "z_min_history": int(meta.get("z_min_history", 7)),
            "seasonal_min": int(meta.get("seasonal_min", 3)),
            "lookback_days": int(meta.get("lookback_days", LOOKBACK_DAYS)),
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
