"""Gold for one arrival date: the closed day's partial aggregates and the next day's feature snapshot.

    spark-submit jobs/gold.py --date 2025-03-03 [--landing URI] [--warehouse URI]

The nightly run of arrival date D closes event day E = D - label_maturity_days
(and the conversion labels of C = D - conversion_maturity_days). This job then
writes (each a replaceWhere of one partition, so a re-run replaces):
  gold/entity_day       partials of event day E, one row per entity key (event_date = E)
  gold/conversion_day   conversions of event day C per entity key, from its closed
                        conversion labels (event_date = C; keys with none have no row)
  gold/features         windowed history of every key as of day E + 1 (as_of_date = E + 1):
                        the features of impressions on E + 1, from event days before it only
  gold/priors           the Beta priors of each entity type's rates as of E + 1
Only partials are read to assemble the windows: a night never rescans weeks of events.
"""
from __future__ import annotations

import sys

from pyspark.sql import functions as F

from jobs.runtime import storage
from jobs.runtime.cli import base_parser, run_main
from jobs.runtime.layout import Warehouse
from jobs.runtime.spark import get_spark
from jobs.stages.gold import run_gold
from pipelines.config import AppConfig
from pipelines.labels import click_day_closed_by


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])

    def body(args, cfg: AppConfig) -> int:
        spark = get_spark(cfg.spark, args.master)
        labels = storage.read_delta(spark, Warehouse(cfg.paths.warehouse).silver("labels")).where(
            F.col("event_date") == F.lit(click_day_closed_by(args.date, cfg.clean))).count()
        run_gold(spark, cfg, args.date, labels)
        return 0

    return run_main(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
