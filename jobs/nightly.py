"""The nightly job: every stage built so far, for one arrival date, in order.

    spark-submit jobs/nightly.py --date YYYY-MM-DD --landing URI --warehouse URI

Stages: ingest (landing -> bronze + quarantine, retention), silver (duplicates,
bots, attribution with late data and orphan retries, viewability, closing the
day whose labels matured), gold (that day's partial aggregates and the feature
snapshot as of the day after it), and on the nights train.schedule names (or
with --train) training: the point-in-time training set ending at the closed day,
then the models, tracked in MLflow (jobs/nightly_training.py); then, with
score.nightly, the night's landed impressions scored with the champion, and
every night the stored scores of the closed day monitored (jobs/score.py). After each stage
its quality gate validates what it wrote and either publishes it or restores the
tables and stops the night with exit code 3 (later stages do not run). Writes
the run report to <warehouse>/reports/dt=<date>/run_report.json and a readable
summary.md beside it. Re-running a date replaces that date's partitions: the
result is the same as running it once. After a failure or a kill at any point,
re-running the same date finishes it (README "Re-runs, kills and resuming").
"""
from __future__ import annotations

import argparse
import sys

from jobs.runtime.cli import EXIT_RUNTIME, base_parser, run_main
from jobs.runtime.spark import get_spark
from jobs.stages.nightly import run_nightly
from pipelines.config import AppConfig


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--train", action=argparse.BooleanOptionalAction, default=None,
                        help="train this night whatever train.schedule says (--no-train: do not train); "
                             "default: as train.schedule says")

    def body(args, cfg: AppConfig) -> int:
        spark = get_spark(cfg.spark, args.master)
        report = run_nightly(spark, cfg, args.date, args.train)
        return 0 if report["balanced"] else EXIT_RUNTIME

    return run_main(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
