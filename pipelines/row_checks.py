"""Row expectations compiled into aggregates, so a whole suite costs one pass over the partition.

Great Expectations on Spark resolves a suite's metrics in dependency levels,
one Spark job each: nine jobs per table here, every one re-reading the
partition from Delta, whatever the suite's size. That made the ingest gate a
quarter of the stage. So the suites stay as written (reviewable GX
expectations), and ``compile_suite`` turns each row expectation into

- an aggregate (a count of the rows that break it) that ``metric_frame``
  computes together with the keys' duplicate counts in ONE Spark aggregation;
- a GX expectation on the one-row metrics frame (that count at most 0, or its
  share of the non-null rows at most ``1 - mostly``), which GX validates and
  records in the results and Data Docs like any other.

Schema expectations (columns, types) stay GX expectations on the Spark frame:
they read the schema only. Semantics follow GX's: nulls are ignored by range
and set checks (and by pair checks when either side is null), ``mostly`` is a
share of the non-null rows, ``strict_min`` / ``strict_max`` exclude the bound.
Kwargs a compiled type does not honour are refused, not ignored.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

SCHEMA_TYPES = ("expect_column_values_to_be_of_type", "expect_table_columns_to_match_ordered_list",
                "expect_table_columns_to_match_set")
ROW_COUNT = "expect_table_row_count_to_be_between"
NOT_NULL = "expect_column_values_to_not_be_null"
BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
PAIR = "expect_column_pair_values_a_to_be_greater_than_b"
COMPILED_TYPES = (ROW_COUNT, NOT_NULL, BETWEEN, IN_SET, PAIR)
# The kwargs each compiled type honours; anything else (a typo such as "stirct_max", a row_condition)
# is refused rather than ignored, as Great Expectations itself refuses unknown fields.
ALLOWED_KWARGS = {
    ROW_COUNT: {"min_value", "max_value"},
    NOT_NULL: {"column", "mostly"},
    BETWEEN: {"column", "min_value", "max_value", "strict_min", "strict_max", "mostly"},
    IN_SET: {"column", "value_set", "mostly"},
    PAIR: {"column_A", "column_B", "or_equal", "mostly"},
}


@dataclass
class Compiled:
    """A suite's row expectations, split into what reads the schema and what one aggregation answers."""

    schema: list[dict] = field(default_factory=list)       # GX expectations on the Spark frame's schema
    aggregates: dict[str, Column] = field(default_factory=dict)  # metric -> aggregate over the partition
    expectations: list[dict] = field(default_factory=list)  # GX expectations on the one-row metrics frame
    shares: dict[str, tuple[str, str]] = field(default_factory=dict)  # share metric -> (count, denominator)
    sources: dict[str, tuple[str, dict]] = field(default_factory=dict)  # metric -> (original type, kwargs)
    counts: dict[str, str] = field(default_factory=dict)   # metric -> the count that describes a failure
    missing: list[str] = field(default_factory=list)       # checks on columns the frame lacks, in words


def resolve(kwargs: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The kwargs with each {"$PARAMETER": name} replaced by its value."""
    out = {}
    for k, v in kwargs.items():
        if isinstance(v, Mapping) and "$PARAMETER" in v:
            if v["$PARAMETER"] not in parameters:
                raise ValueError(f"expectation parameter {v['$PARAMETER']!r} has no value")
            v = parameters[v["$PARAMETER"]]
        out[k] = v
    return out


def unexpected(exp_type: str, kw: Mapping[str, Any]) -> tuple[Column, Column | None]:
    """(the condition a row breaks the expectation on, the rows that count for ``mostly``; None = all rows)."""
    if exp_type == NOT_NULL:
        return F.col(kw["column"]).isNull(), None
    if exp_type == PAIR:
        a, b = F.col(kw["column_A"]), F.col(kw["column_B"])
        both = a.isNotNull() & b.isNotNull()
        return both & ~(a >= b if kw.get("or_equal") else a > b), both
    c = F.col(kw["column"])
    if exp_type == IN_SET:
        return c.isNotNull() & ~c.isin(list(kw["value_set"])), c.isNotNull()
    lo, hi = kw.get("min_value"), kw.get("max_value")
    below = F.lit(False) if lo is None else (c <= F.lit(lo) if kw.get("strict_min") else c < F.lit(lo))
    above = F.lit(False) if hi is None else (c >= F.lit(hi) if kw.get("strict_max") else c > F.lit(hi))
    return c.isNotNull() & (below | above), c.isNotNull()


def metric_name(exp_type: str, kw: Mapping[str, Any]) -> str:
    if exp_type == PAIR:
        op = ">=" if kw.get("or_equal") else ">"
        return f"rows breaking {kw['column_A']} {op} {kw['column_B']}"
    what = {NOT_NULL: "null", BETWEEN: "out-of-range", IN_SET: "not-in-set"}[exp_type]
    return f"{kw['column']}: {what} rows"


def columns_of(exp_type: str, kw: Mapping[str, Any]) -> list[str]:
    return [kw["column_A"], kw["column_B"]] if exp_type == PAIR else [kw["column"]] if "column" in kw else []


def compile_suite(expectations: Sequence[Mapping[str, Any]], parameters: Mapping[str, Any],
                  columns: Sequence[str] | None = None) -> Compiled:
    """Split row expectations (``split_suite``'s first list) into schema checks and compiled aggregates.

    With ``columns`` (the frame's), a check on a column the frame lacks is not
    compiled (its aggregate could not run) but listed in ``missing``: a failure.
    """
    out = Compiled()
    for exp in expectations:
        exp_type, meta = exp["type"], dict(exp.get("meta") or {})
        if exp_type in SCHEMA_TYPES:
            out.schema.append(dict(exp))
            continue
        if exp_type not in COMPILED_TYPES:
            raise ValueError(f"row expectation {exp_type!r} is not supported by the one-pass gate; "
                             f"use one of {', '.join(SCHEMA_TYPES + COMPILED_TYPES)} or a metrics expectation")
        unknown = set(exp.get("kwargs") or {}) - ALLOWED_KWARGS[exp_type]
        if unknown:
            raise ValueError(f"{exp_type}: kwargs {sorted(unknown)} are not supported by the one-pass gate "
                             f"(supported: {sorted(ALLOWED_KWARGS[exp_type])})")
        kw = resolve(exp.get("kwargs") or {}, parameters)
        if exp_type == BETWEEN and kw.get("min_value") is None and kw.get("max_value") is None:
            raise ValueError(f"{exp_type} on {kw.get('column')}: min_value and max_value cannot both be null")
        absent = [c for c in columns_of(exp_type, kw) if columns is not None and c not in columns]
        if absent:
            out.missing.append(f"{exp_type} cannot run: column {', '.join(absent)} is missing")
            continue
        if exp_type == ROW_COUNT:  # the "rows" metric is in every metrics frame already
            bounds = {k: kw[k] for k in ("min_value", "max_value") if kw.get(k) is not None}
            out.expectations.append({"type": BETWEEN, "kwargs": {"column": "rows", **bounds}, "meta": meta})
            out.sources["rows"] = (exp_type, kw)
            out.counts["rows"] = "rows"
            continue
        name = metric_name(exp_type, kw)
        while name in out.sources or name in out.aggregates:
            name += "'"
        condition, counted = unexpected(exp_type, kw)
        out.aggregates[name] = F.count(F.when(condition, F.lit(1)))
        out.counts[name] = name
        mostly = kw.get("mostly")
        checked = name
        if mostly is not None:
            # GX's mostly: the share of the checked (non-null) rows that meet the expectation, at least mostly
            checked, denominator = f"{name.replace(' rows', '')} passing share", f"{name} (rows checked)"
            out.aggregates[denominator] = F.count(F.lit(1)) if counted is None else F.count(F.when(counted, F.lit(1)))
            out.shares[checked] = (name, denominator)
            out.counts[checked] = name
            limit = {"column": checked, "min_value": float(mostly)}
        else:
            limit = {"column": checked, "max_value": 0}
        meta.setdefault("notes", f"compiled from {exp_type} {_plain(exp.get('kwargs') or {})}")
        out.expectations.append({"type": BETWEEN, "kwargs": limit, "meta": meta})
        out.sources[checked] = (exp_type, kw)
    return out


def with_shares(values: Mapping[str, Any], compiled: Compiled) -> dict[str, Any]:
    """The metrics row plus each ``mostly`` passing share (None when no row was checked: nothing to judge)."""
    out = dict(values)
    for share, (count, denominator) in compiled.shares.items():
        out[share] = (out[denominator] - out[count]) / out[denominator] if out.get(denominator) else None
    return out


def _plain(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v['$PARAMETER'] if isinstance(v, Mapping) and '$PARAMETER' in v else v}"
                     for k, v in kwargs.items())
