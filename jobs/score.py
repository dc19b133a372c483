"""Score the impressions that landed on a day with the champion: calibrated click probabilities into Delta.

    spark-submit jobs/score.py --date 2025-03-07 [--warehouse URI] [--out URI]
    spark-submit jobs/score.py --date 2025-03-07 --table URI --out URI   (rows of a table with the champion's columns)

Rows: every valid impression of silver/impressions that landed (arrived) on the
date, labelled or not. Features: built by jobs/training_set.with_features, the
code the training set is built with, under the same rule (README "Training/serving
parity"): history from the gold snapshot as of the impression's event day minus
training_set.snapshot_lag_days (1: the snapshot the night before published),
dimensions as of the event day, same-day counts over the impressions landed by the
date. The champion's stored vocabulary and calibration do the rest.

Output train.scores_table (default gold/scores), partitioned by dt and replaced
with replaceWhere, so a re-run replaces the day: impression_id, event_ts,
event_date, user_id, ad_id, p_click (calibrated), model_name, model_version,
model_alias, snapshot_date, features_version (gold/features' Delta version read),
scored_at, dt. With --table, rows of that table whose train.date_col is the date
are scored instead, into --out (id, group and date columns kept).
Exit 2, nothing written: no valid impressions landed on the date, a snapshot the
rows need is not published, no champion, or the champion needs a column the rows lack.
"""
from __future__ import annotations

import sys

from jobs.runtime.cli import base_parser, check_storage_uri, run_main
from jobs.runtime.spark import get_spark
from jobs.stages.score import run_score
from pipelines.config import AppConfig


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--table", help="score rows of this table (with the champion's feature columns) whose "
                                        "train.date_col is the date, instead of the impressions landed on it")
    parser.add_argument("--out", help="output Delta table (default: train.scores_table under the warehouse)")

    def body(args, cfg: AppConfig) -> int:
        table = check_storage_uri(args.table, "--table") if args.table else None
        out = check_storage_uri(args.out, "--out") if args.out else None
        spark = get_spark(cfg.spark, args.master)
        print(run_score(spark, cfg, args.date, table, out)["table"])
        return 0

    return run_main(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
