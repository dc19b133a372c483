"""The one place that builds a SparkSession.

Under spark-submit the JVM already exists with its master and --jars/--packages;
under ``python -m jobs.x`` we start it here with Delta's JARs from the project's
cache (``make jars``), or from Maven Central through Ivy when the cache is empty.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from pyspark import SparkConf
from pyspark.sql import SparkSession

from jobs.runtime.config import REPO_ROOT
from pipelines.config import SparkConfig

log = logging.getLogger("ctr.spark")

DELTA_SETTINGS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def _repo_path(text: str) -> Path:
    path = Path(text)
    return path if path.is_absolute() else REPO_ROOT / path


def cached_jars(cfg: SparkConfig) -> list[str]:
    jars_dir = _repo_path(cfg.jars_dir)
    return sorted(str(p) for p in jars_dir.glob("*.jar")) if jars_dir.is_dir() else []


def under_spark_submit() -> bool:
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(cfg: SparkConfig, master: str | None = None, extra: dict[str, str] | None = None) -> SparkSession:
    builder = SparkSession.builder.appName(cfg.app_name)
    if not under_spark_submit():
        # We start the JVM: choose master, memory and Delta's JARs ourselves.
        builder = builder.master(master or cfg.master).config("spark.driver.memory", cfg.driver_memory)
        jars = cached_jars(cfg)
        if jars:
            builder = builder.config("spark.jars", ",".join(jars))
        else:
            log.warning("no cached Delta JARs in %s; resolving %s from Maven Central (run `make jars` once)",
                        cfg.jars_dir, cfg.delta_package)
            builder = (builder.config("spark.jars.packages", cfg.delta_package)
                       .config("spark.jars.ivy", str(_repo_path(cfg.ivy_dir))))
    elif master and SparkConf().get("spark.master", None) not in (None, master):
        log.warning("--master %s ignored: spark-submit already chose %s", master, SparkConf().get("spark.master"))
    settings = {
        **DELTA_SETTINGS,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(cfg.shuffle_partitions),
        # Delta: replaceWhere with arbitrary predicates, and retention under 7 days
        # only when a user configures it.
        "spark.databricks.delta.replaceWhere.dataColumns.enabled": "true",
        **cfg.conf,
        **(extra or {}),
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("spark %s, master %s, %s shuffle partitions", spark.version, spark.sparkContext.master,
             spark.conf.get("spark.sql.shuffle.partitions"))
    return spark
