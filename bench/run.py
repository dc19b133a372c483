"""`make bench`: one night per stage (ingest, silver, gold, each with its quality gate), by daily volume.

    .venv/bin/python bench/run.py [--sizes 1000000,10000000] [--days 2]
    .venv/bin/python bench/run.py --sizes 200000 --days 29     # a night with 28 days of history

For each size: generate ``days`` days of that many clean impressions per day,
then run the nightly job (jobs/nightly.run_nightly, training off: bench/train_bench.py
measures it) for each day in one SparkSession. The last night is the one reported: it has a prior day to
de-duplicate against, orphans to retry and a closed day for gold. Reported per
stage: seconds, its quality gate's seconds and share, throughput per core, and
for gold the longest against the median task of its most skewed stage, read
from Spark's event log (what a hot key would stall). With --days >= 3 the last
night (days - 1 days of partials behind its snapshot) is compared with night 1
and night 2 (the first with partials): a night must not grow with history.
DuckDB then runs the same silver decisions as one SQL query over the Parquet
files of the same bronze Delta version (files listed with the `deltalake`
package); its counts are checked against Spark's (BENCH_SKIP_DUCKDB=1 skips it).
Results go to bench/results/bench-<timestamp>.json and stdout.
Benchmarks are not tests: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

from jobs.runtime.config import REPO_ROOT, load_config
from jobs.runtime.layout import Warehouse

CORES = os.cpu_count() or 1
log = logging.getLogger("ctr.bench")
BENCH_CONF = str(Path(__file__).parent / "bench.yaml")


def duckdb_silver(wh: Warehouse, day, clean, out_dir: Path) -> tuple[float, dict]:
    """The silver decisions for one arrival day, first-night semantics, as one DuckDB query."""
    import duckdb
    from deltalake import DeltaTable

    def files(name: str) -> list[str]:
        table = DeltaTable(wh.bronze(name))
        return [f for f in table.file_uris() if f"/dt={day.isoformat()}/" in f]

    imp_files, clk_files = files("impressions"), files("clicks")
    bots = " OR ".join(f"contains(lower(user_agent), '{p}')" for p in clean.bot_patterns)
    con = duckdb.connect()
    con.execute(f"SET threads = {CORES}")
    con.execute("SET memory_limit = '6GB'")  # beside a 12 GB Spark driver on a 24 GiB machine: spill, not OOM
    started = time.perf_counter()
    con.execute(f"""
    CREATE TEMP TABLE imp AS
      SELECT * EXCLUDE (rn) FROM (
        SELECT *, row_number() OVER (PARTITION BY impression_id ORDER BY event_ts, hour, _source_file, _line_hash) rn
        FROM read_parquet({imp_files!r})) WHERE rn = 1;
    CREATE TEMP TABLE clk_all AS
      SELECT *, row_number() OVER (PARTITION BY click_id ORDER BY event_ts, hour, _source_file, _line_hash) rn
      FROM read_parquet({clk_files!r});
    CREATE TEMP TABLE sivt AS
      SELECT user_id, d FROM (
        SELECT user_id, CAST(event_ts AS DATE) d, count(*) FILTER (WHERE k = 'i') ni, count(*) FILTER (WHERE k = 'c') nc
        FROM (SELECT user_id, event_ts, 'i' k FROM imp UNION ALL
              SELECT user_id, event_ts, 'c' k FROM clk_all WHERE rn = 1)
        GROUP BY ALL) WHERE ni > {clean.max_impressions_per_user_day} OR nc > {clean.max_clicks_per_user_day};
    CREATE TEMP TABLE imp_out AS
      SELECT i.*, CASE WHEN {bots} THEN 'bot_declared' WHEN s.user_id IS NOT NULL THEN 'bot_behavioural'
                       ELSE 'valid' END AS fate
      FROM imp i LEFT JOIN sivt s ON s.user_id = i.user_id AND s.d = CAST(i.event_ts AS DATE);
    CREATE TEMP TABLE clk_out AS
      WITH c AS (
        SELECT c.*, i.event_ts AS imp_ts, i.fate AS imp_fate,
               CASE WHEN c.rn > 1 THEN 'duplicate'
                    WHEN i.impression_id IS NULL THEN 'orphan'
                    WHEN ({bots.replace('user_agent', 'c.user_agent')}) OR s.user_id IS NOT NULL
                         OR i.fate <> 'valid' THEN 'on_bot_traffic'
                    WHEN c.event_ts < i.event_ts THEN 'invalid_time'
                    WHEN epoch_us(c.event_ts) - epoch_us(i.event_ts) > {clean.attribution_window_s} * 1000000
                         THEN 'out_of_window'
                    WHEN c.dwell_ms < {clean.min_dwell_ms} THEN 'invalid_dwell' END AS pre
        FROM clk_all c LEFT JOIN imp_out i ON i.impression_id = c.impression_id
        LEFT JOIN sivt s ON s.user_id = c.user_id AND s.d = CAST(c.event_ts AS DATE))
      SELECT *, coalesce(pre, CASE WHEN row_number() OVER (PARTITION BY impression_id, pre IS NULL
                                                            ORDER BY event_ts, click_id) = 1
                                   THEN 'attributed' ELSE 'repeat' END) AS fate
      FROM c;
    COPY (SELECT * EXCLUDE (user_agent, ip) FROM imp_out) TO '{out_dir}/impressions.parquet' (FORMAT parquet);
    COPY (SELECT * EXCLUDE (user_agent, ip) FROM clk_out) TO '{out_dir}/clicks.parquet' (FORMAT parquet);
    """)
    seconds = time.perf_counter() - started
    counts = {f"impressions_{f}": n for f, n in con.execute("SELECT fate, count(*) FROM imp_out GROUP BY 1").fetchall()}
    clicks = con.execute("SELECT fate, count(*) FROM clk_out GROUP BY 1").fetchall()
    counts.update({f"clicks_{f}": n for f, n in clicks})
    return seconds, counts


def task_skew(event_log_dir: Path, group: str, since_ms: int, until_ms: int | None = None,
              min_tasks: int = 4) -> dict | None:
    """Longest against median task time in the stages of one job group, from Spark's event log.

    Only jobs submitted between ``since_ms`` and ``until_ms`` count (two sizes in one session reuse the
    dates, hence the group names). Returned: the heaviest stage (most task time),
    and among the stages with at least 5% of the group's task time the one with
    the largest longest/median ratio: what a hot key would show as, one task
    running long while the others wait.
    """
    stages, tasks = set(), {}
    for log_file in (f for f in event_log_dir.rglob("*") if f.is_file() and not f.name.startswith(("appstatus", "."))):
        with log_file.open(encoding="utf-8") as fh:
            for line in fh:
                is_job, is_task = '"SparkListenerJobStart"' in line, '"SparkListenerTaskEnd"' in line
                if not (is_job or is_task):
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:  # the line Spark is writing right now
                    continue
                if is_job:
                    if ((event.get("Properties") or {}).get("spark.jobGroup.id") == group
                            and since_ms <= event.get("Submission Time", 0) <= (until_ms or 1 << 62)):
                        stages.update(event["Stage IDs"])
                else:
                    info = event["Task Info"]
                    tasks.setdefault(event["Stage ID"], []).append((info["Finish Time"] - info["Launch Time"]) / 1000)
    summary = []
    for stage in stages:  # a skipped stage (its output reused) has no tasks here
        durations = sorted(tasks.get(stage, []))
        if len(durations) < min_tasks:
            continue
        median = statistics.median(durations)
        summary.append({"stage": stage, "tasks": len(durations), "total_s": round(sum(durations), 1),
                        "longest_s": round(durations[-1], 2), "median_s": round(median, 2),
                        "longest_over_median": round(durations[-1] / max(median, 0.001), 2)})
    if not summary:
        return None
    # The heavy stages are where a hot key would hurt; tiny stages' ratios are noise (10 ms against 60 ms).
    heavy = [st for st in summary if st["total_s"] >= 0.05 * sum(x["total_s"] for x in summary)]
    return {"heaviest": max(summary, key=lambda st: st["total_s"]),
            "most_skewed_heavy": max(heavy, key=lambda st: st["longest_over_median"])}


def timed_night(spark, cfg, day) -> tuple[float, dict]:
    from jobs.stages.nightly import run_nightly

    t = time.perf_counter()
    report = run_nightly(spark, cfg, day, train=False)  # training has its own bench (bench/train_bench.py)
    return time.perf_counter() - t, report


def compare_history(spark, cfg, days: int) -> dict:
    """Night 1 and 2 in a fresh warehouse, then the last night again on its full history, back to back.

    Building 28 days of history takes most of an hour, and a machine is rarely
    quiet that long; the three nights compared here take minutes. Re-running the
    last night replaces its partitions (idempotent), the same work as its first run.
    """
    start, root = cfg.generator.start_date, Path(cfg.paths.warehouse).parent
    fresh_root = root / "warehouse-first"
    shutil.rmtree(fresh_root, ignore_errors=True)
    fresh = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, warehouse=str(fresh_root)))
    out = {"history_days_last_night": days - 1}
    for key, night_cfg, day in (("night_1", fresh, start), ("night_2", fresh, start + timedelta(days=1)),
                                ("last_night", cfg, start + timedelta(days=days - 1))):
        seconds, report = timed_night(spark, night_cfg, day)
        out[f"{key}_s"] = round(seconds, 1)
        out[f"{key}_stage_s"] = report["stage_seconds"]
        log.info("bench history %s %s: %.1fs %s", key, day, seconds, report["stage_seconds"])
    out["last_over_night_1"] = round(out["last_night_s"] / out["night_1_s"], 2)
    out["last_over_night_2"] = round(out["last_night_s"] / out["night_2_s"], 2)
    out["gold_night_2_s"], out["gold_last_s"] = out["night_2_stage_s"]["gold"], out["last_night_stage_s"]["gold"]
    out["gold_last_over_night_2"] = round(out["gold_last_s"] / out["gold_night_2_s"], 2)
    return out


def watch_cost(spark, cfg, days: int, last_night: dict) -> dict:
    """The drift step on the last night, which the bench's nights skip (no training set yet): build a training
    set of the closed days (train days - 3, validation 1, test 1), then measure the night's drift twice - the
    first night after a rebuild also samples the new train window (the reference, stored per training-set
    version), every later night only the night. Shares are of the last night plus that drift step."""
    from jobs.stages.training_set import run_training_set
    from jobs.stages.watch import run_drift

    sized = dataclasses.replace(cfg, training_set=dataclasses.replace(
        cfg.training_set, train_days=days - 3, validation_days=1, test_days=1))
    day = cfg.generator.start_date + timedelta(days=days - 1)
    t = time.perf_counter()
    manifest = run_training_set(spark, sized)
    set_s = time.perf_counter() - t
    runs = []
    for _ in range(2):
        t = time.perf_counter()
        drift = run_drift(spark, sized, day)
        runs.append(time.perf_counter() - t)
    if drift.get("status") != "measured":
        raise SystemExit(f"--watch: the drift step did not measure: {drift.get('reason')}")
    night_s = last_night["night_s"]
    checks_s = last_night["watch_s"]   # anomaly checks and history inside the gates (no drift on the bench night)
    return {"training_set_s": round(set_s, 1), "training_set_rows": manifest.get("rows"),
            "drift_rows": drift["rows"], "drift_features": len(drift["features"]),
            "drift_first_s": round(runs[0], 1), "drift_s": round(runs[1], 1),
            "anomaly_and_history_s": checks_s,
            "share_first_night_after_rebuild": round((checks_s + runs[0]) / (night_s + runs[0]), 4),
            "share": round((checks_s + runs[1]) / (night_s + runs[1]), 4)}


def bench_size(spark, base_cfg, n: int, days: int, root: Path, event_log_dir: Path | None,
               compare_only: bool = False, watch: bool = False) -> dict:
    from jobs.dev.generate import run_generate

    gen = dataclasses.replace(base_cfg.generator, impressions_per_day=n, days=days)
    cfg = dataclasses.replace(base_cfg, generator=gen, paths=dataclasses.replace(
        base_cfg.paths, landing=str(root / "landing"), warehouse=str(root / "warehouse")))
    if compare_only:
        if not (root / "warehouse" / "reports" / f"dt={gen.start_date + timedelta(days=days - 2)}").exists():
            raise SystemExit(f"--compare-only: {root} has no {days - 1} nights of history; run without it first")
        return {"impressions_per_day": n, "history": compare_history(spark, cfg, days)}
    if root.exists():
        shutil.rmtree(root)
    t = time.perf_counter()
    run_generate(spark, cfg, overwrite=True)
    generate_s = time.perf_counter() - t
    nights = []
    for i in range(days):
        day = gen.start_date + timedelta(days=i)
        started_ms = int(time.time() * 1000)
        night_s, report = timed_night(spark, cfg, day)
        stage_s = report["stage_seconds"]
        gates = {"ingest": report["quality"]["ingest"]["seconds"], "silver": report["quality"]["silver"]["seconds"],
                 "gold": (report["gold"].get("quality") or {}).get("seconds", 0.0)}
        night = {"date": day.isoformat(), "impressions_raw": report["impressions_raw"],
                 "clicks_raw": report["clicks_raw"], "closed_labels": report["closed_day"]["impressions"],
                 "gold_feature_keys": sum(report["gold"]["feature_keys"].values()),
                 "night_s": round(night_s, 1), "balanced": report["balanced"], "report": report}
        for stage in ("ingest", "silver", "gold"):
            night[f"{stage}_s"] = stage_s[stage]
            night[f"{stage}_gate_s"] = gates[stage]
            night[f"{stage}_gate_share"] = round(gates[stage] / stage_s[stage], 3) if stage_s[stage] else None
        # The watch (docs/monitoring.md): anomaly checks, metric history and entity volumes inside the gates,
        # plus the drift step after scoring.
        watch_s = sum((g.get("anomalies") or {}).get("seconds", 0.0) for g in report["quality"].values()) \
            + stage_s.get("watch", 0.0)
        night["watch_s"] = round(watch_s, 2)
        night["watch_share"] = round(watch_s / night_s, 4) if night_s else None
        if event_log_dir is not None:
            night["gold_task_skew"] = task_skew(event_log_dir, f"gold-{day}", started_ms)
        nights.append(night)
        log.info("bench night %d/%d %s: %.1fs (ingest %.1f, silver %.1f, gold %.1f), %s feature keys", i + 1, days,
                 day, night_s, stage_s["ingest"], stage_s["silver"], stage_s["gold"], f"{night['gold_feature_keys']:,}")
    last = nights[-1]
    imp = last["impressions_raw"]
    out = {"impressions_per_day": n, "generate_s_all_days": round(generate_s, 1), "nights": [
        {k: v for k, v in night.items() if k != "report"} for night in nights]}
    out["ingest_imp_per_s_per_core"] = round(imp / last["ingest_s"] / CORES)
    out["silver_imp_per_s_per_core"] = round(imp / last["silver_s"] / CORES)
    # Gold reads the closed day's labels (one day of impressions) and the partials.
    out["gold_labels_per_s_per_core"] = (round(last["closed_labels"] / last["gold_s"] / CORES)
                                         if last["gold_s"] else None)
    if watch:
        out["watch"] = watch_cost(spark, cfg, days, nights[-1])
    if days >= 3 and not watch:   # --watch measures the watch, not history growth (its own, longer run)
        # Night 1 has no closed day (gold does nearly nothing); night 2 is the first to build partials and a
        # snapshot (1 day of history); the last night's snapshot spans days - 1 days of partials. The nights
        # above ran an hour apart; the comparison re-measures the three back to back.
        out["history"] = compare_history(spark, cfg, days)
    if os.environ.get("BENCH_SKIP_DUCKDB") != "1":
        first = nights[0]
        duck_dir = root / "duckdb"
        duck_dir.mkdir()
        duck_s, duck_counts = duckdb_silver(Warehouse(cfg.paths.warehouse), gen.start_date, cfg.clean, duck_dir)
        spark_first = first["report"]
        keys = sorted(set(duck_counts) | {k for k in spark_first if k.startswith(("impressions_", "clicks_"))
                                          and k.split("_", 1)[1] in {"valid", "bot_declared", "bot_behavioural",
                                                                     "attributed", "repeat", "orphan",
                                                                     "out_of_window", "invalid_time",
                                                                     "invalid_dwell", "on_bot_traffic"}})
        mismatch = {k: (spark_first.get(k, 0), duck_counts.get(k, 0)) for k in keys
                    if spark_first.get(k, 0) != duck_counts.get(k, 0)}
        out["duckdb_reference"] = {"date": first["date"], "duckdb_silver_s": round(duck_s, 1),
                                   "spark_silver_s": first["silver_s"],
                                   "spark_over_duckdb": round(first["silver_s"] / duck_s, 2),
                                   "counts_match_spark": not mismatch, "mismatches": mismatch}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "1000000,10000000"),
                   help="impressions per day, comma-separated (default 1000000,10000000)")
    p.add_argument("--days", type=int, default=2, help="nights per size; 29 measures a night with 28 days of history")
    p.add_argument("--root", default=str(REPO_ROOT / "data" / "bench"))
    p.add_argument("--driver-memory", help="overrides bench/bench.yaml's spark.driver_memory (12g)")
    p.add_argument("--compare-only", action="store_true",
                   help="with --days N on a root that has the N nights: only re-measure night 1, night 2 and "
                        "night N back to back (minutes, for a quiet machine)")
    p.add_argument("--watch", action="store_true",
                   help="with --days 4 or more: after the nights, build a training set and time the last night's "
                        "drift step (the watch's cost beside the anomaly checks each night already reports); "
                        "skips the history comparison")
    a = p.parse_args()
    sizes = [int(s) for s in a.sizes.split(",") if s]
    if not sizes or min(sizes) < 1000 or a.days < 1:
        p.error("--sizes needs sizes of at least 1000 impressions and --days at least 1")
    if a.watch and (a.days < 4 or a.compare_only):
        p.error("--watch needs --days 4 or more (three closed days for a training set) and no --compare-only")
    if a.compare_only and a.days < 3:
        p.error("--compare-only needs --days 3 or more (the night whose history is compared)")
    from jobs.runtime.cli import setup_logging
    from jobs.runtime.spark import get_spark

    setup_logging("INFO")
    cfg = load_config("local", [BENCH_CONF], {"spark": {"driver_memory": a.driver_memory}} if a.driver_memory else None)
    event_log_dir = Path(a.root) / "eventlog"
    shutil.rmtree(event_log_dir, ignore_errors=True)
    event_log_dir.mkdir(parents=True)
    spark = get_spark(cfg.spark, None, {"spark.eventLog.enabled": "true", "spark.eventLog.compress": "false",
                                        "spark.eventLog.dir": event_log_dir.resolve().as_uri()})
    results = {"cores": CORES, "spark": spark.version, "driver_memory": cfg.spark.driver_memory,
               "shuffle_partitions": cfg.spark.shuffle_partitions, "days": a.days, "sizes": []}
    for n in sizes:
        results["sizes"].append(bench_size(spark, cfg, n, a.days, Path(a.root) / f"n{n}", event_log_dir,
                                           a.compare_only, a.watch))
        print(json.dumps(results["sizes"][-1], indent=2), flush=True)
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out_dir / f"bench-{stamp}.json").write_text(json.dumps(results, indent=2))
    print(f"\nlast night of {a.days} per size; gate = the stage's quality gate, share = of the stage's time")
    print("| impressions/day | ingest s (gate) | silver s (gate) | gold s (gate) | night s | ingest imp/s/core "
          "| silver imp/s/core | gold labels/s/core | gold longest / median task (most skewed heavy stage) "
          "| duckdb silver s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results["sizes"]:
        if "nights" not in r:
            continue
        last, duck = r["nights"][-1], r.get("duckdb_reference", {})
        gates = [f"{last[f'{st}_s']} ({last[f'{st}_gate_share']:.0%})" if last[f"{st}_gate_share"] is not None
                 else f"{last[f'{st}_s']}" for st in ("ingest", "silver", "gold")]
        skew = (last.get("gold_task_skew") or {}).get("most_skewed_heavy") or {}
        print(f"| {r['impressions_per_day']:,} | {' | '.join(gates)} | {last['night_s']} "
              f"| {r['ingest_imp_per_s_per_core']:,} | {r['silver_imp_per_s_per_core']:,} "
              f"| {r['gold_labels_per_s_per_core'] or '-'} "
              f"| {skew.get('longest_s', '-')} s / {skew.get('median_s', '-')} s "
              f"| {duck.get('duckdb_silver_s', '-')} |")
    for r in results["sizes"]:
        if "watch" in r:
            w = r["watch"]
            print(f"\n{r['impressions_per_day']:,}/day, the watch on the last night: anomaly checks and history "
                  f"{w['anomaly_and_history_s']} s, drift {w['drift_s']} s ({w['drift_first_s']} s the first night "
                  f"after a training-set rebuild): {w['share']:.1%} of the night "
                  f"({w['share_first_night_after_rebuild']:.1%})")
    for r in results["sizes"]:
        if "history" in r:
            h = r["history"]
            print(f"\n{r['impressions_per_day']:,}/day, re-measured back to back, a night with "
                  f"{h['history_days_last_night']} days of history: "
                  f"{h['last_night_s']} s against {h['night_1_s']} s for night 1 ({h['last_over_night_1']}x) and "
                  f"{h['night_2_s']} s for night 2, the first with partials ({h['last_over_night_2']}x); "
                  f"gold alone {h['gold_last_s']} s against {h['gold_night_2_s']} s ({h['gold_last_over_night_2']}x)")
    print(f"\nresults: {out_dir / f'bench-{stamp}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
