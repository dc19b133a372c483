"""Per-entity history: daily partial aggregates, and the windowed snapshots assembled from them.

A night adds one day of partials (one row per entity key and event day) and
assembles every window from partials alone, so no night rescans weeks of raw
events. A snapshot *as of* day A holds what was known before A began: the
partials of event days A - w .. A - 1. The as-of day itself never counts, which
is what keeps an impression's own click out of its features.

Partials group by the impression's day, but an impression's click (up to the
attribution window) can happen after that day ended. A click at 00:05 on A on an
impression of A - 1 is not known before A began, so each partial also counts the
part of its clicks that happened after its day (``*_after_day``) and keeps the
last click within its day; the snapshot as of A subtracts that part for the last
``label_maturity_days`` event days (with maturity 1, day A - 1 only: for earlier
days it happened before A).

Conversions come only from closed conversion labels (pipelines/labels.py), in
partials of their own (``daily_conversions``): a day's conversion labels close
``conversion_maturity_days`` (K) after it, so ``conv_<w>d`` as of A counts the
conversions of the impressions of the w newest days whose labels had closed
before A: event days A - K - w .. A - K - 1. Every one of them happened before A.
"""
from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.config import PriorConfig

# Columns an entity key may be built from: the labels' own plus the dimension attributes.
ENTITY_KEY_COLUMNS = ("user_id", "ad_id", "publisher_id", "campaign_id", "advertiser_id", "ad_category",
                      "publisher_category", "segment", "device_type", "country")
CATEGORICAL_COLUMNS = ("device_type", "country", "creative_type", "ad_category", "publisher_category", "segment",
                       "ad_id", "publisher_id", "campaign_id", "advertiser_id")
KEY_SEPARATOR = "\u001f"  # never inside an id, so (a, bc) and (ab, c) stay different keys
COUNTS = ("impressions", "measured", "viewable", "clicks", "viewable_clicks")
# counts whose events can happen after the impression's day -> their part that did
AFTER_DAY = {"clicks": "clicks_after_day", "viewable_clicks": "viewable_clicks_after_day"}
PARTIAL_COLUMNS = ("entity", "key", *COUNTS, *AFTER_DAY.values(), "last_impression_ts", "last_click_ts",
                   "last_click_ts_in_day", "users_sketch", "event_date")
CONVERSION_PARTIAL_COLUMNS = ("entity", "key", "conversions", "event_date")
# name in the snapshot -> daily partial it sums
WINDOW_SUMS = {"imps": "impressions", "measured": "measured", "viewable": "viewable", "clicks": "clicks",
               "viewable_clicks": "viewable_clicks"}
CONVERSION_SUM = "conv"   # the snapshot's window sum of closed conversions (daily_conversions)
# smoothed rate -> (successes, trials)
RATES = {"ctr": ("clicks", "imps"), "vctr": ("viewable_clicks", "viewable")}
# declared sums (pipelines/declarations.py:sums): partial column sum_<input>[_<filter>] -> (input, filter or None,
# the groups declaring it)
Sums = dict[str, tuple[str, str | None, tuple[str, ...]]]
FILTER_COLUMNS = {"viewable": "is_viewable", "measured": "is_measured"}   # a declared filter -> its label flag


def entity_key(columns: tuple[str, ...]) -> Column:
    """The key of one entity; null when any part is unknown (such a row belongs to no key)."""
    known = F.lit(True)
    for c in columns:
        known = known & F.col(c).isNotNull()
    return F.when(known, F.concat_ws(KEY_SEPARATOR, *[F.col(c) for c in columns]))


def snapshot_columns(windows: tuple[int, ...], sums: Sums | None = None) -> list[str]:
    """The feature snapshot's columns, in order (declared sums last: a table gains them at its end)."""
    per_window = [f"{name}_{w}d" for w in sorted(windows)
                  for name in (*WINDOW_SUMS, CONVERSION_SUM, "users", *RATES)]
    declared = [f"{name}_{w}d" for name in (sums or {}) for w in sorted(windows)]
    return ["entity", "key", *per_window, "last_impression_ts", "last_click_ts", "as_of_date", *declared]


def partial_columns(sums: Sums | None = None) -> list[str]:
    """The daily partials' columns, in order: PARTIAL_COLUMNS, then the declared sums."""
    return [*PARTIAL_COLUMNS, *(sums or {})]


def _declared_sum(column: str, groups: tuple[str, ...], value: Column) -> Column:
    """A declared sum's value for the groups that declare it (0 when none of their rows had one); null for the rest."""
    return F.when(F.col("entity").isin(*groups), F.coalesce(value.cast("double"), F.lit(0.0))).alias(column)


def daily_partials(events: DataFrame, entities: dict[str, tuple[str, ...]],
                   distinct_users_for: tuple[str, ...], sums: Sums | None = None) -> DataFrame:
    """One row per (entity, key, event_date) of labelled impressions.

    In: labels with their dimension attributes (event_date, event_ts, user_id,
    every key column, is_measured, is_viewable, clicked, click_ts, and the input of
    every declared sum). Out: partial_columns(sums). ``users_sketch`` is an HLL sketch
    of the key's distinct users for the entities in ``distinct_users_for`` (null for
    the others): sketches merge across days where distinct counts cannot. A declared
    sum ``sum_<input>[_<filter>]`` is the day's sum of its input over the (filtered)
    impressions, for the groups declaring it (null for the others).
    """
    sums = sums or {}
    inputs = sorted({inp for inp, _, _ in sums.values()})
    # One pass: every impression becomes one row per entity, then one aggregation.
    # The map-side partial aggregation collapses a hot ad or publisher before the shuffle.
    per_entity = F.array(*[F.struct(F.lit(name).alias("entity"), entity_key(keys).alias("key"))
                           for name, keys in entities.items()])
    next_day = F.date_add(F.col("event_date"), 1).cast("timestamp")
    clicked_after_day = F.col("clicked") & (F.col("click_ts") >= next_day)
    exploded = (events.select("event_date", "event_ts", "user_id", "is_measured", "is_viewable", "clicked",
                              "click_ts", clicked_after_day.alias("clicked_after_day"), *inputs,
                              F.explode(per_entity).alias("e"))
                .where(F.col("e.key").isNotNull())
                .select("e.entity", "e.key", "event_date", "event_ts", "user_id", "is_measured", "is_viewable",
                        "clicked", "click_ts", "clicked_after_day", *inputs))
    as_long = lambda flag: F.sum(F.col(flag).cast("long"))
    both = lambda a, b: F.sum((F.col(a) & F.col(b)).cast("long"))
    counts = exploded.groupBy("entity", "key", "event_date").agg(
        F.count(F.lit(1)).alias("impressions"), as_long("is_measured").alias("measured"),
        as_long("is_viewable").alias("viewable"), as_long("clicked").alias("clicks"),
        both("clicked", "is_viewable").alias("viewable_clicks"),
        F.coalesce(as_long("clicked_after_day"), F.lit(0)).alias("clicks_after_day"),
        F.coalesce(both("clicked_after_day", "is_viewable"), F.lit(0)).alias("viewable_clicks_after_day"),
        F.max("event_ts").alias("last_impression_ts"),
        F.max(F.when(F.col("clicked"), F.col("click_ts"))).alias("last_click_ts"),
        F.max(F.when(F.col("clicked") & ~F.col("clicked_after_day"), F.col("click_ts"))).alias(
            "last_click_ts_in_day"),
        *[_declared_sum(c, groups, F.sum(F.when(F.col(FILTER_COLUMNS[flt]), F.col(inp)) if flt else F.col(inp)))
          for c, (inp, flt, groups) in sums.items()])
    # Sketches only for the few entities that want them: an HLL buffer per user-level key would not be cheap.
    sketches = (exploded.where(F.col("entity").isin(list(distinct_users_for)))
                .groupBy("entity", "key", "event_date").agg(F.hll_sketch_agg("user_id").alias("users_sketch")))
    return counts.join(sketches, on=["entity", "key", "event_date"], how="left").select(*partial_columns(sums))


def daily_conversions(events: DataFrame, entities: dict[str, tuple[str, ...]]) -> DataFrame:
    """One row per (entity, key, event_date) with converted impressions of one closed day.

    In: the day's closed conversion labels with their dimension attributes (event_date,
    converted, every key column). Out: CONVERSION_PARTIAL_COLUMNS; keys without a
    conversion have no row (the snapshot counts them as zero).
    """
    per_entity = F.array(*[F.struct(F.lit(name).alias("entity"), entity_key(keys).alias("key"))
                           for name, keys in entities.items()])
    return (events.where(F.col("converted")).select("event_date", F.explode(per_entity).alias("e"))
            .where(F.col("e.key").isNotNull())
            .groupBy(F.col("e.entity").alias("entity"), F.col("e.key").alias("key"), "event_date")
            .agg(F.count(F.lit(1)).alias("conversions"))
            .select(*CONVERSION_PARTIAL_COLUMNS))


def window_snapshot(partials: DataFrame, as_of: date, windows: tuple[int, ...], settle_days: int,
                    conversions: DataFrame | None, conversion_settle_days: int, sums: Sums | None = None) -> DataFrame:
    """Raw window counts of every key with events in the longest window before ``as_of``.

    In: PARTIAL_COLUMNS (any days; only the window's are used); ``settle_days``: how many
    days after its event day a partial's clicks can still happen (the label maturity);
    ``conversions``: CONVERSION_PARTIAL_COLUMNS (None: no conversion labels closed yet),
    whose day E counts from the snapshot as of E + ``conversion_settle_days`` + 1 on.
    Out: entity, key, ``<count>_<w>d`` for every count of WINDOW_SUMS, ``conv_<w>d`` and
    ``users_<w>d``, last_impression_ts, last_click_ts (within the longest window), as_of_date,
    and ``<sum>_<w>d`` for every declared sum (``sums``; null for the groups not declaring it).
    """
    # 1. Only event days strictly before the as-of day: the as-of day and later are the future.
    first = as_of - timedelta(days=max(windows))
    history = partials.where(F.col("event_date").between(F.lit(first), F.lit(as_of - timedelta(days=1))))
    # 2. The newest days contribute only what happened within them: a click or conversion after its
    #    impression's day may be on the as-of day, not yet known when it began. Such clicks reach a
    #    partial until its labels close (settle_days = label_maturity_days after the day), so for the
    #    last settle_days days the after-day part is left out (for settle_days > 1 a little early).
    newest = F.col("event_date") >= F.lit(as_of - timedelta(days=max(1, settle_days)))
    known = {src: F.col(src) - F.when(newest, F.coalesce(F.col(AFTER_DAY[src]), F.lit(0))).otherwise(F.lit(0))
             if src in AFTER_DAY else F.col(src) for src in WINDOW_SUMS.values()}
    # 3. Each window sums the days on or after its first day: w = 1 is exactly the previous day.
    aggs = []
    for w in sorted(windows):
        inside = F.col("event_date") >= F.lit(as_of - timedelta(days=w))
        aggs += [F.coalesce(F.sum(F.when(inside, known[src])), F.lit(0)).cast("long").alias(f"{name}_{w}d")
                 for name, src in WINDOW_SUMS.items()]
        aggs.append(F.hll_sketch_estimate(F.hll_union_agg(F.when(inside, F.col("users_sketch")))).alias(
            f"users_{w}d"))
        # a declared sum is known on its impression's day: nothing of it happens after the day
        aggs += [_declared_sum(f"{c}_{w}d", groups, F.sum(F.when(inside, F.col(c))))
                 for c, (_, _, groups) in (sums or {}).items()]
    aggs += [F.max("last_impression_ts").alias("last_impression_ts"),
             F.max(F.when(newest, F.col("last_click_ts_in_day")).otherwise(F.col("last_click_ts"))).alias(
                 "last_click_ts")]
    raw = history.groupBy("entity", "key").agg(*aggs)
    # 4. Conversions: the w newest closed days, E <= as_of - K - 1 (a re-run after later nights
    #    closed more days sees exactly the same ones). Keys without impressions in the longest window
    #    are not in the snapshot, so their old conversions are not either.
    conv_names = [f"{CONVERSION_SUM}_{w}d" for w in sorted(windows)]
    if conversions is not None:
        newest_closed = as_of - timedelta(days=conversion_settle_days + 1)
        closed = conversions.where(F.col("event_date").between(
            F.lit(newest_closed - timedelta(days=max(windows) - 1)), F.lit(newest_closed)))
        sums = closed.groupBy("entity", "key").agg(*[
            F.sum(F.when(F.col("event_date") > F.lit(newest_closed - timedelta(days=w)), F.col("conversions")))
            .alias(name) for w, name in zip(sorted(windows), conv_names)])
        raw = raw.join(sums, on=["entity", "key"], how="left")
    raw = raw.select("*", *[F.lit(None).cast("long").alias(n) for n in conv_names if n not in raw.columns])
    raw = raw.select(*[F.coalesce(F.col(c), F.lit(0)).cast("long").alias(c) if c in conv_names else F.col(c)
                       for c in raw.columns])
    return raw.withColumn("as_of_date", F.lit(as_of))


def fit_beta_priors(snapshot: DataFrame, windows: tuple[int, ...], prior: PriorConfig) -> DataFrame:
    """An empirical-Bayes Beta(alpha, beta) prior per entity type, window and rate, by the method of moments.

    In: the output of window_snapshot. Out: entity, rate (ctr | vctr), window_days,
    keys (informative keys), mean, strength (alpha + beta), alpha, beta.

    The spread of observed rates overstates the spread of true rates by the
    binomial noise m(1 - m) E[1/n]; that noise is subtracted before solving
    strength = m(1 - m) / var - 1. With too few informative keys the prior falls
    back to the entity type's pooled rate with ``fallback_strength``; when the
    rates vary no more than noise, the prior is as strong as ``max_strength``.
    """
    cells = F.array(*[F.struct(F.lit(rate).alias("rate"), F.lit(w).alias("window_days"),
                               F.col(f"{num}_{w}d").cast("double").alias("k"),
                               F.col(f"{den}_{w}d").cast("double").alias("n"))
                      for w in sorted(windows) for rate, (num, den) in RATES.items()])
    long = snapshot.select("entity", F.explode(cells).alias("c")).select("entity", "c.*")
    informative = F.col("n") >= F.lit(prior.min_impressions)
    r = F.col("k") / F.col("n")
    moments = long.groupBy("entity", "rate", "window_days").agg(
        F.count(F.when(informative, True)).alias("keys"),
        F.avg(F.when(informative, r)).alias("m"),
        F.var_pop(F.when(informative, r)).alias("v"),
        F.avg(F.when(informative, 1.0 / F.col("n"))).alias("inv_n"),
        (F.sum("k") / F.sum("n")).alias("pooled"))
    eps = 1e-6
    enough = F.col("keys") >= F.lit(prior.min_keys)
    mean = F.least(F.greatest(F.when(enough, F.col("m")).otherwise(F.coalesce(F.col("pooled"), F.lit(0.0))),
                              F.lit(eps)), F.lit(1 - eps))
    excess = F.col("v") - mean * (1 - mean) * F.col("inv_n")
    strength = (F.when(~enough, F.lit(prior.fallback_strength))
                .when(excess <= 0, F.lit(prior.max_strength))
                .otherwise(F.least(F.greatest(mean * (1 - mean) / excess - 1, F.lit(1.0)),
                                   F.lit(prior.max_strength))))
    return moments.select("entity", "rate", "window_days", "keys", mean.alias("mean"), strength.alias("strength"),
                          (mean * strength).alias("alpha"), ((1 - mean) * strength).alias("beta"))


def with_smoothed_rates(snapshot: DataFrame, priors: DataFrame, windows: tuple[int, ...],
                        sums: Sums | None = None) -> DataFrame:
    """Add ``ctr_<w>d`` and ``vctr_<w>d``: (successes + alpha) / (trials + alpha + beta), in [0, 1].

    In: window_snapshot output and fit_beta_priors output. Out: snapshot_columns(windows, sums).
    """
    wide = priors.groupBy("entity").agg(*[
        F.first(F.when((F.col("rate") == rate) & (F.col("window_days") == w), F.col(part)), ignorenulls=True)
        .alias(f"__{part}_{rate}_{w}d")
        for w in windows for rate in RATES for part in ("alpha", "beta")])
    joined = snapshot.join(F.broadcast(wide), on="entity", how="left")
    for w in windows:
        for rate, (num, den) in RATES.items():
            a, b = F.col(f"__alpha_{rate}_{w}d"), F.col(f"__beta_{rate}_{w}d")
            joined = joined.withColumn(f"{rate}_{w}d", (F.col(f"{num}_{w}d") + a) / (F.col(f"{den}_{w}d") + a + b))
    return joined.select(*snapshot_columns(windows, sums))
