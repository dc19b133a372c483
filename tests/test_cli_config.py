"""Bad arguments and config fail before Spark starts, with exit code 2 and plain words."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobs.dates import dates
from jobs.runtime import cli
from jobs.runtime.config import ConfigError, load_config

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
    (["--date", "\uff12\uff10\uff12\uff15-03-01"], "not a date in the form YYYY-MM-DD"),
    (["--date", "2025-03-01", "--warehouse", ""], "--warehouse is empty"),
    (["--date", "2025-03-01", "--landing", "s3a://"], "names no bucket"),
    (["--date", "2025-03-01", "--landing", "data/{a,b}"], "characters not allowed"),
    (["--date", "2025-03-01", "--landing", "s3a:bucket/x"], "must not contain ':'"),
    (["--date", "2025-03-01", "--landing", "data/x", "--warehouse", "data/x/wh"], "one inside the other"),
    (["--date", "2025-03-01", "--master", "local[0]"], "is not a Spark master URL"),
    (["--date", "2025-03-01", "--master", ""], "is not a Spark master URL"),
    (["--date", "2025-03-01", "--conf", "spark.master\n=local"], "must look like spark.some.key=value"),
    (["--date", "2025-03-01", "--conf", "spark.sql.session.timeZone=EST"], "is fixed by jobs/runtime/spark.py"),
    (["--date", "2025-03-01", "--env", "../tests/conf/tiny"], "must name an overlay in conf/"),
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
    ("gold:\n  dimension_lookback_days: 0\n", "gold.dimension_lookback_days must be between 1 and 366"),
    ("clean:\n  attribution_window_s: 0\n", "clean.attribution_window_s must be at least 1"),
    ("clean:\n  conversion_attribution: last_touch\n", "conversion_attribution must be"),
    ("clean:\n  conversion_maturity_days: 3\n", "clean.conversion_maturity_days (3) must be between 4 "
                                               "(label_maturity_days 1 + the 72 h conversion window"),
    ("clean:\n  conversion_window_hours: 168\n", "clean.conversion_maturity_days (4) must be between 8"),
    ("spark: !!python/object/apply:os.system ['touch /tmp/pwned']\n", "!!python/object/apply:os.system would build"),
    ("spark: !!python/name:os.system\n", "!!python/name:os.system would build a Python object"),
    ("generator:\n  start_date: 2025-02-30\n", "holds an impossible value"),
    ("generator:\n  start_date: '20250301'\n", "generator.start_date must be a date YYYY-MM-DD"),
    ("generator:\n  n_ads: -5\n", "must each be at least 1"),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("clean:\n  1: 2\n  a: 3\n", "unknown setting clean.1"),
    ("spark:\n  conf: {spark.a: &a [x, x], spark.b: [*a, *a]}\n", "spark.conf.spark.a must be a single value"),
    ("spark:\n  driver_memory: lots\n", "spark.driver_memory must be a size"),
    ("train:\n  date_col: 'event_date = event_date OR 1=1 --'\n", "must be a plain identifier"),
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


@pytest.mark.parametrize("yaml_text, message", [
    ("spark:\n  master: garbage\n", "spark.master 'garbage' is not a Spark master URL"),
    ("train:\n  scores_table: ../../x\n", "train.scores_table '../../x' must not contain '..'"),
    ("spark:\n  conf:\n    spark.sql.session.timeZone: EST\n", "is fixed by jobs/runtime/spark.py"),
])
def test_config_values_checked_with_the_arguments(tmp_path, capsys, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    code, called, err = run(["--date", "2025-03-01", "--config", str(path)], capsys)
    assert code == cli.EXIT_USAGE and not called and message in err


def test_a_config_that_is_no_regular_file_is_refused_unread(tmp_path):
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_config("local", [str(tmp_path)])
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * 2_000_000)
    with pytest.raises(ConfigError, match="larger than"):
        load_config("local", [str(big)])


def test_data_root_confines_landing_warehouse_and_table_paths(tmp_path, capsys):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    conf = tmp_path / "root.yaml"
    conf.write_text(f"paths:\n  data_root: {root}\n")
    inside = ["--landing", str(root / "landing"), "--warehouse", str(root / "wh"), "--config", str(conf)]
    code, called, _ = run(["--date", "2025-03-01", *inside], capsys)
    assert code == 0 and called[0].paths.data_root == str(root)
    for option, value in (("--warehouse", str(outside)), ("--warehouse", str(root / "escape" / "wh")),
                          ("--warehouse", f"{root}-evil/wh"), ("--landing", "s3a://lake/landing")):
        code, called, err = run(["--date", "2025-03-01", *inside, option, value], capsys)
        assert code == cli.EXIT_USAGE and not called and f"{option} {value!r} is outside paths.data_root" in err
    uri_conf = tmp_path / "uri.yaml"
    uri_conf.write_text("paths:\n  data_root: s3a://lake/ctr\n")
    uri = ["--landing", "s3a://lake/ctr/landing", "--config", str(uri_conf), "--date", "2025-03-01"]
    assert run([*uri, "--warehouse", "s3a://lake/ctr/wh"], capsys)[0] == 0
    code, _, err = run([*uri, "--warehouse", "s3a://lake/ctr-evil/wh"], capsys)
    assert code == cli.EXIT_USAGE and "is outside paths.data_root 's3a://lake/ctr'" in err


def test_job_path_options_are_checked_before_spark(tmp_path, capsys):
    parser = cli.base_parser("t", needs_date=False)
    parser.add_argument("--out")
    conf = tmp_path / "root.yaml"
    conf.write_text(f"paths:\n  data_root: {tmp_path}\n")
    argv = ["--landing", str(tmp_path / "l"), "--warehouse", str(tmp_path / "w"), "--config", str(conf)]
    called = []
    code = cli.run_main(parser, lambda args, cfg: called.append(cfg) or 0, [*argv, "--out", "/etc/scores"])
    assert code == cli.EXIT_USAGE and not called and "--out '/etc/scores' is outside" in capsys.readouterr().err


def test_backfill_dates_in_order_and_refusals():
    assert dates(["--start", "2025-02-27", "--end", "2025-03-02"]) == [
        "2025-02-27", "2025-02-28", "2025-03-01", "2025-03-02"]
    assert dates(["--date", "2025-03-01"]) == ["2025-03-01"]
    for argv in (["--start", "2025-03-02", "--end", "2025-03-01"], ["--date", "2025-03-01", "--start", "2025-03-01"],
                 ["--start", "2025-03-01"], [], ["--start", "2025-03-01", "--days", "\uff13"],
                 ["--date", "2025-03-01", "--days", "3"]):
        with pytest.raises(ValueError):
            dates(argv)


def test_make_backfill_rejects_a_bad_date_before_spark():
    out = subprocess.run([sys.executable, "jobs/dates.py", "--date", "2025-13-01"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 2 and "not a real calendar date" in out.stderr


def test_nightly_help_runs_without_spark():
    out = subprocess.run([sys.executable, "jobs/nightly.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "--warehouse" in out.stdout and "Exit codes" in out.stdout
