"""Generate realistic ad logs into the landing layout of shared/CONTRACT.md.

    spark-submit jobs/generate_logs.py --landing data/landing --overwrite \
        [--start 2025-03-01] [--days 3] [--impressions-per-day 200000] [--seed 7]

Seeded and deterministic (the same arguments give byte-identical files), built
with Spark so it scales out. Beside the logs it writes, under <landing>/_truth/:
manifest (Delta: every line's expected fate), ground_truth (Delta: each clean
impression's true click probability) and expected_counts.json (the run-report
counts each arrival date must produce).
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import sys

from jobs.dev.generate import run_generate
from jobs.runtime.cli import base_parser, parse_date, run_main
from jobs.runtime.spark import get_spark
from pipelines.config import AppConfig


def _bounded(lo: int, hi: int):
    def parse(text: str) -> int:
        if not re.fullmatch(r"[0-9]{1,12}", text):  # int() would also take '３', ' 3' and '1_000'
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
        value = int(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is not between {lo} and {hi}")
        return value
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0], needs_date=False)
    parser.add_argument("--start", type=parse_date, help="first event day (default: generator.start_date)")
    parser.add_argument("--days", type=_bounded(1, 366), help="number of days (default: generator.days)")
    parser.add_argument("--impressions-per-day", type=_bounded(1000, 10**10),
                        help="clean impressions per day, approximately")
    parser.add_argument("--seed", type=_bounded(0, 2**31 - 1), help="random seed (default: generator.seed)")
    parser.add_argument("--overwrite", action="store_true", help="replace logs already in the landing folder")

    def body(args, cfg: AppConfig) -> int:
        changes = {k: v for k, v in (("start_date", args.start), ("days", args.days),
                                     ("impressions_per_day", args.impressions_per_day), ("seed", args.seed))
                   if v is not None}
        cfg = dataclasses.replace(cfg, generator=dataclasses.replace(cfg.generator, **changes))
        spark = get_spark(cfg.spark, args.master)
        run_generate(spark, cfg, args.overwrite)
        return 0

    return run_main(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
