"""Storage I/O for jobs: Delta partitions, small text files, globbing.

Goes through Hadoop's FileSystem API, so a local path, hdfs://, s3a://, gs://
or abfss:// URI all work the same, given the cluster's connectors.
"""
from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from jobs.runtime import hooks


def _fs_path(spark: SparkSession, uri: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs, path


def glob(spark: SparkSession, pattern: str) -> list[str]:
    fs, path = _fs_path(spark, pattern)
    statuses = fs.globStatus(path)
    return sorted(str(s.getPath().toString()) for s in statuses) if statuses else []


def exists(spark: SparkSession, uri: str) -> bool:
    fs, path = _fs_path(spark, uri)
    return bool(fs.exists(path))


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Write a small text file atomically enough for reports: temp file, then rename."""
    hooks.write(uri)
    fs, path = _fs_path(spark, uri)
    jvm = spark.sparkContext._jvm
    tmp = jvm.org.apache.hadoop.fs.Path(uri + ".tmp")
    out = fs.create(tmp, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()
    if fs.exists(path):
        fs.delete(path, False)
    fs.rename(tmp, path)


def read_text(spark: SparkSession, uri: str) -> str:
    fs, path = _fs_path(spark, uri)
    stream = fs.open(path)
    try:
        jvm = spark.sparkContext._jvm
        data = jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
    finally:
        stream.close()
    return bytes(data).decode("utf-8")


def write_json(spark: SparkSession, uri: str, payload: dict[str, Any]) -> None:
    write_text(spark, uri, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def _raw(fs):
    """The file system without Hadoop's .crc side files (local paths); others as they are."""
    return fs.getRawFileSystem() if hasattr(fs, "getRawFileSystem") else fs


def list_files(spark: SparkSession, root: str) -> list[str]:
    """Every file below ``root``, recursively, sorted."""
    fs, path = _fs_path(spark, root)
    it = _raw(fs).listFiles(path, True)
    files = []
    while it.hasNext():
        files.append(it.next().getPath().toString())
    return sorted(files)


def rename(spark: SparkSession, src: str, dst: str) -> None:
    """Move one file, creating the destination folder; a local .crc side file stays behind."""
    fs, src_path = _fs_path(spark, src)
    _, dst_path = _fs_path(spark, dst)
    fs = _raw(fs)
    fs.mkdirs(dst_path.getParent())
    if not fs.rename(src_path, dst_path):
        raise OSError(f"could not rename {src} to {dst}")


def delete(spark: SparkSession, uri: str) -> None:
    fs, path = _fs_path(spark, uri)
    if fs.exists(path):
        fs.delete(path, True)


def is_delta(spark: SparkSession, uri: str) -> bool:
    return exists(spark, uri) and DeltaTable.isDeltaTable(spark, uri)


def write_partition(df: DataFrame, uri: str, day: date, column: str = "dt",
                    also_partition_by: tuple[str, ...] = (), add_columns: bool = False,
                    only: dict[str, str | tuple[str, ...]] | None = None) -> None:
    """Replace exactly one date partition of a Delta table (created if absent).

    replaceWhere makes the write idempotent: a re-run replaces the day's rows in
    one atomic commit instead of appending them a second time. ``add_columns``
    lets a newer release add columns to a table an older one created (mergeSchema).
    ``only`` (column -> identifier value or values, e.g. {"entity": "publisher"}) narrows the
    replacement to those rows: with the column a partition column, only its files.
    """
    conditions = []
    for c, v in (only or {}).items():   # they reach SQL text: identifiers only
        values = (v,) if isinstance(v, str) else tuple(v)
        if not (re.fullmatch(r"[a-z][a-z0-9_]*", c) and values
                and all(re.fullmatch(r"[a-z][a-z0-9_]*", x) for x in values)):
            raise ValueError(f"refused a replaceWhere condition {c} = {v!r}")
        conditions.append(f" AND {c} = '{values[0]}'" if len(values) == 1
                          else f" AND {c} IN ({', '.join(repr(x) for x in values)})")
    where = f"{column} = DATE'{day.isoformat()}'" + "".join(conditions)
    hooks.write(f"{uri} {where}")
    writer = (df.write.format("delta")
              .mode("overwrite")
              .option("replaceWhere", where))
    if add_columns:
        writer = writer.option("mergeSchema", "true")
    writer.partitionBy(column, *also_partition_by).save(uri)


def read_delta(spark: SparkSession, uri: str) -> DataFrame:
    return spark.read.format("delta").load(uri)


def partition_columns(spark: SparkSession, uri: str) -> list[str]:
    """The partition columns of an existing Delta table (a table an older release created keeps its own)."""
    return list(DeltaTable.forPath(spark, uri).detail().first()["partitionColumns"])


def qualified(spark: SparkSession, uri: str) -> str:
    """``uri`` with its scheme and, for a relative local path, made absolute: SQL's delta.`path` needs one."""
    fs, path = _fs_path(spark, uri)
    return str(fs.makeQualified(path).toString())


def table_properties(spark: SparkSession, uri: str) -> dict[str, str]:
    return dict(DeltaTable.forPath(spark, uri).detail().first()["properties"] or {})


def set_table_properties(spark: SparkSession, uri: str, properties: dict[str, str]) -> None:
    """One commit setting user properties (keys and values: identifiers, dots and hex only)."""
    for k, v in properties.items():
        if not re.fullmatch(r"[a-z0-9_.]+", k) or not re.fullmatch(r"[a-z0-9]+", v):
            raise ValueError(f"refused a table property {k}={v}")
    pairs = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
    hooks.write(f"{uri} properties")
    spark.sql(f"ALTER TABLE delta.`{qualified(spark, uri)}` SET TBLPROPERTIES ({pairs})")


def unset_table_properties(spark: SparkSession, uri: str, keys: list[str]) -> None:
    for k in keys:
        if not re.fullmatch(r"[a-z0-9_.]+", k):
            raise ValueError(f"refused a table property {k}")
    hooks.write(f"{uri} properties")
    names = ", ".join(f"'{k}'" for k in keys)
    spark.sql(f"ALTER TABLE delta.`{qualified(spark, uri)}` UNSET TBLPROPERTIES IF EXISTS ({names})")


def table_history(spark: SparkSession, uri: str, last: int) -> list[str]:
    """The operation and parameters of the table's ``last`` commits, newest first, as text."""
    return [f"{r['operation']} {dict(r['operationParameters'] or {})}"
            for r in DeltaTable.forPath(spark, uri).history(last).collect()]
