"""The nightly job: every stage built so far, for one arrival date, in order.

    spark-submit jobs/nightly.py --date YYYY-MM-DD --landing URI --warehouse URI

Stages: ingest (landing -> bronze + quarantine, retention), silver (duplicates,
bots, attribution with late data and orphan retries, viewability, closing the
day whose labels matured), gold (that day's partial aggregates and the feature
snapshot as of the day after it). After each stage its quality gate validates
what it wrote and either publishes it or restores the tables and stops the night
with exit code 3 (later stages do not run). Writes the run report to
<warehouse>/reports/dt=<date>/run_report.json and a readable summary.md beside
it. Re-running a date replaces that date's partitions: the result is the same
as running it once. After a failure or a kill at any point, re-running the same
date finishes it (README "Re-runs, kills and resuming").
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs import faults, storage  # noqa: E402
from jobs.cli import EXIT_RUNTIME, base_parser, run_main  # noqa: E402
from jobs.gold import run_gold  # noqa: E402
from jobs.ingest import run_ingest  # noqa: E402
from jobs.layout import Warehouse  # noqa: E402
from jobs.silver import run_silver  # noqa: E402
from jobs.spark import get_spark  # noqa: E402
from pipelines.config import AppConfig  # noqa: E402
from pipelines.report import funnel_lines  # noqa: E402

log = logging.getLogger("ctr.nightly")


def summary_markdown(report: dict, stage_seconds: dict[str, float]) -> str:
    gates = report.get("quality", {})
    lines = [f"# Nightly run {report['date']}", "",
             "Balanced: **yes**" if report["balanced"] else "Balanced: **NO** - " + "; ".join(report["balance_errors"]),
             "", "## Funnel", "", "```", *funnel_lines(report), "```", "", "## Stage times", "",
             "| stage | seconds | of which quality gate |", "|---|---:|---:|",
             *[f"| {k} | {v:.1f} | {gates.get(k, {}).get('seconds', 0):.1f} |" for k, v in stage_seconds.items()], "",
             "## Quality gates", "",
             *[f"- {k}: {'passed' if g['passed'] else 'FAILED'}, {len(g['warnings'])} warnings"
               + "".join(f"\n  - warning: {w}" for w in g["warnings"]) for k, g in gates.items()],
             "", f"Data Docs: {next(iter(gates.values()))['data_docs']}" if gates else "", ""]
    return "\n".join(lines)


def stage_jobs(spark, stage: str, day) -> None:  # noqa: ANN001
    """Name the Spark jobs that follow: the UI and the event log group them by stage (``<stage>-<date>``)."""
    spark.sparkContext.setJobGroup(f"{stage}-{day}", f"{stage} dt={day}")
    faults.enter(stage)


def run_nightly(spark, cfg: AppConfig, day) -> dict:  # noqa: ANN001
    try:
        return _run_stages(spark, cfg, day)
    finally:  # later jobs in this session (a backfill's next date, a benchmark) are not this night's
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
        spark.sparkContext.setLocalProperty("spark.job.description", None)


def _run_stages(spark, cfg: AppConfig, day) -> dict:  # noqa: ANN001
    wh = Warehouse(cfg.paths.warehouse)
    times: dict[str, float] = {}
    t0 = time.monotonic()
    log.info("[1/3] ingest dt=%s", day)
    stage_jobs(spark, "ingest", day)
    lines, ingest_gate = run_ingest(spark, cfg, day)
    times["ingest"] = time.monotonic() - t0
    t1 = time.monotonic()
    log.info("[2/3] silver dt=%s", day)
    stage_jobs(spark, "silver", day)
    lines_read = {stream: sum(counts.values()) for stream, counts in lines.items()}
    report = run_silver(spark, cfg, day, lines_read)
    times["silver"] = time.monotonic() - t1
    t2 = time.monotonic()
    log.info("[3/3] gold dt=%s", day)
    stage_jobs(spark, "gold", day)
    report["gold"] = run_gold(spark, cfg, day, report["closed_day"]["impressions"])
    times["gold"] = time.monotonic() - t2
    report["ingest"] = {"lines": lines_read, "quarantined_by_reason": {
        s: {k: v for k, v in c.items() if k != "ok"} for s, c in lines.items()}}
    gold_gate = {"gold": report["gold"]["quality"]} if "quality" in report["gold"] else {}
    report["quality"] = {"ingest": ingest_gate, **report.get("quality", {}), **gold_gate}
    report["stage_seconds"] = {k: round(v, 1) for k, v in times.items()}
    storage.write_json(spark, wh.report(day), report)
    storage.write_text(spark, f"{wh.report_dir(day)}/summary.md", summary_markdown(report, times))
    log.info("report: %s", wh.report(day))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])

    def body(args, cfg: AppConfig) -> int:  # noqa: ANN001
        spark = get_spark(cfg.spark, args.master)
        report = run_nightly(spark, cfg, args.date)
        return 0 if report["balanced"] else EXIT_RUNTIME

    return run_main(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
