"""Train the configured CTR models, calibrate, evaluate on the test days, track in MLflow, gate the champion.

    spark-submit jobs/train.py [--table URI] [--truth URI] [--warehouse URI] [--config FILE]

Reads the training-set Delta table (train.table, default <warehouse>/gold/training_set,
or any Delta table a user brings: categorical columns may hold raw strings or integers),
fits the category vocabularies on its train split, trains each family of train.models
(plus the ablations: per-entity only, contextual only), logs one MLflow run per model
with its vocabulary inside the model, registers the best model of the run and gives it
alias ``champion`` only if the gate allows (pipelines/train/gate.py), else ``challenger``.
Prints the results table. Nothing is registered unless every run completed; a table
that cannot be trained on exits 2 before any run starts.
"""
from __future__ import annotations

import sys

from jobs.runtime.cli import UsageError, base_parser, check_storage_uri, run_main
from jobs.runtime.spark import get_spark
from jobs.stages.train import results_table, run_train
from pipelines.config import AppConfig
from pipelines.train.features import TableError


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__, needs_date=False)
    parser.add_argument("--table", help="training-set Delta table (default: train.table under the warehouse)")
    parser.add_argument("--truth", help="generator ground truth Delta table (default: train.truth under landing)")

    def body(args, cfg: AppConfig) -> int:
        table = check_storage_uri(args.table, "--table") if args.table else None
        truth = check_storage_uri(args.truth, "--truth") if args.truth else None
        spark = get_spark(cfg.spark, args.master)
        try:
            rows = run_train(spark, cfg, table, truth)
        except TableError as err:  # the table, not the machine: the user can fix it (exit 2)
            raise UsageError(str(err)) from None
        print(results_table(rows))
        return 0

    return run_main(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
