"""Drills on the published warehouse: every gate violation blocks (8); a bad published day is restored (9).

Both run night 3 on a copy of the clean warehouse after night 2, with a fault
injected where the stage hands its frame to Delta (``storage.write_partition``),
so the gates judge exactly what would have been published.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from bench.reliability.common import SUITE_YAML, Result, Suite
from jobs.runtime import checksums, storage
from jobs.runtime.config import REPO_ROOT
from jobs.runtime.quality import GateFailed
from jobs.stages import gold, silver
from jobs.stages.nightly import run_nightly

LAYER_STAGE = {"bronze": "ingest", "silver": "silver", "gold": "gold"}
STAGE_ORDER = ("ingest", "silver", "gold")


def _first_row(df: DataFrame) -> DataFrame:
    return df.limit(1)


# kind -> (table it corrupts, the stage whose gate must block it, how)
VIOLATIONS = {
    "null key": ("silver/impressions", "silver",
                 lambda df: df.withColumn("impression_id", F.when(F.col("impression_id") == F.lit(
                     df.select(F.min("impression_id")).first()[0]), None).otherwise(F.col("impression_id")))),
    "duplicate key": ("silver/clicks", "silver", lambda df: df.unionByName(_first_row(df))),
    "value not in set": ("silver/impressions", "silver",
                         lambda df: df.withColumn("creative_type", F.when(F.col("impression_id") == F.lit(
                             df.select(F.min("impression_id")).first()[0]), "hologram").otherwise(
                             F.col("creative_type")))),
    "timestamp out of range": ("bronze/impressions", "ingest",
                               lambda df: df.withColumn("event_ts", F.when(F.col("impression_id") == F.lit(
                                   df.select(F.min("impression_id")).first()[0]),
                                   F.lit(datetime(2100, 1, 1))).otherwise(F.col("event_ts")))),
    "rate out of range": ("gold/features", "gold", lambda df: df.withColumn("ctr_7d", F.lit(1.5))),
    "empty partition": ("bronze/clicks", "ingest", lambda df: df.where(F.lit(False))),
    "volume drop": ("silver/labels", "silver", lambda df: df.sample(fraction=0.1, seed=1)),
    "unbalanced report": (None, "silver", None),
}


@contextmanager
def corrupting(table: str | None, how):
    """Corrupt what the stage writes to ``table`` (None: make the silver report unbalanced instead)."""
    original_write, original_balance, original_observe = storage.write_partition, silver.balance_errors, \
        gold.observe_checks
    # Gold's checks ride on its writes (observed on the frame written): corrupt the frame before that.
    observed = table.startswith("gold/") if table else False

    def write(df, uri, *args, **kwargs):
        if table and not observed and uri.rstrip("/").endswith(table):
            df = how(df)
        return original_write(df, uri, *args, **kwargs)

    def observe(cfg, suite_name, df, *args, **kwargs):
        if suite_name == table.replace("/", "_"):
            df = how(df)
        return original_observe(cfg, suite_name, df, *args, **kwargs)

    storage.write_partition = write
    if observed:
        gold.observe_checks = observe
    if table is None:
        silver.balance_errors = lambda report, sources: ["drill: the report does not add up"]
    try:
        yield
    finally:
        storage.write_partition, silver.balance_errors, gold.observe_checks = \
            original_write, original_balance, original_observe


def _layer_tables(state: dict, stages: set[str]) -> dict:
    return {t: c for t, c in state["tables"].items() if LAYER_STAGE.get(t.split("/")[0]) in stages}


def gate_drill(suite: Suite) -> Result:
    ref = suite.reference()
    day = ref.days[2]
    outcomes = {}
    for kind, (table, stage, how) in VIOLATIONS.items():
        cfg = suite.warehouse_after(ref.days[1], "row8")
        # Volume checks need trailing days; labels have one closed day before night 3, so let one count.
        cfg = dataclasses.replace(cfg, quality=dataclasses.replace(cfg.quality, min_trailing_days=1))
        blocked_by, message = None, ""
        with corrupting(table, how):
            try:
                run_nightly(suite.spark, cfg, day)
            except GateFailed as err:
                blocked_by, message = str(err).split("'")[1] if "'" in str(err) else "?", str(err)
        got = suite.state(cfg)
        later = set(STAGE_ORDER[STAGE_ORDER.index(stage):])
        # The blocked stage and those after it: as after night 2; the stages before it published night 3.
        unchanged = checksums.differences(_layer_tables(got, later), _layer_tables(ref.state_after[ref.days[1]], later))
        earlier = checksums.differences(_layer_tables(got, set(STAGE_ORDER) - later),
                                        _layer_tables(ref.state_after[day], set(STAGE_ORDER) - later))
        outcomes[kind] = {"table": table, "expected_gate": stage, "blocked_by": blocked_by,
                          "tables_as_before": not unchanged, "differences": (unchanged + earlier)[:4],
                          "message": message.splitlines()[1].strip() if message.count("\n") else message[:200]}
    ok = [k for k, o in outcomes.items() if o["blocked_by"] == o["expected_gate"] and o["tables_as_before"]
          and not o["differences"]]
    bad = {k: o for k, o in outcomes.items() if k not in ok}
    return Result(8, "", not bad,
                  f"{len(ok)}/{len(outcomes)} violation kinds blocked by their gate, published tables unchanged "
                  f"({', '.join(outcomes)})",
                  "; ".join(f"{k}: blocked by {o['blocked_by']}, {o['differences']}" for k, o in bad.items())[:400],
                  data=outcomes)


def restore_drill(suite: Suite) -> Result:
    """Publish a bad night 3 (gates cannot see the bug), restore it with jobs/restore.py, re-run it."""
    ref = suite.reference()
    day = ref.days[2]
    cfg = suite.warehouse_after(ref.days[1], "row9")
    # The bug: every mobile impression published as desktop, valid data in every gate's eyes.
    with corrupting("silver/impressions",
                    lambda df: df.withColumn("device_type", F.regexp_replace("device_type", "^mobile$", "desktop"))):
        run_nightly(suite.spark, cfg, day)
    bad = suite.state(cfg)
    published_bad = bool(checksums.differences(bad["tables"], ref.state_after[day]["tables"]))
    command = [sys.executable, "jobs/restore.py", "--date", day.isoformat(), "--warehouse", cfg.paths.warehouse,
               "--config", str(SUITE_YAML), "--log-level", "INFO"]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    restored = suite.state(cfg)
    after_restore = checksums.state_differences(restored, ref.state_after[ref.days[1]])
    run_nightly(suite.spark, cfg, day)  # the fixed re-run
    after_rerun = checksums.state_differences(suite.state(cfg), ref.state_after[day])
    passed = published_bad and proc.returncode == 0 and not after_restore and not after_rerun
    restored_tables = sum(" -> " in line or "remove" in line for line in proc.stderr.splitlines())
    return Result(9, "", passed,
                  f"bad night published ({'detected by checksum' if published_bad else 'NOT different'}); "
                  f"`jobs/restore.py --date {day}` exit {proc.returncode}, {restored_tables} tables restored: "
                  f"{len(after_restore)} differences from before the night; fixed re-run: {len(after_rerun)} "
                  "differences from the clean run",
                  "; ".join(after_restore[:3] + after_rerun[:3]) or (proc.stderr[-300:] if proc.returncode else ""),
                  data={"restore_stderr": proc.stderr[-3000:], "after_restore": after_restore,
                        "after_rerun": after_rerun, "command": " ".join(command)})
