"""Row 12, load: 1x, 10x and 30x the default daily volume through a night, as separate processes.

Per size: two generated days (cached in ``<root>/row12/n<size>`` between suite
runs: generating is not what is measured), night 1 to build the state, then
night 2 timed (ingest + silver + gold, the stages' own seconds from the run
report; training off), each its own process (jobs/dev/faults.py ``nightly_process``,
nothing killed) with bench/bench.yaml's Spark sizing and an event log. From the event log: tasks that failed with an
out-of-memory error or lost their executor, and the driver JVM's peak heap
(Spark's executor metrics; in local mode the driver runs the tasks).

Linear: the two smallest sizes give a line (fixed cost + cost per impression);
every larger size must take at most 1.2x what that line predicts for it.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.reliability.common import Result, Suite
from jobs.dev import faults
from jobs.runtime.config import REPO_ROOT, load_config

log = logging.getLogger("ctr.reliability")

BENCH_YAML = REPO_ROOT / "bench" / "bench.yaml"
TOLERANCE = 1.2


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYSPARK_PYTHON": sys.executable}
    env.pop(faults.ENV, None)
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def generated(root: Path, n: int, days: int, start: str) -> None:
    """Two days of ``n`` impressions each in ``root/landing``, unless an earlier suite run left exactly those."""
    marker = root / "landing" / "_truth" / "generator_config.json"
    if marker.exists():
        cfg = json.loads(marker.read_text())
        if cfg.get("impressions_per_day") == n and cfg.get("days") == days:
            return
    shutil.rmtree(root, ignore_errors=True)
    proc = _run(["jobs/generate_logs.py", "--landing", str(root / "landing"), "--overwrite", "--config",
                 str(BENCH_YAML), "--days", str(days), "--impressions-per-day", str(n), "--start", start,
                 "--log-level", "WARNING"], timeout=7200)
    if proc.returncode:
        raise RuntimeError(f"generating {n:,}/day failed: {proc.stderr[-2000:]}")


def event_log_facts(event_dir: Path) -> dict:
    """Failed tasks (out of memory, lost executor) and the driver's peak JVM heap, from Spark's event log."""
    oom = lost = failed = 0
    peak_heap = 0
    for f in (p for p in event_dir.rglob("*") if p.is_file()):
        with f.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if '"SparkListenerTaskEnd"' in line:
                    event = json.loads(line)
                    reason = event.get("Task End Reason", {})
                    if reason.get("Reason") != "Success":
                        failed += 1
                        text = json.dumps(reason)
                        oom += "OutOfMemoryError" in text
                        lost += reason.get("Reason") == "ExecutorLostFailure"
                elif '"SparkListenerStageExecutorMetrics"' in line or '"SparkListenerExecutorMetricsUpdate"' in line:
                    event = json.loads(line)
                    metrics = event.get("Executor Metrics") or {}
                    for update in event.get("Executor Metrics Updated", []) or []:
                        metrics = {**metrics, **(update.get("Executor Metrics") or {})}
                    peak_heap = max(peak_heap, int(metrics.get("JVMHeapMemory", 0) or 0))
    return {"failed_tasks": failed, "oom_tasks": oom, "lost_executor_tasks": lost,
            "driver_peak_heap_mb": round(peak_heap / 2**20)}


def night(root: Path, day: str, name: str) -> tuple[dict, dict, float]:
    events = root / f"eventlog-{name}"
    shutil.rmtree(events, ignore_errors=True)
    events.mkdir(parents=True)
    started = time.monotonic()
    proc = faults.nightly_process(
        day, str(root / "landing"), str(root / "warehouse"), [str(BENCH_YAML)], timeout=7200,
        extra_args=("--no-train", "--conf", "spark.eventLog.enabled=true",
                    "--conf", f"spark.eventLog.dir={events.resolve().as_uri()}",
                    "--conf", "spark.eventLog.compress=false", "--conf", "spark.eventLog.logStageExecutorMetrics=true"))
    wall = time.monotonic() - started
    if proc.returncode:
        raise RuntimeError(f"night {day} of {root.name} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads((root / "warehouse" / "reports" / f"dt={day}" / "run_report.json").read_text())
    return report, event_log_facts(events), wall


def load(suite: Suite) -> Result:
    base_cfg = load_config("local", [str(BENCH_YAML)])
    base = suite.options.get("load_base") or load_config("local").generator.impressions_per_day
    factors = suite.options.get("load_factors") or [1, 10, 30]
    start = base_cfg.generator.start_date
    day1, day2 = start.isoformat(), start.fromordinal(start.toordinal() + 1).isoformat()
    sizes = []
    for k in factors:
        n = base * k
        root = suite.root / "row12" / f"n{n}"
        t = time.monotonic()
        generated(root, n, 2, day1)
        gen_s = time.monotonic() - t
        shutil.rmtree(root / "warehouse", ignore_errors=True)
        night(root, day1, "night1")
        report, facts, wall = night(root, day2, "night2")
        stage_s = sum(v for k_, v in report["stage_seconds"].items() if k_ != "train")
        sizes.append({"factor": k, "impressions_per_day": n, "impressions_raw": report["impressions_raw"],
                      "night_s": round(stage_s, 1), "process_s": round(wall, 1), "generate_s": round(gen_s, 1),
                      "stage_seconds": report["stage_seconds"], **facts})
        log.info("load %dx (%s/day): night %.0fs %s, peak driver heap %s MB, %d failed tasks", k, f"{n:,}", stage_s,
                 report["stage_seconds"], facts["driver_peak_heap_mb"], facts["failed_tasks"])
    # The line through the two smallest sizes, by impressions actually landed.
    (x0, y0), (x1, y1) = [(s["impressions_raw"], s["night_s"]) for s in sizes[:2]] if len(sizes) > 1 else \
        [(sizes[0]["impressions_raw"], sizes[0]["night_s"])] * 2
    slope = (y1 - y0) / (x1 - x0) if x1 != x0 else y0 / x0
    for s in sizes:
        s["linear_prediction_s"] = round(y0 + slope * (s["impressions_raw"] - x0), 1)
        s["over_prediction"] = round(s["night_s"] / s["linear_prediction_s"], 2)
    worst = max(s["over_prediction"] for s in sizes[2:]) if len(sizes) > 2 else None
    memory_limit_mb = _mb(base_cfg.spark.driver_memory)
    oom = sum(s["oom_tasks"] for s in sizes)
    bounded = all(0 < s["driver_peak_heap_mb"] <= memory_limit_mb for s in sizes)
    passed = (worst is None or worst <= TOLERANCE) and oom == 0 and bounded
    figure = ", ".join(f"{s['factor']}x {s['impressions_per_day'] / 1e6:g}M: {s['night_s']:.0f}s "
                       f"(heap {s['driver_peak_heap_mb'] / 1024:.1f}G)" for s in sizes)
    figure += (f"; largest/linear {worst:.2f} (max {TOLERANCE})" if worst is not None else "") + \
        f"; {oom} OOM tasks; driver heap under {base_cfg.spark.driver_memory}"
    return Result(12, "", passed, figure, data={"sizes": sizes, "fixed_s": round(y0 - slope * x0, 1),
                                                "s_per_million": round(slope * 1e6, 1)})


def _mb(text: str) -> int:
    units = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
    return int(float(text[:-1]) * units[text[-1].lower()]) if text[-1].lower() in units else int(text) // 2**20
