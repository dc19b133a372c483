"""Clean impressions and their natural clicks, with the true click probability.

The click model is ``click_logit`` below (formula and effect sizes in
README "The generator's click model"): base CTR + user, ad and publisher
effects + position (steeper on mobile) + device, creative type and their
interaction + hour of day (by device) + the user's favourite ad category +
hidden (segment x ad category) and (publisher category x ad category)
affinities - creative fatigue (log of the user's earlier exposures to the same
ad, steeper for video) + a small lift for viewable impressions. Everything it
depends on is in the contract's records (or their dimension snapshots), so the
features gold builds can recover it - except the per-user, per-ad and
per-publisher effects, which only history reveals. Time of day follows a
diurnal curve; a few ads, publishers and users carry much of the traffic.
"""
from __future__ import annotations

import math

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.dev.generator.dims import AD_CATEGORIES
from jobs.dev.generator.rng import index, normal, pick, sigmoid, uniform
from pipelines.config import CleanConfig, GeneratorConfig

DIURNAL = [0.6, 0.4, 0.3, 0.25, 0.25, 0.35, 0.6, 1.0, 1.3, 1.3, 1.25, 1.3,
           1.4, 1.35, 1.3, 1.3, 1.35, 1.5, 1.7, 1.85, 1.9, 1.75, 1.4, 1.0]
POSITIONS = [1, 2, 3, 4, 5, 6]
POSITION_WEIGHTS = [0.32, 0.24, 0.17, 0.12, 0.09, 0.06]
POSITION_EFFECT = {1: 0.0, 2: -0.25, 3: -0.45, 4: -0.6, 5: -0.75, 6: -0.9}
FATIGUE = 0.3
FATIGUE_VIDEO = 0.25          # extra fatigue per log-exposure for video creatives
MOBILE_POSITION_SLOPE = 1.5   # position effects are this much steeper on a small screen
DEVICE_EFFECT = {"mobile": 0.0, "desktop": 0.15, "tablet": 0.1, "ctv": -0.6, "other": -0.3}
CREATIVE_EFFECT = {"banner": 0.0, "native": 0.3, "video": -0.2}
# (creative type, device) -> extra log-odds: video plays on a TV, a banner is ignored on a phone
CREATIVE_X_DEVICE = {("video", "ctv"): 1.0, ("video", "mobile"): 0.25, ("native", "mobile"): 0.25,
                     ("banner", "mobile"): -0.25, ("banner", "ctv"): -0.5}
EVENING, WORK_HOURS = range(18, 23), range(9, 18)
FAVOURITE_CATEGORY = 0.8      # each user clicks more on one ad category (hidden; gold's user x category sees it)
AD_SKEW = 2.5        # share of the hottest ad ~ n_ads ** (-1 / AD_SKEW)
PUBLISHER_SKEW = 2.0


def add_seconds(ts: F.Column, seconds: F.Column) -> F.Column:
    return F.timestamp_micros(F.unix_micros(ts) + seconds.cast("long") * 1_000_000)


def latency_seconds(seed: int, salt: str, key: F.Column, late_rate: float) -> F.Column:
    """Delivery delay: seconds for most records, 1-6 hours for the late ones."""
    late = uniform(seed, salt + ":late", key) < late_rate
    return F.when(late, 3600 + F.floor(uniform(seed, salt + ":lt", key) * 18000)).otherwise(
        2 + F.floor(uniform(seed, salt + ":ot", key) * 238)).cast("long")


def impressions(users: DataFrame, days: DataFrame, ads: DataFrame, pubs: DataFrame,
                seg_aff: DataFrame, pub_aff: DataFrame, cfg: GeneratorConfig) -> DataFrame:
    """One row per clean impression, with its hidden click probability and outcome."""
    s, r = cfg.seed, cfg.rates
    user_day = users.crossJoin(F.broadcast(days))
    weekday = F.when(F.dayofweek("day").isin(1, 7), 0.85).otherwise(1.05)
    count = F.least(F.lit(cfg.max_user_impressions_per_day),
                    F.round(F.col("activity") * (0.4 + 1.2 * uniform(s, "k", "user_idx", "day_idx")) * weekday))
    ud = user_day.withColumn("k", count.cast("int")).where("k > 0")
    imp = ud.select("*", F.explode(F.sequence(F.lit(0), F.col("k") - 1)).alias("seq"))
    key = F.concat_ws("-", "day_idx", "user_idx", "seq")
    hour = pick(uniform(s, "hour", key), list(range(24)), DIURNAL)
    second = F.floor(uniform(s, "sec", key) * 3600)
    millis = F.floor(uniform(s, "ms", key) * 1000)
    event_us = (F.unix_micros(F.col("day").cast("timestamp")) + (hour * 3600 + second) * 1_000_000 + millis * 1000)
    explore = uniform(s, "explore", key) < 0.05
    position = F.when(explore, (F.floor(uniform(s, "xpos", key) * 6) + 1).cast("int")).otherwise(
        pick(uniform(s, "pos", key), POSITIONS, POSITION_WEIGHTS))
    measured = uniform(s, "measured", key) >= r.unmeasured
    short = uniform(s, "short", key) < 0.35
    in_view = F.when(short, F.floor(uniform(s, "ivs", key) * 1500)).otherwise(
        F.least(F.lit(120000.0), F.floor(F.exp(8.3 + normal(s, "ivl", key)))))
    edge = uniform(s, "vedge", key) < r.viewability_edge
    in_view = F.when(edge, pick(uniform(s, "vedgev", key), [999, 1000, 1999, 2000], [1, 1, 1, 1])).otherwise(in_view)
    imp = imp.select(
        "user_idx", "user_id", "segment", "device_type", "user_agent", "ip", "user_bias", "day_idx", "day",
        F.col("geo").alias("country"),
        F.format_string("imp-%d-%d-%d", "day_idx", "user_idx", "seq").alias("impression_id"),
        F.timestamp_micros(event_us.cast("long")).alias("event_ts"),
        index(uniform(s, "ad", key), cfg.n_ads, AD_SKEW).alias("ad_idx"),
        index(uniform(s, "pub", key), cfg.n_publishers, PUBLISHER_SKEW).alias("pub_idx"),
        position.alias("position"),
        explore.alias("is_exploration"),
        F.when(measured, in_view.cast("int")).alias("in_view_ms"),
        F.when(uniform(s, "sdk", key) < 0.1, F.lit("4.2.1")).alias("sdk_version"),
        key.alias("gen_key"),
    )
    imp = (imp
           .join(F.broadcast(ads.select("ad_idx", "ad_id", "creative_type", F.col("category").alias("ad_category"),
                                        "ad_bias")), on="ad_idx", how="inner")
           .join(F.broadcast(pubs.select("pub_idx", "publisher_id", F.col("category").alias("pub_category"),
                                         "pub_bias")), on="pub_idx", how="inner")
           .join(F.broadcast(seg_aff), on=["segment", "ad_category"], how="left")
           .join(F.broadcast(pub_aff), on=["pub_category", "ad_category"], how="left"))
    exposure = Window.partitionBy("user_idx", "ad_idx").orderBy("event_ts", "impression_id")
    imp = imp.withColumn("prior_exposures", F.row_number().over(exposure) - 1)
    imp = imp.withColumn("favourite_category", pick(uniform(s, "fav", "user_idx"), AD_CATEGORIES,
                                                    [1.0] * len(AD_CATEGORIES)))
    logit = click_logit(math.log(cfg.base_ctr / (1 - cfg.base_ctr)))
    viewable_pct = F.when(F.col("in_view_ms").isNotNull(), F.round(
        F.when(F.col("in_view_ms") >= 1000, 50 + 50 * uniform(s, "vpct", "gen_key"))
        .otherwise(60 * uniform(s, "vpct", "gen_key")), 1))
    latency = latency_seconds(s, "imp", F.col("gen_key"), r.late)
    return imp.select(
        "*",
        viewable_pct.alias("viewable_pct"),
        sigmoid(logit).alias("p_click"),
        add_seconds(F.col("event_ts"), latency).alias("arrival_ts"),
    ).withColumn("clicked", uniform(s, "click", "gen_key") < F.col("p_click")).withColumn(
        "arrival_ts", F.when(
            F.col("clicked") & (F.hour("event_ts") >= 22) & (uniform(s, "lci", "gen_key") < r.late_clicked_impressions),
            add_seconds(F.date_add(F.col("day"), 1).cast("timestamp"),
                        7200 + F.floor(uniform(s, "lcit", "gen_key") * 3600))).otherwise(F.col("arrival_ts")))


def _lookup(table: dict, *keys: F.Column) -> F.Column:
    """The table's value for the row's key (a tuple key for several columns); 0.0 when absent."""
    expr = None
    for key, value in table.items():
        parts = key if isinstance(key, tuple) else (key,)
        cond = None
        for col, part in zip(keys, parts):
            cond = (col == F.lit(part)) if cond is None else cond & (col == F.lit(part))
        expr = F.when(cond, F.lit(value)) if expr is None else expr.when(cond, F.lit(value))
    return expr.otherwise(F.lit(0.0))


def click_logit(intercept: float) -> F.Column:
    """The true log-odds of a click, from the impression's columns (see the module doc and README)."""
    device, creative, hour = F.col("device_type"), F.col("creative_type"), F.hour("event_ts")
    mobile = device == "mobile"
    position = F.element_at(F.create_map(*[F.lit(x) for kv in POSITION_EFFECT.items() for x in kv]),
                            F.col("position")) * F.when(mobile, MOBILE_POSITION_SLOPE).otherwise(1.0)
    hour_effect = (F.when(hour < 6, -0.3)
                   .when(hour.isin(*EVENING), F.when(mobile, 0.35).otherwise(0.15))
                   .when(hour.isin(*WORK_HOURS) & (device == "desktop"), 0.25).otherwise(0.0))
    fatigue = (FATIGUE + F.when(creative == "video", FATIGUE_VIDEO).otherwise(0.0)) * F.log1p(
        F.col("prior_exposures"))
    viewable_ms = F.when(creative == "video", 2000).otherwise(1000)
    return (F.lit(intercept) + F.col("user_bias") + F.col("ad_bias") + F.col("pub_bias") + position
            + _lookup(DEVICE_EFFECT, device) + _lookup(CREATIVE_EFFECT, creative)
            + _lookup(CREATIVE_X_DEVICE, creative, device) + hour_effect
            + F.when(F.col("ad_category") == F.col("favourite_category"), FAVOURITE_CATEGORY).otherwise(0.0)
            + F.coalesce("aff_seg", F.lit(0.0)) + F.coalesce("aff_pub", F.lit(0.0)) - fatigue
            + F.when(F.col("in_view_ms") >= viewable_ms, 0.2).otherwise(0.0))


def natural_clicks(imp: DataFrame, cfg: GeneratorConfig, clean: CleanConfig) -> DataFrame:
    """The one valid click of each clicked impression: inside the window, long enough dwell.

    A few sit exactly on the edges the rules must honour: a delay of exactly the
    window or zero seconds, a dwell of exactly the minimum.
    """
    s, window = cfg.seed, clean.attribution_window_s
    key = F.col("gen_key")
    raw_delay = F.floor(F.exp(3.2 + 1.3 * normal(s, "delay", key)))
    delay = F.when(raw_delay > window, F.floor(uniform(s, "delay2", key) * window)).otherwise(raw_delay)
    edge = uniform(s, "cedge", key)
    delay = F.when(edge < 0.005, F.lit(window)).when(edge < 0.01, F.lit(0)).otherwise(delay)
    dwell = F.when(edge > 0.95, F.lit(None)).when(edge > 0.94, F.lit(clean.min_dwell_ms)).otherwise(
        clean.min_dwell_ms + F.floor(F.exp(8.5 + normal(s, "dwell", key))))
    clicks = imp.where("clicked").select(
        F.concat(F.lit("clk"), F.substring("impression_id", 4, 100)).alias("click_id"),
        "impression_id", "user_id", "user_agent", "ip", "gen_key", "ad_id",
        add_seconds(F.col("event_ts"), delay).alias("event_ts"),
        dwell.cast("int").alias("dwell_ms"),
        F.col("arrival_ts").alias("imp_arrival_ts"),
        delay.cast("long").alias("delay_s"),
    )
    latency = latency_seconds(s, "clk", key, cfg.rates.late)
    return clicks.withColumn("arrival_ts", add_seconds(F.col("event_ts"), latency)).withColumn(
        "intended_fate", F.lit("attributed"))
