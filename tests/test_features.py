"""Gold features: window edges, the Beta prior, the as-of join, and the leakage property."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs.runtime.config import load_config
from pipelines import declarations
from pipelines.config import PriorConfig
from pipelines.features import (
    ENTITY_KEY_COLUMNS,
    daily_conversions,
    daily_partials,
    fit_beta_priors,
    window_snapshot,
    with_smoothed_rates,
)
from pipelines.schemas import ddl, ddl_types
from pipelines.training_set import (
    as_of,
    assign_splits,
    downsample_negatives,
    join_features,
    raw_categories,
    snapshot_day,
    snapshot_span,
    with_dimensions,
    with_same_day_counts,
)


def declared(groups: dict[str, tuple[str, ...]], windows=(1, 7)) -> declarations.Declarations:
    """Small declarations for these tests: imps, clicks, ctr, vctr (users where not keyed by user), the
    production recency and same-day features of user and user_x_ad, position and hour."""
    win = lambda g, s: "{" + ", ".join(f"{w}: f_{g}_{s}_{w}d" for w in windows) + "}"
    text = ["groups:"]
    for g, keys in groups.items():
        text += [f"  {g}:", f"    keys: [{', '.join(keys)}]", "    description: d", "    owner: tests",
                 "    since: 2025-01-01", "    aggregations:",
                 f"      - {{op: count, input: impressions, description: d, windows: {win(g, 'imps')}}}",
                 f"      - {{op: count, input: clicks, description: d, windows: {win(g, 'clicks')}}}",
                 f"      - {{op: rate, input: clicks, description: d, windows: {win(g, 'ctr')}}}",
                 f"      - {{op: rate, input: clicks, filter: viewable, description: d, windows: {win(g, 'vctr')}}}"]
        if "user_id" not in keys:
            text.append(f"      - {{op: distinct_count, input: user_id, description: d, windows: {win(g, 'users')}}}")
        last = {"user": "{op: last_seen, input: clicks, name: f_user_hours_since_click, description: d}",
                "user_x_ad": "{op: last_seen, input: impressions, name: f_user_x_ad_hours_since_impression, "
                             "description: d}"}
        if g in last:
            text += [f"      - {last[g]}",
                     f"      - {{op: same_day_count, input: impressions, name: f_{g}_imps_today, description: d}}"]
    text += ["context:", "  f_position: {op: value, input: position, description: d, owner: t, since: 2025-01-01}",
             "  f_hour: {op: hour_of_day, input: event_ts, description: d, owner: t, since: 2025-01-01}"]
    return declarations.loads("\n".join(text), "tests/test_features.py", windows, ENTITY_KEY_COLUMNS)


SMALL = declared({"user": ("user_id",), "ad": ("ad_id",), "user_x_ad": ("user_id", "ad_id")})
ENTITIES = declarations.entities(SMALL)
SAME_DAY = declarations.same_day_features(SMALL)
PROD_GOLD = load_config("local").gold
PROD = PROD_GOLD.features   # conf/features.yaml: every feature the pipeline builds
PRIOR = PriorConfig(min_impressions=1, min_keys=2, fallback_strength=10.0, max_strength=1000.0)
DIMENSIONS = ("publisher_id", "campaign_id", "advertiser_id", "ad_category", "publisher_category", "segment",
              "device_type", "country")
LABELS_DDL = ("impression_id string, event_date date, event_ts timestamp, user_id string, ad_id string, "
              "position int, is_measured boolean, is_viewable boolean, clicked boolean, click_ts timestamp, "
              "converted boolean, conversion_ts timestamp, " + ", ".join(f"{c} string" for c in DIMENSIONS))


def label(i, ts, user="u1", ad="a1", clicked=False, viewable=True, converted=False, click_ts=None,
          conversion_ts=None):
    ts = datetime.fromisoformat(ts)
    click = (datetime.fromisoformat(click_ts) if click_ts else ts.replace(second=min(ts.second + 1, 59))
             ) if clicked else None
    conversion = (datetime.fromisoformat(conversion_ts) if conversion_ts else click or ts) if converted else None
    # every key column of the production groups, derived from the ad and the user
    dims = ("p1", f"c-{ad}", "v1", f"cat-{ad}", "news", f"s-{user}", "mobile", "US")
    return (f"i{i}", ts.date(), ts, user, ad, 1, True, viewable, clicked, click, converted, conversion, *dims)


def snapshot_of(spark, rows, as_of_day, windows=(1, 7)):
    labels = spark.createDataFrame(rows, LABELS_DDL)
    partials = daily_partials(labels, ENTITIES, ("ad",))
    return window_snapshot(partials, as_of_day, windows, 1, None, 4)


def test_daily_partials_one_row_per_entity_key_and_day(spark):
    labels = spark.createDataFrame([
        label(1, "2025-03-01 10:00:00", clicked=True),
        label(2, "2025-03-01 11:00:00", user="u2", viewable=False),
        label(3, "2025-03-01 12:00:00", ad="a2", converted=True, clicked=True),
        (*label(4, "2025-03-01 13:00:00", ad="a2")[:3], None, *label(4, "2025-03-01 13:00:00", ad="a2")[4:]),
    ], LABELS_DDL)
    out = daily_partials(labels, ENTITIES, ("ad",)).withColumn(
        "users", F.hll_sketch_estimate("users_sketch")).drop("users_sketch", "last_impression_ts", "last_click_ts",
                                                             "last_click_ts_in_day", "event_date")
    sep = "\u001f"
    # impressions, measured, viewable, clicks, viewable clicks, the last two after the day, users
    # (conversions are not in these partials: they wait for closed conversion labels, daily_conversions)
    expected = spark.createDataFrame([
        ("user", "u1", 2, 2, 2, 2, 2, 0, 0, None),
        ("user", "u2", 1, 1, 0, 0, 0, 0, 0, None),
        ("ad", "a1", 2, 2, 1, 1, 1, 0, 0, 2),
        ("ad", "a2", 2, 2, 2, 1, 1, 0, 0, 1),  # the impression without a user still counts for its ad
        ("user_x_ad", f"u1{sep}a1", 1, 1, 1, 1, 1, 0, 0, None),
        ("user_x_ad", f"u2{sep}a1", 1, 1, 0, 0, 0, 0, 0, None),
        ("user_x_ad", f"u1{sep}a2", 1, 1, 1, 1, 1, 0, 0, None),  # no key for the user-less impression
    ], "entity string, key string, impressions long, measured long, viewable long, clicks long, "
       "viewable_clicks long, clicks_after_day long, viewable_clicks_after_day long, users long")
    assertDataFrameEqual(out, expected, checkRowOrder=False, ignoreNullable=True)


def test_window_edges_previous_day_counts_own_day_never(spark):
    rows = [label(1, "2025-03-09 23:59:59", clicked=True),   # last second of D-1: in the 1-day window
            label(2, "2025-03-10 00:00:00", clicked=True),   # first second of D: never in D's features
            label(3, "2025-03-03 12:00:00"),                  # D-7: in the 7-day window, not the 1-day one
            label(4, "2025-03-02 23:59:59")]                  # D-8: outside every window
    snap = snapshot_of(spark, rows, date(2025, 3, 10)).where(F.col("entity") == "user").select(
        "key", "imps_1d", "clicks_1d", "imps_7d", "clicks_7d", "last_impression_ts", "last_click_ts")
    expected = spark.createDataFrame(
        [("u1", 1, 1, 2, 1, datetime(2025, 3, 9, 23, 59, 59), datetime(2025, 3, 9, 23, 59, 59))],
        "key string, imps_1d long, clicks_1d long, imps_7d long, clicks_7d long, last_impression_ts timestamp, "
        "last_click_ts timestamp")
    assertDataFrameEqual(snap, expected)


def test_clicks_after_midnight_wait_for_the_next_snapshot(spark):
    # An impression at 23:59:50 of D-1 clicked at 00:00:10 of D: the click was not known before D
    # began, so the snapshot as of D must not see it; the one as of D + 1 does.
    rows = [label(1, "2025-03-09 23:59:50", clicked=True, click_ts="2025-03-10 00:00:10"),
            label(2, "2025-03-09 12:00:00", clicked=True)]
    cols = ("key", "imps_1d", "clicks_1d", "imps_7d", "clicks_7d", "last_click_ts")
    ddl = "key string, imps_1d long, clicks_1d long, imps_7d long, clicks_7d long, last_click_ts timestamp"
    on_d = snapshot_of(spark, rows, date(2025, 3, 10)).where(F.col("entity") == "user").select(*cols)
    assertDataFrameEqual(on_d, spark.createDataFrame([("u1", 2, 1, 2, 1, datetime(2025, 3, 9, 12, 0, 1))], ddl))
    next_day = snapshot_of(spark, rows, date(2025, 3, 11)).where(F.col("entity") == "user").select(*cols)
    assertDataFrameEqual(next_day, spark.createDataFrame(
        [("u1", 0, 0, 2, 2, datetime(2025, 3, 10, 0, 0, 10))], ddl))
    # Labels that close two days late (label_maturity_days 2) leave the after-day part out for two days.
    partials = daily_partials(spark.createDataFrame(rows, LABELS_DDL), ENTITIES, ("ad",))
    settling = window_snapshot(partials, date(2025, 3, 11), (1, 7), 2, None, 4).where(
        F.col("entity") == "user").select(*cols)
    assertDataFrameEqual(settling, spark.createDataFrame(
        [("u1", 0, 0, 2, 1, datetime(2025, 3, 9, 12, 0, 1))], ddl))


def test_conversions_count_only_days_whose_conversion_labels_closed(spark):
    # Conversion labels close K = 4 days after their day (the night of E + 4 publishes the snapshot as
    # of E + 5), so as of 03-10 the newest closed day is 03-05: conv_1d counts 03-05 alone, conv_7d
    # 02-27 .. 03-05. 03-06's conversion closes with the night of 03-10, after that snapshot: not counted.
    rows = [label(i, ts, converted=True) for i, ts in enumerate(
        ["2025-02-26 10:00:00", "2025-02-27 10:00:00", "2025-03-05 10:00:00", "2025-03-06 10:00:00",
         "2025-03-09 10:00:00"])]
    rows.append(label(9, "2025-03-05 11:00:00"))   # not converted
    labels = spark.createDataFrame(rows, LABELS_DDL)
    conversions = daily_conversions(labels, ENTITIES)
    assertDataFrameEqual(conversions.where(F.col("entity") == "user"), spark.createDataFrame(
        [("user", "u1", 1, date(2025, 2, d)) for d in (26, 27)] + [("user", "u1", 1, date(2025, 3, d))
                                                                   for d in (5, 6, 9)],
        "entity string, key string, conversions long, event_date date"), checkRowOrder=False)
    snap = window_snapshot(daily_partials(labels, ENTITIES, ("ad",)), date(2025, 3, 10), (1, 7), 1, conversions,
                           conversion_settle_days=4).where(F.col("entity") == "user")
    assertDataFrameEqual(snap.select("key", "imps_7d", "conv_1d", "conv_7d"), spark.createDataFrame(
        [("u1", 4, 1, 2)], "key string, imps_7d long, conv_1d long, conv_7d long"))
    # A re-run of that snapshot after more days closed sees the same conversions; without any closed
    # conversion partials every conv window is 0, never null.
    later = conversions.unionByName(spark.createDataFrame([("user", "u1", 5, date(2025, 3, 7))],
                                                          "entity string, key string, conversions long, "
                                                          "event_date date"))
    again = window_snapshot(daily_partials(labels, ENTITIES, ("ad",)), date(2025, 3, 10), (1, 7), 1, later,
                            conversion_settle_days=4).where(F.col("entity") == "user")
    assertDataFrameEqual(again.select("key", "conv_1d", "conv_7d"), snap.select("key", "conv_1d", "conv_7d"))
    none = snapshot_of(spark, rows, date(2025, 3, 10)).where(F.col("entity") == "user")
    assertDataFrameEqual(none.select("key", "conv_1d", "conv_7d"),
                         spark.createDataFrame([("u1", 0, 0)], "key string, conv_1d long, conv_7d long"))


def test_beta_prior_method_of_moments_and_smoothing(spark):
    # Two ads at 10/100 and 30/100: mean 0.2, variance 0.01, binomial noise 0.2 * 0.8 / 100 = 0.0016,
    # so strength = 0.16 / 0.0084 - 1 and each smoothed CTR is (k + alpha) / (n + alpha + beta).
    rows = [label(f"a{i}", "2025-03-09 10:00:00", user=f"u{i}", ad="a1", clicked=i < 10) for i in range(100)]
    rows += [label(f"b{i}", "2025-03-09 10:00:00", user=f"u{100 + i}", ad="a2", clicked=i < 30) for i in range(100)]
    snap = snapshot_of(spark, rows, date(2025, 3, 10), windows=(1,))
    priors = fit_beta_priors(snap, (1,), PRIOR)
    # what gold stores beside the snapshot is the schema module's gold/priors
    stored = priors.withColumn("as_of_date", F.lit(date(2025, 3, 10)))
    assert [(f.name, f.dataType.simpleString()) for f in stored.schema.fields] == \
        list(ddl_types(ddl("gold/priors")).items())
    strength = 0.16 / (0.01 - 0.0016) - 1
    got = priors.where((F.col("entity") == "ad") & (F.col("rate") == "ctr")).select("keys", "mean", "strength",
                                                                                     "alpha", "beta")
    assertDataFrameEqual(got, spark.createDataFrame([(2, 0.2, strength, 0.2 * strength, 0.8 * strength)],
                                                    "keys long, mean double, strength double, alpha double, "
                                                    "beta double"), rtol=1e-9)
    smoothed = with_smoothed_rates(snap, priors, (1,)).where(F.col("entity") == "ad").select("key", "ctr_1d")
    assertDataFrameEqual(smoothed, spark.createDataFrame(
        [("a1", (10 + 0.2 * strength) / (100 + strength)), ("a2", (30 + 0.2 * strength) / (100 + strength))],
        "key string, ctr_1d double"), rtol=1e-9)
    # 100 users with one impression each: every user rate is 0 or 1, the spread is pure noise
    # (excess variance <= 0), so the prior is as strong as allowed.
    user = priors.where((F.col("entity") == "user") & (F.col("rate") == "ctr")).select("mean", "strength").first()
    assert user["mean"] == pytest.approx(40 / 200)
    assert user["strength"] == PRIOR.max_strength


def test_beta_prior_falls_back_to_pooled_rate_with_too_few_keys(spark):
    rows = [label(i, "2025-03-09 10:00:00", clicked=i < 3) for i in range(10)]  # one user, one ad
    priors = fit_beta_priors(snapshot_of(spark, rows, date(2025, 3, 10), windows=(1,)), (1,), PRIOR)
    got = priors.where(F.col("rate") == "ctr").select("entity", "keys", "mean", "strength")
    assertDataFrameEqual(got, spark.createDataFrame(
        [(e, 1, 0.3, 10.0) for e in ("user", "ad", "user_x_ad")],
        "entity string, keys long, mean double, strength double"), rtol=1e-9)


def test_as_of_join_takes_newest_snapshot_on_or_before_the_day(spark):
    facts = spark.createDataFrame([("f1", "a1", date(2025, 3, 1)), ("f2", "a1", date(2025, 3, 2)),
                                   ("f3", "a1", date(2025, 3, 4)), ("f4", "a2", date(2025, 3, 4)),
                                   ("f5", "a1", date(2025, 2, 27))],
                                  "fid string, ad_id string, event_date date")
    snaps = spark.createDataFrame([("a1", "old", date(2025, 2, 28)), ("a1", "new", date(2025, 3, 2)),
                                   ("a1", "future", date(2025, 3, 5)), ("a2", "x", date(2025, 2, 28))],
                                  "ad_id string, category string, dt date")
    days = [date(2025, 2, 27), date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 4)]
    out = as_of(facts, snaps, "ad_id", "event_date", days).select("fid", "category")
    # f4: a2 has no row in the snapshot of 03-02 (the newest one 03-04 sees), so its category is unknown.
    expected = spark.createDataFrame([("f1", "old"), ("f2", "new"), ("f3", "new"), ("f4", None), ("f5", None)],
                                     "fid string, category string")
    assertDataFrameEqual(out, expected)


def _features_for_day(spark, rows, day, decl=SMALL, windows=(1, 7)):
    """The full path: labels -> partials -> snapshots -> every declared feature of the impressions on ``day``."""
    entities, sums = declarations.entities(decl), declarations.sums(decl)
    labels = spark.createDataFrame(rows, LABELS_DDL)
    partials = daily_partials(labels, entities, declarations.distinct_users_for(decl), sums)
    # every day's conversions as if closed (K = 2: label maturity 1 + a 24 h window); the snapshot takes
    # only the days it may
    raw = window_snapshot(partials, day, windows, 1, daily_conversions(labels, entities), conversion_settle_days=2,
                          sums=sums)
    priors = fit_beta_priors(raw, windows, PRIOR)
    features = with_smoothed_rates(raw, priors, windows, sums)
    todays = with_same_day_counts(labels.where(F.col("event_date") == F.lit(day)), entities,
                                  declarations.same_day_features(decl), None, 7)
    out = join_features(todays, features, priors.withColumn("as_of_date", F.lit(day)), entities,
                        declarations.history_features(decl), decl.context)
    return out.drop("clicked", "click_ts", "converted", "conversion_ts", "is_viewable", "is_measured")


HISTORY = [label(1, "2025-03-08 09:00:00", clicked=True), label(2, "2025-03-09 10:00:00"),
           label(3, "2025-03-09 20:00:00", user="u2", clicked=True), label(4, "2025-03-09 23:59:59", ad="a2"),
           label(5, "2025-03-10 08:00:00"), label(6, "2025-03-10 09:00:00", user="u2", ad="a2"),
           label(7, "2025-03-10 23:00:00", clicked=True), label(8, "2025-03-11 01:00:00", clicked=True)]


def test_no_leakage_changing_or_deleting_events_on_or_after_the_day_changes_no_feature(spark):
    day = date(2025, 3, 10)
    # An impression of D-1 whose click and conversion happen on D: they are events on D too.
    late = label(10, "2025-03-09 23:59:50", clicked=True, click_ts="2025-03-10 00:00:10", converted=True,
                 conversion_ts="2025-03-10 02:00:00")
    before = _features_for_day(spark, HISTORY + [late], day, PROD, PROD_GOLD.windows_days)
    assert set(declarations.feature_columns(PROD)) <= set(before.columns)   # every declared feature is compared
    # Every event on or after D is altered: clicks flipped, one deleted, one added, the next day's changed too.
    altered = [label(5, "2025-03-10 08:00:00", clicked=True), label(6, "2025-03-10 09:00:00", user="u2", ad="a2",
                                                                     clicked=True, converted=True),
               label(9, "2025-03-10 12:00:00", user="u3"), label(8, "2025-03-11 01:00:00", user="u2")]
    altered.append(label(10, "2025-03-09 23:59:50"))  # its click and conversion on D deleted
    after = _features_for_day(spark, HISTORY[:4] + altered, day, PROD, PROD_GOLD.windows_days)
    common = ["i5", "i6"]  # the impressions of D present in both versions
    assertDataFrameEqual(after.where(F.col("impression_id").isin(common)),
                         before.where(F.col("impression_id").isin(common)))


def test_leakage_check_can_fail_an_earlier_day_does_change_features(spark):
    day = date(2025, 3, 10)
    before = _features_for_day(spark, HISTORY, day, PROD, PROD_GOLD.windows_days).where(
        F.col("impression_id") == "i5")
    flipped = [label(2, "2025-03-09 10:00:00", clicked=True) if r[0] == "i2" else r for r in HISTORY]
    after = _features_for_day(spark, flipped, day, PROD, PROD_GOLD.windows_days).where(
        F.col("impression_id") == "i5")
    assert before.first()["f_user_clicks_1d"] == 0
    assert after.first()["f_user_clicks_1d"] == 1


def test_a_declared_sum_over_its_windows_with_its_filter_at_the_edges(spark):
    """sum of position over viewable impressions, declared for the ad group only."""
    text = "\n".join([
        "groups:",
        "  ad:",
        "    {keys: [ad_id], description: d, owner: t, since: 2025-01-01, aggregations: [",
        "      {op: count, input: impressions, description: d, windows: {1: f_ad_imps_1d}},",
        "      {op: sum, input: position, filter: viewable, description: d,",
        "       windows: {1: f_ad_viewable_slots_1d, 7: f_ad_viewable_slots_7d}}]}",
        "  user:",
        "    {keys: [user_id], description: d, owner: t, since: 2025-01-01, aggregations: [",
        "      {op: count, input: impressions, description: d, windows: {1: f_user_imps_1d}}]}"])
    decl = declarations.loads(text, "tests/test_features.py", (1, 7), ENTITY_KEY_COLUMNS)
    at = lambda row, position: (*row[:5], position, *row[6:])
    rows = [at(label(1, "2025-03-09 23:59:59"), 3),                   # last second of D-1: both windows
            at(label(2, "2025-03-10 00:00:00"), 5),                   # D itself: never
            at(label(3, "2025-03-03 12:00:00"), 2),                   # D-7: the 7-day window only
            at(label(4, "2025-03-02 23:59:59"), 7),                   # D-8: no window
            at(label(5, "2025-03-09 10:00:00", viewable=False), 4),   # not viewable: filtered out
            at(label(6, "2025-03-09 11:00:00", ad="a2", user="u2"), 2),
            at(label(7, "2025-03-10 12:00:00", ad="a3", user="u2"), 1)]   # an ad without history
    day = date(2025, 3, 10)
    labels = spark.createDataFrame(rows, LABELS_DDL)
    sums = declarations.sums(decl)
    raw = window_snapshot(daily_partials(labels, declarations.entities(decl), (), sums), day, (1, 7), 1, None, 2,
                          sums)
    assertDataFrameEqual(
        raw.select("entity", "key", "sum_position_viewable_1d", "sum_position_viewable_7d"),
        spark.createDataFrame([("ad", "a1", 3.0, 5.0), ("ad", "a2", 2.0, 2.0), ("user", "u1", None, None),
                               ("user", "u2", None, None)],   # a group that does not declare it: null
                              "entity string, key string, sum_position_viewable_1d double, "
                              "sum_position_viewable_7d double"), checkRowOrder=False)
    got = _features_for_day(spark, rows, day, decl).select("impression_id", "f_ad_viewable_slots_1d",
                                                           "f_ad_viewable_slots_7d")
    assertDataFrameEqual(got, spark.createDataFrame([("i2", 3.0, 5.0), ("i7", 0.0, 0.0)],
                                                    "impression_id string, f_ad_viewable_slots_1d double, "
                                                    "f_ad_viewable_slots_7d double"), checkRowOrder=False)


def test_joined_features_values_and_missing_history(spark):
    out = _features_for_day(spark, HISTORY, date(2025, 3, 10)).where(F.col("impression_id").isin("i5", "i6"))
    got = out.select("impression_id", "f_user_imps_1d", "f_user_clicks_7d", "f_ad_users_7d", "f_user_x_ad_imps_7d",
                     "f_user_hours_since_click", "f_user_x_ad_hours_since_impression", "f_hour")
    expected = spark.createDataFrame([
        # u1: impressions on 03-09 (a1 at 10:00, a2 at 23:59:59), click on 03-08 09:00:01.
        ("i5", 2.0, 1.0, 2.0, 2.0, (datetime(2025, 3, 10, 8) - datetime(2025, 3, 8, 9, 0, 1)).total_seconds() / 3600,
         (datetime(2025, 3, 10, 8) - datetime(2025, 3, 9, 10)).total_seconds() / 3600, 8.0),
        # u2 x a2 was never seen before: zero counts and no recency.
        ("i6", 1.0, 1.0, 1.0, 0.0, (datetime(2025, 3, 10, 9) - datetime(2025, 3, 9, 20, 0, 1)).total_seconds() / 3600,
         None, 9.0),
    ], "impression_id string, f_user_imps_1d double, f_user_clicks_7d double, f_ad_users_7d double, "
       "f_user_x_ad_imps_7d double, f_user_hours_since_click double, f_user_x_ad_hours_since_impression double, "
       "f_hour double")
    assertDataFrameEqual(got, expected, rtol=1e-9)
    # A key without history gets its entity's prior mean, not null and not zero.
    user_x_ad_prior = out.where(F.col("impression_id") == "i6").first()["f_user_x_ad_ctr_7d"]
    assert 0 < user_x_ad_prior < 1


def test_splits_by_day_and_raw_categories_kept_as_text(spark):
    rows = spark.createDataFrame([
        ("i1", date(2025, 3, 1), "a1", 7), ("i2", date(2025, 3, 2), None, 8), ("i3", date(2025, 3, 3), "a3", None),
        ("i4", date(2025, 3, 4), "a1", 7)], "impression_id string, event_date date, ad_id string, position int")
    split = assign_splits(rows, date(2025, 3, 4), train_days=2, validation_days=1, test_days=1)
    out = split.select("impression_id", "split", *raw_categories(("ad_id", "position")))
    # No codes here: the trainer's vocabulary (fitted on its train split, stored in the model) encodes them.
    expected = spark.createDataFrame([("i1", "train", "a1", "7"), ("i2", "train", None, "8"),
                                      ("i3", "validation", "a3", None), ("i4", "test", "a1", "7")],
                                     "impression_id string, split string, c_ad_id string, c_position string")
    assertDataFrameEqual(out, expected)


def test_negative_downsampling_keeps_positives_and_other_splits_and_records_the_rate(spark):
    rows = spark.createDataFrame([(f"i{i}", "train" if i < 900 else "test", 1 if i % 10 == 0 else 0)
                                  for i in range(1000)], "impression_id string, split string, label int")
    out = downsample_negatives(rows, 0.2, seed=3)
    again = downsample_negatives(rows, 0.2, seed=3)
    assertDataFrameEqual(out, again)  # deterministic: a re-run keeps the same rows
    stats = {(r["split"], r["label"]): (r["n"], r["w"]) for r in out.groupBy("split", "label").agg(
        F.count(F.lit(1)).alias("n"), F.max("neg_keep_rate").alias("w")).collect()}
    assert stats[("train", 1)] == (90, 0.2)
    assert stats[("test", 1)] == (10, 1.0) and stats[("test", 0)] == (90, 1.0)
    assert 810 * 0.2 * 0.7 < stats[("train", 0)][0] < 810 * 0.2 * 1.3


def test_same_day_counts_see_only_strictly_earlier_impressions_of_the_day(spark):
    rows = spark.createDataFrame([
        ("i1", date(2025, 3, 2), datetime(2025, 3, 2, 8, 0, 0), "u1", "a1"),
        ("i2", date(2025, 3, 2), datetime(2025, 3, 2, 9, 0, 0), "u1", "a1"),
        ("i3", date(2025, 3, 2), datetime(2025, 3, 2, 9, 0, 0), "u1", "a2"),   # same time as i2: not earlier
        ("i4", date(2025, 3, 2), datetime(2025, 3, 2, 9, 0, 1), "u1", "a1"),
        ("i5", date(2025, 3, 3), datetime(2025, 3, 3, 0, 0, 0), "u1", "a1"),   # a new day starts at zero
        ("i6", date(2025, 3, 2), datetime(2025, 3, 2, 7, 0, 0), None, "a1")],  # unknown user: no key, null
        "impression_id string, event_date date, event_ts timestamp, user_id string, ad_id string")
    out = with_same_day_counts(rows, ENTITIES, SAME_DAY, None, 7).select(
        "impression_id", "f_user_imps_today", "f_user_x_ad_imps_today")
    expected = spark.createDataFrame([("i1", 0.0, 0.0), ("i2", 1.0, 1.0), ("i3", 1.0, 0.0), ("i4", 3.0, 2.0),
                                      ("i5", 0.0, 0.0), ("i6", None, None)],
                                     "impression_id string, f_user_imps_today double, f_user_x_ad_imps_today double")
    assertDataFrameEqual(out, expected)


def snapshots_of_history(spark):
    """HISTORY's labels and its feature snapshots and priors as of 03-10 and 03-11 (windows 1 and 7 days)."""
    labels = spark.createDataFrame(HISTORY, LABELS_DDL)
    partials = daily_partials(labels, ENTITIES, ("ad",))
    features, priors = None, None
    for day in (date(2025, 3, 10), date(2025, 3, 11)):
        raw = window_snapshot(partials, day, (1, 7), 1, None, 4)
        p = fit_beta_priors(raw, (1, 7), PRIOR)
        f, p = with_smoothed_rates(raw, p, (1, 7)), p.withColumn("as_of_date", F.lit(day))
        features, priors = (f, p) if features is None else (features.unionByName(f), priors.unionByName(p))
    return labels, features, priors


def test_snapshot_lag_gives_a_row_the_snapshot_published_the_night_before_its_day(spark):
    """Lag 1 (the default): an impression of 03-11 gets the snapshot as of 03-10, which knows nothing of 03-10."""
    labels, features, priors = snapshots_of_history(spark)
    todays = labels.where(F.col("impression_id") == "i8")   # u1 x a1 at 03-11 01:00
    got = {lag: join_features(todays, features, priors, ENTITIES, declarations.history_features(SMALL),
                              SMALL.context, lag_days=lag)
           .select("f_user_imps_7d", "f_user_clicks_1d", "f_user_hours_since_click").first() for lag in (0, 1)}
    # lag 0: as of 03-11 (days up to 03-10: i1 i2 i4 i5 i7; i7 clicked at 03-10 23:00:01)
    assert tuple(got[0]) == (5.0, 1.0, pytest.approx((datetime(2025, 3, 11, 1) - datetime(2025, 3, 10, 23, 0, 1))
                                                     .total_seconds() / 3600))
    # lag 1: as of 03-10 (days up to 03-09: i1 i2 i4; the last click i1's at 03-08 09:00:01)
    assert tuple(got[1]) == (3.0, 0.0, pytest.approx((datetime(2025, 3, 11, 1) - datetime(2025, 3, 8, 9, 0, 1))
                                                     .total_seconds() / 3600))


def test_few_rows_cut_to_their_keys_get_the_same_features_as_the_full_join(spark):
    """The drift sample's path (snapshots cut to the rows' keys in one scan, then broadcast) changes no value."""
    labels, features, priors = snapshots_of_history(spark)
    todays = labels.where(F.col("event_date") >= F.lit(date(2025, 3, 10)))   # four rows, u1 and u2
    full, few = (join_features(todays, features, priors, ENTITIES, declarations.history_features(SMALL),
                               SMALL.context, lag_days=0, few_rows=flag) for flag in (False, True))
    assert full.where(F.col("f_user_imps_7d") > 0).count() > 0   # history was joined, not only priors
    assertDataFrameEqual(few, full)


def test_same_day_counts_with_arrival_days_count_only_what_had_landed_by_the_rows_own(spark):
    rows = spark.createDataFrame([
        ("i1", date(2025, 3, 2), datetime(2025, 3, 2, 8), "u1", "a1", date(2025, 3, 3)),    # landed a day late
        ("i2", date(2025, 3, 2), datetime(2025, 3, 2, 9), "u1", "a1", date(2025, 3, 2)),    # did not see i1 yet
        ("i3", date(2025, 3, 2), datetime(2025, 3, 2, 10), "u1", "a1", date(2025, 3, 3)),   # sees i7 i6 i1 i2
        ("i4", date(2025, 3, 2), datetime(2025, 3, 2, 11), "u1", "a1", date(2025, 3, 12)),  # 10 days late: >= 7
        ("i5", date(2025, 3, 2), datetime(2025, 3, 2, 12), "u1", "a2", date(2025, 3, 2)),   # sees i7 i6 i2
        ("i6", date(2025, 3, 2), datetime(2025, 3, 2, 7), "u1", "a1", date(2025, 3, 1)),    # landed the day before
        ("i7", date(2025, 3, 2), datetime(2025, 3, 2, 6), "u1", "a1", date(2025, 3, 2))],   # landed after i6
        "impression_id string, event_date date, event_ts timestamp, user_id string, ad_id string, dt date")
    out = with_same_day_counts(rows, ENTITIES, SAME_DAY, landed="dt", max_late_days=7).select(
        "impression_id", "f_user_imps_today", "f_user_x_ad_imps_today")
    # i6 was scored on 03-01, before i7 (earlier in time) had landed: 0, not 1.
    expected = spark.createDataFrame([("i1", 2.0, 2.0), ("i2", 2.0, 2.0), ("i3", 4.0, 4.0), ("i4", 5.0, 5.0),
                                      ("i5", 3.0, 0.0), ("i6", 0.0, 0.0), ("i7", 0.0, 0.0)],
                                     "impression_id string, f_user_imps_today double, f_user_x_ad_imps_today double")
    assertDataFrameEqual(out, expected)


def test_snapshot_day_is_lag_days_back_and_never_after_the_arrival_day(spark):
    rows = spark.createDataFrame([(date(2025, 3, 2), date(2025, 3, 1)), (date(2025, 3, 2), date(2025, 3, 2)),
                                  (date(2025, 3, 2), date(2025, 3, 4))], "event_date date, dt date")
    got = rows.select(*[snapshot_day(F.col("event_date"), lag, F.col("dt")).alias(f"lag{lag}") for lag in (0, 1, 2)])
    expected = spark.createDataFrame([(date(2025, 3, 1), date(2025, 3, 1), date(2025, 2, 28)),   # landed early
                                      (date(2025, 3, 2), date(2025, 3, 1), date(2025, 2, 28)),
                                      (date(2025, 3, 2), date(2025, 3, 1), date(2025, 2, 28))],
                                     "lag0 date, lag1 date, lag2 date")
    assertDataFrameEqual(got, expected)


def test_snapshot_span_covers_every_day_snapshot_day_can_give():
    d = date(2025, 3, 10)
    assert snapshot_span(d, d + timedelta(days=2), 1) == (d - timedelta(days=1), d + timedelta(days=1))
    assert snapshot_span(d, d + timedelta(days=2), 0) == (d - timedelta(days=1), d + timedelta(days=2))  # clock ahead
    assert snapshot_span(d, d + timedelta(days=2), 2) == (d - timedelta(days=2), d)
    # Rows that all landed by d + 1 never get a snapshot after it, whatever their event day.
    assert snapshot_span(d, d + timedelta(days=3), 1, landed_by=d + timedelta(days=1)) == (d - timedelta(days=1),
                                                                                        d + timedelta(days=1))


def test_dimensions_as_of_the_earlier_of_event_and_arrival_day(spark):
    rows = spark.createDataFrame([("early", "u1", "a1", "p1", date(2025, 3, 2), date(2025, 3, 1)),
                                  ("on_time", "u1", "a1", "p1", date(2025, 3, 2), date(2025, 3, 2)),
                                  ("late", "u1", "a1", "p1", date(2025, 3, 2), date(2025, 3, 3))],
                                 "impression_id string, user_id string, ad_id string, publisher_id string, "
                                 "event_date date, arrival_dt date")
    users = spark.createDataFrame([("u1", "old", date(2025, 3, 1)), ("u1", "new", date(2025, 3, 2)),
                                   ("u1", "newer", date(2025, 3, 3))], "user_id string, segment string, dt date")
    ads = spark.createDataFrame([], "ad_id string, campaign_id string, category string, dt date")
    campaigns = spark.createDataFrame([], "campaign_id string, advertiser_id string, dt date")
    publishers = spark.createDataFrame([], "publisher_id string, category string, dt date")
    out = with_dimensions(rows, [date(2025, 3, 2)], users, ads, campaigns, publishers, landed="arrival_dt")
    assert sorted(out.columns) == sorted([*rows.columns, "segment", "campaign_id", "ad_category", "advertiser_id",
                                          "publisher_category"])
    # a scorer of the early row's landing (03-01) had the users snapshot of 03-01; a late row keeps its day's
    assertDataFrameEqual(out.select("impression_id", "segment"),
                         spark.createDataFrame([("early", "old"), ("on_time", "new"), ("late", "new")],
                                               "impression_id string, segment string"))
