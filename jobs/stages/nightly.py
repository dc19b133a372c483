"""The stage behind `jobs/nightly.py` (the nightly run: ingest, silver, gold, then training when due and scoring when
configured; the run report and summary page).

How to run it, and what it guarantees, is that entry point's docstring (`--help`)."""
from __future__ import annotations

import logging
import time

from jobs.runtime import anomalies, hooks, storage
from jobs.runtime.layout import Warehouse
from jobs.stages import nightly_training
from jobs.stages.gold import check_declarations, run_gold
from jobs.stages.ingest import run_ingest
from jobs.stages.restore import record_point
from jobs.stages.silver import run_silver
from pipelines.config import AppConfig
from pipelines.report import funnel_lines

log = logging.getLogger("ctr.nightly")


def summary_markdown(report: dict, stage_seconds: dict[str, float]) -> str:
    gates = report.get("quality", {})
    gate_seconds = {k: g.get("seconds", 0) for k, g in gates.items()}
    gate_seconds["train"] = report.get("training", {}).get("training_set", {}).get("quality", {}).get("seconds", 0)
    lines = [f"# Nightly run {report['date']}", "",
             "Balanced: **yes**" if report["balanced"] else "Balanced: **NO** - " + "; ".join(report["balance_errors"]),
             "", "## Funnel", "", "```", *funnel_lines(report), "```", "", "## Stage times", "",
             "| stage | seconds | of which quality gate |", "|---|---:|---:|",
             *[f"| {k} | {v:.1f} | {gate_seconds.get(k, 0):.1f} |" for k, v in stage_seconds.items()], "",
             "## Quality gates", "",
             *[f"- {k}: {'passed' if g['passed'] else 'FAILED'}, {len(g['warnings'])} warnings"
               + "".join(f"\n  - warning: {w}" for w in g["warnings"]) for k, g in gates.items()],
             "", f"Data Docs: {next(iter(gates.values()))['data_docs']}" if gates else "", "",
             *watch_markdown(report), *nightly_training.markdown(report.get("training")), *score_markdown(report)]
    return "\n".join(lines)


def watch_markdown(report: dict) -> list[str]:
    """Anomaly flags and drift, in short; the night page (night.html, beside this file) shows them in full."""
    flags = [f for g in report.get("quality", {}).values() for f in (g.get("anomalies") or {}).get("flags", [])]
    lines = ["## Watch", "", "Night page: [night.html](night.html) (trends, anomalies, drift)", ""]
    lines += [f"- anomaly ({f['severity']}): {f['text']}" for f in flags] or ["- no anomaly against the metric history"]
    drift = report.get("drift") or {}
    if drift.get("status") == "measured":
        filling = f" ({drift['filling']} with windows still filling, not judged)" if drift.get("filling") else ""
        most = f"; most drifted: {', '.join(drift['top'][:5])}" if drift["top"] else ""
        lines.append(f"- drift: {drift['flagged']} feature(s) flagged, {drift['warned']} warned of "
                     f"{len(drift['features'])}{filling}{most}")
    elif drift:
        lines.append(f"- drift {drift.get('status')}: {drift.get('reason') or drift.get('error')}")
    return [*lines, ""]


def score_markdown(report: dict) -> list[str]:
    scoring, monitoring = report.get("scoring"), report.get("score_monitoring")
    if not scoring and not monitoring:
        return []
    lines = ["## Scores", ""]
    if scoring:
        lines.append(f"- scored: {scoring['rows']:,} impressions landed tonight with {scoring['model_name']} "
                     f"v{scoring['model_version']} into {scoring['table']}" if scoring["status"] == "scored"
                     else f"- scoring {scoring['status']}: {scoring.get('reason') or scoring.get('error')}")
    if monitoring and monitoring.get("status") == "failed":
        lines.append(f"- monitoring of {monitoring['event_date']}'s scores failed: {monitoring['error']}")
    elif monitoring:
        fmt = lambda x: "n/a" if x is None else f"{x:.4f}"
        lines.append(f"- scores of {monitoring['event_date']} against their closed labels: {monitoring['rows']:,} "
                     f"rows ({monitoring['coverage']:.0%} of the day's labels"
                     f"{'; partial: no warnings' if monitoring['partial'] else ''}), NE {fmt(monitoring['ne'])} "
                     f"(champion's test NE {fmt(monitoring['reference_ne'])}), "
                     f"calibration {fmt(monitoring['calibration'])}, AUC {fmt(monitoring['auc'])}")
        lines += [f"  - **warning**: {w}" for w in monitoring["warnings"]]
    return [*lines, ""]


def stage_jobs(spark, stage: str, day) -> None:
    """Name the Spark jobs that follow: the UI and the event log group them by stage (``<stage>-<date>``)."""
    spark.sparkContext.setJobGroup(f"{stage}-{day}", f"{stage} dt={day}")
    hooks.stage(stage)


def resume_point(spark, cfg: AppConfig, days: list) -> list:
    """The nights of a range still to run: all of them, unless an interrupted run of this range stopped inside a
    stage of one of its later nights (a pending gate record, jobs/runtime/rollback.begin), whose earlier nights all
    have their run reports: then the range resumes at that night (which undoes and redoes the stage), since an
    earlier night would be refused while it is pending. Anything else runs every night again, as a re-run does."""
    from jobs.runtime.rollback import pending

    wh = Warehouse(cfg.paths.warehouse)
    stopped = [d for d, _ in pending(spark, wh) if d in days[1:]]
    if not stopped:
        return days
    at = days.index(stopped[0])
    if not all(storage.exists(spark, wh.report(d)) for d in days[:at]):
        return days   # not this range's interruption: the first night says which date to re-run
    log.warning("an earlier run of this range stopped inside night %s: resuming there (%s already ran; their run "
                "reports stand)", days[at], ", ".join(d.isoformat() for d in days[:at]))
    return days[at:]


def run_nightly(spark, cfg: AppConfig, day, train: bool | None = None) -> dict:
    """Every stage for ``day``; ``train`` None trains when train.schedule says so, True / False force it on / off."""
    # the metric history the night's gates and pages compare with: read once, written once (anomalies.one_night)
    held = anomalies.nights_held(cfg.monitoring.trend_nights)
    with anomalies.one_night(spark, Warehouse(cfg.paths.warehouse), day, held):
        try:
            return _run_stages(spark, cfg, day, train)
        except Exception as err:
            failed_page(spark, cfg, day, err)
            raise
        finally:  # later jobs in this session (a backfill's next date, a benchmark) are not this night's
            spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
            spark.sparkContext.setLocalProperty("spark.job.description", None)


def _run_stages(spark, cfg: AppConfig, day, train: bool | None) -> dict:
    wh = Warehouse(cfg.paths.warehouse)
    times: dict[str, float] = {}
    check_declarations(spark, cfg, wh)   # a changed feature declaration stops the night before any work
    t0 = time.monotonic()
    log.info("[1/4] ingest dt=%s", day)
    stage_jobs(spark, "ingest", day)
    record_point(spark, wh, day)  # what `make restore DATE=...` puts back (jobs/restore.py)
    lines, ingest_gate = run_ingest(spark, cfg, day)
    times["ingest"] = time.monotonic() - t0
    t1 = time.monotonic()
    log.info("[2/4] silver dt=%s", day)
    stage_jobs(spark, "silver", day)
    lines_read = {stream: sum(counts.values()) for stream, counts in lines.items()}
    report = run_silver(spark, cfg, day, lines_read)
    times["silver"] = time.monotonic() - t1
    t2 = time.monotonic()
    log.info("[3/4] gold dt=%s", day)
    stage_jobs(spark, "gold", day)
    report["gold"] = run_gold(spark, cfg, day, report["closed_day"]["impressions"])
    times["gold"] = time.monotonic() - t2
    report["ingest"] = {"lines": lines_read, "quarantined_by_reason": {
        s: {k: v for k, v in c.items() if k != "ok"} for s, c in lines.items()}}
    gold_gate = {"gold": report["gold"]["quality"]} if "quality" in report["gold"] else {}
    report["quality"] = {"ingest": ingest_gate, **report.get("quality", {}), **gold_gate}
    train_stage(spark, cfg, day, report, times, train)
    score_stage(spark, cfg, day, report, times)
    watch_stage(spark, cfg, day, report, times)
    log.info("report: %s", wh.report(day))
    log.info("night page: %s (every night: %s/reports/index.html)", f"{wh.report_dir(day)}/night.html", wh.root)
    return report


def watch_stage(spark, cfg: AppConfig, day, report: dict, times: dict[str, float]) -> None:
    """Drift of tonight's features and scores (jobs/stages/watch.py), then the report and the night page again.

    The night's data is published by then: a drift that cannot be measured is recorded, never a failed night."""
    from jobs.stages.watch import run_drift

    started = time.monotonic()
    stage_jobs(spark, "watch", day)
    try:
        report["drift"] = run_drift(spark, cfg, day)
    except Exception as err:
        log.exception("drift dt=%s could not be measured", day)
        report["drift"] = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
    wh = Warehouse(cfg.paths.warehouse)
    try:   # the gates' metrics of the night, held since (jobs/runtime/anomalies.one_night), in one write
        anomalies.flush(spark, wh)
    except Exception as err:   # published already: a lost history row is reported, not fatal
        log.exception("could not record the night's metrics in %s", anomalies.history_uri(wh))
        report.setdefault("warnings", []).append(f"the night's metrics were not recorded in the metric history "
                                                 f"({type(err).__name__}: {err})")
    times["watch"] = time.monotonic() - started
    write_report(spark, cfg, day, report, times)


def failed_page(spark, cfg: AppConfig, day, err: BaseException) -> None:
    """The night page of a night that stopped: what its report holds so far, or the gate's summary, and why."""
    import json

    from jobs.runtime.quality import GateFailed
    from jobs.stages.pages import write_pages

    wh = Warehouse(cfg.paths.warehouse)
    try:
        report = json.loads(storage.read_text(spark, wh.report(day))) if storage.exists(spark, wh.report(day)) else {}
        if report.get("date") != day.isoformat():
            report = {"date": day.isoformat()}
        if isinstance(err, GateFailed):
            report.setdefault("quality", {})[err.summary["stage"]] = err.summary
        write_pages(spark, cfg, day, report, error=f"{type(err).__name__}: {err}")
    except Exception:   # the night's own error is the one to raise
        log.exception("could not write the night page of the failed night %s", day)


def write_report(spark, cfg: AppConfig, day, report: dict, times: dict[str, float]) -> None:
    """The run report, its summary.md and the night page (with the index of nights)."""
    from jobs.stages.pages import write_pages

    wh = Warehouse(cfg.paths.warehouse)
    report["stage_seconds"] = {k: round(v, 1) for k, v in times.items()}
    storage.write_json(spark, wh.report(day), report)
    storage.write_text(spark, f"{wh.report_dir(day)}/summary.md", summary_markdown(report, times))
    try:
        write_pages(spark, cfg, day, report)
    except Exception:   # a page is for reading: the night's outcome stands without it
        log.exception("could not write the night page of %s", day)


def score_stage(spark, cfg: AppConfig, day, report: dict, times: dict[str, float]) -> None:
    """After training: with score.nightly, score the impressions that landed tonight with the champion (the
    one tonight's training may have promoted); then monitor the stored scores of the day whose labels closed.

    No champion yet, or a snapshot without history, skips scoring with the reason. Any other failure (a registry
    error, a missing snapshot) is recorded in the report and raised: the night's data is published
    by then, and the scheduler sees the failure. Rewrites the report when it did anything.
    """
    from datetime import date as _date

    from jobs.stages.score import NothingToScore, monitor_day, run_score

    started = time.monotonic()
    stage_jobs(spark, "score", day)

    def failed(key: str, err: BaseException) -> None:
        report[key] = {**report.get(key, {}), "status": "failed", "error": f"{type(err).__name__}: {err}"}
        times["score"] = time.monotonic() - started
        write_report(spark, cfg, day, report, times)

    if cfg.score.nightly:
        log.info("score dt=%s", day)
        try:
            report["scoring"] = {"status": "scored", **run_score(spark, cfg, day)}
        except NothingToScore as err:   # no champion yet, or no history yet
            report["scoring"] = {"status": "skipped", "reason": str(err)}
            log.info("scoring skipped: %s", err)
        except BaseException as err:
            failed("scoring", err)
            raise
    closed = report["closed_day"]
    if closed["impressions"]:
        try:
            monitored = monitor_day(spark, cfg, _date.fromisoformat(closed["event_date"]), day)
        except BaseException as err:
            report["score_monitoring"] = {"event_date": closed["event_date"]}
            failed("score_monitoring", err)
            raise
        if monitored:   # None: nothing of that day was scored
            report["score_monitoring"] = monitored
    times["score"] = time.monotonic() - started
    if "scoring" in report or "score_monitoring" in report:
        write_report(spark, cfg, day, report, times)


def train_stage(spark, cfg: AppConfig, day, report: dict, times: dict[str, float],
                train: bool | None) -> None:
    """[4/4] Training set and models when due; writes the report, with its ``training`` section.

    The report is written before training starts, marked ``running``: the night's data is published
    whatever training does, and a night killed while training says so. A failure is recorded as
    ``failed`` and re-raised (exit 1, or 3 for the training set's gate).
    """
    started = time.monotonic()
    log.info("[4/4] train dt=%s", day)
    stage_jobs(spark, "train", day)
    report["training"] = nightly_training.plan(spark, cfg, day, report["closed_day"], train)
    if report["training"]["status"] == "skipped":
        log.info("training skipped: %s", report["training"]["reason"])
        times["train"] = time.monotonic() - started
        write_report(spark, cfg, day, report, times)
        return
    write_report(spark, cfg, day, report, times)  # marked running
    try:
        report["training"] = nightly_training.run(spark, cfg, report["training"])
    except BaseException as err:
        report["training"] = nightly_training.failed(report["training"], err)
        raise
    finally:
        times["train"] = time.monotonic() - started
        try:
            write_report(spark, cfg, day, report, times)
        except Exception:
            log.exception("could not record the training outcome in %s", Warehouse(cfg.paths.warehouse).report(day))
