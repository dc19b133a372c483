"""The pure parts of the data-quality gates: suites split by batch, metric frames, volume bands, wording.

A suite (expectations/<table>.json) holds two kinds of expectations:

- row expectations (the default) about the table's written partition: schema
  ones run by Great Expectations on the Spark frame's schema, the others are
  compiled (``pipelines.row_checks``) into counts of breaking rows that the
  metrics aggregation below computes, then GX validates those counts;
- metric expectations (``meta.batch: "metrics"``) run over a one-row frame of
  day metrics that ``metric_frame`` computes in ONE Spark aggregation: row
  count, duplicate keys, the suite's own aggregates (``meta.metrics``, SQL), and
  each volume metric divided by its trailing mean (``<metric>_vs_trailing``).

Each expectation's ``meta.severity`` is ``critical`` (default: blocks
publication) or ``warning`` (reported, does not block).
"""
from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from statistics import mean
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.report import CLICK_OUTCOMES, CONTRACT_KEYS, IMPRESSION_OUTCOMES

CRITICAL, WARNING = "critical", "warning"


def severity(expectation: Mapping[str, Any]) -> str:
    value = (expectation.get("meta") or {}).get("severity", CRITICAL)
    if value not in (CRITICAL, WARNING):
        raise ValueError(f"severity must be {CRITICAL!r} or {WARNING!r}, got {value!r}")
    return value


def split_suite(suite: Mapping[str, Any], columns: Sequence[str]) -> tuple[list[dict], list[dict]]:
    """(row expectations, metric expectations); a ``column`` written ``re:<regex>`` becomes one per matching column."""
    rows, metrics = [], []
    for exp in suite.get("expectations", []):
        severity(exp)
        target = metrics if (exp.get("meta") or {}).get("batch") == "metrics" else rows
        column = (exp.get("kwargs") or {}).get("column", "")
        if isinstance(column, str) and column.startswith("re:"):
            pattern = re.compile(column[3:])
            for name in columns:
                if pattern.search(name):
                    expanded = copy.deepcopy(exp)
                    expanded["kwargs"]["column"] = name
                    target.append(expanded)
        else:
            target.append(copy.deepcopy(exp))
    return rows, metrics


def key_label(key: Sequence[str]) -> str:
    return "_".join(key)


def metric_aggregates(keys: Sequence[Sequence[str]], metrics: Mapping[str, str],
                      compiled: Mapping[str, Column] | None = None, *, unique: bool = True) -> list[Column]:
    """``rows``, ``duplicate_<key>`` per unique key (if ``unique``), each named SQL aggregate and each
    compiled row check (``pipelines.row_checks``), as aggregate columns.

    A duplicate count is rows with a complete key minus distinct complete keys,
    so a key seen three times counts two duplicates; null keys are the null
    expectations' business. Without the duplicate counts (distinct aggregates)
    the list can also ride on a write as observed metrics (``DataFrame.observe``).
    """
    aggs = [F.count(F.lit(1)).alias("rows")]
    for key in keys if unique else ():
        complete = F.lit(True)
        for c in key:
            complete = complete & F.col(c).isNotNull()
        value = F.struct(*[F.col(c) for c in key]) if len(key) > 1 else F.col(key[0])
        aggs.append((F.sum(complete.cast("long")) - F.count_distinct(F.when(complete, value)))
                    .alias(f"duplicate_{key_label(key)}"))
    aggs += [F.expr(sql).alias(name) for name, sql in metrics.items()]
    aggs += [agg.alias(name) for name, agg in (compiled or {}).items()]
    return aggs


def metric_frame(df: DataFrame, keys: Sequence[Sequence[str]], metrics: Mapping[str, str],
                 compiled: Mapping[str, Column] | None = None) -> DataFrame:
    """One row of ``metric_aggregates``: one Spark aggregation."""
    return df.agg(*metric_aggregates(keys, metrics, compiled))


def trailing_ratio(today: float | None, history: Iterable[float | None], min_days: int) -> float | None:
    """Today's value over the mean of the trailing days; None when there is too little history to judge.

    Days with a zero value (the empty label day before a backfill's first
    night) are no baseline and do not count as history.
    """
    past = [float(v) for v in history if v]
    if today is None or len(past) < min_days:
        return None
    return float(today) / mean(past)


def with_volume(metrics: Mapping[str, Any], volume: Sequence[str], history: Sequence[Mapping[str, Any]],
                min_days: int) -> dict[str, Any]:
    """The day's metrics plus ``<m>_vs_trailing`` for each volume metric."""
    out = dict(metrics)
    for name in volume:
        out[f"{name}_vs_trailing"] = trailing_ratio(metrics.get(name), [h.get(name) for h in history], min_days)
    return out


def report_metrics(report: Mapping[str, Any]) -> dict[str, Any]:
    """The run report as one row of numbers the run_report suite can check."""
    row = {k: report.get(k) for k in CONTRACT_KEYS}
    row["impressions_outcome_gap"] = report["impressions_raw"] - sum(report[k] for k in IMPRESSION_OUTCOMES)
    row["clicks_outcome_gap"] = report["clicks_raw"] - sum(report[k] for k in CLICK_OUTCOMES)
    row["balance_errors"] = len(report.get("balance_errors") or [])
    valid = report["impressions_valid"]
    row["click_rate"] = report["impressions_clicked"] / valid if valid else None
    return row


def volume_parameters(volume_band: float, rate_band: float) -> dict[str, float]:
    """Expectation parameters ($PARAMETER in the suites) for the volume bands."""
    return {"volume_min_ratio": 1 - volume_band, "volume_max_ratio": 1 + volume_band,
            "rate_min_ratio": 1 - rate_band, "rate_max_ratio": 1 + rate_band}


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def describe(table: str, exp_type: str, kwargs: Mapping[str, Any], result: Mapping[str, Any]) -> str:
    """One failed expectation in plain words, with what was observed."""
    col = kwargs.get("column")
    observed = result.get("observed_value")
    n = result.get("unexpected_count")
    examples = result.get("partial_unexpected_list") or []
    eg = f" (e.g. {', '.join(_num(v) for v in examples[:3])})" if examples else ""
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    single = examples[0] if len(examples) == 1 else None
    if exp_type == "expect_column_values_to_not_be_null":
        return f"{table}: {col} has {n} null values (expected none)"
    if exp_type == "expect_table_row_count_to_be_between":
        bounds = " and ".join(b for b in (f"at least {_num(lo)}" if lo is not None else "",
                                          f"at most {_num(hi)}" if hi is not None else "") if b)
        return f"{table}: the partition has {observed} rows (expected {bounds or 'any number'})"
    if exp_type == "expect_column_values_to_be_between" and col and single is not None:
        # a metric of the one-row metrics frame
        if col.startswith("duplicate_"):
            return f"{table}: {col[len('duplicate_'):]} has {single} duplicate values (expected unique)"
        if col.endswith("_vs_trailing"):
            return (f"{table}: {col[:-len('_vs_trailing')]} is {_num(single)}x the trailing mean "
                    f"(expected between {_num(lo)}x and {_num(hi)}x)")
        return f"{table}: {col} is {_num(single)} (expected between {_num(lo)} and {_num(hi)})"
    if exp_type == "expect_column_values_to_be_between":
        return f"{table}: {col} has {n} values outside [{_num(lo)}, {_num(hi)}]{eg}"
    if exp_type == "expect_column_values_to_be_in_set":
        return f"{table}: {col} has {n} values not in {sorted(kwargs.get('value_set', []))}{eg}"
    if exp_type.startswith("expect_column_pair_values_a_to_be_greater_than_b"):
        op = ">=" if kwargs.get("or_equal") else ">"
        return (f"{table}: {n} rows break {kwargs.get('column_A')} {op} {kwargs.get('column_B')}"
                f"{' (values ' + _num(single) + ')' if single is not None else eg}")
    if exp_type in ("expect_table_columns_to_match_ordered_list", "expect_table_columns_to_match_set"):
        want = kwargs.get("column_list") or kwargs.get("column_set") or []
        got = observed or []
        return (f"{table}: columns differ from the suite: missing {sorted(set(want) - set(got))}, "
                f"unexpected {sorted(set(got) - set(want)) if exp_type.endswith('ordered_list') else []}"
                f"{'' if set(want) != set(got) else ' (order differs)'}")
    if exp_type == "expect_column_values_to_be_of_type":
        return f"{table}: {col} is {observed} (expected {kwargs.get('type_')})"
    seen = observed if observed is not None else n
    return f"{table}: {exp_type} failed{' on ' + col if col else ''}: observed {seen}"
