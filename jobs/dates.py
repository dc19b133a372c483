"""Print the dates a backfill covers, one per line, or fail with exit code 2.

    python jobs/dates.py --date 2025-03-01
    python jobs/dates.py --start 2025-03-01 --end 2025-03-31
    python jobs/dates.py --start 2025-03-01 --days 3

Used by `make backfill` and `make demo`, so bad dates are refused before any
Spark job starts.
"""
from __future__ import annotations

import argparse
import sys

from jobs.runtime.cli import EXIT_USAGE, chosen_days, parse_date


def dates(argv: list[str] | None = None) -> list[str]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--date", default="")
    p.add_argument("--start", default="")
    p.add_argument("--end", default="")
    p.add_argument("--days", default="")
    a = p.parse_args(argv)
    as_day = lambda text: parse_date(text) if text else None
    return [d.isoformat() for d in chosen_days(as_day(a.date), as_day(a.start), as_day(a.end), a.days)]


def main(argv: list[str] | None = None) -> int:
    try:
        print("\n".join(dates(argv)))
    except (ValueError, argparse.ArgumentTypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
