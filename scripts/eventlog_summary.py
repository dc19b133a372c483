"""Where each application's tasks ran, read from Spark event logs: evidence that executors did the work.

    python scripts/eventlog_summary.py data/cluster-eventlog

Per application, oldest first: the job file and date, the master, tasks per
executor, and every barrier stage (xgboost.spark's and LightGBM's training, the
cluster check) with how many tasks it had and the executors they ran on.
Reads uncompressed logs (spark.eventLog.compress=false), rolling or not.
"""
from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path


def event_files(root: Path) -> list[list[Path]]:
    """One list of files per application: a rolling log's directory, or a single file."""
    apps = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and entry.name.startswith("eventlog_v2_"):
            apps.append(sorted(entry.glob("events_*"), key=lambda p: int(p.name.split("_")[1])))
        elif entry.is_file() and not entry.name.startswith("."):
            apps.append([entry])
    return apps


def job_of(command: str) -> str:
    """The submitted .py file and its --date, from the driver's command line."""
    words = command.split()
    for i, word in enumerate(words):
        if word.endswith(".py") and (i == 0 or words[i - 1] != "--py-files"):
            date = [words[j + 1] for j in range(i, len(words) - 1) if words[j] == "--date"]
            return Path(word).name + (f" {date[0]}" if date else "")
    return "?"


def summarize(files: list[Path]) -> dict:
    app = {"master": "?", "job": "?", "id": "?", "start": 0, "tasks": Counter(), "barrier": {}}
    barrier_tasks: dict[int, set[str]] = defaultdict(set)
    for path in files:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                event = json.loads(line)
                kind = event["Event"]
                if kind == "SparkListenerApplicationStart":
                    app["id"], app["start"] = event.get("App ID", "?"), event["Timestamp"]
                elif kind == "SparkListenerEnvironmentUpdate":
                    app["master"] = event["Spark Properties"].get("spark.master", "?")
                    app["job"] = job_of(event["System Properties"].get("sun.java.command", ""))
                elif kind == "SparkListenerStageSubmitted":
                    info = event["Stage Info"]
                    if any(rdd.get("Barrier") for rdd in info["RDD Info"]):
                        app["barrier"][info["Stage ID"]] = (info["Stage Name"], info["Number of Tasks"])
                elif kind == "SparkListenerTaskEnd":
                    executor = event["Task Info"]["Executor ID"]
                    app["tasks"][executor] += 1
                    barrier_tasks[event["Stage ID"]].add(executor)
    app["barrier"] = {sid: (name, n, sorted(barrier_tasks[sid])) for sid, (name, n) in app["barrier"].items()}
    return app


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "data/cluster-eventlog")
    if not root.is_dir():
        print(f"no event logs under {root}", file=sys.stderr)
        return 1
    apps = sorted((summarize(files) for files in event_files(root)), key=lambda a: a["start"])
    print(f"\nWhere the tasks ran ({len(apps)} applications, event logs in {root}):")
    for app in apps:
        tasks = ", ".join(f"executor {e}: {n}" for e, n in sorted(app["tasks"].items()))
        print(f"  {app['job']:<26} {app['id']} on {app['master']}: {tasks or 'no tasks'}")
        for sid, (name, n, executors) in sorted(app["barrier"].items()):
            print(f"    barrier stage {sid} ({name}): {n} tasks on executors {', '.join(executors)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
