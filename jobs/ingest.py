"""Ingest one arrival date: landing JSON lines -> bronze Delta tables + quarantine.

    spark-submit jobs/ingest.py --date 2025-03-01 [--landing URI] [--warehouse URI]

Every line of dt=<date> lands in exactly one place: its bronze table (well-formed)
or bronze/quarantine (malformed, with the raw line, source file and a reason).
Re-running a date replaces that date. Bronze older than the retention limit is
deleted, then vacuumed.
"""
from __future__ import annotations

import sys

from jobs.runtime.cli import base_parser, run_main
from jobs.runtime.spark import get_spark
from jobs.stages.ingest import run_ingest
from pipelines.config import AppConfig


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])

    def body(args, cfg: AppConfig) -> int:
        spark = get_spark(cfg.spark, args.master)
        run_ingest(spark, cfg, args.date)
        return 0

    return run_main(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
