"""Training benchmark: distributed against single-process XGBoost and LightGBM, then every model's results.

    .venv/bin/python bench/train_bench.py [--rows 500000] [--rounds 100] [--skip-table]

On one synthetic training set (jobs/dev/synthetic.py, known truth) with
the same parameters and early stopping on the same validation day:
- xgboost.spark with train.num_workers (2) workers vs xgboost.train with 2 threads;
- LightGBM data-parallel in a barrier stage (2 workers) vs lgb.train with 2 threads;
timing the fit only (data already in memory and partitioned for both), then AUC on
the test day. Then jobs/train.py's run_train on the same table gives the table of
AUC, log loss, NE, GAUC, calibration and share of achievable log-loss reduction
(MLflow store: bench/results/mlflow.db). Results: bench/results/train-<time>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import replace

from jobs.runtime.config import REPO_ROOT, load_config

RESULTS = REPO_ROOT / "bench" / "results"


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def single_process(frame, tr, fs):
    """xgboost.train and lgb.train with 2 threads on pandas: (name -> (seconds, rounds, test AUC))."""
    import lightgbm as lgb
    import xgboost as xgb

    from pipelines.train.features import matrix
    from pipelines.train.lgbm_barrier import lgbm_params
    from pipelines.train.metrics import auc
    from pipelines.train.xgb import xgb_params

    part = {s: frame[frame["split"] == s] for s in ("train", "validation", "test")}
    x = {s: matrix(p, fs.columns) for s, p in part.items()}
    y = {s: p["label"].to_numpy() for s, p in part.items()}
    params = {**xgb_params(tr), "objective": "binary:logistic", "nthread": 2}
    params["seed"] = params.pop("random_state")
    dtrain = xgb.DMatrix(x["train"], y["train"], missing=float("nan"))
    dvalid = xgb.DMatrix(x["validation"], y["validation"], missing=float("nan"))
    booster, xs = timed(lambda: xgb.train(params, dtrain, tr.num_rounds, evals=[(dvalid, "validation")],
                                          early_stopping_rounds=tr.early_stopping_rounds, verbose_eval=False))
    booster = booster[: booster.best_iteration + 1]
    xgb_auc = auc(y["test"], booster.predict(xgb.DMatrix(x["test"], missing=float("nan"))))
    lparams = {**lgbm_params(tr, fs), "num_threads": 2}
    ltrain = lgb.Dataset(x["train"], y["train"])
    lvalid = lgb.Dataset(x["validation"], y["validation"], reference=ltrain)
    model, ls = timed(lambda: lgb.train(lparams, ltrain, tr.num_rounds, valid_sets=[lvalid],
                                        callbacks=[lgb.early_stopping(tr.early_stopping_rounds, verbose=False)]))
    lgb_auc = auc(y["test"], model.predict(x["test"], num_iteration=model.best_iteration))
    return {"xgboost": (xs, booster.num_boosted_rounds(), xgb_auc),
            "lightgbm": (ls, model.best_iteration, lgb_auc)}


def distributed(spark, table, frame, tr, fs):
    """xgboost.spark and the LightGBM barrier stage, 2 workers each: (name -> (seconds, rounds, test AUC))."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from pipelines.train.features import prepare
    from pipelines.train.lgbm_barrier import check_partitions, train_lgbm
    from pipelines.train.metrics import auc
    from pipelines.train.xgb import balanced, train_and_validation, train_xgb

    data = prepare(spark.read.format("delta").load(table), tr, fs)
    fit = balanced(train_and_validation(data, tr), tr.num_workers).persist(StorageLevel.MEMORY_AND_DISK)
    parts = balanced(data.where(F.col("split") == "train"), tr.num_workers).persist(StorageLevel.MEMORY_AND_DISK)
    fit.count()
    check_partitions(parts, tr.num_workers)
    valid = frame[frame["split"] == "validation"]
    test = frame[frame["split"] == "test"]
    (xgb_scorer, curves), xs = timed(lambda: train_xgb(fit, tr, fs))
    (lgb_scorer, lcurves), ls = timed(lambda: train_lgbm(parts, valid, tr, fs))
    fit.unpersist()
    parts.unpersist()
    return {"xgboost": (xs, xgb_scorer.booster().num_boosted_rounds(),
                        auc(test["label"], xgb_scorer.predict_raw(test))),
            "lightgbm": (ls, len(next(iter(lcurves.values()))) - tr.early_stopping_rounds,
                         auc(test["label"], lgb_scorer.predict_raw(test)))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--skip-table", action="store_true", help="only the distributed vs single-process timings")
    args = parser.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from jobs.dev.synthetic import synthetic_training_set
    from jobs.runtime.spark import get_spark
    from jobs.stages.train import results_table, run_train
    from pipelines.train.features import resolve_features

    root = RESULTS / "train-data"
    shutil.rmtree(root, ignore_errors=True)
    cfg = load_config("local", [], {"paths": {"landing": str(root / "landing"), "warehouse": str(root / "warehouse")},
                                    "spark": {"driver_memory": args.driver_memory}})
    cfg = replace(cfg, train=replace(cfg.train, num_rounds=args.rounds, early_stopping_rounds=10))
    tr = cfg.train
    spark = get_spark(cfg.spark, "local[2]", {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4"})
    frame = synthetic_training_set(args.rows, days=7, seed=11)
    table, truth = f"{root}/warehouse/gold/training_set", f"{root}/landing/_truth/ground_truth"
    sdf = spark.createDataFrame(frame.drop(columns=["p_click"]))
    sdf.repartition(tr.num_workers).write.format("delta").save(table)
    spark.createDataFrame(frame[["impression_id", "p_click"]]).write.format("delta").save(truth)
    fs = resolve_features(sdf, tr)
    train_rows = int((frame["split"] == "train").sum())
    single = single_process(frame, tr, fs)
    dist = distributed(spark, table, frame, tr, fs)
    comparison = {k: {"single_s": single[k][0], "single_rounds": single[k][1], "single_auc": single[k][2],
                      "spark_s": dist[k][0], "spark_rounds": dist[k][1], "spark_auc": dist[k][2],
                      "time_ratio": dist[k][0] / single[k][0], "auc_diff": dist[k][2] - single[k][2]}
                  for k in single}
    print(f"\n{args.rows} rows ({train_rows} train), {args.rounds} rounds max, early stopping 10")
    print("| model | single-process (2 threads) | distributed (2 workers) | time ratio "
          "| AUC single | AUC dist | diff |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k, c in comparison.items():
        print(f"| {k} | {c['single_s']:.1f} s ({c['single_rounds']} rounds) | {c['spark_s']:.1f} s "
              f"({c['spark_rounds']} rounds) | {c['time_ratio']:.2f}x | {c['single_auc']:.4f} | "
              f"{c['spark_auc']:.4f} | {c['auc_diff']:+.4f} |")
    table_rows = []
    if not args.skip_table:
        os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{RESULTS}/mlflow.db")
        table_rows = run_train(spark, cfg, table, truth)
        print(results_table(table_rows))
    out = RESULTS / f"train-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"rows": args.rows, "train_rows": train_rows, "comparison": comparison,
                               "results": table_rows}, indent=2, default=str))
    print(f"written {out}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
