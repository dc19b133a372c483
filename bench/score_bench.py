"""Scoring throughput and a run of score-monitoring days, on a warehouse whose nights have run and that has a
champion (the demo's: `make demo`).

    make bench-score      (after make demo), or, with PYSPARK_PYTHON=.venv/bin/python for the Python workers:
    .venv/bin/python bench/score_bench.py --warehouse data/warehouse [--config conf/overlays/demo_training.yaml]
        [--start YYYY-MM-DD] [--end YYYY-MM-DD] [--next-day-impressions N]

For every landing day start .. end (default: every day silver holds), jobs/score.run_score scores the valid
impressions that landed that day with the champion (timed: rows per second); then, for every event day whose
labels have closed, jobs/score.monitor_day evaluates the stored scores against them (the rows
score.monitoring_table gets). The champion's own train, validation and test days are marked: its figures on
them are not out of sample.

With --next-day-impressions N (`make bench-score IMPRESSIONS=1000000`) it also measures scoring at a given
size: on a copy of the warehouse (the original is left as it was), it generates N impressions for the day after
the last landed day into a scratch landing, runs that day's night (no training, no nightly scoring, no
day-over-day volume gate: the day is N / the demo's size times its neighbours) and then
times scoring it. Writes bench/results/score-<time>.{json,md}. A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from jobs.runtime.config import REPO_ROOT, load_config

RESULTS = REPO_ROOT / "bench" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--config", action="append", default=[])
    parser.add_argument("--start", type=date.fromisoformat)
    parser.add_argument("--end", type=date.fromisoformat)
    parser.add_argument("--next-day-impressions", type=int, default=0,
                        help="also generate and night a next day of this many impressions on a copy, and score it")
    parser.add_argument("--work", default=None, help="scratch folder for --next-day-impressions (default: temporary)")
    args = parser.parse_args(argv)
    if args.next_day_impressions and args.next_day_impressions < 1000:
        parser.error("--next-day-impressions must be at least 1000")
    if not (Path(args.warehouse) / "silver" / "impressions").is_dir():
        parser.error(f"{args.warehouse} has no silver/impressions: run the nights first (make demo)")

    from dataclasses import replace

    from mlflow.tracking import MlflowClient
    from pyspark.sql import functions as F

    from jobs.runtime import storage, tracking
    from jobs.runtime.layout import Warehouse, resolve_uri
    from jobs.runtime.spark import get_spark
    from jobs.stages.score import monitor_day, run_score

    cfg = load_config("local", args.config)
    cfg = replace(cfg, paths=replace(cfg.paths, warehouse=args.warehouse))
    wh = Warehouse(cfg.paths.warehouse)
    spark = get_spark(cfg.spark)
    days = sorted(r[0] for r in storage.read_delta(spark, wh.silver("impressions")).select("dt").distinct().collect())
    days = [d for d in days if (not args.start or d >= args.start) and (not args.end or d <= args.end)]
    closed = {r[0] for r in storage.read_delta(spark, wh.silver("labels")).select("event_date").distinct().collect()}
    tracking.setup(cfg.train.experiment)
    champion = MlflowClient().get_model_version_by_alias(cfg.train.registered_model, "champion")
    manifest = json.loads(storage.read_text(spark, wh.gold("training_set.json")))
    role = {}
    for split, (lo, hi) in manifest["splits"].items():
        d = date.fromisoformat(lo)
        while d <= date.fromisoformat(hi):
            role[d] = split
            d += timedelta(days=1)
    out = {"warehouse": str(Path(args.warehouse).resolve()), "model": cfg.train.registered_model,
           "version": champion.version, "tracking_uri": os.environ.get("MLFLOW_TRACKING_URI", "(default)"),
           "scoring": [], "monitoring": []}
    for day in days:
        try:
            result = run_score(spark, cfg, day)
        except ValueError as err:   # a landing day without the snapshot it needs (the first of a history)
            print(f"{day}: not scored: {err}")
            continue
        out["scoring"].append({"dt": day.isoformat(), "rows": result["rows"], "seconds": result["seconds"],
                               "rows_per_second": round(result["rows"] / result["seconds"], 1)})
    scored_days = storage.read_delta(spark, resolve_uri(cfg.paths.warehouse, cfg.train.scores_table)).select(
        "event_date").distinct().where(F.col("event_date").isNotNull()).collect()
    for event_day in sorted(r[0] for r in scored_days if r[0] in closed):
        m = monitor_day(spark, cfg, event_day, max(days))
        if m:
            out["monitoring"].append({**m, "role": role.get(event_day, "out of sample")})
    if args.next_day_impressions:
        out["next_day"] = next_day(spark, cfg, max(days) + timedelta(days=1), args.next_day_impressions, args.work)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"score-{stamp}.json").write_text(json.dumps(out, indent=2, default=str))
    f = lambda x: "n/a" if x is None else f"{x:.4f}"
    lines = [f"# Scoring with {out['model']} v{out['version']}", "", f"Warehouse: `{out['warehouse']}`", "",
             "| landed | rows | seconds | rows/s |", "|---|---:|---:|---:|",
             *[f"| {s['dt']} | {s['rows']:,} | {s['seconds']} | {s['rows_per_second']:,} |" for s in out["scoring"]],
             "", "| event day | the champion's | rows | coverage | unlabelled | NE | calibration | AUC | warnings |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|",
             *[f"| {m['event_date']} | {m['role']} | {m['rows']:,} | {m['coverage']:.3f} | {m['unlabelled']:,} | "
               f"{f(m['ne'])} | "
               f"{f(m['calibration'])} | {f(m['auc'])} | {len(m['warnings'])} |" for m in out["monitoring"]]]
    if "next_day" in out:
        n = out["next_day"]
        lines += ["", f"A generated next day ({n['dt']}, {n['generated_impressions']:,} impressions asked) on a copy: "
                  f"night {n['night_seconds']} s; scored {n['rows']:,} valid landed impressions in {n['seconds']} s "
                  f"= {n['rows_per_second']:,} rows/s"]
    (RESULTS / f"score-{stamp}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def next_day(spark, cfg, day: date, impressions: int, work: str | None) -> dict:
    """Copy the warehouse, land ``impressions`` generated impressions for ``day``, run its night, time scoring it."""
    import shutil
    import tempfile
    from dataclasses import replace

    from jobs.dev.generate import run_generate
    from jobs.stages.nightly import run_nightly
    from jobs.stages.score import run_score

    scratch = Path(work or tempfile.mkdtemp(prefix="score-bench-"))
    wh, landing = scratch / "warehouse", scratch / "landing"
    if wh.exists():
        shutil.rmtree(wh)
    shutil.copytree(cfg.paths.warehouse, wh)
    cfg = replace(cfg, paths=replace(cfg.paths, warehouse=str(wh), landing=str(landing)),
                  generator=replace(cfg.generator, start_date=day, days=1, impressions_per_day=impressions),
                  score=replace(cfg.score, nightly=False),
                  # A day of N impressions after days of the demo's size is rightly refused by the day-over-day
                  # volume gate (8x the trailing mean at 1M); on this copy the volume comparison is off.
                  quality=replace(cfg.quality, min_trailing_days=10**6))
    run_generate(spark, cfg, overwrite=True)
    started = time.monotonic()
    run_nightly(spark, cfg, day, train=False)
    night = round(time.monotonic() - started, 1)
    result = run_score(spark, cfg, day)
    return {"dt": day.isoformat(), "generated_impressions": impressions, "work": str(scratch),
            "night_seconds": night, "rows": result["rows"], "seconds": result["seconds"],
            "rows_per_second": round(result["rows"] / result["seconds"], 1)}


if __name__ == "__main__":
    sys.exit(main())
