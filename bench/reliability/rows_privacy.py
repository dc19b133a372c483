"""Row 11: no raw IP address or user agent beyond bronze, and bronze past its retention physically gone.

On a copy of the clean reference, one more night runs as its own process (a
fourth generated day, so three label days are closed and a 1/1/1-day training
set can train XGBoost and LR into an MLflow store under ``--root``). Its overlay
shortens bronze retention to 2 days with a 0-hour VACUUM, so that night expires
the first day's bronze. It also sets a random ``CTR_UA_HASH_KEY``.

The raw values are the ``ip`` and ``user_agent`` fields of every landed line.
Scanned for them, and for the hash key: every string value (complex columns as
JSON) of every Delta table outside ``bronze/``; every other file of the
warehouse (run reports, summaries, quality results and Data Docs, Delta logs
of the tables beyond bronze); the night's stdout and stderr, its Spark event log
and this row's own log; the MLflow SQLite database and every artifact. An IPv4
counts only as a whole address (not the ``a.b.c.0/24`` prefix silver keeps).
MLflow logs the ``pipelines/`` source with each model (``code_paths``); the
generator's fixed bot user agents and anomaly IPs are constants there, so hits
in ``artifacts/code/`` are reported apart and do not fail the row.
"""
from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import yaml
from pyspark.sql import functions as F
from pyspark.sql import types as T

from bench.reliability.common import SUITE_YAML, Result, Suite
from jobs.dev import faults
from jobs.dev.generate import run_generate
from jobs.runtime import storage

log = logging.getLogger("ctr.reliability")

IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d/]|\.\d)")
IPV6 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{1,4}(?![0-9A-Fa-f:/])")
FIELD = re.compile(r'"(ip|user_agent)"\s*:\s*"((?:[^"\\]|\\.)*)"')
RETENTION_DAYS = 2
OVERLAY = {
    "ingest": {"max_event_lag_days": 1, "bronze_retention_days": RETENTION_DAYS, "vacuum_retain_hours": 0},
    "clean": {"lookback_days": 1},
    "quality": {"min_trailing_days": 7},  # D4 is a generator's first day (no late deliveries): no volume verdict
    "spark": {"conf": {"spark.databricks.delta.retentionDurationCheck.enabled": "false"}},
    "training_set": {"train_days": 1, "validation_days": 1, "test_days": 1},
    "train": {"schedule": "daily", "models": ["xgboost", "lr"], "num_rounds": 20, "early_stopping_rounds": 5,
              "gbdt_lr_trees": 10, "ablation": False},
}


EVENT_LOG = ("--conf", "spark.eventLog.enabled=true", "--conf", "spark.eventLog.compress=false")


@dataclass
class Raw:
    ips: set[str]
    uas: set[str]
    key: str

    def hits(self, text: str) -> set[str]:
        found = {m for m in IPV4.findall(text) if m in self.ips}
        found |= {m.lower() for m in IPV6.findall(text) if m.lower() in self.ips}
        found |= {ua for ua in self.uas if ua in text}
        return found | ({"<CTR_UA_HASH_KEY>"} if self.key in text else set())


@contextlib.contextmanager
def environ(**values: str):
    """Environment variables for a block (the night's process inherits them), then the old values back."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def landing_raw(landing: Path, key: str) -> Raw:
    """Every ip and user_agent value of every landed line (malformed lines included, where the field is intact)."""
    ips, uas = set(), set()
    for path in landing.rglob("*.jsonl*"):
        if "_truth" in path.parts:
            continue
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
            for name, value in FIELD.findall(lines.read()):
                try:
                    value = json.loads(f'"{value}"')
                except json.JSONDecodeError:
                    continue
                if name == "user_agent" and value.strip():
                    uas.add(value)
                elif name == "ip":
                    ips.update(IPV4.findall(value))
                    ips.update(m.lower() for m in IPV6.findall(value))
    return Raw(ips, uas, key)


def add_day(suite: Suite, landing: Path, day) -> int:
    """Generate one more arrival day (another seed) and add its folders to ``landing``; returns files added."""
    gen = suite.config("row11-gen", landing=suite.fresh_dir("row11-gen") / "landing",
                       overrides={"generator": {"start_date": day.isoformat(), "days": 1, "seed": 8}})
    run_generate(suite.spark, gen, overwrite=True)
    added = 0
    for folder in Path(gen.paths.landing).rglob(f"dt={day}"):
        target = landing / folder.relative_to(gen.paths.landing)
        shutil.copytree(folder, target)
        added += sum(1 for p in target.rglob("*") if p.is_file())
    shutil.rmtree(suite.root / "row11-gen", ignore_errors=True)
    return added


def expired_bronze(spark, warehouse: Path, cutoff) -> tuple[int, int, list[str]]:
    """(partition folders before cutoff holding parquet files, Delta rows before cutoff, tables) over bronze/*."""
    folders, rows, tables = 0, 0, []
    for log_dir in sorted((warehouse / "bronze").glob("*/_delta_log")):
        table = log_dir.parent
        tables.append(table.name)
        old = [p for p in table.glob("dt=*") if p.name[3:] < cutoff.isoformat()]
        folders += sum(1 for p in old if any(p.rglob("*.parquet")))
        rows += storage.read_delta(spark, str(table)).where(F.col("dt") < F.lit(cutoff)).count()
    return folders, rows, tables


def as_text(field: T.StructField):
    t = field.dataType
    if isinstance(t, T.StringType):
        return F.col(f"`{field.name}`")
    if isinstance(t, T.BinaryType):
        return F.col(f"`{field.name}`").cast("string")
    if isinstance(t, (T.ArrayType, T.MapType, T.StructType)):
        return F.to_json(F.col(f"`{field.name}`"))
    return None


def table_text(spark, table: Path) -> list[str]:
    """Every distinct text value of a Delta table: strings, binaries, and complex columns as JSON."""
    df = storage.read_delta(spark, str(table))
    cols = [c for c in (as_text(f) for f in df.schema.fields) if c is not None]
    if not cols:
        return []
    return [r[0] for r in df.select(F.explode(F.array(*cols)).alias("v")).where(F.col("v").isNotNull())
            .distinct().collect()]


def scan_tables(spark, warehouse: Path, raw: Raw) -> tuple[dict[str, set[str]], int]:
    """Hits per Delta table outside bronze/, and how many distinct text values were scanned."""
    found, values = {}, 0
    for log_dir in sorted(warehouse.rglob("_delta_log")):
        name = str(log_dir.parent.relative_to(warehouse))
        if not name.startswith("bronze"):
            texts = table_text(spark, log_dir.parent)
            values += len(texts)
            found[name] = raw.hits("\n".join(texts))
    return found, values


def scan_files(files: list[Path], raw: Raw) -> dict[str, set[str]]:
    return {str(p): raw.hits(p.read_bytes().decode("latin-1")) for p in files}


def warehouse_files(warehouse: Path) -> list[Path]:
    """Every file beyond bronze that Spark does not read as table data: reports, quality results, Delta logs."""
    return [p for p in sorted(warehouse.rglob("*")) if p.is_file() and not p.name.endswith(".parquet")
            and not p.name.endswith(".parquet.crc") and p.relative_to(warehouse).parts[0] != "bronze"]


def privacy_scan(suite: Suite) -> Result:
    ref = suite.reference()
    base = suite.fresh_dir("row11")
    landing, warehouse, mlruns, events = base / "landing", base / "warehouse", base / "mlruns", base / "eventlog"
    own_log = logging.FileHandler(base / "row11.log")
    own_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(own_log)
    try:
        shutil.copytree(ref.cfg.paths.landing, landing)
        shutil.copytree(ref.cfg.paths.warehouse, warehouse, ignore=shutil.ignore_patterns("gx"))
        night = ref.days[-1] + timedelta(days=1)
        added = add_day(suite, landing, night)
        cutoff = night - timedelta(days=RETENTION_DAYS)
        before = expired_bronze(suite.spark, warehouse, cutoff)
        overlay = base / "row11.yaml"
        overlay.write_text(yaml.safe_dump(OVERLAY))
        events.mkdir()
        key = secrets.token_hex(16)
        started = time.monotonic()
        with environ(MLFLOW_TRACKING_URI=f"sqlite:///{mlruns / 'mlflow.db'}", CTR_UA_HASH_KEY=key):
            proc = faults.nightly_process(night, str(landing), str(warehouse), [str(SUITE_YAML), str(overlay)],
                                          timeout=1500, extra_args=("--train", "--log-level", "INFO", *EVENT_LOG,
                                                                    "--conf", f"spark.eventLog.dir={events.as_uri()}"))
        night_seconds = time.monotonic() - started
        log.info("row 11: night %s exit %s in %.0fs", night, proc.returncode, night_seconds)
        (base / "night.stdout").write_text(proc.stdout)
        (base / "night.stderr").write_text(proc.stderr)
        after = expired_bronze(suite.spark, warehouse, cutoff)
        report = json.loads((warehouse / "reports" / f"dt={night}" / "run_report.json").read_text()) \
            if proc.returncode == 0 else {}
        training = report.get("training", {}).get("status", "no report")
        raw = landing_raw(landing, key)
        tables, values = scan_tables(suite.spark, warehouse, raw)
        # The detector's own check: bronze keeps the raw values, so it must find them there.
        control = raw.hits("\n".join(table_text(suite.spark, warehouse / "bronze" / "impressions")))
        files = scan_files(warehouse_files(warehouse), raw)
        own_log.flush()
        logs = scan_files([base / "night.stdout", base / "night.stderr", base / "row11.log",
                           *sorted(p for p in events.rglob("*") if p.is_file())], raw)
        event_mb = sum(p.stat().st_size for p in events.rglob("*") if p.is_file()) / 1e6
        shutil.rmtree(events)  # hundreds of MB of JSON, scanned: not worth keeping
        ml_all = scan_files(sorted(p for p in mlruns.rglob("*") if p.is_file()), raw)
    finally:
        logging.getLogger().removeHandler(own_log)
        own_log.close()
    ml_code = {k: v for k, v in ml_all.items() if "/artifacts/code/" in k}
    ml = {k: v for k, v in ml_all.items() if k not in ml_code}
    leaks = {**{f"table {k}": v for k, v in tables.items()}, **files, **logs, **ml}
    leaks = {k: v for k, v in leaks.items() if v}
    n_ips = len({h for v in leaks.values() for h in v if IPV4.fullmatch(h) or IPV6.fullmatch(h)})
    n_uas = len({h for v in leaks.values() for h in v if h in raw.uas})
    key_leaks = [k for k, v in leaks.items() if "<CTR_UA_HASH_KEY>" in v]
    code_hits = sorted({h for v in ml_code.values() for h in v})
    ran = proc.returncode == 0 and training == "trained" and bool(ml) and bool(tables) and len(control) > 10
    expired_ok = before[0] > 0 and after[0] == 0 and after[1] == 0
    passed = ran and not leaks and expired_ok
    figure = (f"{n_ips} raw IPs, {n_uas} raw UAs in {len(tables)} tables / {len(files)} files / {len(logs)} logs / "
              f"MLflow ({len(ml)} files); {after[0]} bronze partitions past retention "
              f"({before[0]} expired by the night, {after[1]} rows left)")
    detail = (f"raw values from landing: {len(raw.ips)} IPs, {len(raw.uas)} user agents (control: the same scan "
              f"finds {len(control)} of them in bronze/impressions); {values} distinct table "
              f"values; night {night} exit {proc.returncode} in {night_seconds:.0f}s, training {training}, "
              f"{added} files generated for it; Spark event log {event_mb:.0f} MB; retention {RETENTION_DAYS} days, "
              f"cutoff {cutoff}, bronze tables {', '.join(after[2])}; hash key found in {len(key_leaks)} places; "
              f"{len(code_hits)} values also in MLflow's copy of pipelines/ source ({len(ml_code)} files, "
              f"generator constants, not counted)")
    if leaks:
        detail += "; LEAKS: " + " | ".join(f"{k}: {sorted(v)[:3]}" for k, v in list(leaks.items())[:8])
    if not ran:
        detail += f"; NIGHT: {proc.stderr.strip()[-300:]!r}"
    return Result(11, "", passed, figure, detail,
                  data={"tables": sorted(tables), "files": len(files), "logs": sorted(logs), "mlflow_files": len(ml),
                        "leaks": {k: sorted(v) for k, v in leaks.items()}, "raw_ips": len(raw.ips),
                        "raw_uas": len(raw.uas), "expired_before": before[0], "expired_after": after[0],
                        "rows_before_cutoff_after": after[1], "training": training, "code_hits": code_hits,
                        "night_seconds": round(night_seconds, 1), "control_hits": len(control)})
