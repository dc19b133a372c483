"""Resolve Delta Lake's JARs from Maven Central once, into .cache/jars.

Run by `make jars` (and so by `make test` / `make demo`). Later sessions load
the JARs from that folder with spark.jars, so they neither need the network nor
re-resolve; `spark-submit --jars` uses the same list on a cluster.
"""
from __future__ import annotations

import shutil
import sys

from jobs.runtime.config import REPO_ROOT, load_config


def main() -> int:
    cfg = load_config("local").spark
    jars_dir = REPO_ROOT / cfg.jars_dir
    marker = jars_dir / f".{cfg.delta_package.replace(':', '_')}"
    if marker.exists():
        print(f"Delta JARs already cached in {jars_dir}")
        return 0
    ivy_dir = REPO_ROOT / cfg.ivy_dir
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[1]").appName("fetch-jars")
             .config("spark.jars.packages", cfg.delta_package)
             .config("spark.jars.ivy", str(ivy_dir))
             .getOrCreate())
    spark.stop()
    resolved = sorted((ivy_dir / "jars").glob("*.jar"))
    if not any("delta-spark" in p.name for p in resolved):
        print(f"error: Ivy did not resolve {cfg.delta_package} into {ivy_dir / 'jars'}", file=sys.stderr)
        return 1
    if jars_dir.exists():
        shutil.rmtree(jars_dir)
    jars_dir.mkdir(parents=True)
    for jar in resolved:
        shutil.copy2(jar, jars_dir / jar.name)
    marker.touch()
    print(f"cached {len(resolved)} JARs for {cfg.delta_package} in {jars_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
