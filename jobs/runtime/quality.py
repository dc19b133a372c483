"""Data-quality gates: validate what a stage wrote, and roll it back if a critical expectation fails.

Publication is "write, audit, roll back": before a stage, ``rollback.begin``
records the Delta version of every table it writes (in the warehouse, until the
gate has decided: a re-run after a kill first undoes the killed attempt); the
stage writes; ``gate``
validates the written partitions (read back from Delta, not re-running the
stage's plan; or, for tables written with ``observe_checks``, from aggregates
computed in the write's own pass plus a read-back of the key columns) and the
run report with the suites in expectations/; on a
critical failure every written table is restored to its recorded version (a
table the stage created is removed), the validation result is stored, and
``GateFailed`` is raised (exit code 3 under ``run_main``).

Results and Data Docs: see ``results_root``; the README's "Quality gates".
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from jobs.runtime import anomalies, docs_assets, storage
from jobs.runtime.config import REPO_ROOT
from jobs.runtime.layout import Warehouse
from jobs.runtime.rollback import begin, finish, metrics_uri, restore, table_versions
from pipelines import quality as q
from pipelines import row_checks as rc
from pipelines import watch
from pipelines.config import AppConfig
from pipelines.gates import GatePlan

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no usage statistics leave the machine

log = logging.getLogger("ctr.quality")

SUITES_DIR = REPO_ROOT / "expectations"
# Schema checks on the Spark frame: no rows are read, so counts only.
ROW_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}
# How long the gate waits for checks observed on a write (they arrive with the
# write's end, through the listener bus) before it reads the partition back instead.
OBSERVED_WAIT_SECONDS = 60
METRIC_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 3}
_CONTEXTS: dict[str, Any] = {}


class GateFailed(RuntimeError):
    """A critical expectation failed; the stage's writes were rolled back."""

    def __init__(self, summary: dict):
        self.summary = summary
        lines = "\n  ".join(summary["failures"])
        super().__init__(f"quality gate '{summary['stage']}' failed for {summary['date']}; nothing was published "
                         f"(tables restored to their previous versions):\n  {lines}\n"
                         f"  validation results: {summary['results']}\n  data docs: {summary['data_docs']}")


def results_root(cfg: AppConfig) -> str:
    """Where validation results and Data Docs go: quality.results_dir, else <warehouse>/_quality if local."""
    if cfg.quality.results_dir:
        return cfg.quality.results_dir
    wh = cfg.paths.warehouse
    if "://" not in wh or wh.startswith("file://"):
        return str(Path(wh.removeprefix("file://")).resolve() / "_quality")
    local = Path(cfg.quality.local_results_dir)
    return str(local if local.is_absolute() else REPO_ROOT / local)


def data_docs_index(root: str) -> str:
    return f"{root}/gx/uncommitted/data_docs/local_site/index.html"


def load_suite(name: str) -> dict:
    path = SUITES_DIR / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _drop_half_written(root: str) -> None:
    """Remove Great Expectations project files a killed run left half-written.

    GX writes them in place, not through a temporary file, and cannot load a
    truncated one, so every later gate would fail. All of them are registered
    again by every gate (``_context``, ``_checkpoint``); results and Data Docs
    are not touched (a half-written result is skipped by the docs).
    """
    stores = [Path(root) / "gx" / d for d in ("expectations", "validation_definitions", "checkpoints")]
    for path in [p for store in stores for p in store.rglob("*.json")]:
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            log.warning("removing %s, left half-written by an earlier run", path)
            path.unlink()


def _context(root: str):
    if root not in _CONTEXTS:
        import great_expectations as gx

        Path(root).mkdir(parents=True, exist_ok=True)
        from great_expectations.data_context.types.base import ProgressBarsConfig

        _drop_half_written(root)
        try:
            ctx = gx.get_context(mode="file", project_root_dir=root)
        except gx.exceptions.GreatExpectationsError:  # a half-written great_expectations.yml: make a new one
            log.warning("removing %s/gx/great_expectations.yml, which GX cannot load", root)
            (Path(root) / "gx" / "great_expectations.yml").unlink()
            ctx = gx.get_context(mode="file", project_root_dir=root)
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        # persist=False: GX would otherwise cache every partition it validates (a
        # full read of every column into memory); its aggregates read few columns.
        ctx.data_sources.add_or_update_spark("spark", persist=False)
        ctx.data_sources.add_or_update_pandas("pandas")
        _CONTEXTS[root] = ctx
    return _CONTEXTS[root]


def _checkpoint(ctx, source: str, name: str, expectations: list[dict], result_format: dict):
    """A checkpoint of one suite over one dataframe asset, (re)registered so suite edits take effect."""
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite

    ds = ctx.data_sources.get(source)
    try:
        asset = ds.get_asset(name)
    except LookupError:
        asset = ds.add_dataframe_asset(name)
    try:
        batch = asset.get_batch_definition("whole")
    except KeyError:
        batch = asset.add_batch_definition_whole_dataframe("whole")
    suite = ctx.suites.add_or_update(ExpectationSuite(name=name, expectations=expectations))
    vd = ctx.validation_definitions.add_or_update(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    return ctx.checkpoints.add_or_update(gx.Checkpoint(name=name, validation_definitions=[vd],
                                                       result_format=result_format))


def _parameters(cfg: AppConfig, day: date, part: date) -> dict[str, Any]:
    """Values for the suites' {"$PARAMETER": ...}: the processed window and the volume bands."""
    utc = lambda d: datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
    lag = timedelta(days=cfg.ingest.max_event_lag_days)
    return {
        "event_ts_min": utc(day) - lag,
        "event_ts_max": utc(day + timedelta(days=1)) + timedelta(minutes=cfg.ingest.max_clock_skew_minutes),
        "lookback_ts_min": utc(day) - lag - timedelta(days=cfg.clean.lookback_days),
        "partition_start": utc(part), "partition_end": utc(part + timedelta(days=1)),
        **q.volume_parameters(cfg.quality.volume_band, cfg.quality.rate_band),
    }


def _history(spark: SparkSession, wh: Warehouse, table: str, day: date, days: int,
             since: date | None = None) -> list[dict]:
    """The metrics of the trailing days whose gates passed (only those are recorded), none before ``since``."""
    out = []
    for k in range(1, days + 1):
        uri = metrics_uri(wh, table, day - timedelta(days=k))
        if (since is None or day - timedelta(days=k) >= since) and storage.exists(spark, uri):
            out.append(json.loads(storage.read_text(spark, uri)))
    return out


def _judge(table: str, result, compiled: rc.Compiled | None = None,
           values: Mapping[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """(failures, warnings) in plain words; a compiled row check is described as the expectation it came from."""
    failures, warnings = [], []
    for r in result.results:
        if r.success:
            continue
        conf = r.expectation_config
        info = r.exception_info or {}
        # GX reports an error either flat or per metric: {metric_id: {raised_exception, exception_message}}
        raised = [info] if info.get("raised_exception") else [
            v for v in info.values() if isinstance(v, dict) and v.get("raised_exception")]
        column = (conf.kwargs or {}).get("column")
        if raised:
            text = f"{table}: {conf.type} could not run: {raised[0].get('exception_message')}"
        elif compiled is not None and values is not None and column in compiled.sources:
            exp_type, kwargs = compiled.sources[column]
            n = values.get(compiled.counts[column])
            text = q.describe(table, exp_type, kwargs, {"unexpected_count": n, "observed_value": n})
        else:
            text = q.describe(table, conf.type, conf.kwargs, r.result or {})
        (warnings if q.severity({"meta": conf.meta or {}}) == q.WARNING else failures).append(text)
    return failures, warnings


@dataclass
class ObservedChecks:
    """A suite's aggregate checks computed while the stage writes the partition (``observe_checks``)."""

    name: str
    part: date
    compiled: rc.Compiled
    observation: Observation

    def values(self, timeout: float = OBSERVED_WAIT_SECONDS) -> dict[str, Any] | None:
        """The observed metrics, or None if the write did not deliver them in time."""
        box: dict[str, Any] = {}
        waiter = threading.Thread(target=lambda: box.setdefault("v", self.observation.get), daemon=True)
        waiter.start()
        waiter.join(timeout)
        return box.get("v")


def observe_checks(cfg: AppConfig, name: str, df: DataFrame, day: date,
                   part: date | None = None) -> tuple[DataFrame, ObservedChecks]:
    """``df`` with suite ``name``'s aggregate checks riding on its next action (the partition's write).

    Every row check and SQL metric is then computed from the rows as they are
    written, in the write's own pass: the gate does not read the partition back
    for them. Only unique keys need distinct counts, which an observation cannot
    hold, so the gate reads the key columns back for those (and checks that as
    many rows were written as observed). Attach it to the frame that is written,
    after its last shuffle, so a retried task cannot count twice.
    """
    part = part or day
    suite = load_suite(name)
    meta = suite.get("meta", {})
    rows, _ = q.split_suite(suite, df.columns)
    compiled = rc.compile_suite(rows, _parameters(cfg, day, part), df.columns)
    distinct = [m for m, sql in meta.get("metrics", {}).items() if "distinct" in sql.lower()]
    if distinct:
        raise ValueError(f"suite {name}: metrics {distinct} count distinct values, which cannot be observed on "
                         "a write; gate this table by reading it back (no observe_checks)")
    observation = Observation(f"gate-{name}-{part.isoformat()}-{time.monotonic_ns()}")
    aggs = q.metric_aggregates(meta.get("unique", []), meta.get("metrics", {}), compiled.aggregates, unique=False)
    return df.observe(observation, *aggs), ObservedChecks(name, part, compiled, observation)


def gate(spark: SparkSession, cfg: AppConfig, stage: str, day: date, written: Mapping[str, str],
         versions_before: Mapping[str, int | None], report: Mapping[str, Any] | None = None,
         partitions: Mapping[str, date] | None = None, observed: Mapping[str, ObservedChecks] | None = None,
         volume_since: Mapping[str, date] | None = None, unvalidated: Mapping[str, str] | None = None,
         extra_metrics: Mapping[str, Mapping[str, Any]] | None = None) -> dict:
    """Validate what ``stage`` wrote for ``day``; publish (return the summary) or roll back and raise GateFailed.

    ``unvalidated``: tables the stage also wrote that have no suite of their own
    (ingest's dimension snapshots); not checked, but rolled back with the others.

    ``written``: suite name (expectations/<name>.json) -> table URI; each
    table's day partition (``partitions[name]``, default ``day``, in the
    suite's ``meta.partition`` column) is checked. ``report``: the run report,
    checked with the run_report suite. ``observed``: suite name -> the checks
    that rode on the table's write (``observe_checks``); the gate then reads back
    only the key columns. ``volume_since``: per suite, the first
    partition whose volume is comparable with later ones (a table that grows
    by design until then); an earlier partition gets no volume check and is no
    later partition's baseline. ``extra_metrics``: source -> metrics the stage computed beside its tables
    (entity volumes, feature key counts), for the metric history and its anomaly checks (jobs/runtime/anomalies.py),
    which the ingest, silver and gold stages get after their suites.
    """
    import pandas as pd

    started = time.monotonic()
    wh, root = Warehouse(cfg.paths.warehouse), results_root(cfg)
    ctx = _context(root)
    failures, warnings, ids, metrics_of, on_write = [], [], [], {}, []

    def check(name: str, source: str, expectations: list[dict], frame, part: date, fmt: dict,
              compiled: rc.Compiled | None = None, values: Mapping[str, Any] | None = None) -> None:
        if not expectations:
            return
        result = _checkpoint(ctx, source, name, expectations, fmt).run(
            batch_parameters={"dataframe": frame}, expectation_parameters=_parameters(cfg, day, part))
        for vid, run in result.run_results.items():
            ids.append(vid)
            f, w = _judge(name.removesuffix(".metrics"), run, compiled, values)
            failures.extend(f)
            warnings.extend(w)

    def partition_values(name: str, df, meta: Mapping[str, Any], compiled: rc.Compiled) -> dict[str, Any]:
        """The partition's metrics: observed on its write plus its keys read back, else one read of it all."""
        seen = observed.get(name) if observed else None
        values = seen.values() if seen else None
        if values is not None and set(values) >= set(compiled.aggregates):
            keys = meta.get("unique", [])
            back = df.select(*sorted({c for key in keys for c in key})) if keys else df.select()
            written = q.metric_frame(back, keys, {}).first().asDict()
            if written["rows"] == values["rows"]:
                on_write.append(name)
                return {**values, **written}
            log.warning("gate %s: %s has %d rows but %d were observed on its write; reading it back",
                        stage, name, written["rows"], values["rows"])
        elif seen:
            log.warning("gate %s: the checks observed on %s's write did not arrive; reading it back", stage, name)
        return q.metric_frame(df, meta.get("unique", []), meta.get("metrics", {}),
                              compiled.aggregates).first().asDict()

    def validate(name: str, uri: str) -> None:
        suite, part = load_suite(name), (partitions or {}).get(name, day)
        meta = suite.get("meta", {})
        df = storage.read_delta(spark, uri).where(F.col(meta["partition"]) == F.lit(part))
        rows, metric_exps = q.split_suite(suite, df.columns)
        compiled = rc.compile_suite(rows, _parameters(cfg, day, part), df.columns)
        failures.extend(f"{name}: {text}" for text in compiled.missing)
        # Schema checks on zero rows: GX reads the schema, not the partition.
        check(name, "spark", compiled.schema, df.limit(0), part, ROW_FORMAT)
        values = partition_values(name, df, meta, compiled)
        metrics_of[name] = {k: v for k, v in values.items() if k not in compiled.aggregates}
        since = (volume_since or {}).get(name)
        history = [] if since is not None and part < since else _history(
            spark, wh, name, part, cfg.quality.trailing_days, since)
        values = q.with_volume(rc.with_shares(values, compiled), meta.get("volume", []), history,
                               cfg.quality.min_trailing_days)
        check(f"{name}.metrics", "pandas", compiled.expectations + metric_exps, pd.DataFrame([values]), part,
              METRIC_FORMAT, compiled, values)

    for name, uri in written.items():
        try:
            validate(name, uri)
        except Exception as err:
            log.exception("gate %s: validating %s failed", stage, name)
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            failures.append(f"{name}: the checks could not run ({type(err).__name__}: {first})")
            metrics_of.pop(name, None)
    if report is not None:
        suite = load_suite("run_report")
        values = q.report_metrics(report)
        metrics_of["run_report"] = values
        values = q.with_volume(values, suite.get("meta", {}).get("volume", []),
                               _history(spark, wh, "run_report", day, cfg.quality.trailing_days),
                               cfg.quality.min_trailing_days)
        check("run_report", "pandas", q.split_suite(suite, list(values))[1], pd.DataFrame([values]), day,
              METRIC_FORMAT)
    watched = None
    if stage in anomalies.STAGES:
        watched = {**{n: anomalies.numeric(v) for n, v in metrics_of.items()}, **(extra_metrics or {})}
        if report is not None:
            watched["rates"] = watch.report_rates(report)
        watch_started = time.monotonic()
        try:
            anomaly_summary = check_anomalies(spark, ctx, cfg, wh, stage, day, watched, ids, failures, warnings)
        except Exception as err:   # the watch must not stop a night its suites passed
            log.exception("gate %s: the anomaly checks could not run", stage)
            warnings.append(f"{anomalies.SUITE}: the checks could not run ({type(err).__name__}: {err})")
            anomaly_summary = {"checked": 0, "flags": [], "too_little_history": [], "error": str(err)}
        watch_seconds = time.monotonic() - watch_started
    docs_since = time.time()
    docs_started = time.monotonic()
    ctx.build_data_docs(resource_identifiers=ids)
    site = data_docs_index(root).removesuffix("/index.html")
    docs_assets.make_offline(site, docs_assets.pages_since(site, docs_since))   # readable without the internet
    docs_seconds = time.monotonic() - docs_started
    summary = {"stage": stage, "date": day.isoformat(), "passed": not failures, "failures": failures,
               "warnings": warnings, "results": f"{root}/gx/uncommitted/validations",
               "data_docs": data_docs_index(root),
               "summary": f"{root}/runs/dt={day.isoformat()}/{stage}.json",
               "checked_on_write": sorted(on_write)}
    if failures:
        summary["rolled_back"] = restore(spark, {**written, **(unvalidated or {})}, versions_before)
        for text in failures:
            log.error("gate %s FAILED: %s", stage, text)
    else:
        for name, values in metrics_of.items():
            part = (partitions or {}).get(name, day)
            storage.write_json(spark, metrics_uri(wh, name, part),
                               {k: v for k, v in values.items() if isinstance(v, (int, float)) or v is None})
        summary["tables"] = {n: {"delta_version": v} for n, v in table_versions(spark, written).items()}
        if watched is not None:
            recording = time.monotonic()
            try:
                anomaly_summary["recorded"] = anomalies.record(spark, wh, day, stage, watched)
            except Exception as err:   # published already: a lost history row is reported, not fatal
                log.exception("gate %s: could not record the night's metrics in %s", stage,
                              anomalies.history_uri(wh))
                warnings.append(f"{anomalies.SUITE}: the night's metrics were not recorded ({type(err).__name__})")
            watch_seconds += time.monotonic() - recording
    if watched is not None:
        summary["anomalies"] = {**anomaly_summary, "seconds": round(watch_seconds, 2)}
    for text in warnings:
        log.warning("gate %s warning: %s", stage, text)
    summary["seconds"] = round(time.monotonic() - started, 2)
    summary["data_docs_seconds"] = round(docs_seconds, 2)
    storage.write_json(spark, summary["summary"], summary)
    finish(spark, cfg, stage, day)
    log.info("gate %s dt=%s %s in %.1fs (%d warnings); data docs %s", stage, day,
             "passed" if not failures else "FAILED", summary["seconds"], len(warnings), summary["data_docs"])
    if failures:
        raise GateFailed(summary)
    return summary


def check_anomalies(spark: SparkSession, ctx, cfg: AppConfig, wh: Warehouse, stage: str, day: date,
                    metrics: Mapping[str, Mapping[str, Any]], ids: list, failures: list[str],
                    warnings: list[str]) -> dict:
    """The anomaly suite (expectations/anomalies.json) on the night's metrics against their history; its failed
    checks join the gate's failures (critical) or warnings. Returns the flags and the metrics with too little
    history for the report."""
    import pandas as pd

    conf = anomalies.settings()
    row, info, expectations = anomalies.prepare(spark, wh, day, stage, metrics, conf)
    flags = []
    # GX validates the statistics outside their bounds (the failures, kept in Data Docs with the gate's others);
    # one inside its bounds passes without a GX run: ~100 checks cost GX seconds a night, for nothing to show.
    outside = [e for e in expectations if anomalies.outside(row.get(e["kwargs"]["column"]), e["kwargs"])]
    if outside:
        result = _checkpoint(ctx, "pandas", f"{anomalies.SUITE}.{stage}", outside, METRIC_FORMAT).run(
            batch_parameters={"dataframe": pd.DataFrame([row])},
            expectation_parameters=_parameters(cfg, day, day))
        for vid, run in result.run_results.items():
            ids.append(vid)
            for r in run.results:
                if r.success:
                    continue
                conf_ = r.expectation_config
                level = q.severity({"meta": conf_.meta or {}})
                column = conf_.kwargs["column"]
                flag = {**anomalies.describe(column, conf_.kwargs, info), "severity": level}
                flags.append(flag)
                (warnings if level == q.WARNING else failures).append(f"{anomalies.SUITE}: {flag['text']}")
    short = anomalies.too_little_history(info, expectations)
    if short:
        log.info("gate %s: %d metric(s) with too little history (%d nights needed), not judged yet: %s", stage,
                 len(short), conf["min_history"], ", ".join(short[:5]) + (" ..." if len(short) > 5 else ""))
    return {"checked": len({e["kwargs"]["column"] for e in expectations}), "flags": flags,
            "too_little_history": short}


def plan_uris(cfg: AppConfig, tables: Mapping[str, str]) -> dict[str, str]:
    """A plan's tables (name -> path under the warehouse) as URIs."""
    root = Warehouse(cfg.paths.warehouse).root
    return {name: f"{root}/{path}" for name, path in tables.items()}


def begin_gate(spark: SparkSession, cfg: AppConfig, plan: GatePlan, day: date) -> dict[str, int | None]:
    """``rollback.begin`` for every table ``plan`` checks or rolls back: the versions its gate restores."""
    return begin(spark, cfg, plan.stage, day, plan_uris(cfg, {**plan.checked, **plan.unvalidated}),
                 partitions=plan.partitions or None, report=plan.report)


def run_gate(spark: SparkSession, cfg: AppConfig, plan: GatePlan, day: date, versions: Mapping[str, int | None],
             report: Mapping[str, Any] | None = None, observed: Mapping[str, ObservedChecks] | None = None,
             extra_metrics: Mapping[str, Mapping[str, Any]] | None = None) -> dict:
    """``gate`` on a stage's plan (pipelines/gates.py); ``report`` is checked when the plan says so."""
    return gate(spark, cfg, plan.stage, day, plan_uris(cfg, plan.checked), versions,
                report if plan.report else None, partitions=plan.partitions or None, observed=observed,
                volume_since=plan.volume_since or None, unvalidated=plan_uris(cfg, plan.unvalidated) or None,
                extra_metrics=extra_metrics)
