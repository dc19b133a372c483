"""The reliability and security suite: faults, bad input and privacy, one table of figures.

    make reliability                       # every row
    .venv/bin/python -m bench.reliability.run --rows 1,4,10 [--kills 20] [--root data/reliability]

Each row runs on generated data in ``--root`` and prints its figure; the table
is printed at the end and written to bench/results/reliability-<time>.json.
Exit code 0 when every row passed, 1 when any failed. The fast tests
(``make test``) keep smaller versions of each check.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
import traceback
from pathlib import Path

from bench.reliability.common import SUITE_YAML, Result, Suite
from jobs.runtime.config import REPO_ROOT, load_config

log = logging.getLogger("ctr.reliability")

# row -> (name, module in bench/reliability, function)
ROWS = {
    1: ("Kill and re-run", "rows_runs", "kill_and_rerun"),
    2: ("Repeat a date", "rows_runs", "repeat_a_date"),
    3: ("Corrected input", "rows_runs", "corrected_input"),
    4: ("Malformed fuzz", "rows_input", "malformed_fuzz"),
    5: ("Schema drift", "rows_input", "schema_drift"),
    6: ("Late and duplicate events", "rows_runs", "late_and_duplicate"),
    7: ("Executor loss in training", "rows_training", "executor_loss"),
    8: ("Gate drill", "rows_drills", "gate_drill"),
    9: ("Restore drill", "rows_drills", "restore_drill"),
    10: ("Hostile arguments and config", "rows_args", "hostile_arguments"),
    11: ("Privacy scan", "rows_privacy", "privacy_scan"),
    12: ("Load", "rows_load", "load"),
}


def parse_rows(text: str) -> list[int]:
    try:
        rows = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rows {text!r}: give row numbers like 1,4,10") from None
    bad = [r for r in rows if r not in ROWS]
    if not rows or bad:
        raise argparse.ArgumentTypeError(f"--rows {text!r}: rows are 1..{len(ROWS)}")
    return rows


def run_row(suite: Suite, row: int) -> Result:
    name, module, fn = ROWS[row]
    log.info("== row %d: %s", row, name)
    started = time.monotonic()
    try:
        result = getattr(importlib.import_module(f"bench.reliability.{module}"), fn)(suite)
    except Exception as err:
        log.error("row %d crashed:\n%s", row, traceback.format_exc())
        result = Result(row, name, False, "crashed", f"{type(err).__name__}: {err}"[:300])
    result.row, result.name = row, name
    result.seconds = round(time.monotonic() - started, 1)
    log.info("== row %d %s: %s (%.0fs)", row, "PASS" if result.passed else "FAIL", result.figure, result.seconds)
    return result


def table(results: list[Result]) -> str:
    lines = [f"{'#':>2}  {'check':<30} {'result':<6} {'seconds':>8}  figure", "-" * 110]
    for r in results:
        lines.append(f"{r.row:>2}  {r.name:<30} {'PASS' if r.passed else 'FAIL':<6} {r.seconds:>8.0f}  {r.figure}")
        if r.detail:
            lines.append(f"{'':>50}{' '.join(r.detail.split())}")
    passed = sum(r.passed for r in results)
    lines += ["-" * 110, f"{passed}/{len(results)} rows passed"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Rows: " + "; ".join(f"{k} {v[0]}" for k, v in ROWS.items()))
    p.add_argument("--rows", type=parse_rows, default=list(ROWS), help="which rows, e.g. 1,4,10 (default: all)")
    p.add_argument("--root", default=str(REPO_ROOT / "data" / "reliability"), help="working folder (replaced)")
    p.add_argument("--kills", type=int, default=20, help="row 1: how many SIGKILLs (default 20)")
    p.add_argument("--load-base", type=int, default=None,
                   help="row 12: the 1x daily volume (default: generator.impressions_per_day of conf/base.yaml)")
    p.add_argument("--load-factors", default="1,10,30", help="row 12: multiples of the base volume (default 1,10,30)")
    p.add_argument("--seed", type=int, default=20261124, help="where the kills land and the fuzz's choices")
    a = p.parse_args(argv)
    if a.kills < 1:
        p.error("--kills must be at least 1")
    try:
        factors = [int(x) for x in a.load_factors.split(",")]
        assert factors and min(factors) >= 1
    except (ValueError, AssertionError):
        p.error(f"--load-factors {a.load_factors!r}: give whole multiples like 1,10,30")
    from jobs.runtime.cli import setup_logging
    from jobs.runtime.spark import get_spark

    setup_logging("INFO")
    spark = get_spark(load_config("local", [str(SUITE_YAML)]).spark)
    suite = Suite(spark, Path(a.root), a.seed)
    suite.options = {"kills": a.kills, "load_base": a.load_base, "load_factors": factors}
    results = [run_row(suite, row) for row in a.rows]
    text = table(results)
    print("\n" + text, flush=True)
    out = REPO_ROOT / "bench" / "results" / f"reliability-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rows": [r.__dict__ for r in results], "table": text}, indent=2, default=str))
    print(f"results: {out}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
