"""Drift, each night: every training feature on the new day (tonight's impressions of its own event day, late
deliveries of earlier days left out) against the last training set's train window, and the champion's scores
against its scores of the trailing nights (docs/monitoring.md).

The reference (bin edges from the train window's quantiles, the top categories, and the counts in each bin)
is computed once per training-set version from a hash sample of its train split and kept at
``<warehouse>/monitoring/drift_reference.json``; each night bins a hash sample of its landed rows (the features
a scorer could have had: jobs/stages/score.landed_rows) with the same edges. Both samples hold at most
monitoring.drift_sample_rows rows and are binned on the driver (numpy): measured on 200k rows x 146 features,
binning in Spark (approxQuantile, then one aggregation of ~1,700 sums) took minutes.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.runtime import storage
from jobs.runtime.cli import UsageError
from jobs.runtime.layout import Warehouse, resolve_uri
from pipelines import declarations, watch
from pipelines.config import AppConfig

log = logging.getLogger("ctr.watch")

SCORE_NIGHTS = 7


def reference_uri(wh: Warehouse) -> str:
    return f"{wh.root}/monitoring/drift_reference.json"


# Arrow for the transfer (row by row, 50k rows of ~150 columns take tens of seconds); whole-stage codegen for the
# few hundred columns of a row joined to every entity's snapshot (Spark stops at 100 by default: projecting the
# 146 features of 49k rows then took 10.7 s instead of 3.8 s at 1M impressions a night).
SAMPLE_CONF = {"spark.sql.execution.arrow.pyspark.enabled": "true", "spark.sql.codegen.maxFields": "1000"}


def sample_frame(df: DataFrame, columns: list[str]):
    """The sampled rows' feature columns on the driver (pandas): a bounded sample, so the binning and quantiles
    are numpy work on at most monitoring.drift_sample_rows rows. SAMPLE_CONF only for this query; the session's
    settings are put back."""
    spark = df.sparkSession
    before = {k: spark.conf.get(k, None) for k in SAMPLE_CONF}
    for k, v in SAMPLE_CONF.items():
        spark.conf.set(k, v)
    try:
        return df.select(*columns).toPandas()
    finally:
        for k, v in before.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


REFERENCE_FORMAT = 4   # 4: day-to-day drift of each train day against the others, in PSI and shift; older rebuilt


def values_of(sample, column: str):
    return sample[column].to_numpy(dtype="float64", na_value=float("nan"))


def profile(sample, numeric: list[str], categorical: list[str], bins: int, top: int,
            days=None) -> dict[str, dict]:
    """The reference of each feature: numeric edges, counts, quantiles and sd, or the top categories and counts;
    with ``days`` (the sample's event days), the drift the feature shows inside the train window itself: the
    largest of one train day against the other days, ``day_to_day`` in PSI / JS and (numeric) ``day_to_day_shift``
    in reference sds. Against the other days, not the whole window: tonight is not part of the window either,
    and a day inside the whole looks closer to it than it is (with four days, about half the PSI)."""
    import numpy as np

    masks = [] if days is None else [np.asarray(days == d) for d in sorted(set(days.dropna()))]
    masks = [m for m in masks if m.any() and not m.all()] if len(masks) > 1 else []
    out: dict[str, dict] = {}
    for c in numeric:
        values = values_of(sample, c)
        edges, counts = watch.numeric_profile(values, bins)
        quantiles, sd = watch.quantile_profile(values)
        own = [watch.psi(watch.numeric_counts(values[~m], edges), watch.numeric_counts(values[m], edges))
               for m in masks]
        moved = [watch.shift(watch.quantile_profile(values[~m])[0], watch.quantile_profile(values[m])[0], sd)
                 for m in masks]
        out[c] = {"kind": "numeric", "edges": edges, "counts": counts, "quantiles": quantiles, "sd": sd,
                  "day_to_day": max(own, default=0.0),
                  "day_to_day_shift": max((x for x in moved if x is not None), default=0.0)}
    for c in categorical:
        values, counts = watch.category_profile(sample[c].tolist(), top)
        column = np.asarray(sample[c].tolist(), dtype=object)
        own = [watch.jensen_shannon(watch.category_counts(column[~m].tolist(), values),
                                    watch.category_counts(column[m].tolist(), values)) for m in masks]
        out[c] = {"kind": "categorical", "values": values, "counts": counts, "day_to_day": max(own, default=0.0)}
    return out


def counts_like(sample, features: dict[str, dict]) -> dict[str, list[int]]:
    """Tonight's counts in the reference's bins."""
    out = {}
    for name, f in features.items():
        if name not in sample.columns:   # a feature tonight's rows lack: every value missing
            out[name] = [len(sample)] + [0] * (len(f["counts"]) - 1)
        elif f["kind"] == "numeric":
            out[name] = watch.numeric_counts(values_of(sample, name), f["edges"])
        else:
            out[name] = watch.category_counts(sample[name].tolist(), f["values"])
    return out


def build_reference(spark: SparkSession, cfg: AppConfig, manifest: dict) -> dict:
    """Edges, top categories and counts of the training set's train split (a hash sample of it)."""
    mon = cfg.monitoring
    train = storage.read_delta(spark, manifest["path"]).where(F.col(manifest.get("split", "split")) == "train")
    numeric = [c for c in manifest["numeric_features"] if c in train.columns]
    categorical = [c for c in manifest["categorical_features"] if c in train.columns]
    sample = sample_frame(train.where(watch.hash_sample(mon.drift_sample_rows,
                                                         int(manifest.get("rows", {}).get("train", 0)))),
                          numeric + categorical + [c for c in ("event_date",) if c in train.columns])
    entity_day = Warehouse(cfg.paths.warehouse).gold("entity_day")   # its first day: where history begins
    days = (storage.read_delta(spark, entity_day).agg(F.min("event_date")).first()[0]
            if storage.is_delta(spark, entity_day) else None)
    return {"format": REFERENCE_FORMAT, "training_set_version": manifest.get("version"),
            "training_set": manifest["path"], "train_days": manifest["splits"]["train"],
            "history_start": days.isoformat() if days else None, "rows": len(sample),
            "features": profile(sample, numeric, categorical, mon.drift_bins, mon.drift_categories,
                                sample["event_date"] if "event_date" in sample.columns else None)}


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
                stored.get("training_set") == manifest.get("path") and stored.get("format") == REFERENCE_FORMAT:
            return stored
    started = time.monotonic()
    spec = build_reference(spark, cfg, manifest)
    storage.write_json(spark, uri, spec)
    log.info("drift reference of training set version %s (%s rows of its train split) built in %.1fs",
             spec["training_set_version"], f"{spec['rows']:,}", time.monotonic() - started)
    return spec


def lookback_days(history: list, longest: int) -> dict[str, int]:
    """Feature name -> the days of history its value looks back on: a windowed feature its window, a recency
    (last_seen: hours since the last event within the longest window) the longest window - which fills like one."""
    return {f.name: f.window if f.window is not None else longest for f in history}


def filling_windows(spec: dict, windows: dict[str, int | None], lag_days: int) -> set[str]:
    """The windowed features whose window was not yet full on the reference's first train day: the warehouse's
    history began fewer than window + snapshot lag days before it. Tonight's fuller window is not drift."""
    start = spec.get("history_start")
    if not start:
        return set()
    history = (date.fromisoformat(spec["train_days"][0]) - date.fromisoformat(start)).days - lag_days
    return {name for name, window in windows.items() if window is not None and history < window}


def feature_drift(spec: dict, counts: dict[str, list[int]], quantiles: dict[str, list[float]], mon,
                  filling: set[str] = frozenset()) -> list[dict]:
    """Per feature its PSI (numeric) or Jensen-Shannon divergence (categorical) and level: flagged, warned,
    filling, ok, each largest first.

    The level is judged on the excess over ``day_to_day``, the largest drift of one train day against the other
    train days (a feature whose every day differs from the others - a one-day rate around a prior re-fitted
    each night - moves that much on any normal night). A numeric feature's level also needs its values to have
    moved beyond ``day_to_day_shift`` (``shift``, in reference sds), or its missing share to have moved
    (watch.numeric_level); one in ``filling`` is reported as such, never warned or flagged."""
    out = []
    for name, f in spec["features"].items():
        ref, cur = f["counts"], counts[name]
        missing = cur[0] / sum(cur) if sum(cur) else None
        ref_missing = ref[0] / sum(ref) if sum(ref) else None
        row = {"feature": name, "kind": f["kind"], "measure": "psi" if f["kind"] == "numeric" else "js",
               "missing_share": missing, "reference_missing_share": ref_missing}
        own = f.get("day_to_day") or 0.0
        row["day_to_day"] = round(own, 4)
        if f["kind"] == "numeric":
            value = watch.psi(ref, cur)
            moved = watch.shift(f.get("quantiles") or [], quantiles.get(name) or [], f.get("sd") or 0.0)
            own_shift = f.get("day_to_day_shift") or 0.0
            row.update(shift=None if moved is None else round(moved, 4), day_to_day_shift=round(own_shift, 4))
            level = watch.numeric_level(value - own, None if moved is None else moved - own_shift,
                                        abs((missing or 0.0) - (ref_missing or 0.0)),
                                        mon.drift_warn, mon.drift_flag, mon.drift_min_shift)
        else:
            value = watch.jensen_shannon(ref, cur)
            level = watch.drift_level(value - own, mon.drift_warn, mon.drift_flag)
        row.update(value=round(value, 4), level="filling" if name in filling else level)
        out.append(row)
    rank = {"flag": 0, "warn": 1, "filling": 2, "ok": 3}
    return sorted(out, key=lambda d: (rank.get(d["level"], 4), -d["value"]))


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
    rows = cfg.monitoring.drift_sample_rows
    ref = sample_frame(before.where(watch.hash_sample(rows, before.count())), ["p_click"])["p_click"]
    if ref.empty:
        return {"model_version": version, "status": "no earlier scores of this champion to compare with"}
    edges, ref_counts = watch.numeric_profile(ref.to_numpy(dtype="float64"), cfg.monitoring.drift_bins)
    cur = sample_frame(tonight.where(watch.hash_sample(rows, tonight.count())), ["p_click"])["p_click"]
    cur_counts = watch.numeric_counts(cur.to_numpy(dtype="float64"), edges)
    value = watch.psi(ref_counts, cur_counts)
    return {"model_version": version, "status": "measured", "psi": round(value, 4),
            "level": watch.drift_level(value, cfg.monitoring.drift_warn, cfg.monitoring.drift_flag),
            "reference_nights": SCORE_NIGHTS, "reference_rows": sum(ref_counts), "rows": sum(cur_counts)}


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
            rows, _, _ = landed_rows(spark, cfg, day, sample_rows=mon.drift_sample_rows, own_day_only=True)
        except (NothingToScore, UsageError) as err:
            out["reason"] = f"tonight's landed rows have no features to compare: {err}"
        else:
            sample = sample_frame(rows, [c for c in spec["features"] if c in rows.columns])
            counts = counts_like(sample, spec["features"])
            quantiles = {c: watch.quantile_profile(values_of(sample, c))[0] for c, f in spec["features"].items()
                         if f["kind"] == "numeric" and c in sample.columns}
            windows = lookback_days(declarations.history_features(cfg.gold.features), max(cfg.gold.windows_days))
            filling = filling_windows(spec, windows, cfg.training_set.snapshot_lag_days)
            features = feature_drift(spec, counts, quantiles, mon, filling)
            out.update(status="measured", reference={k: spec[k] for k in ("training_set_version", "train_days",
                                                                          "rows")},
                       rows=len(sample), features=features,
                       top=[f["feature"] for f in features if f["level"] in ("warn", "flag")][:10],
                       flagged=sum(f["level"] == "flag" for f in features),
                       warned=sum(f["level"] == "warn" for f in features),
                       filling=sum(f["level"] == "filling" for f in features))
    seconds = time.monotonic() - started   # in the report's stage_seconds ("watch"), not here: a re-run differs
    if out["status"] == "measured":
        log.info("drift dt=%s: %d feature(s) flagged, %d warned, %d with windows still filling (of %d) in %.1fs%s",
                 day, out["flagged"], out["warned"], out["filling"], len(out["features"]), seconds,
                 f"; most drifted: {', '.join(out['top'][:5])}" if out["top"] else "")
    else:
        log.info("drift dt=%s skipped: %s", day, out.get("reason"))
    return out
