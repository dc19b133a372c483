"""Detection drills for the nightly watch (make bench-watch): generated logs, three faults, the real nightly jobs.

1. Generate ``days`` arrival days of logs (default 15 of 20,000 impressions).
2. Break three of the last days' landed files, the way upstream systems break:
   - day ``days - 2``: half of the top publisher's impressions never arrive (its clicks still do);
   - day ``days - 1``: the optional field ``country`` arrives empty on every impression;
   - day ``days``: ``position`` shifts (every impression one slot lower), a feature's source distribution.
   The top publisher is found in the landed files, not assumed: no id format is relied on.
3. Run the nightly job for every day in one session (no training), building the training set (the drift
   reference) after night ``days - 4``.
4. Judge: each fault flagged by name on its night (publisher_volume.<top publisher>,
   bronze_impressions.null_share_country, drift of f_position) and on no night before it; the judged normal
   nights before the faults raise nothing at all. Cost: the anomaly checks and the history write (summed
   over the gates) plus drift, as a share of each night.

Writes bench/results/watch_drills.json and .md; exit 1 when a drill is missed.

``--rejudge``: on the warehouse of an earlier run (same --root and --days), judge every night's recorded
metrics again with the current expectations/anomalies.json (the gate's own functions: history, statistics,
bounds), and measure the drift of the nights after the training set again with the current code - minutes
instead of a night per day, for tuning the checks. The result says it was re-judged.
"""
from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import shutil
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.runtime.config import REPO_ROOT, load_config

log = logging.getLogger("bench.watch")
BENCH_CONF = str(Path(__file__).parent / "bench.yaml")
RESULTS = REPO_ROOT / "bench" / "results"


def lines_of(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def write_lines(path: Path, lines: list[str]) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def rewrite(landing: Path, day: date, change) -> int:
    """Apply ``change(record) -> record | None`` to every parseable impression landed on ``day``; returns how many
    records it changed or dropped. Lines that are not JSON objects (the generator's malformed ones) stay."""
    touched = 0
    for path in sorted((landing / "impressions" / f"dt={day}").rglob("*.jsonl*")):
        out = []
        for line in lines_of(path):
            try:
                record = json.loads(line)
            except ValueError:
                out.append(line)
                continue
            if not isinstance(record, dict):
                out.append(line)
                continue
            new = change(record)
            touched += new != record
            if new is not None:
                out.append(json.dumps(new))
        write_lines(path, out)
    return touched


def top_publisher(landing: Path, day: date) -> str:
    counts: dict[str, int] = {}
    for path in (landing / "impressions" / f"dt={day}").rglob("*.jsonl*"):
        for line in lines_of(path):
            try:
                p = json.loads(line).get("publisher_id")
            except (ValueError, AttributeError):
                continue
            if isinstance(p, str):
                counts[p] = counts.get(p, 0) + 1
    return max(sorted(counts), key=counts.get)


def inject(landing: Path, days: list[date]) -> dict:
    halve_day, blank_day, shift_day = days[-3], days[-2], days[-1]
    publisher = top_publisher(landing, halve_day)
    seen = {"n": 0}

    def halve(r):
        if r.get("publisher_id") == publisher:
            seen["n"] += 1
            return None if seen["n"] % 2 == 0 else r
        return r

    def blank(r):
        return {**r, "country": ""} if "country" in r else r

    def shift(r):
        return {**r, "position": r["position"] + 1} if isinstance(r.get("position"), int) else r

    return {"halved": {"day": str(halve_day), "publisher": publisher, "dropped": rewrite(landing, halve_day, halve)},
            "blanked": {"day": str(blank_day), "field": "country", "records": rewrite(landing, blank_day, blank)},
            "shifted": {"day": str(shift_day), "field": "position", "records": rewrite(landing, shift_day, shift)}}


def night_findings(report: dict) -> dict:
    flags = [f"{f['metric']}|{f['stat']}" for g in report.get("quality", {}).values()
             for f in (g.get("anomalies") or {}).get("flags", [])]
    drift = report.get("drift") or {}
    drifted = [f["feature"] for f in drift.get("features", []) if f["level"] == "flag"]
    watch_s = sum((g.get("anomalies") or {}).get("seconds", 0) for g in report.get("quality", {}).values())
    night_s = sum(report.get("stage_seconds", {}).values())
    # judged: the run report's volume had enough history to be checked (not in too_little_history)
    short = (report.get("quality", {}).get("silver", {}).get("anomalies") or {}).get("too_little_history", [])
    return {"flags": sorted(flags), "drift_flagged": drifted, "drift_status": drift.get("status"),
            "anomaly_seconds": round(watch_s, 2), "drift_seconds": report.get("stage_seconds", {}).get("watch", 0),
            "night_seconds": round(night_s, 1), "judged": "run_report.impressions_raw" not in short}


def rejudge(spark, cfg, days: list[date]) -> dict[str, list[str]]:
    """Per night, the ``<metric>|<stat>`` flags the current anomaly suite raises on the recorded history."""
    from pyspark.sql import functions as F

    from jobs.runtime import anomalies, storage
    from jobs.runtime.layout import Warehouse

    wh, conf = Warehouse(cfg.paths.warehouse), anomalies.settings()
    recorded = storage.read_delta(spark, anomalies.history_uri(wh)).where(F.col("dt").isin(days)).collect()
    out = {}
    for day in days:
        flags = []
        for stage in anomalies.STAGES:
            sources: dict[str, dict[str, float]] = {}
            for r in recorded:
                if r["dt"] == day and r["stage"] == stage:
                    sources.setdefault(r["source"], {})[r["metric"]] = r["value"]
            row, _, expectations = anomalies.prepare(spark, wh, day, stage, sources, conf)
            flags += [e["kwargs"]["column"] for e in expectations
                      if anomalies.outside(row.get(e["kwargs"]["column"]), e["kwargs"])]
        out[str(day)] = sorted(set(flags))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=int(os.environ.get("DAYS", 15)))
    parser.add_argument("--impressions", type=int, default=int(os.environ.get("IMPRESSIONS", 20_000)))
    parser.add_argument("--root", default="data/bench-watch")
    parser.add_argument("--rejudge", action="store_true",
                        help="judge the nights of an earlier run again with the current anomaly suite (no nights run)")
    args = parser.parse_args(argv)
    if args.days < 10:
        parser.error("--days must be at least 10: five nights of history, a training set, three faults")
    from jobs.runtime.cli import setup_logging

    setup_logging("INFO")   # GX's and py4j's INFO lines off, like the jobs
    from jobs.dev.generate import run_generate
    from jobs.runtime.spark import get_spark
    from jobs.stages.nightly import run_nightly
    from jobs.stages.training_set import run_training_set

    root = Path(args.root).resolve()
    landing, warehouse = root / "landing", root / "warehouse"
    if args.rejudge and not (root / "drills.json").exists():
        parser.error(f"--rejudge: {root} holds no earlier drill run (run make bench-watch first)")
    if root.exists() and not args.rejudge:
        shutil.rmtree(root)
    start = date(2025, 3, 3)
    days = [start + timedelta(days=i) for i in range(args.days)]
    reference_after = days[-5]   # labels closed through days[-6]: a training set of 3/1/1 days after one of history
    overrides = {"paths": {"landing": str(landing), "warehouse": str(warehouse)},
                 "generator": {"start_date": start.isoformat(), "days": args.days,
                               "impressions_per_day": args.impressions},
                 "training_set": {"train_days": max(1, args.days - 11), "validation_days": 1, "test_days": 1},
                 "train": {"schedule": "off"}}
    cfg = load_config("local", [BENCH_CONF], overrides)
    spark = get_spark(cfg.spark, None)
    nights = {}
    if args.rejudge:
        from jobs.stages.watch import run_drift

        faults = json.loads((root / "drills.json").read_text())
        flags = rejudge(spark, cfg, days)
        for d in days:
            report = json.loads((warehouse / "reports" / f"dt={d}" / "run_report.json").read_text())
            nights[str(d)] = {**night_findings(report), "flags": flags[str(d)]}
            if d > reference_after:   # drift measured again with the current code, on the same rows and reference
                t = time.monotonic()
                drift = run_drift(spark, cfg, d)
                raw = sum(f["level"] == "flag" for f in (report.get("drift") or {}).get("features", []))
                nights[str(d)].update(drift_flagged=[f["feature"] for f in drift.get("features", [])
                                                     if f["level"] == "flag"],
                                      drift_seconds=round(time.monotonic() - t, 1), drift_flagged_in_run=raw,
                                      drift_filling=drift.get("filling"))
                log.info("night %s re-judged: %s", d, nights[str(d)])
    else:
        t = time.monotonic()
        run_generate(spark, cfg, overwrite=True)
        faults = inject(landing, days)
        (root / "drills.json").write_text(json.dumps(faults))
        log.info("generated in %.0fs; faults: %s", time.monotonic() - t, faults)
        for d in days:
            report = run_nightly(spark, cfg, d, train=False)
            nights[str(d)] = night_findings(report)
            log.info("night %s: %s", d, nights[str(d)])
            if d == reference_after:
                manifest = run_training_set(spark, cfg)
                log.info("training set v%s for the drift reference: %s", manifest["version"], manifest["rows"])
    halve, blank, shift = faults["halved"], faults["blanked"], faults["shifted"]
    expected = {halve["day"]: f"publisher_volume.{halve['publisher']}|change",
                blank["day"]: "bronze_impressions.null_share_country|delta"}
    drills = []
    for day, flag in expected.items():
        before = [d for d in nights if d < day and flag in nights[d]["flags"]]
        drills.append({"drill": flag, "day": day, "flagged_on_its_day": flag in nights[day]["flags"],
                       "flagged_before": before})
    before = [d for d in nights if d < shift["day"] and "f_position" in nights[d]["drift_flagged"]]
    drills.append({"drill": "drift f_position", "day": shift["day"],
                   "flagged_on_its_day": "f_position" in nights[shift["day"]]["drift_flagged"],
                   "flagged_before": before})
    normal = {d: n for d, n in nights.items() if d < halve["day"] and n["judged"]}
    noisy = {d: n["flags"] + [f"drift {f}" for f in n["drift_flagged"]] for d, n in normal.items()
             if n["flags"] or n["drift_flagged"]}
    cost = [(n["anomaly_seconds"] + n["drift_seconds"]) / n["night_seconds"] for n in nights.values()
            if n["night_seconds"]]
    result = {"days": args.days, "impressions": args.impressions, "rejudged": args.rejudge, "faults": faults,
              "drills": drills,
              "normal_judged_nights": sorted(normal), "normal_nights_with_flags": noisy, "nights": nights,
              "watch_share_of_night": {"max": round(max(cost), 4), "mean": round(sum(cost) / len(cost), 4)}}
    ok = all(d["flagged_on_its_day"] and not d["flagged_before"] for d in drills) and not noisy
    result["passed"] = ok
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "watch_drills.json").write_text(json.dumps(result, indent=2))
    md = ["| drill | day | flagged on its day | flagged before |", "|---|---|---|---|",
          *[f"| `{d['drill']}` | {d['day']} | {'yes' if d['flagged_on_its_day'] else '**no**'} | "
            f"{', '.join(d['flagged_before']) or 'none'} |" for d in drills], "",
          f"Normal nights judged against their history: {len(normal)} ({', '.join(sorted(normal))}); "
          f"with any flag: {len(noisy)}.", *[f"- {d}: {', '.join(f)}" for d, f in sorted(noisy.items())], "",
          f"Anomaly checks, history and drift: {result['watch_share_of_night']['mean']:.1%} of a night on average, "
          f"{result['watch_share_of_night']['max']:.1%} at most ({args.impressions:,} impressions a day).",
          *([""] + ["Flags re-judged on the recorded history with the current expectations/anomalies.json, "
                    "drift measured again with the current code (--rejudge); the other times are the run's."]
            if args.rejudge else [])]
    (RESULTS / "watch_drills.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
