"""Bad arguments and config fail before Spark starts, with exit code 2 and plain words."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobs import cli
from jobs.config import ConfigError, load_config
from jobs.dates import dates

REPO = Path(__file__).resolve().parents[1]


def run(argv, capsys):
    called = []
    code = cli.run_main(cli.base_parser("t"), lambda args, cfg: called.append(cfg) or 0, argv)
    return code, called, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--date", "2025-02-30"], "not a real calendar date"),
    (["--date", "yesterday"], "not a date in the form YYYY-MM-DD"),
    (["--date", "1999-12-31"], "outside the supported years"),
    (["--date", "2025-03-01", "--warehouse", "../elsewhere"], "must not contain '..'"),
    (["--date", "2025-03-01", "--landing", "data/x;rm -rf /"], "characters not allowed"),
    (["--date", "2025-03-01", "--landing", "ftp://host/x"], "unsupported scheme"),
    (["--date", "2025-03-01", "--conf", "nokey"], "must look like spark.some.key=value"),
    (["--date", "2025-03-01", "--master", "bogus"], "is not a Spark master URL"),
    (["--date", "2025-03-01", "--env", "nosuch"], "unknown environment"),
])
def test_bad_arguments_exit_2_before_any_work(argv, message, capsys):
    code, called, err = run(argv, capsys)
    assert code == cli.EXIT_USAGE and not called and message in err


def test_good_arguments_reach_the_job(capsys):
    code, called, _ = run(["--date", "2025-03-01", "--warehouse", "s3a://bucket/wh", "--conf", "spark.x=1"], capsys)
    assert code == 0 and called[0].paths.warehouse == "s3a://bucket/wh" and called[0].spark.conf["spark.x"] == "1"


@pytest.mark.parametrize("yaml_text, message", [
    ("clean:\n  min_dwel_ms: 5\n", "unknown setting clean.min_dwel_ms (did you mean 'min_dwell_ms'?)"),
    ("clean:\n  min_dwell_ms: fast\n", "clean.min_dwell_ms must be a whole number"),
    ("clean:\n  attribution_window_s: 0\n", "clean.attribution_window_s must be at least 1"),
    ("clean:\n  conversion_attribution: last_touch\n", "conversion_attribution must be"),
    ("spark: !!python/object/apply:os.system ['touch /tmp/pwned']\n", "is not valid YAML"),
    ("- just\n- a list\n", "must hold a mapping"),
    ("nightly:\n  x: 1\n", "unknown config section 'nightly'"),
    ("clean:\n  lookback_days: 3\n", "must be at least ingest.max_event_lag_days"),
    ("ingest:\n  bronze_retention_days: 5\n", "must exceed clean.lookback_days"),
])
def test_bad_config_values_are_named(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config("local", [str(path)])
    assert message in str(err.value)


def test_backfill_dates_in_order_and_refusals():
    assert dates(["--start", "2025-02-27", "--end", "2025-03-02"]) == [
        "2025-02-27", "2025-02-28", "2025-03-01", "2025-03-02"]
    assert dates(["--date", "2025-03-01"]) == ["2025-03-01"]
    for argv in (["--start", "2025-03-02", "--end", "2025-03-01"], ["--date", "2025-03-01", "--start", "2025-03-01"],
                 ["--start", "2025-03-01"], []):
        with pytest.raises(ValueError):
            dates(argv)


def test_make_backfill_rejects_a_bad_date_before_spark():
    out = subprocess.run([sys.executable, "jobs/dates.py", "--date", "2025-13-01"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 2 and "not a real calendar date" in out.stderr


def test_nightly_help_runs_without_spark():
    out = subprocess.run([sys.executable, "jobs/nightly.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "--warehouse" in out.stdout and "Exit codes" in out.stdout
