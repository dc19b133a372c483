"""The stage behind `jobs/train.py` (training: every model family on the training set, calibrated, evaluated, logged to
MLflow, the champion gate).

How to run it, and what it guarantees, is that entry point's docstring (`--help`)."""
from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.runtime import storage
from jobs.runtime.layout import resolve_uri
from pipelines.config import AppConfig, TrainConfig
from pipelines.train import encoding, metrics
from pipelines.train.calibration import Calibrator, fit_calibrator, undo_downsampling
from pipelines.train.features import FeatureSet, TableError, ablations, prepare, resolve_features
from pipelines.train.gate import ABLATION_PREFIX, champion_not_scored, contender, decide_promotion
from pipelines.train.lgbm_barrier import check_partitions, native_categories, train_lgbm
from pipelines.train.linear import train_gbdt_lr, train_lr
from pipelines.train.scorers import CtrModel, score
from pipelines.train.xgb import balanced, train_and_validation, train_xgb

log = logging.getLogger("ctr.train")
COLUMNS = ("model", "auc", "log_loss", "ne", "gauc", "calibration", "ece", "achievable_share", "train_seconds")


def check_splits(data: DataFrame, tr: TrainConfig) -> tuple[float, dict[str, tuple]]:
    """The train split's keep rate, and each split's (rows, first day, last day); TableError for a broken table."""
    rows = data.groupBy(tr.split_col).agg(F.count("*").alias("n"), F.min(tr.date_col).alias("lo"),
                                          F.max(tr.date_col).alias("hi"),
                                          F.min(tr.neg_keep_rate_col).alias("wlo"),
                                          F.max(tr.neg_keep_rate_col).alias("whi"),
                                          F.count(F.when(F.col(tr.label_col).isNull(), 1)).alias("bad_labels"),
                                          ).collect()
    splits = {r[tr.split_col]: r for r in rows}
    bad = sum(r["bad_labels"] for r in rows)
    if bad:
        raise TableError(f"label column {tr.label_col!r} holds {bad:,} value(s) that are not 0 or 1 (null "
                         f"included): give every row 0 (not clicked) or 1 (clicked)")
    for name in ("train", "validation", "test"):
        if name not in splits:
            raise TableError(f"training table has no {name!r} rows in column {tr.split_col!r}: each of train, "
                             f"validation and test needs rows, in that time order")
    t, v, s = splits["train"], splits["validation"], splits["test"]
    if not (t["hi"] < v["lo"] and v["hi"] < s["lo"]):
        raise TableError(f"splits are not time-ordered by {tr.date_col!r}: train {t['lo']}..{t['hi']}, "
                         f"validation {v['lo']}..{v['hi']}, test {s['lo']}..{s['hi']}; train days must come "
                         f"before validation days, and those before test days")
    if t["wlo"] != t["whi"] or not 0 < t["wlo"] <= 1:
        raise TableError(f"{tr.neg_keep_rate_col} of train rows must be one value in (0, 1], got "
                         f"{t['wlo']}..{t['whi']}")
    return float(t["wlo"]), {k: (r["n"], r["lo"], r["hi"]) for k, r in splits.items()}


def test_sample(data: DataFrame, tr: TrainConfig, test_rows: int) -> DataFrame:
    """Test rows to evaluate: all of them, or whole users hashed in until about eval_max_rows.

    GAUC needs whole users."""
    test = data.where(F.col(tr.split_col) == "test")
    if test_rows <= tr.eval_max_rows:
        return test
    share = tr.eval_max_rows / test_rows
    log.info("evaluating on a sample of whole users: about %.1f%% of %d test rows", 100 * share, test_rows)
    # Without a group column every row is its own group: the sample is then of rows.
    key = F.coalesce(F.col(tr.group_col), F.col(tr.id_col))
    return test.where((F.abs(F.xxhash64(key, F.lit(tr.seed))) % 1_000_000) < int(share * 1_000_000))


def fit_family(family: str, fs: FeatureSet, data: dict[str, DataFrame], valid_pdf: pd.DataFrame,
               trained: dict[str, object], tr: TrainConfig, vocab: encoding.Vocabulary
               ) -> tuple[object, dict[str, list[float]]]:
    if family.startswith("xgboost"):
        return train_xgb(data["fit"], tr, fs)
    if family == "lightgbm":
        native = native_categories(fs, {c: vocab.size(c) for c in fs.categorical}, tr.max_native_categories)
        log.info("lightgbm: split by category: %s; as frequency-rank codes (more than %d values): %s",
                 list(native) or "none", tr.max_native_categories,
                 [c for c in fs.categorical if c not in native] or "none")
        return train_lgbm(data["train_parts"], valid_pdf, tr, fs, native)
    if family == "gbdt_lr":
        return train_gbdt_lr(data["train"], trained["xgboost"], tr), {}
    return train_lr(data["train"], tr, fs), {}


def evaluate_model(family: str, scorer: object, vocab: encoding.Vocabulary, data: dict[str, DataFrame], w: float,
                   bayes: bool, tr: TrainConfig) -> tuple[CtrModel, dict[str, float], pd.DataFrame]:
    """Calibrate on validation days (train.calibration), then every metric on the test rows (calibrated ``p``).

    Scoring goes through the model as it will be logged: raw rows, its own vocabulary.
    """
    keep = [tr.id_col, tr.group_col, tr.split_col, tr.label_col] + (["p_click"] if bayes else [])
    uncalibrated = CtrModel(family, scorer, Calibrator(1.0), vocab)
    scored = score(data["eval"], uncalibrated, "p_raw", keep, method="uncalibrated").persist(
        StorageLevel.MEMORY_AND_DISK)
    try:
        calibrator = fit_calibrator(tr.calibration, scored.where(F.col(tr.split_col) == "validation"), "p_raw",
                                    tr.label_col, w)
        test = scored.where(F.col(tr.split_col) == "test").toPandas()
    finally:
        scored.unpersist()
    test["p"] = calibrator(test["p_raw"].to_numpy())
    y, g = test[tr.label_col].to_numpy(), test[tr.group_col].to_numpy()
    out = metrics.evaluate(y, test["p"].to_numpy(), g)
    if bayes:
        out.update(metrics.against_truth(y, test["p"].to_numpy(), test["p_click"].to_numpy()))
    corrected = undo_downsampling(test["p_raw"].to_numpy(), w)
    # Before the calibration map (train.calibration); the names predate the choice of map.
    out["calibration_before_isotonic"] = metrics.overall_calibration(y, corrected)
    out["ne_before_isotonic"] = metrics.normalized_entropy(y, corrected)
    return CtrModel(family, scorer, calibrator, vocab), out, test.rename(columns={tr.label_col: "label"})


def run_train(spark: SparkSession, cfg: AppConfig, table: str | None = None, truth: str | None = None) -> list[dict]:
    """Train, evaluate, log and gate; returns one row of the results table per model.

    Each row holds the model's metrics and its MLflow ``run_id``; the registered model's row also
    ``registered``: model name, version, alias (champion or challenger) and the gate's reason.
    """
    import mlflow
    from delta.tables import DeltaTable

    from jobs.runtime import tracking

    tr = cfg.train
    table = table or resolve_uri(cfg.paths.warehouse, tr.table)
    truth = truth or resolve_uri(cfg.paths.landing, tr.truth)
    tracking.setup(tr.experiment)
    if not storage.is_delta(spark, table):
        raise ValueError(f"no Delta training set at {table}")
    version = DeltaTable.forPath(spark, table).history(1).first()["version"]
    raw = spark.read.format("delta").option("versionAsOf", version).load(table)
    fs = resolve_features(raw, tr)
    data_all = prepare(raw, tr, fs)
    w, splits = check_splits(data_all, tr)
    log.info("training set %s@v%d: %s; keep rate %.4g; %d numeric, %d categorical features",
             table, version, {k: v[0] for k, v in splits.items()}, w, len(fs.numeric), len(fs.categorical))
    if tr.group_col not in raw.columns:
        log.info("no group column %r in the table: GAUC is skipped (train.group_col names it)", tr.group_col)
    mem = StorageLevel.MEMORY_AND_DISK
    train = data_all.where(F.col(tr.split_col) == "train")
    # Vocabularies from the train split only; trainers see codes, evaluation and the logged model raw values.
    vocab = encoding.fit(train, fs.categorical, tr.min_category_count, tr.max_categories)
    if fs.categorical:
        log.info("vocabularies fitted on the train split (values seen >= %d times): %s", tr.min_category_count,
                 {c: vocab.size(c) for c in fs.categorical})
    coded = encoding.encode(data_all, vocab)
    coded_train = coded.where(F.col(tr.split_col) == "train")
    bayes = storage.is_delta(spark, truth)
    test = test_sample(data_all, tr, splits["test"][0])
    if bayes:
        p_click = spark.read.format("delta").load(truth).select(F.col("impression_id").alias(tr.id_col), "p_click")
        test = test.join(p_click.dropDuplicates([tr.id_col]), on=tr.id_col, how="left")
    data = {"fit": balanced(train_and_validation(coded, tr), tr.num_workers).persist(mem),
            "train": coded_train.persist(mem),
            "train_parts": balanced(coded_train, tr.num_workers).persist(mem),
            "eval": data_all.where(F.col(tr.split_col) == "validation").unionByName(test, allowMissingColumns=True)
                            .persist(mem)}
    valid_pdf = pd.DataFrame()
    if "lightgbm" in tr.models:
        check_partitions(data["train_parts"], tr.num_workers)
        share = min(1.0, tr.lgbm_max_valid_rows / splits["validation"][0])
        valid_pdf = (coded.where(F.col(tr.split_col) == "validation").sample(fraction=share, seed=tr.seed)
                     .select(*fs.columns, tr.label_col).toPandas())
    families = [(f, fs) for f in tr.models]
    if tr.ablation and "xgboost" in tr.models:
        at = tr.models.index("xgboost") + 1
        families[at:at] = [(ABLATION_PREFIX + name, sub) for name, sub in ablations(fs, tr).items()]
    # The logged signature takes the table's own types: raw categories as they are (text or integers).
    example = raw.select(*fs.columns).limit(5).toPandas()
    dataset = mlflow.data.from_spark(raw, path=table, version=str(version), name=Path(table).name)
    test_days = f"{splits['test'][1]}..{splits['test'][2]}"
    # One id on every run of this training: the catalog finds a champion's ablation siblings by it.
    training_id = uuid.uuid4().hex
    trained, results, runs = {}, [], {}
    try:
        for family, feats in families:
            started = time.perf_counter()
            scorer, curves = fit_family(family, feats, data, valid_pdf, trained, tr, vocab)
            seconds = time.perf_counter() - started
            trained[family] = scorer
            model, scores, test_pdf = evaluate_model(family, scorer, vocab, data, w, bayes, tr)
            scores["train_seconds"] = seconds
            params = {**{k: v for k, v in vars(tr).items() if k not in ("numeric_features", "categorical_features")},
                      "family": family, "n_features": len(feats.columns), "neg_keep_rate": w,
                      "rounds": len(next(iter(curves.values()), [])) or None, "table": table, "table_version": version}
            run_id, uri = tracking.log_model_run(model, family, params, scores, curves, test_pdf,
                                                 example[list(feats.columns)], dataset,
                                                 {"test_days": test_days, "training_id": training_id})
            runs[family] = (run_id, uri, model, scores)
            results.append({"model": family, "run_id": run_id, "n_features": len(feats.columns), **scores})
            log.info("%s: NE %.5f AUC %.4f calibration %.4f (%.0f s)", family, scores["ne"], scores["auc"],
                     scores["calibration"], seconds)
        family, promoted, reason, registered = gate(runs, test, tr)
        next(r for r in results if r["model"] == family)["registered"] = {
            "model": tr.registered_model, "version": registered, "alias": "champion" if promoted else "challenger",
            "reason": reason}
    finally:
        for frame in data.values():
            frame.unpersist()
    return results


def gate(runs: dict, test: DataFrame, tr: TrainConfig) -> tuple[str, bool, str, str]:
    """Register this run's best model (lowest NE, ablation excluded); champion only if the gate allows.

    Returns the family, whether it became champion, why, and its registered version.
    """
    from jobs.runtime import tracking

    family = contender({f: run[3]["ne"] for f, run in runs.items()})
    run_id, uri, model, scores = runs[family]
    current = tracking.champion_model(tr.registered_model)
    champion_scores = None
    if current is not None:
        champion, version = current
        try:
            # The champion, scored on the very test rows the new model was judged on.
            pdf = score(test, champion, "p", [tr.label_col, tr.group_col], method="predict").toPandas()
            champion_scores = metrics.evaluate(pdf[tr.label_col].to_numpy(), pdf["p"].to_numpy(),
                                               pdf[tr.group_col].to_numpy())
            log.info("champion v%s on the same test days: NE %.5f", version, champion_scores["ne"])
        except Exception as err:
            promote, reason = champion_not_scored(version, err)
            return family, promote, reason, tracking.register(uri, tr.registered_model, promote, reason, run_id)
    promote, reason = decide_promotion(scores, champion_scores, tr.calibration_tolerance,
                                       tr.first_calibration_tolerance)
    return family, promote, reason, tracking.register(uri, tr.registered_model, promote, f"{family}: {reason}", run_id)


def results_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [r["model"]] + [f"{r[c]:.4f}" if c in r and r[c] == r[c] else "-" for c in COLUMNS[1:-1]]
        lines.append("| " + " | ".join(cells + [f"{r['train_seconds']:.1f}"]) + " |")
    return "\n".join(lines)
