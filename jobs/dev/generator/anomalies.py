"""Every anomaly of CONTRACT section 3, injected at configured rates.

Each injected record carries the fate the contract's rules must give it
(``fate`` for impressions, ``intended_fate`` for clicks), set by construction:
one anomaly per record, so no rule's precedence decides the expected count.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.dev.generator.dims import BOT_USER_AGENTS, USER_AGENTS
from jobs.dev.generator.events import add_seconds, latency_seconds
from jobs.dev.generator.rng import index, pick, uniform
from pipelines.config import CleanConfig, GeneratorConfig

MALFORMED_KINDS = {
    # kind: reason the pipeline must give
    "truncated_json": "invalid_json",
    "not_an_object": "invalid_json",
    "duplicate_key": "invalid_json",
    "missing_user_id": "missing_field",
    "empty_id": "missing_field",
    "null_id": "missing_field",
    "wrong_type": "wrong_type",
    "timestamp_number": "bad_timestamp",
    "timestamp_garbage": "bad_timestamp",
    "timestamp_1970": "timestamp_out_of_range",
    "timestamp_2100": "timestamp_out_of_range",
    "invalid_value": "invalid_value",
    "empty_line": "empty_line",
}


def _per_day(spark: SparkSession, days: DataFrame, n: int) -> DataFrame:
    return F.broadcast(days).crossJoin(spark.range(n).withColumnRenamed("id", "n"))


def _attach_ad_pub(df: DataFrame, ads: DataFrame, pubs: DataFrame, cfg: GeneratorConfig) -> DataFrame:
    s = cfg.seed
    df = df.withColumn("ad_idx", index(uniform(s, "xad", "gen_key"), cfg.n_ads, 2.0)).withColumn(
        "pub_idx", index(uniform(s, "xpub", "gen_key"), cfg.n_publishers, 2.0))
    return (df.join(F.broadcast(ads.select("ad_idx", "ad_id", "creative_type")), on="ad_idx", how="inner")
            .join(F.broadcast(pubs.select("pub_idx", "publisher_id")), on="pub_idx", how="inner"))


def _synthetic_impressions(df: DataFrame, cfg: GeneratorConfig, first_hour: int, hours: int) -> DataFrame:
    """Impression rows for injected users; times fall in [first_hour, first_hour + hours)."""
    s = cfg.seed
    offset = (first_hour * 3600 + F.floor(uniform(s, "xt", "gen_key") * hours * 3600)).cast("long")
    return df.select(
        "*",
        F.format_string("imp-x-%s", "gen_key").alias("impression_id"),
        add_seconds(F.col("day").cast("timestamp"), offset).alias("event_ts"),
        (F.floor(uniform(s, "xpos", "gen_key") * 6) + 1).cast("int").alias("position"),
        F.lit(False).alias("is_exploration"),
        F.lit(None).cast("int").alias("in_view_ms"),
        F.lit(None).cast("double").alias("viewable_pct"),
        F.lit(None).cast("string").alias("sdk_version"),
        F.lit("desktop").alias("device_type"),
        F.lit("US").alias("country"),
        F.lit("198.51.100.7").alias("ip"),
    )


def _clicks_on(imp: DataFrame, cfg: GeneratorConfig, fate: str, salt: str) -> DataFrame:
    """One well-behaved click per impression (delay 5-600 s, dwell 2-20 s)."""
    s = cfg.seed
    delay = 5 + F.floor(uniform(s, salt + "d", "gen_key") * 595)
    ts = add_seconds(F.col("event_ts"), delay)
    return imp.select(
        F.format_string("clk-x-%s", "gen_key").alias("click_id"),
        "impression_id", "user_id", "user_agent", "ip", "gen_key",
        ts.alias("event_ts"),
        (2000 + F.floor(uniform(s, salt + "w", "gen_key") * 18000)).cast("int").alias("dwell_ms"),
        F.col("arrival_ts").alias("imp_arrival_ts"),
        add_seconds(ts, 2 + F.floor(uniform(s, salt + "l", "gen_key") * 60)).alias("arrival_ts"),
        F.lit(fate).alias("intended_fate"),
    )


def declared_bots(spark: SparkSession, days: DataFrame, ads: DataFrame, pubs: DataFrame,
                  cfg: GeneratorConfig) -> tuple[DataFrame, DataFrame]:
    """Impressions (and some clicks) from crawler user agents: GIVT."""
    s, n = cfg.seed, max(1, int(cfg.impressions_per_day * cfg.rates.givt_impressions))
    base = _per_day(spark, days, n).select(
        "day_idx", "day", F.format_string("g%d-%d", "day_idx", "n").alias("gen_key"),
        F.format_string("givt-%d-%d", "day_idx", F.col("n") % 50).alias("user_id"))
    base = base.select("*", pick(uniform(s, "gua", "gen_key"), BOT_USER_AGENTS, [1.0] * len(BOT_USER_AGENTS))
                       .alias("user_agent"))
    imp = _synthetic_impressions(_attach_ad_pub(base, ads, pubs, cfg), cfg, 0, 23)
    imp = imp.withColumn("arrival_ts", add_seconds(F.col("event_ts"), latency_seconds(s, "gimp", F.col("gen_key"), 0)))
    imp = imp.withColumn("fate", F.lit("bot_declared"))
    clicks = _clicks_on(imp.where(uniform(s, "gclk", "gen_key") < 0.3), cfg, "on_bot_traffic", "g")
    return imp, clicks


def behavioural_bots(spark: SparkSession, days: DataFrame, ads: DataFrame, pubs: DataFrame,
                     cfg: GeneratorConfig, clean: CleanConfig) -> tuple[DataFrame, DataFrame]:
    """Users over (and exactly at) the daily impression and click limits: SIVT.

    Per day: ``rates.sivt_users`` users with more impressions than the limit, one
    with exactly the limit (valid), one with exactly the click limit (valid) and
    one with one click more (bot). All their events fall between 01:00 and 23:00
    and land the same day, so each user's event day is one arrival day.
    """
    if cfg.rates.sivt_users == 0:
        return None, None
    max_imp, max_clk = clean.max_impressions_per_user_day, clean.max_clicks_per_user_day
    specs = [(f"over{i}", max_imp + 1 + i * 37, 5, True) for i in range(cfg.rates.sivt_users)]
    specs += [("imp_edge", max_imp, 0, False), ("clk_edge", max_clk + 10, max_clk, False),
              ("clk_over", max_clk + 10, max_clk + 1, True)]
    users = spark.createDataFrame(specs, "kind string, n_imp int, n_clk int, is_bot boolean")
    rows = F.broadcast(days).crossJoin(users).select(
        "*", F.explode(F.sequence(F.lit(0), F.col("n_imp") - 1)).alias("seq"))
    rows = rows.select(
        "*",
        F.format_string("s%d-%s-%d", "day_idx", "kind", "seq").alias("gen_key"),
        F.format_string("sivt-%d-%s", "day_idx", "kind").alias("user_id"),
        F.lit(USER_AGENTS["desktop"].replace("{v}", "121")).alias("user_agent"),
    )
    imp = _synthetic_impressions(_attach_ad_pub(rows, ads, pubs, cfg), cfg, 1, 22)
    imp = imp.withColumn("arrival_ts", add_seconds(F.col("event_ts"), F.lit(30)))
    imp = imp.withColumn("fate", F.when(F.col("is_bot"), "bot_behavioural").otherwise("valid"))
    clicked = imp.where(F.col("seq") < F.col("n_clk"))
    clicks = _clicks_on(clicked, cfg, "attributed", "s").join(
        clicked.select("impression_id", "is_bot"), on="impression_id", how="inner")
    clicks = clicks.withColumn("intended_fate", F.when(F.col("is_bot"), "on_bot_traffic").otherwise("attributed"))
    return imp.drop("seq", "n_imp", "n_clk", "kind", "is_bot"), clicks.drop("is_bot")


def click_anomalies(imp: DataFrame, cfg: GeneratorConfig, clean: CleanConfig) -> DataFrame:
    """Invalid clicks on clean, otherwise unclicked impressions: one fault each."""
    s, r, window = cfg.seed, cfg.rates, clean.attribution_window_s
    u = uniform(s, "anom", "gen_key")
    cuts = [("invalid_dwell", r.invalid_dwell), ("invalid_time", r.click_before_impression),
            ("out_of_window", r.out_of_window), ("on_bot_traffic", r.bot_ua_click)]
    kind, lo = None, 0.0
    for name, rate in cuts:
        cond = (u >= lo) & (u < lo + rate)
        kind = F.when(cond, name) if kind is None else kind.when(cond, name)
        lo += rate
    picked = imp.where(~F.col("clicked")).withColumn("kind", kind).where(F.col("kind").isNotNull())
    k = F.col("kind")
    delay = (F.when(k == "invalid_time", -(1 + F.floor(uniform(s, "bt", "gen_key") * 600)))
             .when(k == "out_of_window", window + 1 + F.floor(F.pow(uniform(s, "ow", "gen_key"), 3) * 5400))
             .otherwise(5 + F.floor(uniform(s, "ad", "gen_key") * 600)))
    dwell = F.when(k == "invalid_dwell", pick(uniform(s, "dw", "gen_key"), [0, 500, clean.min_dwell_ms - 1],
                                                [1, 1, 1])).otherwise(5000)
    ua = F.when(k == "on_bot_traffic", F.lit(BOT_USER_AGENTS[0])).otherwise(F.col("user_agent"))
    ts = add_seconds(F.col("event_ts"), delay)
    return picked.select(
        F.format_string("clk-a-%s", "gen_key").alias("click_id"),
        "impression_id", "user_id", ua.alias("user_agent"), "ip", "gen_key",
        ts.alias("event_ts"),
        F.greatest(dwell, F.lit(0)).cast("int").alias("dwell_ms"),
        F.col("arrival_ts").alias("imp_arrival_ts"),
        add_seconds(ts, latency_seconds(s, "aclk", F.col("gen_key"), 0)).alias("arrival_ts"),
        k.alias("intended_fate"),
    )


def repeat_clicks(natural: DataFrame, cfg: GeneratorConfig, clean: CleanConfig) -> DataFrame:
    """A second, otherwise valid click on an impression already clicked; lands after the first."""
    s = cfg.seed
    gap = 1 + F.floor(uniform(s, "rgap", "gen_key") * 300)
    chosen = natural.where((uniform(s, "rep", "gen_key") < cfg.rates.repeat_click)
                           & (F.col("delay_s") + gap <= clean.attribution_window_s))
    return chosen.select(
        F.concat("click_id", F.lit("-r")).alias("click_id"),
        "impression_id", "user_id", "user_agent", "ip", "gen_key",
        add_seconds(F.col("event_ts"), gap).alias("event_ts"),
        F.lit(4000).alias("dwell_ms"),
        "imp_arrival_ts",
        add_seconds(F.col("arrival_ts"), gap).alias("arrival_ts"),
        F.lit("repeat").alias("intended_fate"),
    )


def orphan_clicks(spark: SparkSession, days: DataFrame, cfg: GeneratorConfig) -> DataFrame:
    """Clicks naming an impression that never lands."""
    s, n = cfg.seed, max(1, int(cfg.impressions_per_day * cfg.rates.orphan_click))
    base = _per_day(spark, days, n).select("day", F.format_string("o%d-%d", "day_idx", "n").alias("gen_key"))
    ts = add_seconds(F.col("day").cast("timestamp"), F.floor(uniform(s, "ot", "gen_key") * 82800))
    return base.select(
        F.format_string("clk-o-%s", "gen_key").alias("click_id"),
        F.format_string("imp-missing-%s", "gen_key").alias("impression_id"),
        F.format_string("u%08d", F.floor(uniform(s, "ou", "gen_key") * 99_999_999).cast("int")).alias("user_id"),
        F.lit(USER_AGENTS["mobile"].replace("{v}", "120")).alias("user_agent"),
        F.lit("203.0.113.9").alias("ip"),
        "gen_key",
        ts.alias("event_ts"),
        F.lit(3000).alias("dwell_ms"),
        F.lit(None).cast("timestamp").alias("imp_arrival_ts"),
        add_seconds(ts, F.lit(20)).alias("arrival_ts"),
        F.lit("orphan").alias("intended_fate"),
    )
