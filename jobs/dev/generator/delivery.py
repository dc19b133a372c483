"""Delivery faults and rendering: duplicates, malformed lines, JSON text, conversions."""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.dev.generator.anomalies import MALFORMED_KINDS
from jobs.dev.generator.events import add_seconds
from jobs.dev.generator.rng import pick, uniform
from pipelines.config import CleanConfig, GeneratorConfig

IMPRESSION_FIELDS = ["impression_id", "event_ts", "user_id", "ad_id", "publisher_id", "position", "device_type",
                     "country", "user_agent", "ip", "viewable_pct", "in_view_ms", "is_exploration", "sdk_version"]
CLICK_FIELDS = ["click_id", "impression_id", "event_ts", "user_id", "user_agent", "ip", "dwell_ms"]
CONVERSION_FIELDS = ["conversion_id", "event_ts", "user_id", "ad_id", "click_id", "value", "type"]


def rfc3339(seed: int, ts: F.Column, key: F.Column) -> F.Column:
    """RFC 3339 text; one record in twenty carries a non-UTC offset, as real fleets do."""
    utc = F.date_format(ts, "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'")
    shifted = F.concat(F.date_format(F.from_utc_timestamp(ts, "+05:30"), "yyyy-MM-dd'T'HH:mm:ss.SSS"),
                       F.lit("+05:30"))
    return F.when(uniform(seed, "tz", key) < 0.05, shifted).otherwise(utc)


def render(df: DataFrame, fields: list[str], seed: int) -> DataFrame:
    """Add ``line``: the record as one JSON object (null fields omitted)."""
    cols = [rfc3339(seed, F.col(f), F.col("gen_key")).alias(f) if f == "event_ts" else F.col(f) for f in fields]
    return df.withColumn("line", F.to_json(F.struct(*cols)))


def duplicate_impressions(imp: DataFrame, cfg: GeneratorConfig) -> DataFrame:
    """Re-deliveries of clean, on-time impressions: same day, next day, or a later copy landing first."""
    s = cfg.seed
    on_time = F.to_date("arrival_ts") == F.to_date("event_ts")
    chosen = imp.where(on_time & (F.hour("event_ts") < 23) & (uniform(s, "dup", "gen_key") < cfg.rates.duplicate))
    kind = pick(uniform(s, "dupk", "gen_key"), ["same_day", "later_copy_first", "next_day"], [0.45, 0.2, 0.35])
    latency = F.unix_timestamp("arrival_ts") - F.unix_timestamp("event_ts")
    kind = F.when((kind == "later_copy_first") & (latency < 3), "same_day").otherwise(kind)
    end_of_day = F.unix_timestamp(F.date_add(F.to_date("arrival_ts"), 1).cast("timestamp")) - F.unix_timestamp(
        "arrival_ts") - 1
    chosen = chosen.withColumn("dup_kind", kind)
    k = F.col("dup_kind")
    return chosen.withColumn(
        "arrival_ts",
        F.when(k == "same_day", add_seconds(F.col("arrival_ts"), F.floor(uniform(s, "dsd", "gen_key") * end_of_day)))
        .when(k == "later_copy_first", add_seconds(F.col("event_ts"), F.lit(2)))
        .otherwise(add_seconds(F.col("arrival_ts"), F.lit(86400))),
    ).withColumn(
        "event_ts", F.when(k == "later_copy_first", add_seconds(F.col("event_ts"), F.lit(1))).otherwise(
            F.col("event_ts"))
    ).withColumn("fate", F.lit("duplicate"))


def duplicate_clicks(clicks: DataFrame, cfg: GeneratorConfig) -> DataFrame:
    """Re-deliveries of clicks, later the same day or the next day."""
    s = cfg.seed
    chosen = clicks.where(uniform(s, "cdup", "gen_key") < cfg.rates.duplicate)
    next_day = uniform(s, "cdupk", "gen_key") < 0.4
    end_of_day = F.unix_timestamp(F.date_add(F.to_date("arrival_ts"), 1).cast("timestamp")) - F.unix_timestamp(
        "arrival_ts") - 1
    return chosen.withColumn(
        "arrival_ts", F.when(next_day, add_seconds(F.col("arrival_ts"), F.lit(86400))).otherwise(
            add_seconds(F.col("arrival_ts"), F.floor(uniform(s, "cdsd", "gen_key") * end_of_day)))
    ).withColumn("intended_fate", F.lit("duplicate"))


def malformed_lines(spark: SparkSession, days: DataFrame, cfg: GeneratorConfig, stream: str) -> DataFrame:
    """Broken lines of every kind: columns day, gen_key, arrival_ts, kind, reason, line."""
    s = cfg.seed
    n = max(len(MALFORMED_KINDS), int(cfg.impressions_per_day * cfg.rates.malformed))
    base = F.broadcast(days).crossJoin(spark.range(n).withColumnRenamed("id", "n")).select(
        "day", F.format_string("m%s%d-%d", F.lit(stream[0]), "day_idx", "n").alias("gen_key"), "n")
    ts = add_seconds(F.col("day").cast("timestamp"), F.floor(uniform(s, "mt", "gen_key") * 82800))
    kinds = list(MALFORMED_KINDS)
    # the first rows of each day cycle through every kind, the rest are drawn at random
    kind = F.when(F.col("n") < len(kinds), F.element_at(F.array(*[F.lit(k) for k in kinds]),
                                                       (F.col("n") + 1).cast("int"))).otherwise(
        pick(uniform(s, "mk", "gen_key"), kinds, [1.0] * len(kinds)))
    if stream == "impressions":
        rec = base.select("*", F.format_string("bad-imp-%s", "gen_key").alias("impression_id"), ts.alias("event_ts"),
                          F.lit("u00000001").alias("user_id"), F.lit("ad000001").alias("ad_id"),
                          F.lit("pub00001").alias("publisher_id"), F.lit(2).alias("position"),
                          F.lit("mobile").alias("device_type"), F.lit("US").alias("country"),
                          F.lit(None).cast("string").alias("user_agent"), F.lit(None).cast("string").alias("ip"),
                          F.lit(None).cast("double").alias("viewable_pct"), F.lit(1500).alias("in_view_ms"),
                          F.lit(False).alias("is_exploration"), F.lit(None).cast("string").alias("sdk_version"))
        rec, id_field, int_field = render(rec, IMPRESSION_FIELDS, s), "impression_id", "position"
    else:
        rec = base.select("*", F.format_string("bad-clk-%s", "gen_key").alias("click_id"),
                          F.format_string("imp-never-%s", "gen_key").alias("impression_id"), ts.alias("event_ts"),
                          F.lit("u00000001").alias("user_id"), F.lit(None).cast("string").alias("user_agent"),
                          F.lit(None).cast("string").alias("ip"), F.lit(3000).alias("dwell_ms"))
        rec, id_field, int_field = render(rec, CLICK_FIELDS, s), "click_id", "dwell_ms"
    rec = rec.withColumn("kind", kind)
    line, k = F.col("line"), F.col("kind")
    broken = (
        F.when(k == "truncated_json", F.substring(line, 1, (F.length(line) / 2).cast("int")))
        .when(k == "not_an_object", F.concat(F.lit("["), line, F.lit("]")))
        .when(k == "duplicate_key", F.regexp_replace(line, r"^\{", '{"user_id":"dup",'))
        .when(k == "missing_user_id", F.regexp_replace(line, r'"user_id":"[^"]*",', ""))
        .when(k == "empty_id", F.regexp_replace(line, f'"{id_field}":"[^"]*"', f'"{id_field}":""'))
        .when(k == "null_id", F.regexp_replace(line, f'"{id_field}":"[^"]*"', f'"{id_field}":null'))
        .when(k == "wrong_type", F.regexp_replace(line, f'"{int_field}":-?[0-9]+', f'"{int_field}":"top"'))
        .when(k == "timestamp_number", F.regexp_replace(line, r'"event_ts":"[^"]*"', '"event_ts":1741234567'))
        .when(k == "timestamp_garbage",
              F.regexp_replace(line, r'"event_ts":"[^"]*"', '"event_ts":"2025-02-30T25:61:00Z"'))
        .when(k == "timestamp_1970", F.regexp_replace(line, r'"event_ts":"[^"]*"', '"event_ts":"1970-01-01T00:00:00Z"'))
        .when(k == "timestamp_2100", F.regexp_replace(line, r'"event_ts":"[^"]*"', '"event_ts":"2100-01-01T00:00:00Z"'))
        .when(k == "invalid_value", F.regexp_replace(line, f'"{int_field}":-?[0-9]+', f'"{int_field}":-5'))
        .otherwise(F.lit(""))
    )
    reason = F.element_at(F.create_map(*[F.lit(x) for kv in MALFORMED_KINDS.items() for x in kv]), k)
    return rec.select("day", "gen_key", add_seconds(ts, F.lit(30)).alias("arrival_ts"), "kind",
                      reason.alias("reason"), broken.alias("line"))


def conversions(natural: DataFrame, cfg: GeneratorConfig, clean: CleanConfig) -> DataFrame:
    """Conversions after some clicks; most name their click, some leave attribution to the pipeline."""
    s = cfg.seed
    chosen = natural.where(uniform(s, "conv", "gen_key") < cfg.rates.conversion)
    horizon = clean.conversion_window_hours * 3600 * 0.9
    ts = add_seconds(F.col("event_ts"), 60 + F.floor(F.pow(uniform(s, "cvt", "gen_key"), 2) * horizon))
    return chosen.select(
        F.format_string("cv-%s", "gen_key").alias("conversion_id"),
        "user_id", "ad_id", "gen_key",
        F.when(uniform(s, "cvc", "gen_key") < 0.8, F.col("click_id")).alias("click_id"),
        F.round(5 + 195 * uniform(s, "cvv", "gen_key"), 2).alias("value"),
        pick(uniform(s, "cvk", "gen_key"), ["purchase", "signup", "add_to_cart"], [0.5, 0.2, 0.3]).alias("type"),
        ts.alias("event_ts"),
        add_seconds(ts, F.lit(45)).alias("arrival_ts"),
    )
