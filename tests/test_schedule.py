"""train.schedule: parsing, validation before any work, and which nights are due (no Spark)."""
from __future__ import annotations

from datetime import date

import pytest

from jobs import nightly
from jobs.runtime.cli import EXIT_GATE, EXIT_RUNTIME, EXIT_USAGE
from jobs.runtime.config import ConfigError, load_config
from jobs.runtime.quality import GateFailed
from jobs.stages import nightly_training
from pipelines.schedule import not_due_reason, parse_schedule, training_due

SAT, SUN, MON, THU = date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3), date(2025, 3, 6)


@pytest.mark.parametrize("text, normalised, due", [
    ("off", "off", set()),
    ("daily", "daily", {SAT, SUN, MON, THU}),
    ("weekly:sun", "weekly:sun", {SUN}),
    (" Weekly:Sunday ", "weekly:sun", {SUN}),
    ("weekly:thu,MON", "weekly:mon,thu", {MON, THU}),
    ("weekly: mon , thursday", "weekly:mon,thu", {MON, THU}),
])
def test_schedules_parse_and_name_their_nights(text, normalised, due):
    schedule = parse_schedule(text)
    assert schedule.text == normalised
    assert {d for d in (SAT, SUN, MON, THU) if training_due(schedule, d)} == due


@pytest.mark.parametrize("text, message", [
    ("weekly", "names no weekday"),
    ("weekly:", "names no weekday"),
    ("weekly:funday", "'funday' is not a weekday"),
    ("weekly:mon,,thu", "'' is not a weekday"),
    ("hourly", "is not a schedule"),
    ("every 7 days", "is not a schedule"),
])
def test_bad_schedules_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_schedule(text)


def test_not_due_reason_names_the_schedule_and_the_weekday():
    assert not_due_reason(parse_schedule("weekly:sun"), MON) == \
        "train.schedule is weekly:sun and 2025-03-03 is a Monday"
    assert not_due_reason(parse_schedule("off"), SUN) == "train.schedule is off"


def test_default_schedule_is_weekly_and_an_unquoted_off_means_off(tmp_path):
    assert load_config("local").train.schedule == "weekly:sun"
    path = tmp_path / "off.yaml"
    path.write_text("train:\n  schedule: off\n")  # YAML 1.1 reads this as false
    assert load_config("local", [str(path)]).train.schedule == "off"


@pytest.mark.parametrize("yaml_text, message", [
    ("train:\n  schedule: weekly:funday\n", "train.schedule: 'funday' is not a weekday"),
    ("train:\n  schedule: hourly\n", "train.schedule: 'hourly' is not a schedule"),
    ("train:\n  schedule: on\n", "train.schedule reads as true"),
    ("train:\n  schedule: 7\n", "train.schedule must be a non-empty string"),
    ("train:\n  mlflow_ui_url: localhost:5000\n", "train.mlflow_ui_url must be an http(s) URL or null"),
])
def test_bad_schedule_values_are_refused_by_the_config_loader(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config("local", [str(path)])


def test_nightly_refuses_a_bad_schedule_before_any_work(tmp_path, capsys, monkeypatch):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  schedule: weekly:funday\n")
    monkeypatch.setattr(nightly, "get_spark", lambda *a, **k: pytest.fail("Spark started"))
    code = nightly.main(["--date", "2025-03-02", "--warehouse", str(tmp_path / "wh"), "--config", str(path)])
    assert code == EXIT_USAGE and "train.schedule: 'funday' is not a weekday" in capsys.readouterr().err
    assert not (tmp_path / "wh").exists()


@pytest.mark.parametrize("flags, expected", [([], None), (["--train"], True), (["--no-train"], False)])
def test_nightly_train_flags_reach_the_run(flags, expected, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(nightly, "get_spark", lambda *a, **k: None)
    monkeypatch.setattr(nightly, "run_nightly", lambda spark, cfg, day, train: seen.append(train) or {"balanced": True})
    assert nightly.main(["--date", "2025-03-02", "--warehouse", str(tmp_path), *flags]) == 0
    assert seen == [expected]


def test_a_range_runs_its_nights_in_order_in_one_session(tmp_path, monkeypatch):
    sessions, seen = [], []
    monkeypatch.setattr(nightly, "get_spark", lambda *a, **k: sessions.append("spark") or "spark")
    monkeypatch.setattr(nightly, "resume_point", lambda spark, cfg, days: days)
    monkeypatch.setattr(nightly, "run_nightly",
                        lambda spark, cfg, day, train: seen.append((spark, day, train)) or {"balanced": True})
    assert nightly.main(["--start", "2025-02-27", "--end", "2025-03-02", "--warehouse", str(tmp_path), "--train"]) == 0
    assert sessions == ["spark"]
    assert seen == [("spark", date(2025, 2, 27), True), ("spark", date(2025, 2, 28), True),
                    ("spark", SAT, True), ("spark", SUN, True)]
    seen.clear()
    assert nightly.main(["--start", "2025-03-01", "--days", "2", "--warehouse", str(tmp_path)]) == 0
    assert [d for _, d, _ in seen] == [SAT, SUN]


@pytest.mark.parametrize("outcome, code", [("unbalanced", EXIT_RUNTIME), ("gate", EXIT_GATE), ("crash", EXIT_RUNTIME)])
def test_a_failed_night_stops_the_range_with_its_exit_code_and_names_what_did_not_run(outcome, code, tmp_path,
                                                                                     monkeypatch, caplog):
    seen = []

    def run(spark, cfg, day, train):
        seen.append(day)
        if day == SUN:
            if outcome == "gate":
                raise GateFailed({"stage": "silver", "date": str(day), "failures": ["x"], "results": "r",
                                  "data_docs": "d"})
            if outcome == "crash":
                raise RuntimeError("executor lost")
            return {"balanced": False}
        return {"balanced": True}

    monkeypatch.setattr(nightly, "get_spark", lambda *a, **k: None)
    monkeypatch.setattr(nightly, "resume_point", lambda spark, cfg, days: days)
    monkeypatch.setattr(nightly, "run_nightly", run)
    assert nightly.main(["--start", "2025-03-01", "--end", "2025-03-04", "--warehouse", str(tmp_path)]) == code
    assert seen == [SAT, SUN]
    stop = [r.getMessage() for r in caplog.records if "stopped at" in r.getMessage()]
    assert stop == ["range 2025-03-01 .. 2025-03-04 stopped at 2025-03-02; done: 2025-03-01 (0 s); "
                    "not run: 2025-03-03, 2025-03-04"]


def test_a_range_killed_inside_a_stage_resumes_at_that_night(spark, tmp_path, monkeypatch):
    """A pending gate record of a later night whose earlier nights have run reports: the re-run starts there
    (an earlier night would be refused while it is pending); otherwise every night runs again."""
    wh = tmp_path / "wh"
    for day in ("2025-03-01", "2025-03-02"):
        (wh / "reports" / f"dt={day}").mkdir(parents=True)
        (wh / "reports" / f"dt={day}" / "run_report.json").write_text("{}")
    (wh / "_quality" / "pending" / "silver").mkdir(parents=True)
    (wh / "_quality" / "pending" / "silver" / "dt=2025-03-03.json").write_text("{}")
    seen = []
    monkeypatch.setattr(nightly, "get_spark", lambda *a, **k: spark)
    monkeypatch.setattr(nightly, "run_nightly", lambda spark, cfg, day, train: seen.append(day) or {"balanced": True})
    run = lambda *argv: nightly.main([*argv, "--warehouse", str(wh)]) or seen.copy()
    assert run("--start", "2025-03-01", "--end", "2025-03-05") == [date(2025, 3, d) for d in (3, 4, 5)]
    seen.clear()   # a range that starts at the pending night, or a single date, runs as asked
    assert run("--start", "2025-03-03", "--end", "2025-03-04") == [date(2025, 3, 3), date(2025, 3, 4)]
    seen.clear()   # an earlier night without its report: not this range's interruption, nothing skipped
    assert run("--start", "2025-02-28", "--end", "2025-03-04") == [date(2025, 2, 28)] + [
        date(2025, 3, d) for d in (1, 2, 3, 4)]


@pytest.mark.parametrize("argv, message", [
    (["--start", "2025-03-02", "--end", "2025-03-01"], "--end 2025-03-01 is before --start 2025-03-02"),
    (["--date", "2025-03-01", "--start", "2025-03-01"], "give --date, or --start and --end, not both"),
    (["--start", "2025-03-01"], "--start needs --end (or --days)"),
    ([], "give --date=YYYY-MM-DD, or --start=YYYY-MM-DD and --end=YYYY-MM-DD"),
    (["--start", "2025-03-01", "--days", "0"], "days must be a whole number from 1 to 3660"),
    (["--start", "2025-03-01", "--end", "2025-03-03", "--days", "3"], "give --end or --days, not both"),
])
def test_a_bad_range_exits_2_before_spark(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(nightly, "get_spark", lambda *a, **k: pytest.fail("Spark started"))
    assert nightly.main([*argv, "--warehouse", str(tmp_path / "wh")]) == EXIT_USAGE
    assert f"error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "wh").exists()


class Touched(Exception):
    pass


class NoSpark:
    """Stands in for the session where nothing may be read."""

    def __getattr__(self, name):
        raise Touched(name)


def plan_without_spark(schedule: str, day: date, force):
    cfg = load_config("local", [], {"train": {"schedule": schedule}})
    return nightly_training.plan(NoSpark(), cfg, day, {"event_date": "2025-03-01"}, force)


def test_a_night_that_is_not_due_or_told_not_to_train_skips_without_reading_anything():
    assert plan_without_spark("weekly:sun", MON, None) == {
        "schedule": "weekly:sun", "status": "skipped",
        "reason": "not due: train.schedule is weekly:sun and 2025-03-03 is a Monday"}
    assert plan_without_spark("daily", MON, False)["reason"] == "--no-train given"
    assert plan_without_spark("off", SUN, None)["reason"] == "not due: train.schedule is off"
    with pytest.raises(Touched):  # due: it goes on to look for closed labels
        plan_without_spark("weekly:sun", SUN, None)
    with pytest.raises(Touched):  # --train on a night that is not due
        plan_without_spark("off", MON, True)


def test_run_links_point_at_the_tracking_server_or_the_configured_ui():
    assert nightly_training.ui_base("https://bob:secret@mlflow.example.com/", None) == "https://mlflow.example.com"
    assert nightly_training.ui_base("sqlite:////x/mlflow.db", "http://127.0.0.1:5000/") == "http://127.0.0.1:5000"
    assert nightly_training.ui_base("sqlite:////x/mlflow.db", None) is None
    assert nightly_training.ui_base("databricks", "http://127.0.0.1:5000") is None
    assert nightly_training.redact("postgresql://ml:pw@db:5432/mlflow") == "postgresql://db:5432/mlflow"
