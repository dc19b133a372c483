"""The stage behind `jobs/catalog.py`: the feature catalog from the declarations, gold, the last training set and
the champion's MLflow runs.

How to run it, and what it shows, is that entry point's docstring (`--help`)."""
from __future__ import annotations

import logging
from datetime import date

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from jobs.runtime import storage
from jobs.runtime.layout import Warehouse, resolve_uri
from pipelines import catalog, declarations
from pipelines.config import AppConfig
from pipelines.train.gate import ABLATION_PREFIX

log = logging.getLogger("ctr.catalog")


def first_data(spark: SparkSession, wh: Warehouse) -> dict[str, date]:
    """Group -> the first as-of day whose gold snapshot holds a key of it."""
    if not storage.is_delta(spark, wh.gold("features")):
        return {}
    rows = storage.read_delta(spark, wh.gold("features")).groupBy("entity").agg(F.min("as_of_date").alias("d"))
    return {r["entity"]: r["d"] for r in rows.collect()}


def training_set_shares(spark: SparkSession, cfg: AppConfig, wh: Warehouse,
                        table: str) -> tuple[dict[str, tuple[float, float | None]], str | None]:
    """Feature -> (null share, default share) over every row of the training set, and which table version.

    Default = what a row gets when its key has no history: 0 for counts, the group's prior
    mean of that day for rates (the gold/priors row of event day - snapshot_lag_days; a row
    that landed before its event day saw the day before's, so it may count as not default),
    null for a last-seen recency; none for contextual features.
    """
    if not storage.is_delta(spark, table):
        return {}, None
    from delta.tables import DeltaTable

    version = DeltaTable.forPath(spark, table).history(1).first()["version"]
    rows = spark.read.format("delta").option("versionAsOf", version).load(table)
    decl, lag = cfg.gold.features, cfg.training_set.snapshot_lag_days
    history = {f.name: f for f in declarations.history_features(decl) if f.name in rows.columns}
    rated = sorted({(f.group, f.rate, f.window) for f in history.values() if f.rate})
    if rated and storage.is_delta(spark, wh.gold("priors")):
        priors = storage.read_delta(spark, wh.gold("priors"))
        means = priors.groupBy(F.col("as_of_date").alias("__day")).agg(*[
            F.first(F.when((F.col("entity") == g) & (F.col("rate") == r) & (F.col("window_days") == w),
                           F.col("mean")), ignorenulls=True).alias(f"__m_{g}_{r}_{w}") for g, r, w in rated])
        rows = rows.join(F.broadcast(means), on=F.date_sub(F.col("event_date"), lag) == F.col("__day"), how="left")
    same_day = declarations.same_day_features(decl)

    def default(name: str) -> Column | None:
        f = history.get(name)
        if name in same_day or (f and f.window and not f.rate):
            return F.col(name) == 0
        if f and f.rate:
            mean = f"__m_{f.group}_{f.rate}_{f.window}"
            return F.abs(F.col(name) - F.col(mean)) < 1e-9 if mean in rows.columns else None
        if f:   # last seen: no history leaves it null
            return F.col(name).isNull()
        return None

    names = [n for n in declarations.feature_columns(decl) if n in rows.columns]
    aggs = []
    for n in names:
        aggs.append(F.avg(F.col(n).isNull().cast("double")).alias(f"null:{n}"))
        d = default(n)
        if d is not None:
            aggs.append(F.avg(F.coalesce(d, F.lit(False)).cast("double")).alias(f"default:{n}"))
    got = rows.agg(*aggs).first().asDict() if aggs else {}
    return {n: (got[f"null:{n}"], got.get(f"default:{n}")) for n in names}, f"{table}@v{version}"


def champion_value(cfg: AppConfig) -> tuple[dict[str, float], dict[str, list[tuple[str, float]]], str | None]:
    """The champion's importance per feature, and per feature the ablations of its training run that left it
    out with their NE change against the full XGBoost of that run; with which champion."""
    import mlflow
    from mlflow import MlflowClient

    from jobs.runtime import tracking
    from pipelines.train.scorers import importance

    tr = cfg.train
    tracking.setup(tr.experiment)
    current = tracking.champion_model(tr.registered_model)
    if current is None:
        return {}, {}, None
    model, version = current
    client = MlflowClient()
    run = client.get_run(client.get_model_version(tr.registered_model, version).run_id)
    about = f"{tr.registered_model} v{version} ({model.family}, run {run.info.run_id})"
    value: dict[str, list[tuple[str, float]]] = {}
    training = run.data.tags.get("training_id")
    if not training:
        log.info("the champion's run has no training_id tag (trained before the catalog): no ablation values")
        return importance(model), value, about
    siblings = {r.data.tags.get("mlflow.runName"): r for r in client.search_runs(
        [run.info.experiment_id], f"tags.training_id = '{training}'")}
    full = siblings.get("xgboost")
    if full is None or "ne" not in full.data.metrics:
        return importance(model), value, about
    full_features = set(mlflow.artifacts.load_dict(f"runs:/{full.info.run_id}/features.json")["numeric"])
    for name, r in sorted(siblings.items()):
        if not (name or "").startswith(ABLATION_PREFIX) or "ne" not in r.data.metrics:
            continue
        kept = mlflow.artifacts.load_dict(f"runs:/{r.info.run_id}/features.json")
        delta = r.data.metrics["ne"] - full.data.metrics["ne"]
        for feature in sorted(full_features - set(kept["numeric"]) - set(kept["categorical"])):
            value.setdefault(feature, []).append((name[len(ABLATION_PREFIX):], delta))
    return importance(model), value, about


def run_catalog(spark: SparkSession, cfg: AppConfig, out: str | None = None) -> dict[str, str]:
    """Write catalog/features.md and features.html under the warehouse (or ``out``); returns their paths."""
    wh = Warehouse(cfg.paths.warehouse)
    table = resolve_uri(cfg.paths.warehouse, cfg.train.table)
    shares, table_version = training_set_shares(spark, cfg, wh, table)
    imp, ablation, champion = champion_value(cfg)
    rows = catalog.entries(cfg.gold.features, first_data(spark, wh), shares, imp, ablation)
    about = [f"declarations: {cfg.gold.features.path} ({len(rows)} features in {len(cfg.gold.features.groups)} "
             "groups and the context)",
             f"null and default shares: {table_version or 'no training set yet'}",
             f"importance (share of total gain) and NE without it (ablation NE minus the full XGBoost's): "
             f"{champion or 'no champion yet'}"]
    folder = out or f"{wh.root}/catalog"
    paths = {"markdown": f"{folder}/features.md", "html": f"{folder}/features.html"}
    storage.write_text(spark, paths["markdown"], catalog.markdown(rows, about))
    storage.write_text(spark, paths["html"], catalog.html_page(rows, about))
    log.info("feature catalog: %d features -> %s", len(rows), paths["html"])
    return paths
