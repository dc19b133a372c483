"""Training/serving parity, measured: how much the training set's features differed from a scorer's under the
old rule (snapshot as of the impression's own day, same-day counts over everything that ever landed), and what
the parity rule (snapshot_lag_days 1, counts over what had landed) costs in NE.

    .venv/bin/python bench/parity_bench.py --warehouse data/warehouse [--config conf/overlays/demo_training.yaml]

Works on a copy of a warehouse whose nights have run (the demo's): builds its training set under both rules
on the copy, then trains XGBoost on each (same splits, same settings, a throwaway MLflow store) and reports
  - the share of training rows whose feature vector under the old rule differs from the one under the parity
    rule - which is the vector scoring used (tests/test_nightly_training.py proves the two equal), per split;
  - the share per feature column;
  - the test-day NE, AUC and calibration of each model.
Writes bench/results/parity-<time>.{json,md}. A benchmark, not a test: nothing here asserts.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from jobs.runtime.config import REPO_ROOT, load_config

RESULTS = REPO_ROOT / "bench" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", required=True, help="a warehouse whose nights have run (local folder)")
    parser.add_argument("--config", action="append", default=[], help="overlay(s) the nights ran with")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    if not (Path(args.warehouse) / "silver" / "labels").is_dir():
        parser.error(f"{args.warehouse} has no silver/labels: run the nights first (make demo)")

    from pyspark.sql import functions as F

    from jobs.runtime.spark import get_spark
    from jobs.stages.train import run_train
    from jobs.stages.training_set import feature_columns, run_training_set

    work = Path(args.work or tempfile.mkdtemp(prefix="parity-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work}/mlflow.db"
    base = load_config("local", args.config)
    spark = get_spark(base.spark)
    out: dict = {"warehouse": str(Path(args.warehouse).resolve()), "rules": {}}
    tables = {}
    for lag in (1, 0):
        wh = work / f"lag{lag}"
        if wh.exists():
            shutil.rmtree(wh)
        shutil.copytree(args.warehouse, wh, ignore=shutil.ignore_patterns("training_set*", "scores", "mlruns*"))
        cfg = replace(base, paths=replace(base.paths, warehouse=str(wh)),
                      training_set=replace(base.training_set, snapshot_lag_days=lag, neg_keep_rate=1.0),
                      train=replace(base.train, models=("xgboost",), ablation=False, ablations=(),
                                    registered_model=f"parity_lag{lag}", experiment="parity"))
        if lag == 0:   # the old rule counted every impression of the day, whenever it landed
            import jobs.stages.training_set as ts_job
            original = ts_job.with_same_day_counts
            ts_job.with_same_day_counts = (lambda rows, entities, same_day, _original=original, **_:
                                           _original(rows, entities, same_day, None, 0))
        try:
            started = time.monotonic()
            manifest = run_training_set(spark, cfg)
            model = run_train(spark, cfg)[0]
        finally:
            if lag == 0:
                ts_job.with_same_day_counts = original
        tables[lag] = spark.read.format("delta").load(manifest["path"])
        out["rules"][f"lag{lag}"] = {"snapshot_lag_days": lag, "rows": manifest["rows"],
                                     "test_days": manifest["splits"]["test"],
                                     "ne": model["ne"], "auc": model["auc"], "calibration": model["calibration"],
                                     "seconds": round(time.monotonic() - started, 1)}
    columns = feature_columns(base)
    old = tables[0].select("impression_id", "split", *[F.col(c).alias(f"old_{c}") for c in columns])
    new = tables[1].select("impression_id", *columns)
    joined = old.join(new, on="impression_id")
    differs = {c: ~F.col(f"old_{c}").eqNullSafe(F.col(c)) for c in columns}
    any_diff = F.lit(False)
    for d in differs.values():
        any_diff = any_diff | d
    by_split = {r["split"]: {"rows": r["n"], "differing": r["d"], "share": r["d"] / r["n"]}
                for r in joined.groupBy("split").agg(F.count(F.lit(1)).alias("n"),
                                                     F.sum(any_diff.cast("int")).alias("d")).collect()}
    per_column = joined.agg(*[F.avg(d.cast("double")).alias(c) for c, d in differs.items()]).first().asDict()
    out["differing_rows"] = by_split
    out["differing_share_by_column"] = {c: round(v, 4) for c, v in sorted(per_column.items(), key=lambda kv: -kv[1])}
    out["ne_cost_of_parity"] = out["rules"]["lag1"]["ne"] - out["rules"]["lag0"]["ne"]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"parity-{stamp}.json").write_text(json.dumps(out, indent=2, default=str))
    lines = ["# Training/serving parity", "", f"Warehouse: `{out['warehouse']}`", "",
             "| rule | snapshot | same-day counts | test NE | AUC | calibration |", "|---|---|---|---:|---:|---:|",
             f"| old | as of the impression's day | every impression of the day | {out['rules']['lag0']['ne']:.4f} "
             f"| {out['rules']['lag0']['auc']:.4f} | {out['rules']['lag0']['calibration']:.4f} |",
             f"| parity (default) | as of the day before | landed by the row's arrival | "
             f"{out['rules']['lag1']['ne']:.4f} | {out['rules']['lag1']['auc']:.4f} | "
             f"{out['rules']['lag1']['calibration']:.4f} |", "",
             f"NE cost of parity: {out['ne_cost_of_parity']:+.4f}", "",
             "Training rows whose old-rule features differ from what scoring used:", "",
             "| split | rows | differing | share |", "|---|---:|---:|---:|",
             *[f"| {k} | {v['rows']:,} | {v['differing']:,} | {v['share']:.3f} |" for k, v in sorted(by_split.items())],
             "", "Most often differing columns: " + ", ".join(
                 f"{c} {v:.3f}" for c, v in list(out["differing_share_by_column"].items())[:8])]
    (RESULTS / f"parity-{stamp}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
