"""Compare the gold (and label) partitions the nights up to a date wrote, between two warehouses.

    .venv/bin/python bench/compare_gold.py WAREHOUSE_A WAREHOUSE_B LAST_NIGHT

Column-by-column hash sums of gold/entity_day, gold/conversion_day, gold/features,
gold/priors and silver/labels, each restricted to the partitions the nightly runs up
to LAST_NIGHT wrote (later nights do not rewrite them), so a demo still running can
be compared with a finished one. HLL sketch columns are compared by their estimate
(their bytes depend on the order a sketch saw its users in).
"""
from __future__ import annotations

import sys

from pyspark.sql import functions as F

from jobs.runtime import storage
from jobs.runtime.checksums import RUN_SPECIFIC, _hashable
from jobs.runtime.config import load_config
from jobs.runtime.spark import get_spark

# table -> (partition column, the newest partition the nights up to LAST_NIGHT wrote)
CUTS = {"gold/entity_day": ("event_date", 1), "gold/features": ("as_of_date", 0), "gold/priors": ("as_of_date", 0),
        "gold/conversion_day": ("event_date", 4), "silver/labels": ("event_date", 1)}


def sums(spark, root: str, table: str, column: str, upto: str) -> dict[str, int]:
    df = storage.read_delta(spark, f"{root}/{table}").where(F.expr(f"{column} <= {upto}"))
    if "users_sketch" in df.columns:
        df = df.withColumn("users_sketch", F.hll_sketch_estimate("users_sketch"))
    cols = sorted(c for c in df.columns if c not in RUN_SPECIFIC)
    exact = lambda h: F.coalesce(F.sum(h.cast("decimal(38,0)")), F.lit(0).cast("decimal(38,0)"))
    row = df.agg(F.count(F.lit(1)).alias("rows"), exact(F.xxhash64(*[_hashable(df, c) for c in cols])).alias("*"),
                 *[exact(F.xxhash64(_hashable(df, c))).alias(c) for c in cols]).first()
    return {k: int(v) for k, v in row.asDict().items()}


def main(argv: list[str]) -> int:
    a, b, last = argv
    spark = get_spark(load_config("local", []).spark)
    same = True
    for table, (column, lag) in CUTS.items():
        upto = f"date_sub(DATE'{last}', {lag})"
        x, y = sums(spark, a, table, column, upto), sums(spark, b, table, column, upto)
        diff = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
        same &= not diff
        print(f"{table:20s} {column} <= {upto}: rows {x['rows']:>10,} vs {y['rows']:>10,}  "
              f"{'identical' if not diff else 'DIFFER in ' + ', '.join(diff)}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
