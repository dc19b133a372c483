"""Silver for one arrival date: de-duplicate, filter bots, attribute clicks, close labels, report.

    spark-submit jobs/silver.py --date 2025-03-02 [--landing URI] [--warehouse URI]

Reads bronze of that date and the silver decisions of the lookback window
before it; writes (each a replaceWhere of one partition, so a re-run replaces):
silver/impressions and silver/clicks (dt = arrival date), silver/click_resolutions
(orphans resolved by this run), silver/labels (event_date = date - label_maturity_days),
silver/conversion_labels (event_date = date - conversion_maturity_days) and
reports/dt=<date>/run_report.json.
"""
from __future__ import annotations

import sys

from jobs.runtime import storage
from jobs.runtime.cli import base_parser, run_main
from jobs.runtime.layout import Warehouse
from jobs.runtime.spark import get_spark
from jobs.stages.silver import run_silver
from pipelines.config import AppConfig


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])

    def body(args, cfg: AppConfig) -> int:
        spark = get_spark(cfg.spark, args.master)
        report = run_silver(spark, cfg, args.date)
        storage.write_json(spark, Warehouse(cfg.paths.warehouse).report(args.date), report)
        return 0 if report["balanced"] else 1

    return run_main(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
