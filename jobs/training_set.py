"""Build the point-in-time training set: closed labels joined as of their day with features and dimensions.

    spark-submit jobs/training_set.py [--end YYYY-MM-DD] [--warehouse URI]

Covers train_days + validation_days + test_days event days ending at --end
(default: the newest closed label day). Each impression gets the features of the
snapshot as of its event day minus training_set.snapshot_lag_days (default 1: the
snapshot a scorer of that day had, so jobs/score.py sees the same features). Categorical
columns stay raw (``c_<column>``, text): the trainer fits their vocabulary on the
train split and stores it in the model. Writes, replacing the previous set:
  gold/training_set            Delta, partitioned by event_date (schema: pipelines/training_set.py)
  gold/training_set.json       what was built: days per split, features, neg_keep_rate, Delta version
The training set's Delta version is recorded there and in the commit's userMetadata.
Each day of the new set passes the gold_training_set quality gate before the
manifest is replaced; on a critical failure the previous set is restored and
the job exits 3.
"""
from __future__ import annotations

import logging
import sys

from jobs.runtime.cli import EXIT_RUNTIME, base_parser, parse_date, run_main
from jobs.runtime.spark import get_spark
from jobs.stages.training_set import MissingHistory, run_training_set
from pipelines.config import AppConfig

log = logging.getLogger("ctr.training_set")


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0], needs_date=False)
    parser.add_argument("--end", type=parse_date, help="last event day of the test split (default: newest closed day)")

    def body(args, cfg: AppConfig) -> int:
        spark = get_spark(cfg.spark, args.master)
        try:
            run_training_set(spark, cfg, args.end)
        except MissingHistory as err:
            log.error("%s", err)
            return EXIT_RUNTIME
        return 0

    return run_main(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
