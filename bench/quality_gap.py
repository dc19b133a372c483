"""Where the rest of the achievable log-loss reduction goes, on a `make bench-quality` run (analysis, not a test).

    .venv/bin/python bench/quality_gap.py [--root data/bench-quality] [--days 14] [--impressions 100000] [--seed 7]

Run it after `make bench-quality` with the same DAYS / IMPRESSIONS / seed: it regenerates that
world's clean impressions with the generator's hidden click-model terms (the generator is
seeded and deterministic; the script checks every regenerated ``p_click`` against the
landed truth and stops if one differs), then on the bench's training set:

1. **Bayes decomposition**: for each hidden term of the click model (README "The generator's
   click model"), the expected log loss when that term alone is unknown (marginalised over
   its distribution), as a share of the achievable reduction ``constant - Bayes`` that
   knowing it is worth. Computed on every test-day impression from the true probabilities
   (expected log loss, no sampling noise).
2. **Oracle features**: a single-process LightGBM with the trainer's own settings
   (pipelines/train/lgbm_barrier.lgbm_params, the same native / frequency-rank split of the
   categorical columns) on the training set's features, then with one group of true hidden
   terms added at a time: how much of the gap each would close if a feature recovered it.
3. **Candidate feature**: the same model plus the train days' click rate of each
   (publisher category, ad category) pair (from the train split only), the one cross the
   gold features lack.
4. **Ceiling of the user's history**: what a learner that knows the click model and every
   term but the user's exactly reaches (a) knowing nothing of the user and (b) inferring each
   user's bias and favourite category from that user's outcomes on the days the test day's
   feature snapshot covers (event days before test day - ``training_set.snapshot_lag_days``;
   the generator's true outcomes, a little more than gold counts: the Bayesian posterior under
   the generator's own priors). (b) bounds what per-user history features can add; (a) against
   the trained model is roughly what the trainer and the non-user features lose (expected
   loss here, sampled labels for the model, so up to the test day's sampling noise).

Writes bench/results/quality-gap-<time>.md and prints it. Only for logs of this project's
generator (the hidden terms exist nowhere else); uses 6 GB of memory or more at the defaults: run it alone
(beside a bench-quality training on this 24 GiB machine, the bench's JVM was killed for memory).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.runtime.config import REPO_ROOT, load_config
from pipelines.train.encoding import Vocabulary

log = logging.getLogger("ctr.bench.quality_gap")
BENCH_CONF = str(Path(__file__).parent / "bench.yaml")
RESULTS = REPO_ROOT / "bench" / "results"


def export(root: Path, args: argparse.Namespace, out: Path, tr) -> Vocabulary:
    """Training set joined with the regenerated hidden terms, as parquet under ``out``; returns the
    trainer's vocabulary of its categorical columns, fitted on its train split (encoding.fit)."""
    from pyspark.sql import functions as F

    from jobs.dev.generator import dims, events
    from jobs.runtime.spark import get_spark
    from pipelines.train import encoding

    cfg = load_config("local", [BENCH_CONF], {"generator": {
        "start_date": "2025-03-01", "days": args.days, "impressions_per_day": args.impressions, "seed": args.seed,
        "rates": {"sivt_users": 0}}})
    spark = get_spark(cfg.spark, None)
    g = cfg.generator
    users = dims.users(spark, g, max(10, math.ceil(g.impressions_per_day / dims.expected_user_activity(g))))
    seg_aff, pub_aff = dims.affinities(spark, g)
    imp = events.impressions(users, dims.days(spark, g), dims.ads(spark, g), dims.publishers(spark, g),
                             seg_aff, pub_aff, g).persist()
    hidden = imp.select("impression_id", F.col("p_click").alias("p_regenerated"), "user_bias", "ad_bias", "pub_bias",
                        (F.col("ad_category") == F.col("favourite_category")).cast("int").alias("fav"),
                        F.coalesce("aff_seg", F.lit(0.0)).alias("aff_seg"),
                        F.coalesce("aff_pub", F.lit(0.0)).alias("aff_pub"), "prior_exposures",
                        F.col("creative_type").alias("h_creative_type"), F.col("ad_category").alias("h_ad_category"),
                        "in_view_ms")
    ts = spark.read.format("delta").load(str(root / "warehouse" / "gold" / "training_set"))
    truth = spark.read.format("delta").load(str(root / "landing" / "_truth" / "ground_truth"))
    joined = (ts.join(truth.select("impression_id", "p_click"), "impression_id", "left")
              .join(hidden, "impression_id", "left"))
    bad = joined.where(F.col("p_click").isNotNull() & (F.col("p_regenerated").isNull()
                                                        | (F.abs(F.col("p_click") - F.col("p_regenerated")) > 1e-12)))
    n_bad = bad.count()
    if n_bad:
        raise SystemExit(f"error: {n_bad} training rows do not match the regenerated world: run with the "
                         f"--days/--impressions/--seed of the bench-quality run under {root}")
    joined.write.mode("overwrite").parquet(str(out))
    # Every clean impression's outcome and its log-odds without the user's terms: the user history (section 4).
    user_terms = F.col("user_bias") + F.when(F.col("ad_category") == F.col("favourite_category"),
                                             events.FAVOURITE_CATEGORY).otherwise(0.0)
    imp.select("user_id", "ad_category", F.to_date("event_ts").alias("event_date"),
               F.col("clicked").cast("int").alias("clicked"),
               (F.log(F.col("p_click") / (1 - F.col("p_click"))) - user_terms).alias("z_no_user")
               ).write.mode("overwrite").parquet(str(out) + ".history")
    categorical = tuple(c for c in ts.columns if c.startswith(tr.categorical_prefix))
    vocab = encoding.fit(ts.where(F.col(tr.split_col) == "train"), categorical, tr.min_category_count,
                         tr.max_categories)
    spark.stop()
    return vocab


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def expected_xent(p: np.ndarray, q: np.ndarray) -> float:
    """Mean cross-entropy of predictions ``q`` against the true probabilities ``p``: log loss without sampling noise."""
    q = np.clip(q, 1e-9, 1 - 1e-9)
    return float(np.mean(-(p * np.log(q) + (1 - p) * np.log(1 - q))))


def decomposition(test: pd.DataFrame) -> list[tuple[str, float, float]]:
    """(term, NE with the term unknown, share of the achievable reduction it is worth) on the test rows."""
    p = test["p_click"].to_numpy()
    logit = np.log(p / (1 - p))

    def xent(q: np.ndarray) -> float:
        return expected_xent(p, q)

    base, bayes = xent(np.full_like(p, p.mean())), xent(p)
    rng = np.random.default_rng(0)

    def unknown(term: np.ndarray, draws: np.ndarray) -> float:
        """The term replaced by draws from its own distribution, averaged in probability space."""
        rest = logit - term
        return xent(np.mean([sigmoid(rest + d) for d in draws], axis=0))

    video = (test["h_creative_type"] == "video").to_numpy()
    viewable = test["in_view_ms"].fillna(-1).to_numpy() >= np.where(video, 2000, 1000)
    terms = {
        "user_bias": test["user_bias"].to_numpy(), "ad_bias": test["ad_bias"].to_numpy(),
        "pub_bias": test["pub_bias"].to_numpy(), "favourite category": 0.8 * test["fav"].to_numpy(),
        "user_bias + favourite category": test["user_bias"].to_numpy() + 0.8 * test["fav"].to_numpy(),
        "segment x ad category": test["aff_seg"].to_numpy(), "publisher category x ad category":
            test["aff_pub"].to_numpy(),
        "fatigue": -(0.3 + 0.25 * video) * np.log1p(test["prior_exposures"].to_numpy()),
        "viewable (known only after the impression)": 0.2 * viewable}
    out = [("none (Bayes)", bayes / base, 0.0)]
    for name, term in terms.items():
        loss = unknown(term, rng.choice(term, 64))
        out.append((name, loss / base, (loss - bayes) / (base - bayes)))
    return out


def user_ceiling(test: pd.DataFrame, history: pd.DataFrame, lag_days: int) -> list[tuple[str, float, float]]:
    """(learner, NE, share) on the test day's covered rows, expected log loss from the true probabilities.

    ``test``: the exported test rows (p_click, user_bias, fav, h_ad_category, user_id, event_date);
    ``history``: every clean impression (user_id, ad_category, event_date, clicked, z_no_user).
    The user's terms are b ~ normal(0, USER_BIAS_SD) plus FAVOURITE_CATEGORY when the ad's category is
    the user's favourite, one of the categories uniformly: the posterior over (b on a grid, favourite)
    from the user's outcomes on the days the test day's snapshot holds.
    """
    from jobs.dev.generator.dims import AD_CATEGORIES, USER_BIAS_SD
    from jobs.dev.generator.events import FAVOURITE_CATEGORY

    test = test[test["p_click"].notna()]
    p = test["p_click"].to_numpy()
    if test["event_date"].nunique() != 1:
        raise SystemExit("error: the user-history ceiling needs a training set with one test day")
    cutoff = pd.Timestamp(test["event_date"].max()) - pd.Timedelta(days=lag_days)   # the snapshot holds days before

    def xent(q: np.ndarray) -> float:
        return expected_xent(p, q)

    base, bayes = xent(np.full_like(p, p.mean())), xent(p)
    k = len(AD_CATEGORIES)
    cat_index = {c: i for i, c in enumerate(AD_CATEGORIES)}
    # A fine grid over +-4.5 sd: a heavy user's posterior is narrow (sd ~0.07), Gauss-Hermite nodes too far apart.
    nodes = np.linspace(-4.5, 4.5, 81)
    grid, weights = USER_BIAS_SD * nodes, np.exp(-nodes ** 2 / 2) / np.exp(-nodes ** 2 / 2).sum()
    z = np.log(p / (1 - p)) - test["user_bias"].to_numpy() - FAVOURITE_CATEGORY * test["fav"].to_numpy()
    fav_t = np.array([[cat_index.get(c, -1) == i for i in range(k)] for c in test["h_ad_category"]])

    def predictive(prob_fav: np.ndarray, bias_weights: np.ndarray) -> np.ndarray:
        """P(click) given, per row, P(favourite is this ad's category) and the bias weights given each case."""
        zz = z[:, None] + grid[None, :]
        return (prob_fav * np.sum(bias_weights[0] * sigmoid(zz + FAVOURITE_CATEGORY), axis=1)
                + (1 - prob_fav) * np.sum(bias_weights[1] * sigmoid(zz), axis=1))

    prior_w = np.broadcast_to(weights, (2, len(test), len(grid)))
    out = [("knows every term but the user's; nothing of the user",
            *_ne_share(xent(predictive(np.full(len(test), 1 / k), prior_w)), base, bayes))]
    h = history[pd.to_datetime(history["event_date"]) < cutoff]
    h = h[h["user_id"].isin(set(test["user_id"]))]
    y = h["clicked"].to_numpy()[:, None]
    zh = h["z_no_user"].to_numpy()[:, None] + grid[None, :]

    def loglik(zz: np.ndarray) -> np.ndarray:
        q = np.clip(sigmoid(zz), 1e-12, 1 - 1e-12)
        return y * np.log(q) + (1 - y) * np.log(1 - q)

    l_other, l_fav = loglik(zh), loglik(zh + FAVOURITE_CATEGORY)
    users, u_idx = np.unique(h["user_id"].to_numpy(), return_inverse=True)
    c_idx = h["ad_category"].map(cat_index).to_numpy()
    # log P(history | b, favourite f) = sum over rows of l_other + sum over rows of category f of (l_fav - l_other)
    post = np.zeros((len(users), len(grid)))
    np.add.at(post, u_idx, l_other)
    post = post[:, None, :] + np.zeros((1, k, 1))
    np.add.at(post, (u_idx, c_idx), l_fav - l_other)
    post += np.log(weights)[None, None, :]
    post = np.exp(post - post.max(axis=(1, 2), keepdims=True))
    post /= post.sum(axis=(1, 2), keepdims=True)
    row = pd.Series(np.arange(len(users)), index=users).reindex(test["user_id"]).to_numpy()
    seen = ~np.isnan(row)
    joint = np.broadcast_to(weights / k, (len(test), k, len(grid))).copy()
    joint[seen] = post[row[seen].astype(int)]
    on_cat = (joint * fav_t[:, :, None]).sum(axis=1)          # P(b, favourite = this ad's category)
    off_cat = joint.sum(axis=1) - on_cat
    prob_fav = on_cat.sum(axis=1)
    bias_w = np.stack([on_cat / np.maximum(prob_fav, 1e-300)[:, None],
                       off_cat / np.maximum(1 - prob_fav, 1e-300)[:, None]])
    out.append((f"+ each user's bias and favourite inferred from the user's clicks before "
                f"{cutoff.date()} ({seen.mean():.0%} of test rows' "
                f"users have some)", *_ne_share(xent(predictive(prob_fav, bias_w)), base, bayes)))
    out.append(("+ each user's true bias and favourite (Bayes)", bayes / base, 1.0))
    return out


def _ne_share(loss: float, base: float, bayes: float) -> tuple[float, float]:
    return loss / base, (base - loss) / (base - bayes)


def oracle_runs(df: pd.DataFrame, tr, vocab: Vocabulary) -> list[tuple[str, float, float, float]]:
    """(features, NE, share, truth calibration) of single-process LightGBM runs on the test split."""
    import lightgbm as lgb

    from pipelines.train import metrics
    from pipelines.train.features import FeatureSet
    from pipelines.train.lgbm_barrier import lgbm_params, native_categories

    num = [c for c in df.columns if c.startswith(tr.numeric_prefix)]
    cat = [c for c in df.columns if c.startswith(tr.categorical_prefix)]
    train = (df[tr.split_col] == "train").to_numpy()
    df[cat] = vocab.encode_pandas(df[cat])   # the trainer's codes: rare, unseen and null are 0
    sizes = {c: vocab.size(c) for c in cat}
    split = {s: (df[tr.split_col] == s).to_numpy() for s in ("train", "validation", "test")}
    y = df[tr.label_col].to_numpy()
    # The candidate: click rate of each (publisher category, ad category) pair on the train days.
    pair = ["c_publisher_category", "c_ad_category"]
    if set(pair) <= set(df.columns):
        cells = df[train].groupby(pair)[tr.label_col].agg(["sum", "count"])
        prior = y[train].mean()
        rate = ((cells["sum"] + 100 * prior) / (cells["count"] + 100)).rename("x_pubcat_x_adcat_ctr")
        df["x_pubcat_x_adcat_ctr"] = df.join(rate, on=pair)["x_pubcat_x_adcat_ctr"].to_numpy()
    test_truth = df.loc[split["test"], "p_click"].to_numpy()

    def run(name: str, extra: list[str]) -> tuple[str, float, float, float]:
        fs = FeatureSet(tuple(num + extra), tuple(cat))
        params = {**lgbm_params(tr, fs, native_categories(fs, sizes, tr.max_native_categories)), "num_threads": 2}
        x = df[list(fs.columns)].to_numpy(np.float32)
        d_train = lgb.Dataset(x[split["train"]], y[split["train"]], categorical_feature=params["categorical_feature"])
        d_valid = lgb.Dataset(x[split["validation"]], y[split["validation"]], reference=d_train)
        booster = lgb.train({k: v for k, v in params.items() if k != "categorical_feature"}, d_train,
                            tr.num_rounds, valid_sets=[d_valid],
                            callbacks=[lgb.early_stopping(tr.early_stopping_rounds, verbose=False)])
        p = booster.predict(x[split["test"]], num_iteration=booster.best_iteration)
        got = metrics.against_truth(y[split["test"]], p, test_truth)
        log.info("%s: NE %.4f share %.3f", name, got["covered_ne"], got["achievable_share"])
        return name, got["covered_ne"], got["achievable_share"], got["truth_calibration"]

    out = [run("the training set's features (trainer's LightGBM settings, no isotonic step)", [])]
    for name, cols in [("+ true user_bias and favourite-category flag", ["user_bias", "fav"]),
                       ("+ true ad_bias and pub_bias", ["ad_bias", "pub_bias"]),
                       ("+ true segment x category and publisher category x category terms", ["aff_seg", "aff_pub"]),
                       ("+ true prior exposures of the user to the ad", ["prior_exposures"]),
                       ("+ publisher category x ad category click rate of the train days (a feature gold could "
                        "build)", ["x_pubcat_x_adcat_ctr"])]:
        if all(c in df.columns for c in cols):
            out.append(run(name, cols))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--root", default="data/bench-quality",
                        help="the bench-quality run's root (landing, warehouse)")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--impressions", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    if not (root / "warehouse" / "gold" / "training_set").is_dir():
        parser.error(f"no training set under {root}/warehouse: run `make bench-quality` first")
    from jobs.runtime.cli import setup_logging

    setup_logging("INFO")   # GX's and py4j's INFO lines off, like the jobs
    started = time.monotonic()
    out = root / "gap.parquet"
    tr = load_config("local", [BENCH_CONF]).train
    vocab = export(root, args, out, tr)
    df = pd.read_parquet(out)
    test = df[df[tr.split_col] == "test"]
    lines = [f"# Quality gap, {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"Training set under {root}: " + ", ".join(f"{s} {int((df[tr.split_col] == s).sum()):,}"
                                                        for s in ("train", "validation", "test")) + " rows.", "",
             "## What each hidden term is worth (test day, expected log loss from the true probabilities)", "",
             "| unknown term | NE | share of the achievable reduction it is worth |", "|---|---:|---:|"]
    lines += [f"| {n} | {ne:.4f} | {s:.3f} |" for n, ne, s in decomposition(test)]
    manifest = root / "warehouse" / "gold" / "training_set.json"
    lag = (json.loads(manifest.read_text())["snapshot_lag_days"] if manifest.is_file()
           else load_config("local", [BENCH_CONF]).training_set.snapshot_lag_days)
    lines += ["", "## Ceiling of the user's history (test day, expected log loss from the true probabilities)", "",
              "| learner | NE | share of achievable reduction |", "|---|---:|---:|"]
    lines += [f"| {n} | {ne:.4f} | {s:.3f} |" for n, ne, s in
              user_ceiling(test, pd.read_parquet(str(out) + ".history"), lag)]
    lines += ["", "## Single-process LightGBM with true terms added (test day)", "",
              "| features | NE | share of achievable reduction | calibration against the truth |",
              "|---|---:|---:|---:|"]
    lines += [f"| {n} | {ne:.4f} | {s:.3f} | {c:.4f} |" for n, ne, s, c in oracle_runs(df, tr, vocab)]
    lines += ["", f"Seconds: {time.monotonic() - started:.0f}"]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"quality-gap-{time.strftime('%Y%m%d-%H%M%S')}.md"
    path.write_text(text)
    print(text)
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
