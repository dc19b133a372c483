"""The generator, ingest and silver together: three generated days, checked key by key."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from datetime import date, timedelta
from pathlib import Path

from pyspark.sql import functions as F

from jobs.dev.generator.anomalies import MALFORMED_KINDS
from jobs.runtime import storage
from jobs.runtime.layout import Landing, Warehouse
from jobs.stages.ingest import enforce_retention
from jobs.stages.nightly import run_nightly
from pipelines.report import CONTRACT_KEYS
from pipelines.schemas import DIM_STREAMS, EVENT_STREAMS

TABLES = ["bronze/impressions", "bronze/clicks", "bronze/conversions", "bronze/quarantine", "silver/impressions",
          "silver/clicks", "silver/click_resolutions", "silver/labels"]


def checksum(spark, uri):
    """Order-independent content checksum of a Delta table (ingest time excluded)."""
    df = storage.read_delta(spark, uri)
    df = df.drop(*[c for c in df.columns if c == "_ingested_at"])
    row = df.select(F.xxhash64(*[F.col(c).cast("string") for c in sorted(df.columns)]).alias("h")).agg(
        F.count(F.lit(1)).alias("n"), F.sum(F.col("h") % 1000000007).alias("s")).first()
    return row["n"], row["s"]


def test_run_reports_equal_generator_expected_counts_key_by_key(generated):
    _, expected, reports = generated
    assert len(expected) == 3
    for day, exp in expected.items():
        got = reports[day]
        mismatches = {k: (v, got.get(k)) for k, v in exp.items() if got.get(k) != v}
        assert not mismatches, f"{day}: expected vs reported {mismatches}"
    # the fixture exercises the rules, not just the happy path
    totals = {k: sum(e[k] for e in expected.values()) for k in CONTRACT_KEYS}
    for key in CONTRACT_KEYS:
        assert totals[key] > 0, f"the generated days never produce {key}"
    assert sum(sum(e["orphans_resolved"].values()) for e in expected.values()) > 0


def test_reports_are_written_balanced_with_every_contract_key(spark, generated):
    cfg, expected, _ = generated
    for day in expected:
        report = json.loads(storage.read_text(spark, Warehouse(cfg.paths.warehouse).report(date.fromisoformat(day))))
        assert report["balanced"] and report["balance_errors"] == []
        assert all(isinstance(report[k], int) for k in CONTRACT_KEYS)
        assert report["impressions_raw"] == report["ingest"]["lines"]["impressions"]


def test_quarantine_reasons_match_what_the_generator_broke(spark, generated):
    cfg, _, _ = generated
    wh, truth = Warehouse(cfg.paths.warehouse), Landing(cfg.paths.landing).truth
    got = storage.read_delta(spark, wh.quarantine).groupBy("stream", "dt", "reason").count()
    want = (storage.read_delta(spark, f"{truth}/manifest").where(F.col("fate") == "malformed")
            .groupBy("stream", "dt", "reason").count())
    assert sorted(got.collect()) == sorted(want.collect())
    assert {r["reason"] for r in got.collect()} == set(MALFORMED_KINDS.values())


def test_bronze_is_partitioned_by_arrival_date_and_keeps_late_events(spark, generated):
    cfg, expected, _ = generated
    imp = storage.read_delta(spark, Warehouse(cfg.paths.warehouse).bronze("impressions"))
    assert sorted(str(r[0]) for r in imp.select("dt").distinct().collect()) == sorted(expected)
    files = imp.select("dt", "_source_file").distinct().collect()
    assert all(f"dt={r['dt']}/" in r["_source_file"] for r in files)
    late = imp.where(F.to_date("event_ts") < F.col("dt")).count()
    assert late > 0
    assert imp.where(F.col("extra").isNotNull()).count() > 0  # unknown fields kept in bronze


def test_no_raw_ip_or_user_agent_beyond_bronze(spark, generated):
    cfg, _, _ = generated
    wh = Warehouse(cfg.paths.warehouse)
    raw = (storage.read_delta(spark, wh.bronze("impressions")).select(F.col("ip").alias("v"))
           .unionByName(storage.read_delta(spark, wh.bronze("impressions")).select(F.col("user_agent").alias("v")))
           .unionByName(storage.read_delta(spark, wh.bronze("clicks")).select(F.col("ip").alias("v")))
           .unionByName(storage.read_delta(spark, wh.bronze("clicks")).select(F.col("user_agent").alias("v")))
           .where(F.col("v").isNotNull()).distinct())
    assert raw.count() > 50
    full_ip = r"^\d{1,3}(\.\d{1,3}){3}$|^([0-9a-f]{1,4}:){7}[0-9a-f]{1,4}$"
    for name in ("impressions", "clicks", "click_resolutions", "labels"):
        df = storage.read_delta(spark, wh.silver(name))
        assert not {"ip", "user_agent"} & set(df.columns)
        strings = [c for c, t in df.dtypes if t == "string"]
        values = df.select(F.explode(F.array(*strings)).alias("v")).where(F.col("v").isNotNull())
        assert values.join(raw, on="v", how="inner").count() == 0, f"silver/{name} holds a raw ip or user agent"
        assert values.where(F.col("v").rlike(full_ip)).count() == 0, f"silver/{name} holds a full IP address"


def test_labels_exist_only_for_closed_days(spark, generated):
    cfg, expected, reports = generated
    labels = storage.read_delta(spark, Warehouse(cfg.paths.warehouse).silver("labels"))
    days = sorted(expected)
    assert sorted(str(r[0]) for r in labels.select("event_date").distinct().collect()) == days[:-1]
    assert labels.groupBy("impression_id").count().where("count > 1").count() == 0
    closed = reports[days[1]]["closed_day"]
    assert closed["event_date"] == days[0]
    assert labels.where(F.col("event_date") == days[0]).count() == closed["impressions"]


def test_rerunning_a_date_changes_no_table(spark, generated):
    cfg, expected, reports = generated
    wh = Warehouse(cfg.paths.warehouse)
    before = {t: checksum(spark, f"{wh.root}/{t}") for t in TABLES}
    middle = sorted(expected)[1]
    again = run_nightly(spark, cfg, date.fromisoformat(middle))
    after = {t: checksum(spark, f"{wh.root}/{t}") for t in TABLES}
    assert after == before
    # timings, and the Delta versions the gates record, change with every run
    # Timings and gate summaries (which carry timings and Delta versions) differ on every run.
    strip = lambda r: {k: ({n: x for n, x in v.items() if n not in ("seconds", "quality")} if k == "gold" else v)
                       for k, v in r.items() if k not in ("stage_seconds", "quality")}
    assert strip(again) == strip(reports[middle])
    assert all(g["passed"] and not g["failures"] for g in again["quality"].values())


def landing_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "_truth" not in p.parts):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_generator_is_deterministic_and_follows_the_landing_layout(spark, generated, tmp_path):
    from jobs.dev.generate import run_generate

    cfg, _, _ = generated
    second = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, landing=str(tmp_path / "landing")))
    run_generate(spark, second, overwrite=True)
    first_root, second_root = Path(cfg.paths.landing), Path(second.paths.landing)
    assert landing_digest(first_root) == landing_digest(second_root)
    layout = re.compile(r"^(impressions|clicks|conversions)/dt=\d{4}-\d{2}-\d{2}/hour=\d{2}/[^/]+\.jsonl(\.gz)?$"
                        r"|^dims/(users|ads|campaigns|publishers)/dt=\d{4}-\d{2}-\d{2}/[^/]+\.jsonl(\.gz)?$")
    files = [str(p.relative_to(first_root)) for p in first_root.rglob("*") if p.is_file() and "_truth" not in p.parts]
    assert files and all(layout.match(f) for f in files), [f for f in files if not layout.match(f)][:5]


def test_retention_deletes_old_bronze_and_quarantine(spark, generated, tmp_path):
    cfg, expected, _ = generated
    copy = tmp_path / "warehouse"
    shutil.copytree(cfg.paths.warehouse, copy)
    wh = Warehouse(str(copy))
    last = date.fromisoformat(sorted(expected)[-1])
    ingest = dataclasses.replace(cfg.ingest, bronze_retention_days=1, vacuum_retain_hours=0)
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    try:
        enforce_retention(spark, wh, [s.name for s in EVENT_STREAMS + DIM_STREAMS], ingest, last)
    finally:
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "true")
    cutoff = last - timedelta(days=1)
    for name in ("impressions", "clicks", "users"):
        dts = {r[0] for r in storage.read_delta(spark, wh.bronze(name)).select("dt").distinct().collect()}
        assert dts and min(dts) >= cutoff
    assert min(r[0] for r in storage.read_delta(spark, wh.quarantine).select("dt").distinct().collect()) >= cutoff
    stale = [p for p in (copy / "bronze" / "impressions").iterdir()
             if p.name < f"dt={cutoff}" and p.name.startswith("dt=")]
    assert all(not any(x.suffix == ".parquet" for x in p.iterdir()) for p in stale)


def test_gold_partials_match_labels_and_feed_next_days_snapshot(spark, generated):
    from pyspark.sql import functions as F

    from jobs.runtime import storage
    from jobs.runtime.layout import Warehouse

    cfg, expected, reports = generated
    wh = Warehouse(cfg.paths.warehouse)
    closed = reports[max(reports)]["closed_day"]["event_date"]
    labels = storage.read_delta(spark, wh.silver("labels")).where(F.col("event_date") == closed)
    partials = storage.read_delta(spark, wh.gold("entity_day")).where(F.col("event_date") == closed)
    per_entity = {r["entity"]: (r["imps"], r["clicks"]) for r in partials.groupBy("entity").agg(
        F.sum("impressions").alias("imps"), F.sum("clicks").alias("clicks")).collect()}
    totals = labels.agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("clicked").cast("long")).alias("c")).first()
    # Every labelled impression has a user and an ad, so those entities account for all of them.
    assert per_entity["user"] == per_entity["ad"] == per_entity["user_x_ad"] == (totals["n"], totals["c"])
    as_of = reports[max(reports)]["gold"]["features_as_of"]
    features = storage.read_delta(spark, wh.gold("features")).where(
        (F.col("as_of_date") == as_of) & (F.col("entity") == "ad"))
    window = features.agg(F.sum("imps_1d").alias("n"), F.sum("clicks_1d").alias("c"),
                          F.min("ctr_1d").alias("lo"), F.max("ctr_1d").alias("hi")).first()
    assert (window["n"], window["c"]) == (totals["n"], totals["c"])
    assert 0 < window["lo"] <= window["hi"] < 1
