"""One SparkSession for the whole suite, and the generated three-day fixture."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from jobs.runtime.config import load_config

TINY = str(Path(__file__).parent / "conf" / "tiny.yaml")


@pytest.fixture(scope="session")
def spark():
    from jobs.runtime.spark import get_spark

    cfg = load_config("local", [TINY])
    session = get_spark(cfg.spark, "local[2]", {"spark.ui.enabled": "false",
                                                "spark.sql.shuffle.partitions": "2",
                                                "spark.default.parallelism": "2",
                                                "spark.databricks.delta.snapshotPartitions": "2"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def tiny_cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctr")
    cfg = load_config("local", [TINY], {"paths": {"landing": str(root / "landing"),
                                                  "warehouse": str(root / "warehouse")}})
    return cfg


@pytest.fixture(scope="session")
def clean_cfg(tiny_cfg):
    return tiny_cfg.clean


@pytest.fixture(scope="session")
def generated(spark, tiny_cfg):
    """Generate three tiny days and run the nightly job on each; returns (cfg, expected, reports)."""
    from jobs.dev.generate import run_generate
    from jobs.stages.nightly import run_nightly

    expected = run_generate(spark, tiny_cfg, overwrite=True)
    reports = {}
    for day in sorted(expected):
        reports[day] = run_nightly(spark, tiny_cfg, date.fromisoformat(day))
    return tiny_cfg, expected, reports
