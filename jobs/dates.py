"""Print the dates a backfill covers, one per line, or fail with exit code 2.

    python jobs/dates.py --date 2025-03-01
    python jobs/dates.py --start 2025-03-01 --end 2025-03-31
    python jobs/dates.py --start 2025-03-01 --days 3

Used by `make backfill` and `make demo`, so bad dates are refused before any
Spark job starts.
"""
from __future__ import annotations

import argparse
import re
import sys
from datetime import timedelta

from jobs.runtime.cli import EXIT_USAGE, parse_date

MAX_DAYS = 3660


def dates(argv: list[str] | None = None) -> list[str]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--date", default="")
    p.add_argument("--start", default="")
    p.add_argument("--end", default="")
    p.add_argument("--days", default="")
    a = p.parse_args(argv)
    if a.date and (a.start or a.end or a.days):
        raise ValueError("give DATE, or START and END, not both")
    if a.date:
        return [parse_date(a.date).isoformat()]
    if not a.start:
        raise ValueError("give DATE=YYYY-MM-DD, or START=YYYY-MM-DD and END=YYYY-MM-DD")
    start = parse_date(a.start)
    if a.days:
        if not re.fullmatch(r"[0-9]{1,5}", a.days) or not 1 <= int(a.days) <= MAX_DAYS:
            raise ValueError(f"days must be a whole number from 1 to {MAX_DAYS}")
        end = start + timedelta(days=int(a.days) - 1)
    elif a.end:
        end = parse_date(a.end)
    else:
        raise ValueError("START needs END (or --days)")
    if end < start:
        raise ValueError(f"END {end} is before START {start}")
    if (end - start).days >= MAX_DAYS:
        raise ValueError(f"a range of more than {MAX_DAYS} days is surely a typo")
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def main(argv: list[str] | None = None) -> int:
    try:
        print("\n".join(dates(argv)))
    except (ValueError, argparse.ArgumentTypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
