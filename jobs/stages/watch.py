"""Drift, each night: every training feature on the impressions that landed tonight against the last training
set's train window, and the champion's scores against its scores of the trailing nights (docs/monitoring.md).

The reference (bin edges from the train window's quantiles, the top categories, and the counts in each bin)
is computed once per training-set version from a hash sample of its train split and kept at
``<warehouse>/monitoring/drift_reference.json``; each night bins a hash sample of its landed rows (the features
a scorer could have had: jobs/stages/score.landed_rows) with the same edges in one aggregation.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.runtime import storage
from jobs.runtime.cli import UsageError
from jobs.runtime.layout import Warehouse, resolve_uri
from pipelines import watch
from pipelines.config import AppConfig

log = logging.getLogger("ctr.watch")

OTHER, MISSING = "(other)", "(missing)"
SCORE_NIGHTS = 7


def reference_uri(wh: Warehouse) -> str:
    return f"{wh.root}/monitoring/drift_reference.json"


def numeric_bin(column: str, edges: list[float]) -> Column:
    """0 for a missing value, else 1 + the number of edges below it (pipelines.watch.bin_index in Spark)."""
    c = F.col(column).cast("double")
    inside = F.lit(1)
    for e in edges:
        inside = inside + (c > F.lit(e)).cast("int")
    return F.when(c.isNull() | F.isnan(c), F.lit(0)).otherwise(inside)


def category_bin(column: str, values: list[str]) -> Column:
    """0 for a missing value, 1 + the value's rank among the reference's top ``values``, else the last bin."""
    c = F.col(column).cast("string")
    out = F.lit(len(values) + 1)
    for i, v in reversed(list(enumerate(values))):
        out = F.when(c == F.lit(v), F.lit(i + 1)).otherwise(out)
    return F.when(c.isNull(), F.lit(0)).otherwise(out)


def bin_counts(df: DataFrame, bins: dict[str, tuple[Column, int]]) -> dict[str, list[int]]:
    """Per feature, the row count in each of its bins: one aggregation for every feature."""
    binned = df.select(*[expr.alias(f"b{i}") for i, (expr, _) in enumerate(bins.values())])
    aggs = [F.sum((F.col(f"b{i}") == b).cast("long")).alias(f"b{i}_{b}")
            for i, (_, n) in enumerate(bins.values()) for b in range(n)]
    row = binned.agg(*aggs).first().asDict() if aggs else {}
    return {name: [int(row[f"b{i}_{b}"] or 0) for b in range(n)] for i, (name, (_, n)) in enumerate(bins.items())}


def spec_bins(spec: dict) -> dict[str, tuple[Column, int]]:
    out = {}
    for name, f in spec["features"].items():
        if f["kind"] == "numeric":
            out[name] = (numeric_bin(name, f["edges"]), len(f["edges"]) + 2)
        else:
            out[name] = (category_bin(name, f["values"]), len(f["values"]) + 2)
    return out


def build_reference(spark: SparkSession, cfg: AppConfig, manifest: dict) -> dict:
    """Edges, top categories and counts of the training set's train split (a hash sample of it)."""
    mon = cfg.monitoring
    train = storage.read_delta(spark, manifest["path"]).where(F.col(manifest.get("split", "split")) == "train")
    sample = train.where(watch.hash_sample(mon.drift_sample_rows, int(manifest.get("rows", {}).get("train", 0))))
    numeric = [c for c in manifest["numeric_features"] if c in train.columns]
    categorical = [c for c in manifest["categorical_features"] if c in train.columns]
    sample = sample.select(*numeric, *categorical).localCheckpoint(eager=True)
    probs = [i / mon.drift_bins for i in range(1, mon.drift_bins)]
    quantiles = sample.approxQuantile(numeric, probs, 0.001) if numeric else []
    features: dict[str, dict] = {c: {"kind": "numeric", "edges": watch.quantile_edges(q)}
                                 for c, q in zip(numeric, quantiles)}
    for c in categorical:
        top = (sample.where(F.col(c).isNotNull()).groupBy(F.col(c).cast("string").alias("v"))
               .agg(F.count(F.lit(1)).alias("n")).orderBy(F.desc("n"), "v").limit(mon.drift_categories).collect())
        features[c] = {"kind": "categorical", "values": [r["v"] for r in top]}
    spec = {"training_set_version": manifest.get("version"), "training_set": manifest["path"],
            "train_days": manifest["splits"]["train"], "features": features}
    counts = bin_counts(sample, spec_bins(spec))
    for name, c in counts.items():
        features[name]["counts"] = c
    spec["rows"] = sum(next(iter(counts.values()), [0]))
    return spec


def reference(spark: SparkSession, cfg: AppConfig, wh: Warehouse) -> dict | None:
    """The drift reference of the current training set (built and stored when the set changed); None: no set."""
    manifest_uri = resolve_uri(cfg.paths.warehouse, cfg.train.table) + ".json"
    if not storage.exists(spark, manifest_uri):
        return None
    manifest = json.loads(storage.read_text(spark, manifest_uri))
    uri = reference_uri(wh)
    if storage.exists(spark, uri):
        stored = json.loads(storage.read_text(spark, uri))
        if stored.get("training_set_version") == manifest.get("version") and \
                stored.get("training_set") == manifest.get("path"):
            return stored
    started = time.monotonic()
    spec = build_reference(spark, cfg, manifest)
    storage.write_json(spark, uri, spec)
    log.info("drift reference of training set version %s (%s rows of its train split) built in %.1fs",
             spec["training_set_version"], f"{spec['rows']:,}", time.monotonic() - started)
    return spec


def feature_drift(spec: dict, counts: dict[str, list[int]], warn: float, flag: float) -> list[dict]:
    """Per feature its PSI (numeric) or Jensen-Shannon divergence (categorical) and level, largest first."""
    out = []
    for name, f in spec["features"].items():
        ref, cur = f["counts"], counts[name]
        value = watch.psi(ref, cur) if f["kind"] == "numeric" else watch.jensen_shannon(ref, cur)
        missing = cur[0] / sum(cur) if sum(cur) else None
        out.append({"feature": name, "kind": f["kind"], "measure": "psi" if f["kind"] == "numeric" else "js",
                    "value": round(value, 4), "level": watch.drift_level(value, warn, flag),
                    "missing_share": missing, "reference_missing_share": ref[0] / sum(ref) if sum(ref) else None})
    return sorted(out, key=lambda d: -d["value"])


def score_drift(spark: SparkSession, cfg: AppConfig, day: date) -> dict | None:
    """PSI of tonight's stored scores against the same champion version's scores of the trailing nights."""
    uri = resolve_uri(cfg.paths.warehouse, cfg.train.scores_table)
    if not storage.is_delta(spark, uri):
        return None
    scores = storage.read_delta(spark, uri)
    tonight = scores.where(F.col("dt") == F.lit(day))
    version = tonight.select("model_version").limit(1).collect()
    if not version:
        return None
    version = version[0][0]
    before = scores.where(F.col("dt").between(F.lit(day - timedelta(days=SCORE_NIGHTS)), F.lit(day - timedelta(days=1)))
                          & (F.col("model_version") == F.lit(version)))
    probs = [i / cfg.monitoring.drift_bins for i in range(1, cfg.monitoring.drift_bins)]
    edges = watch.quantile_edges(before.approxQuantile("p_click", probs, 0.001))
    if not edges:
        return {"model_version": version, "status": "no earlier scores of this champion to compare with"}
    bins = {"p_click": (numeric_bin("p_click", edges), len(edges) + 2)}
    ref, cur = bin_counts(before, bins)["p_click"], bin_counts(tonight, bins)["p_click"]
    value = watch.psi(ref, cur)
    return {"model_version": version, "status": "measured", "psi": round(value, 4),
            "level": watch.drift_level(value, cfg.monitoring.drift_warn, cfg.monitoring.drift_flag),
            "reference_nights": SCORE_NIGHTS, "reference_rows": sum(ref), "rows": sum(cur)}


def run_drift(spark: SparkSession, cfg: AppConfig, day: date) -> dict:
    """The night's drift section of the run report (``status`` measured or skipped, with the reason)."""
    from jobs.stages.score import NothingToScore, landed_rows

    started, mon, wh = time.monotonic(), cfg.monitoring, Warehouse(cfg.paths.warehouse)
    out: dict = {"status": "skipped"}
    scores = score_drift(spark, cfg, day)
    if scores:
        out["scores"] = scores
    spec = reference(spark, cfg, wh)
    if spec is None:
        out["reason"] = "no training set yet: feature drift is measured against the last training set's train window"
    else:
        try:
            rows, _, _ = landed_rows(spark, cfg, day, sample_rows=mon.drift_sample_rows)
        except (NothingToScore, UsageError) as err:
            out["reason"] = f"tonight's landed rows have no features to compare: {err}"
        else:
            counts = bin_counts(rows, spec_bins(spec))
            features = feature_drift(spec, counts, mon.drift_warn, mon.drift_flag)
            out.update(status="measured", reference={k: spec[k] for k in ("training_set_version", "train_days",
                                                                          "rows")},
                       rows=sum(next(iter(counts.values()), [0])), features=features,
                       top=[f["feature"] for f in features if f["level"] != "ok"][:10],
                       flagged=sum(f["level"] == "flag" for f in features),
                       warned=sum(f["level"] == "warn" for f in features))
    seconds = time.monotonic() - started   # in the report's stage_seconds ("watch"), not here: a re-run differs
    if out["status"] == "measured":
        log.info("drift dt=%s: %d feature(s) flagged, %d warned (of %d) in %.1fs%s", day, out["flagged"],
                 out["warned"], len(out["features"]), seconds,
                 f"; most drifted: {', '.join(out['top'][:5])}" if out["top"] else "")
    else:
        log.info("drift dt=%s skipped: %s", day, out.get("reason"))
    return out
