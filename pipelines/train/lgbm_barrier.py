"""Distributed LightGBM: its own data-parallel learner, one Spark barrier stage.

Each of ``num_workers`` barrier tasks holds one partition of the training rows.
The tasks pick a free port each, exchange ``host:port`` through
BarrierTaskContext.allGather, and call lgb.train with LightGBM's
``machines`` / ``num_machines`` / ``local_listen_port`` and
``tree_learner=data``: LightGBM then syncs bin boundaries and histograms over
its own sockets. Spark only schedules the tasks together and, being a barrier
stage, kills them all if one fails.

Ecosystem traps handled: an empty partition makes LightGBM wait for a peer
that never speaks, so partitions are counted before the stage starts and an
empty one is refused; ports are chosen free by each task (no fixed port to
collide with another job); LightGBM's ``time_out`` bounds every socket wait;
a worker failure is re-raised with the worker id and the machine list.
Early stopping: every worker holds the same validation rows (a bounded
sample), so all compute the same metric and stop at the same round.
"""
from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.config import TrainConfig
from pipelines.train.features import FeatureSet, matrix
from pipelines.train.scorers import LgbmScorer

RESULT_SCHEMA = "worker int, model string, curves string"


def lgbm_params(tr: TrainConfig, fs: FeatureSet, native: tuple[str, ...] | None = None) -> dict:
    """LightGBM parameters shared by the distributed and single-process runs (bench).

    ``native``: the categorical columns LightGBM splits by category (default: all of them);
    the others it splits as numbers, their codes being frequency ranks (encoding.fit).
    """
    native = fs.categorical if native is None else native
    return {"objective": "binary", "metric": "binary_logloss", "learning_rate": tr.learning_rate,
            "num_leaves": tr.num_leaves, "max_depth": tr.max_depth, "min_sum_hessian_in_leaf": tr.min_child_weight,
            "min_data_in_leaf": tr.min_child_samples,
            "lambda_l2": tr.reg_lambda, "seed": tr.seed, "deterministic": True, "verbose": -1,
            # LightGBM treats NaN as missing (use_missing); zero_as_missing stays off: 0.0 is a value.
            "use_missing": True, "zero_as_missing": False,
            "categorical_feature": [i for i, c in enumerate(fs.columns) if c in fs.categorical and c in native]}


def native_categories(fs: FeatureSet, sizes: dict[str, int], max_native: int) -> tuple[str, ...]:
    """The categorical columns with at most ``max_native`` codes (``sizes``: codes per column).

    LightGBM's native split sorts a column's categories by their gradient statistics and
    cuts the sorted list: with thousands of ids (ads, publishers) it fits the train days'
    noise (measured on bench-quality: NE 0.921 with ad and publisher ids native, 0.905
    without; docs/training.md). Larger columns go in as frequency-rank codes, split as numbers.
    """
    return tuple(c for c in fs.categorical if sizes.get(c, 0) <= max_native)


def check_partitions(data: DataFrame, num_workers: int) -> list[int]:
    """Rows per partition; raises ValueError naming the problem if any of the ``num_workers`` is empty."""
    parts = data.rdd.getNumPartitions()
    if parts != num_workers:
        raise ValueError(f"LightGBM needs exactly {num_workers} partitions, got {parts}")
    counted = dict(data.groupBy(F.spark_partition_id().alias("p")).count().collect())
    counts = [int(counted.get(p, 0)) for p in range(num_workers)]
    if min(counts) == 0:
        raise ValueError(f"LightGBM refuses to start: partition(s) {[p for p, n in enumerate(counts) if n == 0]} "
                         f"are empty (rows per partition {counts}); an empty worker would leave its peers "
                         f"waiting. Use fewer train.num_workers or more training rows.")
    return counts


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def train_lgbm(train: DataFrame, valid: pd.DataFrame, tr: TrainConfig, fs: FeatureSet,
               native: tuple[str, ...] | None = None) -> tuple[LgbmScorer, dict[str, list[float]]]:
    """Train on ``train`` (``num_workers`` non-empty partitions, see check_partitions); validate on ``valid``.

    ``native``: categorical columns split by category (lgbm_params)."""
    params = {**lgbm_params(tr, fs, native), "tree_learner": "data", "pre_partition": True, "num_threads": 1,
              "time_out": tr.lgbm_time_out_minutes}
    label, columns, rounds, patience = tr.label_col, fs.columns, tr.num_rounds, tr.early_stopping_rounds
    workers = tr.num_workers
    x_valid, y_valid = matrix(valid, columns), valid[label].to_numpy()

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import lightgbm as lgb
        from pyspark import BarrierTaskContext

        ctx = BarrierTaskContext.get()
        me = ctx.partitionId()
        pdf = pd.concat(list(batches), ignore_index=True)
        host = ctx.getTaskInfos()[me].address.split(":")[0]
        port = _free_port()
        # Every task must reach allGather, even one with no rows, or its peers wait forever.
        gathered = ctx.allGather(json.dumps({"worker": me, "addr": f"{host}:{port}", "rows": len(pdf)}))
        peers = sorted((json.loads(g) for g in gathered), key=lambda g: g["worker"])
        if any(p["rows"] == 0 for p in peers):
            raise RuntimeError(f"LightGBM worker {me}: a peer partition is empty ({peers}); refusing to start")
        machines = ",".join(p["addr"] for p in peers)
        history: dict = {}
        try:
            train_set = lgb.Dataset(matrix(pdf, columns), label=pdf[label].to_numpy(), free_raw_data=True)
            valid_set = lgb.Dataset(x_valid, label=y_valid, reference=train_set)
            booster = lgb.train({**params, "machines": machines, "num_machines": workers, "local_listen_port": port},
                                train_set, num_boost_round=rounds, valid_sets=[valid_set], valid_names=["validation"],
                                callbacks=[lgb.early_stopping(patience, verbose=False), lgb.record_evaluation(history)])
        except Exception as err:
            raise RuntimeError(f"LightGBM worker {me} of {workers} failed (machines {machines}, "
                               f"time_out {params['time_out']} min): {err}") from err
        model = booster.model_to_string(num_iteration=booster.best_iteration) if me == 0 else ""
        curves = {f"validation_{k}": v for k, v in history.get("validation", {}).items()} if me == 0 else {}
        yield pd.DataFrame({"worker": [me], "model": [model], "curves": [json.dumps(curves)]})

    rows = train.select(*columns, label).mapInPandas(run, RESULT_SCHEMA, barrier=True).collect()
    first = next(r for r in rows if r["worker"] == 0)
    return LgbmScorer(fs, first["model"]), json.loads(first["curves"])
