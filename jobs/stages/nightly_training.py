"""Stage 4/4 of the nightly job: training on the configured schedule (``train.schedule``).

A night that is due (or run with ``--train``) and has enough closed label days
builds the point-in-time training set ending at the day it closed
(jobs/training_set.py, through its gate) and trains on that table version
(jobs/train.py: every family of ``train.models``, one MLflow run each, the
champion gate). The run report's ``training`` section says what happened:

    status        skipped (with ``reason``), running (written before training starts:
                  a report left so means the run died while training), trained, or
                  failed (with ``error``; the nightly job then exits 1, or 3 when the
                  training set's gate failed and restored the previous set)
    schedule      train.schedule, normalised; ``forced`` when --train was given
    training_set  path, Delta version, days per split, rows and clicks, its gate
    models        per family: the test-day metrics, MLflow run id and run link
    registered    registered model, version, family, alias (champion or challenger), the gate's reason
    tracking_uri  the MLflow store (credentials removed), experiment_id, experiment_url
"""
from __future__ import annotations

import logging
import math
import re
import time
from datetime import date, timedelta
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.runtime import storage
from jobs.runtime.layout import Warehouse
from pipelines.config import AppConfig
from pipelines.schedule import not_due_reason, parse_schedule, training_due
from pipelines.training_set import span

log = logging.getLogger("ctr.nightly")

METRICS = ("auc", "log_loss", "ne", "gauc", "calibration", "ece", "achievable_share", "train_seconds")
# kept in the report beside METRICS, not in the summary table
AGAINST_TRUTH = ("bayes_ne", "worst_decile_calibration", "truth_uncovered_rows")


def missing_label_days(spark: SparkSession, wh: Warehouse, first: date, last: date) -> list[date]:
    """Days of first .. last without closed labels (a day that closed empty counts as missing)."""
    have: set[date] = set()
    if storage.is_delta(spark, wh.silver("labels")):
        labels = storage.read_delta(spark, wh.silver("labels"))
        have = {r[0] for r in labels.where(F.col("event_date").between(F.lit(first), F.lit(last)))
                .select("event_date").distinct().collect()}
    return [d for d in (first + timedelta(days=i) for i in range((last - first).days + 1)) if d not in have]


def plan(spark: SparkSession, cfg: AppConfig, day: date, closed_day: dict, force: bool | None) -> dict:
    """Whether this night trains: ``status`` skipped with a reason, or running with the span to train on.

    ``force``: None follows the schedule; True trains whatever it says; False does not train.
    """
    schedule = parse_schedule(cfg.train.schedule)
    section: dict[str, Any] = {"schedule": schedule.text}
    if force is False:
        return {**section, "status": "skipped", "reason": "--no-train given"}
    if force is None and not training_due(schedule, day):
        return {**section, "status": "skipped", "reason": f"not due: {not_due_reason(schedule, day)}"}
    if force:
        section["forced"] = True
    ts = cfg.training_set
    end = date.fromisoformat(closed_day["event_date"])
    first, last = span(end, ts.train_days, ts.validation_days, ts.test_days)
    missing = missing_label_days(spark, Warehouse(cfg.paths.warehouse), first, last)
    if missing:
        shown = ", ".join(d.isoformat() for d in missing[:3]) + (", ..." if len(missing) > 3 else "")
        return {**section, "status": "skipped", "reason": (
            f"not enough history: the training set needs {(last - first).days + 1} closed label days "
            f"({first} .. {last}: train {ts.train_days}, validation {ts.validation_days}, test {ts.test_days}); "
            f"no labels yet for {len(missing)} of them: {shown}")}
    return {**section, "status": "running", "first_day": first.isoformat(), "last_day": last.isoformat()}


def run(spark: SparkSession, cfg: AppConfig, section: dict) -> dict:
    """Build the training set ending at ``section['last_day']``, train on it; the report's ``training`` section."""
    import mlflow

    from jobs.stages.train import run_train
    from jobs.stages.training_set import MissingHistory, run_training_set

    started = time.monotonic()
    try:
        manifest = run_training_set(spark, cfg, date.fromisoformat(section["last_day"]))
    except MissingHistory as err:  # the label check above passed, so only gold could be missing
        return {**section, "status": "skipped", "reason": f"not enough history: {err}"}
    results = run_train(spark, cfg, table=manifest["path"])
    uri = mlflow.get_tracking_uri()
    experiment = mlflow.get_experiment_by_name(cfg.train.experiment).experiment_id
    ui = ui_base(uri, cfg.train.mlflow_ui_url)
    experiment_url = f"{ui}/#/experiments/{experiment}" if ui else None
    models = {r["model"]: {**{k: _number(r.get(k)) for k in METRICS + AGAINST_TRUTH}, "run_id": r["run_id"],
                           "run_url": f"{experiment_url}/runs/{r['run_id']}" if ui else None} for r in results}
    return {**{k: v for k, v in section.items() if k not in ("first_day", "last_day")}, "status": "trained",
            "training_set": {k: manifest[k] for k in ("path", "version", "first_day", "last_day", "splits", "rows",
                                                      "clicks", "quality")},
            "models": models,
            "registered": next(({**r["registered"], "family": r["model"]} for r in results if "registered" in r), None),
            "tracking_uri": redact(uri), "experiment_id": experiment, "experiment_url": experiment_url,
            "seconds": round(time.monotonic() - started, 1)}


def failed(section: dict, err: BaseException) -> dict:
    return {**section, "status": "failed", "error": f"{type(err).__name__}: {err}"[:2000]}


def redact(uri: str) -> str:
    """The URI without a user name or password (a report is read by more people than the store is)."""
    return re.sub(r"^([a-zA-Z][\w+.-]*://)[^/@]*@", r"\1", uri)


def ui_base(tracking_uri: str, ui_url: str | None) -> str | None:
    """Where runs can be opened: an http(s) tracking server itself, else the configured UI (make mlflow-ui)."""
    if tracking_uri.startswith(("http://", "https://")):
        return redact(tracking_uri).rstrip("/")
    if tracking_uri.startswith("databricks"):
        return None  # the workspace's host is not in the URI
    return ui_url.rstrip("/") if ui_url else None


def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), 6)


def markdown(section: dict | None) -> list[str]:
    """The summary page's training section."""
    if not section:
        return []
    lines = ["## Training", ""]
    status = section["status"]
    forced = " (forced by --train)" if section.get("forced") else ""
    if status == "skipped":
        return lines + [f"Skipped: {section['reason']}. Schedule: `{section['schedule']}`.", ""]
    if status == "running":
        return lines + [f"Started{forced} on {section['first_day']} .. {section['last_day']}, not finished "
                        "(a report left so means the run died while training).", ""]
    if status == "failed":
        return lines + [f"**FAILED**{forced}: {section['error']}", ""]
    ts, gate = section["training_set"], section["training_set"]["quality"]
    lines += [f"Trained{forced} (schedule `{section['schedule']}`) in {section['seconds']:.1f} s on `{ts['path']}` "
              f"version {ts['version']}: "
              + ", ".join(f"{s} {ts['splits'][s][0]} .. {ts['splits'][s][1]} ({ts['rows'].get(s, 0):,} rows, "
                          f"{ts['clicks'].get(s, 0):,} clicks)" for s in ("train", "validation", "test")) + ".",
              f"Training-set gate: {'passed' if gate['passed'] else 'FAILED'}, {len(gate['warnings'])} warnings.", "",
              "| model | " + " | ".join(METRICS) + " | MLflow run |", "|---|" + "---:|" * len(METRICS) + "---|"]
    for name, m in section["models"].items():
        run = f"[{m['run_id'][:12]}]({m['run_url']})" if m["run_url"] else f"`{m['run_id']}`"
        lines.append(f"| {name} | " + " | ".join("-" if m[k] is None else f"{m[k]:.1f}" if k == "train_seconds"
                                                 else f"{m[k]:.4f}" for k in METRICS) + f" | {run} |")
    reg = section["registered"]
    if reg:
        lines += ["", f"Registered `{reg['model']}` version {reg['version']} ({reg['family']}) as **{reg['alias']}**: "
                      f"{reg['reason']}"]
    lines += ["", f"MLflow tracking URI: `{section['tracking_uri']}`"
              + (f"; experiment: {section['experiment_url']}" if section["experiment_url"] else "")
              + (" (open with `make mlflow-ui`)" if section["experiment_url"] and not
                 section["tracking_uri"].startswith("http") else ""), ""]
    return lines
