"""Point-in-time training sets: closed labels joined as of their day with dimensions and features.

Schema of the result (TRAINING_SET_BASE_COLUMNS, then features):
impression_id, event_date, event_ts, user_id, ad_id, label (1 clicked, 0 not),
converted, split (train | validation | test), neg_keep_rate (the share of
negatives kept in the row's split: 1.0 unless the train split was downsampled),
the declared features (conf/features.yaml, in its order: history, context,
same-day counts; doubles, null = no such history) and ``c_<column>`` raw category
values (string; null = unknown), which the trainer's vocabulary encodes.
"""
from __future__ import annotations

import functools
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipelines.declarations import ContextFeature, HistoryFeature
from pipelines.features import entity_key

TRAINING_SET_BASE_COLUMNS = ("impression_id", "event_date", "event_ts", "user_id", "ad_id", "label", "converted",
                             "split", "neg_keep_rate")


def as_of(facts: DataFrame, snapshots: DataFrame, key: str, fact_day: str, days: list[date],
          snapshot_days: list[date] | None = None) -> DataFrame:
    """Attach to each fact the newest snapshot row of its key dated on or before the fact's day.

    In: facts with ``key`` and a date column ``fact_day`` whose values are among
    ``days``; snapshots with ``key``, ``dt`` and attributes, at most one row per
    (key, dt); ``snapshot_days``: the snapshots' dt values, when the caller has them
    cheaper than from ``snapshots`` (jobs/stages/gold.dimensions). Out: facts' columns
    plus the attributes (null where no snapshot row exists); never more rows than facts.
    """
    # 1. Which snapshot day each fact day sees: the newest dt <= that day, a literal map (the fact days are
    #    given, not derived from facts, so the facts' plan is not run again to find them; no join, no job).
    if snapshot_days is None:
        snapshot_days = [r[0] for r in snapshots.select("dt").distinct().collect()]
    pairs = [(d, max((s for s in snapshot_days if s <= d), default=None)) for d in sorted(set(days))]
    pairs = [(d, s) for d, s in pairs if s is not None]
    seen = (F.create_map(*[F.lit(x) for pair in pairs for x in pair])[F.col(fact_day)] if pairs
            else F.lit(None).cast("date"))
    # 2. An equi-join on (key, that day): no range join over every snapshot row.
    attrs = snapshots.withColumnRenamed("dt", "__snapshot_dt")
    return (facts.withColumn("__snapshot_dt", seen)
            .join(attrs, on=[key, "__snapshot_dt"], how="left").drop("__snapshot_dt"))


def with_dimensions(labels: DataFrame, days: list[date], users: DataFrame, ads: DataFrame, campaigns: DataFrame,
                    publishers: DataFrame, landed: str | None = None,
                    snapshot_days: dict[str, list[date]] | None = None) -> DataFrame:
    """Labels plus segment, campaign_id, ad_category, advertiser_id and publisher_category as of their day.

    In: labels (event_date among ``days``, user_id, ad_id, publisher_id, ...); dimension snapshots
    users (user_id, segment, dt), ads (ad_id, campaign_id, category, dt), campaigns
    (campaign_id, advertiser_id, dt), publishers (publisher_id, category, dt), one
    row per key and dt. With ``landed`` (the arrival-day column), as of the earlier of the
    event day and the arrival day: an impression that landed the day before its event day
    (a clock a little ahead) gets the snapshots a scorer of that landing had. ``snapshot_days``: each
    dimension's delivery days, by name (users, ads, campaigns, publishers), when the caller has them (as_of).
    """
    have = snapshot_days or {}
    day = "event_date"
    if landed:
        day = "__dimension_day"
        labels = labels.withColumn(day, snapshot_day(F.col("event_date"), 0, F.col(landed)))
        days = sorted({*days, min(days) - timedelta(days=1)})
    out = as_of(labels, users.select("user_id", "segment", "dt"), "user_id", day, days, have.get("users"))
    out = as_of(out, ads.select("ad_id", "campaign_id", F.col("category").alias("ad_category"), "dt"),
                "ad_id", day, days, have.get("ads"))
    out = as_of(out, campaigns.select("campaign_id", "advertiser_id", "dt"), "campaign_id", day, days,
                have.get("campaigns"))
    out = as_of(out, publishers.select("publisher_id", F.col("category").alias("publisher_category"), "dt"),
                "publisher_id", day, days, have.get("publishers"))
    return out.drop("__dimension_day") if landed else out


def snapshot_day(event_date: Column, lag_days: int, landed: Column | None = None) -> Column:
    """The as-of day of the feature snapshot a row of ``event_date`` gets: ``lag_days`` before it.

    The one rule for training and scoring (README "Training/serving parity"): the snapshot
    as of day X is published by the night of arrival date X, after X's traffic. With lag 1
    a row gets the snapshot published by the night before its day - what a scorer had.
    With ``landed`` (the row's arrival day), never later than that day: a row that landed
    before its event day (lag 0, or a clock ahead) gets no snapshot its scorer lacked.
    """
    day = F.date_sub(event_date, lag_days) if lag_days else event_date
    return F.least(day, landed) if landed is not None else day


def snapshot_span(first: date, last: date, lag_days: int, landed_by: date | None = None) -> tuple[date, date]:
    """The first and last as-of day ``snapshot_day`` gives rows of event days ``first`` .. ``last``.

    ``lag_days`` before the event day, or the arrival day when that is earlier - at most a
    day before the event day (a clock a little ahead), hence ``max(lag_days, 1)``. With
    ``landed_by`` (rows that all landed by that day, as when scoring one landing), never
    later than it.
    """
    lo, hi = first - timedelta(days=max(lag_days, 1)), last - timedelta(days=lag_days)
    return lo, hi if landed_by is None else min(hi, landed_by)


def join_features(rows: DataFrame, features: DataFrame, priors: DataFrame, entities: dict[str, tuple[str, ...]],
                  history: list[HistoryFeature], context: tuple[ContextFeature, ...],
                  broadcast_entities: tuple[str, ...] = (), lag_days: int = 0, landed: str | None = None,
                  few_rows: bool = False) -> DataFrame:
    """Rows (labels with dimensions) plus the declared features, history as of ``snapshot_day`` of the row.

    In: rows with event_date, event_ts, position and the entity key columns;
    features (the gold snapshots: entity, key, as_of_date, ...); priors (entity,
    rate, window_days, mean, as_of_date); ``history`` and ``context``: the declared
    features (pipelines/declarations.py), in column order. The snapshot of as_of_date = X
    holds events of days before X only, so with any lag >= 0 nothing of the row's day or
    later can leak in. A key without history gets zero counts and its entity's prior
    mean as rate; recency (last_seen) stays null. ``few_rows``: ``rows`` is a small sample (the drift
    measure's): the snapshots are first cut to the sample's keys in one scan (a broadcast semi-join, checkpointed)
    and each entity's part is then broadcast, instead of shuffled against the rows; the result is the same.
    """
    by_group = {e: [f for f in history if f.group == e] for e in entities}
    # Prior means per as-of day, one column per declared rate: the fill for keys without history.
    rated = sorted({(f.group, f.rate, f.window) for f in history if f.rate})
    # Every key first, then the joins back to back, then one projection: a Project between
    # every two joins makes Spark's planner walk the plan exponentially often (and run out of memory).
    used = [e for e in entities if by_group[e]]
    keyed = rows.select("*", *[entity_key(entities[e]).alias(f"__key_{e}") for e in used])
    out = keyed
    seen = snapshot_day(F.col("event_date"), lag_days, F.col(landed) if landed else None)
    if rated:   # declarations without a rate have no means to fill with
        # A few rows per as-of day (one per entity, rate and window): pivoted on the driver into a local table,
        # not by a wide aggregation whose code Spark compiles on every call (0.85 s of the drift step at 1M).
        by_day: dict[date, dict[tuple, float]] = {}
        for day, entity, rate, window, mean in priors.select(
                "as_of_date", "entity", "rate", "window_days", "mean").where(F.col("mean").isNotNull()).collect():
            by_day.setdefault(day, {}).setdefault((entity, rate, window), mean)
        means = rows.sparkSession.createDataFrame(
            [(day, *[got.get(k) for k in rated]) for day, got in sorted(by_day.items())],
            ", ".join(["__prior_day date", *[f"`__prior_{e}_{r}_{w}d` double" for e, r, w in rated]]))
        out = out.join(F.broadcast(means), on=seen == F.col("__prior_day"), how="left")
    if few_rows and used:
        # One scan of the snapshots for every entity, cut to the sample's (entity, key) pairs and held in memory:
        # the per-entity joins below read that, not the table - one job instead of a scan and a semi-join (four
        # small stages) per entity. The keys come from the rows before any join: taken from ``out``, every
        # snapshot's plan would hold all the joins before it (the optimizer then runs out of memory).
        wanted = functools.reduce(DataFrame.unionAll, [keyed.select(
            F.lit(e).alias("entity"), F.col(f"__key_{e}").alias("key")) for e in used]).distinct()
        sources = dict.fromkeys(f.column for e in used for f in by_group[e])   # only the columns read below
        features = features.select("entity", "key", "as_of_date", *sources).join(
            F.broadcast(wanted), on=["entity", "key"], how="left_semi").localCheckpoint(eager=True)
    filled = {}
    for entity in used:
        sources = list(dict.fromkeys(f.column for f in by_group[entity]))
        snap = features.where(F.col("entity") == entity).select(
            F.col("key").alias(f"__k_{entity}"), F.col("as_of_date").alias(f"__d_{entity}"),
            *[F.col(src).alias(f"__{entity}_{src}") for src in sources])
        if few_rows or entity in broadcast_entities:
            snap = F.broadcast(snap)
        on = (F.col(f"__key_{entity}") == F.col(f"__k_{entity}")) & (seen == F.col(f"__d_{entity}"))
        out = out.join(snap, on=on, how="left")
        for f in by_group[entity]:
            value = F.col(f"__{entity}_{f.column}")
            if f.window is None:   # last_seen: hours from it to the row's event time
                filled[f.name] = (F.col("event_ts").cast("double") - value.cast("double")) / 3600.0
            else:
                filled[f.name] = F.coalesce(value.cast("double"), F.col(f"__prior_{entity}_{f.rate}_{f.window}d")
                                            if f.rate else F.lit(0.0))
    contextual = {"value": lambda c: F.col(c).cast("double"), "hour_of_day": lambda c: F.hour(c).cast("double")}
    return out.select(*rows.columns, *[filled[f.name].alias(f.name) for f in history],
                      *[contextual[c.op](c.input).alias(c.name) for c in context])


def with_same_day_counts(rows: DataFrame, entities: dict[str, tuple[str, ...]], same_day: dict[str, str],
                         landed: str | None, max_late_days: int) -> DataFrame:
    """Add each declared same-day count (``same_day``: feature name -> group): the group key's impressions
    earlier on the row's own day (doubles).

    Day-level snapshots see nothing of the impression's own day, yet fatigue starts with
    the second exposure of the morning. The count covers impressions strictly before the
    row's event_ts (a tie in time is not "earlier"), so nothing at or after the row leaks
    in. With ``landed`` (the arrival-day column), only impressions that had landed by the
    row's own arrival day count: what a scorer of that day's landing had (a late delivery
    is not known to the rows scored before it landed; one that landed the day before its
    event day is known to the rows landed after it). Delays are told apart up to
    ``max_late_days``; later ones count as that late. A row whose key is unknown (a null
    part) gets null.
    """
    out = rows
    delay = None
    if landed:
        # 0 = landed the day before its event day (a clock a little ahead), 1 = on it, 2 = a day late, ...
        delay = F.least(F.greatest(F.datediff(F.col(landed), F.col("event_date")) + 1, F.lit(0)),
                        F.lit(max_late_days + 1))
    for name, entity in same_day.items():
        key = entity_key(entities[entity])
        # 1. Same key, same event day; 2. ordered by time in microseconds; 3. everything strictly earlier.
        earlier = (Window.partitionBy(key, F.col("event_date")).orderBy(F.unix_micros(F.col("event_ts")))
                   .rangeBetween(Window.unboundedPreceding, -1))
        if delay is None:
            count = F.count(F.lit(1)).over(earlier)
        else:
            # 4. Of those, the ones landed no later than this row: a window frame cannot compare two
            #    rows' arrival days, so count the earlier rows per delay and add up the delays <= ours.
            count = sum(F.when(delay >= d, F.coalesce(F.sum((delay == d).cast("int")).over(earlier), F.lit(0)))
                        .otherwise(0)
                        for d in range(max_late_days + 2))
        out = out.withColumn(name, F.when(key.isNotNull(), count.cast("double")))
    return out


def assign_splits(rows: DataFrame, end: date, train_days: int, validation_days: int, test_days: int) -> DataFrame:
    """Add ``split`` by event day: the last test_days end at ``end``, validation before, train before that.

    Rows outside the span get no split and are dropped by the caller's date filter.
    """
    test_start = end - timedelta(days=test_days - 1)
    val_start = test_start - timedelta(days=validation_days)
    train_start = val_start - timedelta(days=train_days)
    d = F.col("event_date")
    split = (F.when(d.between(F.lit(test_start), F.lit(end)), "test")
             .when(d.between(F.lit(val_start), F.lit(test_start - timedelta(days=1))), "validation")
             .when(d.between(F.lit(train_start), F.lit(val_start - timedelta(days=1))), "train"))
    return rows.withColumn("split", split)


def span(end: date, train_days: int, validation_days: int, test_days: int) -> tuple[date, date]:
    """First and last event day a training set ending at ``end`` covers."""
    return end - timedelta(days=train_days + validation_days + test_days - 1), end


def uniform(column: str, seed: int) -> Column:
    """A deterministic draw in [0, 1) per value: the same rows are kept on every re-run."""
    return (F.pmod(F.xxhash64(F.col(column), F.lit(seed)), F.lit(1 << 30)) / float(1 << 30)).cast("double")


def downsample_negatives(rows: DataFrame, keep_rate: float, seed: int) -> DataFrame:
    """Keep every positive and every non-train row; keep train negatives with probability ``keep_rate``.

    Adds ``neg_keep_rate``: keep_rate on train rows, 1.0 elsewhere, so a model's
    scores can be corrected with q = p / (p + (1 - p) / w).
    """
    is_train = F.col("split") == "train"
    kept = (F.col("label") == 1) | ~is_train | (uniform("impression_id", seed) < F.lit(keep_rate))
    return rows.where(kept).withColumn("neg_keep_rate", F.when(is_train, F.lit(keep_rate)).otherwise(F.lit(1.0)))


def raw_categories(columns: tuple[str, ...]) -> list[Column]:
    """``c_<column>`` per categorical column: the raw value as text (null when unknown).

    Not coded here: the trainer fits the vocabulary on its train split and stores it
    in the model, so rebuilding this table never changes what a registered model scores.
    """
    return [F.col(c).cast("string").alias(f"c_{c}") for c in columns]
