"""Compute one new or changed feature group for history, alone, writing only its partitions.

    spark-submit jobs/backfill_feature.py --name GROUP_OR_FEATURE [--start YYYY-MM-DD] [--end YYYY-MM-DD]

NAME is a feature group of the declarations (gold.features_file, conf/features.yaml)
or one of its features. For every event day START .. END (default: every day with
closed labels) the group's daily partials and conversion partials are rebuilt from
silver, then its snapshots and priors as of each next day - the same code the
nightly gold runs, on the one group. Each write replaces only the group's own
partitions (entity = group), so no other feature's Delta files are rewritten (the
tables' history shows it). The training set picks the group up on its next build. Each write is one atomic
commit that replaces what it covers: a backfill stopped midway is finished by
running it again. Every rewritten day then passes the gold gate (its checks, not
its day-over-day volume comparison); a failure puts every gold table back as it
was before the backfill and exits 3.

The nightly gold refuses to run (exit 2, naming the groups) while a declared group
is new or its keys, user sketches or sums changed since its data was built; this job
records the group's fingerprint (a gold/features table property) when it is done
and its gate passed. A newly declared sum adds its column to gold/entity_day and
gold/features (the other groups' files are not rewritten: they read it as null).
A warehouse built before this release stores its partials without the entity
partition: there a backfill still writes only the group's rows, but Delta rewrites
the files those rows share with other groups.
"""
from __future__ import annotations

import json
import sys

from jobs.runtime.cli import UsageError, base_parser, parse_date, run_main
from jobs.runtime.spark import get_spark
from jobs.stages.backfill_feature import run_backfill_feature
from pipelines import declarations
from pipelines.config import AppConfig


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0], needs_date=False)
    parser.add_argument("--name", required=True, help="feature group (or one of its features) to backfill")
    parser.add_argument("--start", type=parse_date, help="first event day (default: the first closed label day)")
    parser.add_argument("--end", type=parse_date, help="last event day (default: the newest closed label day)")

    def body(args, cfg: AppConfig) -> int:
        if declarations.group_of(cfg.gold.features, args.name) is None:   # before Spark starts
            raise UsageError(f"--name {args.name!r} is no feature group or feature of {cfg.gold.features.path} "
                             f"(groups: {', '.join(g.name for g in cfg.gold.features.groups)})")
        if args.start and args.end and args.start > args.end:
            raise UsageError(f"--start {args.start} is after --end {args.end}")
        spark = get_spark(cfg.spark, args.master)
        print(json.dumps(run_backfill_feature(spark, cfg, args.name, args.start, args.end), indent=1))
        return 0

    return run_main(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
