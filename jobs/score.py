"""Score one day's impressions with the champion model; write calibrated click probabilities to Delta.

    spark-submit jobs/score.py --date 2025-03-07 [--table URI] [--out URI] [--warehouse URI]

Input: rows of the training-set table (train.table, or --table: any table with
the champion's feature columns) whose train.date_col is the date. Output
(train.scores_table, or --out), partitioned by that date column and replaced
with replaceWhere, so a re-run replaces the day: id, group, date, p_click
(calibrated), model_name, model_version, scored_at.
"""
from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from jobs import storage  # noqa: E402
from jobs.cli import base_parser, check_storage_uri, run_main  # noqa: E402
from jobs.spark import get_spark  # noqa: E402
from pipelines.config import AppConfig  # noqa: E402
from pipelines.train.scorers import score  # noqa: E402

log = logging.getLogger("ctr.score")


def run_score(spark: SparkSession, cfg: AppConfig, day: date, table: str | None = None, out: str | None = None) -> str:
    """Score ``day`` with the champion; returns the output table's URI."""
    from jobs import tracking
    from jobs.train import resolve_uri

    tr = cfg.train
    table = table or resolve_uri(cfg.paths.warehouse, tr.table)
    out = out or resolve_uri(cfg.paths.warehouse, tr.scores_table)
    tracking.setup(tr.experiment)
    current = tracking.champion_model(tr.registered_model)
    if current is None:
        raise ValueError(f"registered model {tr.registered_model!r} has no champion yet: run jobs/train.py first")
    model, version = current
    rows = storage.read_delta(spark, table).where(F.col(tr.date_col) == F.lit(day))
    missing = [c for c in model.features.columns if c not in rows.columns]
    if missing:
        raise ValueError(f"{table} lacks the champion's feature column(s) {missing[:3]}")
    keep = [tr.id_col, tr.group_col, tr.date_col]
    scored = (score(rows, model, "p_click", keep, method="predict")
              .select(*keep, "p_click", F.lit(tr.registered_model).alias("model_name"),
                      F.lit(str(version)).alias("model_version"), F.current_timestamp().alias("scored_at")))
    storage.write_partition(scored, out, day, column=tr.date_col)
    log.info("scored %s with %s v%s (%s) into %s", day, tr.registered_model, version, model.family, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--table", help="table holding the day's rows and features (default: train.table)")
    parser.add_argument("--out", help="output Delta table (default: train.scores_table under the warehouse)")

    def body(args, cfg: AppConfig) -> int:  # noqa: ANN001
        table = check_storage_uri(args.table, "--table") if args.table else None
        out = check_storage_uri(args.out, "--out") if args.out else None
        spark = get_spark(cfg.spark, args.master)
        print(run_score(spark, cfg, args.date, table, out))
        return 0

    return run_main(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
