"""`make bench`: throughput of generator, ingest and silver, and a DuckDB reference.

    .venv/bin/python bench/run.py [--sizes 1000000,10000000] [--days 2]

For each size: generate ``days`` days of that many clean impressions per day,
then run ingest and silver for each day in one SparkSession and time each stage.
The last day is the measured night (it has a prior day to de-duplicate against
and orphans to retry). Reported: seconds per stage and impressions landed per
second per core. DuckDB then runs the same silver decisions as one SQL query
over the Parquet files of the same bronze Delta version (files listed with the
`deltalake` package), writing its result to Parquet; its counts are checked
against Spark's. Results go to bench/results/<timestamp>.json and stdout.
Each stage's time includes its quality gate; the gate's own time and its share
of the stage are reported too (``*_gate_s``, ``*_gate_share``).
Benchmarks are not tests: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.config import REPO_ROOT, load_config  # noqa: E402
from jobs.layout import Warehouse  # noqa: E402

CORES = os.cpu_count() or 1
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
    counts.update({f"clicks_{f}": n for f, n in con.execute("SELECT fate, count(*) FROM clk_out GROUP BY 1").fetchall()})
    return seconds, counts


def bench_size(spark, base_cfg, n: int, days: int, root: Path) -> dict:
    from jobs.generate_logs import run_generate
    from jobs.ingest import run_ingest
    from jobs.silver import run_silver

    if root.exists():
        shutil.rmtree(root)
    gen = dataclasses.replace(base_cfg.generator, impressions_per_day=n, days=days)
    cfg = dataclasses.replace(base_cfg, generator=gen, paths=dataclasses.replace(
        base_cfg.paths, landing=str(root / "landing"), warehouse=str(root / "warehouse")))
    t = time.perf_counter()
    run_generate(spark, cfg, overwrite=True)
    generate_s = time.perf_counter() - t
    nights = []
    for i in range(days):
        day = gen.start_date + timedelta(days=i)
        t = time.perf_counter()
        lines, ingest_gate = run_ingest(spark, cfg, day)
        ingest_s = time.perf_counter() - t
        t = time.perf_counter()
        report = run_silver(spark, cfg, day, {s: sum(c.values()) for s, c in lines.items()})
        silver_s = time.perf_counter() - t
        gates = {"ingest": ingest_gate["seconds"], "silver": report["quality"]["silver"]["seconds"]}
        nights.append({"date": day.isoformat(), "impressions_raw": report["impressions_raw"],
                       "clicks_raw": report["clicks_raw"], "ingest_s": round(ingest_s, 1),
                       "silver_s": round(silver_s, 1), "balanced": report["balanced"],
                       "ingest_gate_s": gates["ingest"], "silver_gate_s": gates["silver"],
                       "ingest_gate_share": round(gates["ingest"] / ingest_s, 3),
                       "silver_gate_share": round(gates["silver"] / silver_s, 3), "report": report})
    last = nights[-1]
    imp = last["impressions_raw"]
    out = {"impressions_per_day": n, "generate_s_all_days": round(generate_s, 1), "nights": [
        {k: v for k, v in night.items() if k != "report"} for night in nights]}
    out["ingest_imp_per_s_per_core"] = round(imp / last["ingest_s"] / CORES)
    out["silver_imp_per_s_per_core"] = round(imp / last["silver_s"] / CORES)
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
    p.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "1000000,10000000"))
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--root", default=str(REPO_ROOT / "data" / "bench"))
    a = p.parse_args()
    sizes = [int(s) for s in a.sizes.split(",") if s]
    from jobs.cli import setup_logging
    from jobs.spark import get_spark

    setup_logging("INFO")
    cfg = load_config("local", [BENCH_CONF])
    spark = get_spark(cfg.spark)
    results = {"cores": CORES, "spark": spark.version, "driver_memory": cfg.spark.driver_memory,
               "shuffle_partitions": cfg.spark.shuffle_partitions, "sizes": []}
    for n in sizes:
        results["sizes"].append(bench_size(spark, cfg, n, a.days, Path(a.root) / f"n{n}"))
        print(json.dumps(results["sizes"][-1], indent=2), flush=True)
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out_dir / f"bench-{stamp}.json").write_text(json.dumps(results, indent=2))
    print(f"\n{'impressions/day':>16} {'generate s':>11} {'ingest s':>9} {'silver s':>9} "
          f"{'ingest imp/s/core':>18} {'silver imp/s/core':>18} {'duckdb s':>9} {'spark/duckdb':>12} "
          f"{'ingest gate':>12} {'silver gate':>12}")
    for r in results["sizes"]:
        last, duck = r["nights"][-1], r.get("duckdb_reference", {})
        print(f"{r['impressions_per_day']:>16,} {r['generate_s_all_days']:>11} {last['ingest_s']:>9} "
              f"{last['silver_s']:>9} {r['ingest_imp_per_s_per_core']:>18,} {r['silver_imp_per_s_per_core']:>18,} "
              f"{duck.get('duckdb_silver_s', '-'):>9} {duck.get('spark_over_duckdb', '-'):>12} "
              f"{last['ingest_gate_s']:>6}s {last['ingest_gate_share']:>4.0%} {last['silver_gate_s']:>6}s "
              f"{last['silver_gate_share']:>4.0%}")
    print(f"\nresults: {out_dir / f'bench-{stamp}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
