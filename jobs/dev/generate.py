"""The body of `jobs/generate_logs.py` (its docstring says what it writes and how to call it): seeded,
deterministic sample logs built with Spark, and the truth tables beside them."""
from __future__ import annotations

import dataclasses
import json
import logging
import re
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.dev.generator.dims import USER_AGENTS
from jobs.dev.generator.world import expected_counts, generate
from jobs.runtime import storage
from jobs.runtime.cli import UsageError
from jobs.runtime.layout import Landing
from pipelines.config import AppConfig, CleanConfig, GeneratorConfig

log = logging.getLogger("ctr.generate")
STREAM_DIRS = ("impressions", "clicks", "conversions", "dims", "_truth")


def check_natural_agents(clean: CleanConfig) -> None:
    """Natural traffic must not match a configured bot pattern, or expected counts would lie."""
    for device, agent in USER_AGENTS.items():
        hits = [p for p in clean.bot_patterns if p in agent.lower()]
        if hits:
            raise UsageError(f"bot pattern {hits[0]!r} matches the generator's {device} user agent; "
                             "the generator cannot promise exact expected counts with this list")


def _move_outputs(spark: SparkSession, tmp: str, dest_for: callable) -> int:
    """Rename Spark's part files to the contract's names; returns how many were moved.

    Hadoop's .crc side files are not moved; they go with the temp folder.
    """
    moved = 0
    for src in storage.list_files(spark, tmp):
        dest = dest_for(src) if src.rsplit("/", 1)[1].startswith("part-") else None
        if dest is not None:
            storage.rename(spark, src, dest)
            moved += 1
    storage.delete(spark, tmp)
    return moved


def write_events(spark: SparkSession, lines: DataFrame, landing: str, cfg: GeneratorConfig) -> int:
    tmp = f"{landing}/_tmp_generate_events"
    bucket = F.pmod(F.xxhash64("gen_key"), F.lit(cfg.files_per_hour))
    out = lines.select("stream", F.date_format("dt", "yyyy-MM-dd").alias("dt"),
                       F.lpad(F.col("hour").cast("string"), 2, "0").alias("hour"),
                       bucket.alias("bucket"), "line", "gen_key")
    total = 0
    for gz in (True, False):
        streams = [s for s in ("impressions", "clicks", "conversions") if (s in cfg.gzip_streams) == gz]
        if not streams:
            continue
        part = out.where(F.col("stream").isin(streams))
        (part.repartition("stream", "dt", "hour", "bucket")
         .sortWithinPartitions("stream", "dt", "hour", "bucket", "gen_key")
         .select("stream", "dt", "hour", "bucket", "line")
         .write.mode("overwrite").option("compression", "gzip" if gz else "none")
         .partitionBy("stream", "dt", "hour", "bucket").text(f"{tmp}/{int(gz)}"))
    pattern = re.compile(r"stream=(\w+)/dt=([\d-]+)/hour=(\d+)/bucket=(\d+)/part-[^/]*?(\.gz)?$")

    def dest(src: str) -> str | None:
        m = pattern.search(src)
        if not m:
            return None
        stream, dt, hour, b, gz = m.groups()
        return f"{landing}/{stream}/dt={dt}/hour={hour}/part-{int(b):05d}.jsonl{gz or ''}"

    total += _move_outputs(spark, tmp, dest)
    return total


def write_dims(spark: SparkSession, dim_lines: DataFrame, landing: str, cfg: GeneratorConfig) -> int:
    tmp = f"{landing}/_tmp_generate_dims"
    gz = "dims" in cfg.gzip_streams
    (dim_lines.select("stream", F.date_format("dt", "yyyy-MM-dd").alias("dt"), "line")
     .repartition("stream", "dt").sortWithinPartitions("stream", "dt", "line")
     .write.mode("overwrite").option("compression", "gzip" if gz else "none")
     .partitionBy("stream", "dt").text(tmp))
    pattern = re.compile(r"stream=(\w+)/dt=([\d-]+)/part-[^/]*?(\.gz)?$")

    def dest(src: str) -> str | None:
        m = pattern.search(src)
        return f"{landing}/dims/{m.group(1)}/dt={m.group(2)}/part-00000.jsonl{m.group(3) or ''}" if m else None

    return _move_outputs(spark, tmp, dest)


def run_generate(spark: SparkSession, cfg: AppConfig, overwrite: bool) -> dict:
    gen, landing = cfg.generator, cfg.paths.landing
    check_natural_agents(cfg.clean)
    existing = [d for d in STREAM_DIRS if storage.exists(spark, f"{landing}/{d}")]
    if existing and not overwrite:
        raise UsageError(f"{landing} already holds {', '.join(existing)}; pass --overwrite to replace it")
    for d in existing:
        storage.delete(spark, f"{landing}/{d}")
    started = time.monotonic()
    log.info("generating %d day(s) from %s, ~%d impressions/day, seed %d", gen.days, gen.start_date,
             gen.impressions_per_day, gen.seed)
    out = generate(spark, gen, cfg.clean)
    worst = out.user_day_load.agg(F.max("impressions").alias("i"), F.max("clicks").alias("c")).first()
    limits = cfg.clean
    if (worst["i"] or 0) > limits.max_impressions_per_user_day or (worst["c"] or 0) > limits.max_clicks_per_user_day:
        raise RuntimeError(f"a natural user reached {worst['i']} impressions / {worst['c']} clicks in a day, over "
                           "the behavioural-bot limits; lower generator.max_user_impressions_per_day or base_ctr")
    files = write_events(spark, out.lines, landing, gen) + write_dims(spark, out.dim_lines, landing, gen)
    truth = Landing(landing).truth
    out.manifest.write.format("delta").mode("overwrite").partitionBy("dt").save(f"{truth}/manifest")
    out.truth.write.format("delta").mode("overwrite").partitionBy("dt").save(f"{truth}/ground_truth")
    expected = expected_counts(storage.read_delta(spark, f"{truth}/manifest"))
    storage.write_json(spark, f"{truth}/expected_counts.json", expected)
    storage.write_json(spark, f"{truth}/generator_config.json",
                       json.loads(json.dumps(dataclasses.asdict(gen), default=str)))
    log.info("wrote %d files in %.1fs; busiest natural user-day: %s impressions, %s clicks", files,
             time.monotonic() - started, worst["i"], worst["c"])
    for day, counts in expected.items():
        log.info("  %s: %d impressions, %d clicks landed (%d valid impressions, %d attributed clicks)", day,
                 counts["impressions_raw"], counts["clicks_raw"], counts["impressions_valid"],
                 counts["clicks_attributed"])
    return expected
