"""The stage behind `jobs/ingest.py` (ingest: landing files -> bronze Delta tables and the quarantine, then the ingest
gate).

How to run it, and what it guarantees, is that entry point's docstring (`--help`)."""
from __future__ import annotations

import logging
import time
from datetime import date, timedelta

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.runtime import hooks, storage
from jobs.runtime.layout import Landing, Warehouse
from jobs.runtime.quality import begin_gate, run_gate
from pipelines.config import AppConfig, IngestConfig
from pipelines.gates import ingest_gate
from pipelines.parsing import bronze_rows, classify_lines, quarantine_rows
from pipelines.schemas import DIM_STREAMS, EVENT_STREAMS, StreamSpec

log = logging.getLogger("ctr.ingest")


def landing_files(spark: SparkSession, pattern: str) -> list[str]:
    """The delivered files under a glob."""
    # Hidden and in-flight files (".x.jsonl", "_x.jsonl") are not deliveries yet.
    return [f for f in storage.glob(spark, pattern) if not f.rsplit("/", 1)[1].startswith((".", "_"))]


CUT_SHORT = "compressed file cut short: every line of it is refused"
CUT_SHORT_REST = "compressed file cut short: the rest of it could not be read"


def _with_provenance(raw: DataFrame, day: date, path: Column) -> DataFrame:
    return raw.select(
        "value",
        path.alias("source_file"),
        F.lit(day).alias("dt"),
        F.regexp_extract(path, r"/hour=(\d{1,2})/", 1).try_cast("int").alias("hour"),
    )


def read_lines(spark: SparkSession, files: list[str], day: date, cut: frozenset[str] = frozenset()
               ) -> DataFrame | None:
    """The raw lines of ``files``, with source file and arrival hour; None if there are none.

    ``cut`` names compressed files whose stream ends early: what decompresses
    of them is read (Spark's ignoreCorruptFiles), and one more line per file
    (empty, standing for the unreadable rest) is added, all with
    ``file_error`` set, so the file is quarantined as a whole and shows even
    when nothing of it could be read.
    """
    if not files:
        return None
    whole = [f for f in files if f not in cut]
    parts = []
    if whole:
        parts.append(_with_provenance(spark.read.text(whole), day, F.col("_metadata.file_path"))
                     .withColumn("file_error", F.lit(None).cast("string")))
    if cut:
        readable = spark.read.option("ignoreCorruptFiles", "true").text(sorted(cut))
        # Spark names local files file:///x where a Hadoop listing says file:/x; use Spark's form.
        rest = spark.createDataFrame([("", f.replace("file:/", "file:///", 1) if f.startswith("file:/") and
                                       not f.startswith("file:///") else f) for f in sorted(cut)],
                                     "value string, source_file string")
        parts.append(_with_provenance(readable, day, F.col("_metadata.file_path"))
                     .withColumn("file_error", F.lit(CUT_SHORT)))
        parts.append(_with_provenance(rest, day, F.col("source_file"))
                     .withColumn("file_error", F.lit(CUT_SHORT_REST)))
    lines = parts[0]
    for part in parts[1:]:
        lines = lines.unionByName(part)
    return lines


def cut_short_files(spark: SparkSession, files: list[str]) -> frozenset[str]:
    """The compressed files among ``files`` that cannot be read to their end (one small Spark job each).

    Only called after a read failed, so a night without a broken file pays nothing for it.
    """
    cut = set()
    for f in files:
        if not f.endswith(".gz"):
            continue
        try:
            spark.read.text(f).count()
        except Exception as err:
            if not is_read_failure(err):
                raise
            cut.add(f)
    return frozenset(cut)


def is_read_failure(err: Exception) -> bool:
    return "FAILED_READ_FILE" in str(err)


def ingest_stream(spark: SparkSession, spec: StreamSpec, lines: DataFrame | None, table: str,
                  cfg: IngestConfig, day: date, ingested_at) -> tuple[DataFrame, dict[str, int]]:
    """Write one stream's bronze partition; return its quarantine rows and counts."""
    if lines is None:
        log.warning("%s: no files for dt=%s", spec.name, day)
        lines = spark.createDataFrame([], "value string, source_file string, dt date, hour int, file_error string")
    classified = classify_lines(lines, spec, cfg).persist(StorageLevel.MEMORY_AND_DISK)
    storage.write_partition(bronze_rows(classified, spec, ingested_at), table, day)
    quarantined = quarantine_rows(classified, spec, ingested_at)
    by_reason = {r["reason"] or "ok": r["n"] for r in
                 classified.groupBy("reason").agg(F.count(F.lit(1)).alias("n")).collect()}
    return quarantined, by_reason


def enforce_retention(spark: SparkSession, wh: Warehouse, names: list[str], cfg: IngestConfig, day: date) -> int:
    """Delete bronze (and quarantine, which holds raw lines) older than the limit, then vacuum."""
    cutoff = day - timedelta(days=cfg.bronze_retention_days)
    deleted = 0
    for uri in [wh.bronze(n) for n in names] + [wh.quarantine]:
        # A folder listing is enough to know there is nothing to expire; only
        # tables with older partition folders are opened as Delta tables.
        expired = [p for p in storage.glob(spark, f"{uri}/dt=*") if p.rsplit("/dt=", 1)[1] < cutoff.isoformat()]
        if not expired or not storage.is_delta(spark, uri):
            continue
        table = DeltaTable.forPath(spark, uri)
        if table.toDF().where(F.col("dt") < F.lit(cutoff)).limit(1).count():
            hooks.write(f"DELETE {uri} dt < {cutoff}")
            table.delete(F.col("dt") < F.lit(cutoff))
            deleted += 1
        # VACUUM lists the whole table, so it runs only while an expired folder still
        # holds a data file (not merely after a DELETE: a run killed between the two
        # leaves files its re-run, which finds nothing left to delete, must remove).
        if any(storage.glob(spark, f"{p}/*.parquet") for p in expired):
            hooks.write(f"VACUUM {uri}")
            table.vacuum(cfg.vacuum_retain_hours)
    if deleted:
        log.info("retention: deleted partitions before %s from %d bronze tables", cutoff, deleted)
    return deleted


def run_ingest(spark: SparkSession, cfg: AppConfig, day: date) -> tuple[dict[str, dict[str, int]], dict]:
    """Ingest every stream of one arrival date; returns line counts per stream and reason, and the gate summary.

    Raises GateFailed (after restoring the gated tables) when a critical expectation fails.
    """
    landing, wh = Landing(cfg.paths.landing), Warehouse(cfg.paths.warehouse)
    plan = ingest_gate()
    versions = begin_gate(spark, cfg, plan, day)
    ingested_at = F.current_timestamp()
    counts: dict[str, dict[str, int]] = {}
    quarantined: list[DataFrame] = []
    started = time.monotonic()
    for spec in EVENT_STREAMS + DIM_STREAMS:
        pattern = (landing.event_glob(spec.name, day) if spec in EVENT_STREAMS
                   else landing.dim_glob(spec.name, day))
        files = landing_files(spark, pattern)
        try:
            q, counts[spec.name] = ingest_stream(spark, spec, read_lines(spark, files, day), wh.bronze(spec.name),
                                                 cfg.ingest, day, ingested_at)
        except Exception as err:
            cut = cut_short_files(spark, files) if is_read_failure(err) else frozenset()
            if not cut:
                raise
            log.error("%s: %d compressed file(s) cut short, quarantined whole as truncated_file: %s",
                      spec.name, len(cut), ", ".join(sorted(cut)))
            q, counts[spec.name] = ingest_stream(spark, spec, read_lines(spark, files, day, cut),
                                                 wh.bronze(spec.name), cfg.ingest, day, ingested_at)
        quarantined.append(q)
        total = sum(counts[spec.name].values())
        bad = total - counts[spec.name].get("ok", 0)
        log.info("ingest %-11s %10d lines, %8d quarantined %s", spec.name, total, bad,
                 {k: v for k, v in counts[spec.name].items() if k != "ok"} or "")
    union = quarantined[0]
    for q in quarantined[1:]:
        union = union.unionByName(q)
    t = time.monotonic()
    storage.write_partition(union, wh.quarantine, day)
    spark.catalog.clearCache()
    log.info("ingest quarantine written in %.1fs", time.monotonic() - t)
    # The gate runs before retention: a DELETE + VACUUM could not be rolled back.
    quality = run_gate(spark, cfg, plan, day, versions)
    t = time.monotonic()
    enforce_retention(spark, wh, [s.name for s in EVENT_STREAMS + DIM_STREAMS], cfg.ingest, day)
    log.info("ingest retention checked in %.1fs", time.monotonic() - t)
    log.info("ingest dt=%s done in %.1fs", day, time.monotonic() - started)
    return counts, quality
