"""Undo a published night: every table back to its Delta version from before that night first ran.

    spark-submit jobs/restore.py --date 2025-03-03 [--warehouse URI] [--dry-run] [--including-later-nights]
    make restore DATE=2025-03-03

Before its first write, each nightly run records a restore point,
``<warehouse>/_quality/restore_points/dt=<date>.json``: the Delta version of
every table in the warehouse and the list of the gates' baseline files. The
first run of a date records it; a re-run keeps it, so the point is always
"before this date was ever processed". Restoring:

- every table of the point goes back to its version (Delta RESTORE, a new commit:
  history keeps what was undone); a table created since is removed;
- the gates' baseline files written since are removed, and the night's run report;
- a later night's writes would be undone too, so a warehouse with later nights
  is refused unless ``--including-later-nights`` (their reports go as well).

Then fix the cause and re-run the date (``make backfill DATE=...``). Delta can
only restore versions whose files VACUUM has not removed yet
(``ingest.vacuum_retain_hours``; a week by default).
"""
from __future__ import annotations

import logging
import sys

from jobs.runtime.cli import base_parser, run_main
from jobs.runtime.layout import Warehouse
from jobs.runtime.spark import get_spark
from jobs.stages.restore import restore_night
from pipelines.config import AppConfig

log = logging.getLogger("ctr.restore")


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="say what would be restored, change nothing")
    parser.add_argument("--including-later-nights", action="store_true",
                        help="also undo the nights after --date (refused without it)")

    def body(args, cfg: AppConfig) -> int:
        spark = get_spark(cfg.spark, args.master)
        wh = Warehouse(cfg.paths.warehouse)
        out = restore_night(spark, wh, args.date, args.including_later_nights, args.dry_run)
        verb = "would restore" if args.dry_run else "restored"
        log.info("%s the warehouse to before %s (point recorded %s):", verb, args.date, out["point_recorded_at"])
        for table, what in out["tables"].items() or {"(no table changed)": ""}.items():
            log.info("  %-32s %s", table, what)
        log.info("  %d baseline file(s) and %d run report(s) %s", out["baselines_removed"],
                 len(out["reports_removed"]), "to remove" if args.dry_run else "removed")
        if not args.dry_run:
            log.info("now fix the cause and re-run: make backfill DATE=%s", args.date)
        return 0

    return run_main(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
