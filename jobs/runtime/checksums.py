"""Order-independent checksums of a warehouse's Delta tables: what "the same tables" means.

Used by the tests: a re-run, or a killed run and its re-run, must leave exactly
what a clean run leaves.

Per table: the row count, the sum of a 64-bit hash (xxhash64) of every row, and
the same sum per column, so a difference names its columns. Sums are exact
(decimal) and do not depend on row order, file layout or partitioning; unlike a
XOR, a row stored twice changes them. A map column is hashed as its entries
sorted by key, so the order a JSON object listed its fields in does not count.

Left out: columns whose values differ between two runs over the same input by
design, in ``RUN_SPECIFIC``. Comparing two clean runs of the tiny fixture
(tests/test_resume.py) finds exactly these; every other column, including the
gold tables' HLL sketches and smoothed rates, is identical.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import MapType

from jobs.runtime import storage

RUN_SPECIFIC = {
    "_ingested_at": "when ingest ran (bronze event and dimension tables, quarantine): a re-run stamps its own time",
}
# Where a record came from: differs between two copies of the same landing data in two places.
LANDING_PATHS = {"_source_file": "the landing file a bronze row was read from",
                 "source_file": "the landing file a quarantined line was read from"}
ROWS = "rows"
WHOLE_ROW = "*"


def _hashable(df: DataFrame, name: str) -> Column:
    """xxhash64 refuses maps: hash a map as its entries sorted by key."""
    col = F.col(f"`{name}`")
    return F.array_sort(F.map_entries(col)) if isinstance(df.schema[name].dataType, MapType) else col


def table_checksum(spark: SparkSession, uri: str, exclude: Mapping[str, str] = RUN_SPECIFIC) -> dict[str, int]:
    """{"rows": n, "*": sum of row hashes, <column>: sum of its value hashes} of one Delta table, in one pass."""
    df = storage.read_delta(spark, uri)
    columns = sorted(c for c in df.columns if c not in exclude)
    exact = lambda h: F.coalesce(F.sum(h.cast("decimal(38,0)")), F.lit(0).cast("decimal(38,0)"))
    row = df.agg(F.count(F.lit(1)).alias(ROWS),
                 exact(F.xxhash64(*[_hashable(df, c) for c in columns])).alias(WHOLE_ROW),
                 *[exact(F.xxhash64(_hashable(df, c))).alias(c) for c in columns]).first()
    return {k: int(v) for k, v in row.asDict().items()}


def delta_tables(spark: SparkSession, root: str) -> list[str]:
    """Every Delta table of a warehouse, as paths relative to its root (``bronze/clicks``, ``gold/features``)."""
    logs = storage.glob(spark, f"{root}/*/*/_delta_log") + storage.glob(spark, f"{root}/*/_delta_log")
    base = storage.glob(spark, root)[0].rstrip("/")
    return sorted(p.removeprefix(base + "/").removesuffix("/_delta_log") for p in logs
                  if not p.removeprefix(base + "/").startswith("_"))


def warehouse_checksums(spark: SparkSession, root: str,
                        exclude: Mapping[str, str] = RUN_SPECIFIC) -> dict[str, dict[str, int]]:
    return {table: table_checksum(spark, f"{root}/{table}", exclude) for table in delta_tables(spark, root)}


def differences(a: Mapping[str, Mapping[str, int]], b: Mapping[str, Mapping[str, int]]) -> list[str]:
    """What differs between two ``warehouse_checksums``, in words: tables, row counts, columns."""
    out = [f"{t}: only in the {'first' if t in a else 'second'}" for t in sorted(set(a) ^ set(b))]
    for table in sorted(set(a) & set(b)):
        x, y = a[table], b[table]
        if x == y:
            continue
        cols = sorted(c for c in set(x) | set(y) if c not in (ROWS, WHOLE_ROW) and x.get(c) != y.get(c))
        out.append(f"{table}: {x.get(ROWS)} vs {y.get(ROWS)} rows"
                   + (f", columns differ: {', '.join(cols)}" if cols else ", same columns, rows differ"))
    return out



def baselines(root: str) -> dict[str, dict]:
    """The quality gates' volume baselines (later nights read them), by path (local warehouses only)."""
    base = Path(root) / "_quality" / "metrics"
    return {str(p.relative_to(base)): json.loads(p.read_text()) for p in sorted(base.rglob("*.json"))}


def reports(root: str) -> dict[str, dict]:
    """Run reports without what differs on every run: timings, and gate summaries (timings, Delta versions)."""
    out = {}
    for path in sorted(Path(root, "reports").glob("dt=*/run_report.json")):
        r = json.loads(path.read_text())
        r.pop("stage_seconds"), r.pop("quality")
        r["gold"].pop("seconds"), r["gold"].pop("quality", None)
        out[path.parent.name] = r
    return out


def warehouse_state(spark: SparkSession, root: str, exclude: Mapping[str, str] = RUN_SPECIFIC) -> dict:
    """Everything two runs over the same input must agree on: table checksums, baselines, run reports."""
    return {"tables": warehouse_checksums(spark, root, exclude), "baselines": baselines(root),
            "reports": reports(root)}


def state_differences(got: dict, want: dict) -> list[str]:
    """What differs between two ``warehouse_state``s, in words (empty when they are the same)."""
    out = differences(got["tables"], want["tables"])
    out += [f"baseline {k} differs" for k in sorted(set(got["baselines"]) | set(want["baselines"]))
            if got["baselines"].get(k) != want["baselines"].get(k)]
    out += [f"run report {k} differs" for k in sorted(set(got["reports"]) | set(want["reports"]))
            if got["reports"].get(k) != want["reports"].get(k)]
    return out
