"""The nightly job: every stage built so far, for one arrival date, in order.

    spark-submit jobs/nightly.py --date YYYY-MM-DD --landing URI --warehouse URI
    spark-submit jobs/nightly.py --start YYYY-MM-DD --end YYYY-MM-DD ...   # a range of nights, in order

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

A range (`make backfill START= END=`) runs its nights one after another in one
SparkSession (one JVM start for the range); each night is still its own unit
with its own run report, exactly as if run alone. The first night that fails
stops the range with that night's exit code, and the log names the nights done
and those not run; re-running the range finishes it: a range killed inside a
stage resumes at that night, otherwise every night runs again (which changes
nothing for those already done).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

from jobs.runtime.cli import EXIT_RUNTIME, FLAG_NAMES, UsageError, base_parser, chosen_days, parse_date, run_main
from jobs.runtime.spark import get_spark
from jobs.stages.nightly import resume_point, run_nightly
from pipelines.config import AppConfig

log = logging.getLogger("ctr.nightly")


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0], needs_date=False)
    parser.add_argument("--date", type=parse_date, help="arrival date to process, YYYY-MM-DD")
    parser.add_argument("--start", type=parse_date, help="first arrival date of a range (with --end or --days)")
    parser.add_argument("--end", type=parse_date, help="last arrival date of the range, included")
    parser.add_argument("--days", help="the range's length in nights, instead of --end")
    parser.add_argument("--train", action=argparse.BooleanOptionalAction, default=None,
                        help="train this night (every night of a range) whatever train.schedule says "
                             "(--no-train: do not train); default: as train.schedule says")

    def body(args, cfg: AppConfig) -> int:
        try:
            days = chosen_days(args.date, args.start, args.end, args.days, FLAG_NAMES)
        except ValueError as err:
            raise UsageError(str(err)) from None
        spark = get_spark(cfg.spark, args.master)
        days = resume_point(spark, cfg, days) if len(days) > 1 else days
        done: list[str] = []
        for i, day in enumerate(days, 1):
            if len(days) > 1:
                log.info("== night %d of %d: %s", i, len(days), day)
            started = time.monotonic()
            try:
                report = run_nightly(spark, cfg, day, args.train)
            except BaseException:
                stopped(days, done, day)
                raise
            if not report["balanced"]:
                stopped(days, done, day)
                return EXIT_RUNTIME
            done.append(f"{day} ({time.monotonic() - started:.0f} s)")
        if len(days) > 1:
            log.info("range %s .. %s done: %d nights: %s", days[0], days[-1], len(days), ", ".join(done))
        return 0

    return run_main(parser, body, argv)


def stopped(days: list, done: list[str], day) -> None:
    """A range's failed night: which nights are published and which did not run (a re-run of the range finishes)."""
    if len(days) > 1:
        rest = [d.isoformat() for d in days[days.index(day) + 1:]]
        log.error("range %s .. %s stopped at %s; done: %s; not run: %s", days[0], days[-1], day,
                  ", ".join(done) or "none", ", ".join(rest) or "none")


if __name__ == "__main__":
    sys.exit(main())
