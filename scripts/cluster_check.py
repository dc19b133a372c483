"""Check that a cluster runs this project's code on separate executors, before the real jobs go in.

    spark-submit --master spark://127.0.0.1:7077 --py-files dist/ctr_jobs.zip scripts/cluster_check.py [--executors 2]

Waits for the executors to register, then runs one barrier task per executor
(a barrier stage needs every slot at once, so the tasks cannot share one
executor) that imports ``jobs`` and ``pipelines`` and reports where from. Fails
(exit 1) if fewer executors come, or if an executor imported the code from
anywhere but the --py-files zip: a checkout or an installed copy on the
workers would hide a job that is not shipped.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from pyspark.sql import SparkSession


def probe(_rows):
    import socket

    from pyspark import BarrierTaskContext

    import jobs.runtime.layout
    import pipelines.train.scorers

    ctx = BarrierTaskContext.get()
    ctx.barrier()
    yield {"task": ctx.partitionId(), "executor": ctx.getTaskInfos()[ctx.partitionId()].address,
           "host": socket.gethostname(), "pid": os.getpid(), "cwd": os.getcwd(),
           "jobs": jobs.runtime.layout.__file__, "pipelines": pipelines.train.scorers.__file__}


def executors(spark: SparkSession) -> int:
    """Executors registered with the driver (its status tracker lists the driver too)."""
    return len(spark.sparkContext._jsc.sc().statusTracker().getExecutorInfos()) - 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executors", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=120, help="seconds to wait for the executors")
    args = parser.parse_args()
    spark = SparkSession.builder.appName("ctr-cluster-check").getOrCreate()
    sc = spark.sparkContext
    deadline = time.monotonic() + args.timeout
    while (found := executors(spark)) < args.executors and time.monotonic() < deadline:
        time.sleep(1)
    print(f"master {sc.master}, application {sc.applicationId}: {found} executors")
    if found < args.executors:
        print(f"error: {found} of {args.executors} executors registered in {args.timeout}s", file=sys.stderr)
        return 1
    rows = sc.parallelize(range(args.executors), args.executors).barrier().mapPartitions(probe).collect()
    bad = []
    for r in sorted(rows, key=lambda r: r["task"]):
        print(f"  task {r['task']} on executor {r['executor']} (pid {r['pid']}, cwd {r['cwd']}): "
              f"jobs from {r['jobs']}, pipelines from {r['pipelines']}")
        bad += [f"task {r['task']} imported {m} from {r[m]}" for m in ("jobs", "pipelines") if ".zip" not in r[m]]
    if len({r["executor"] for r in rows}) < args.executors:
        bad.append(f"{args.executors} tasks ran on fewer executors: {sorted({r['executor'] for r in rows})}")
    for problem in bad:
        print(f"error: {problem}", file=sys.stderr)
    spark.stop()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
