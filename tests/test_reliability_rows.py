"""The reliability suite's row 1 bookkeeping (bench/reliability/rows_runs.py), without Spark: which kills count."""
from __future__ import annotations

import signal
import subprocess
from datetime import date
from types import SimpleNamespace

from bench.reliability import rows_runs

DAYS = [date(2025, 3, 1), date(2025, 3, 2)]
WRITES = [(stage, n, "table") for stage in rows_runs.STAGES for n in (1, 2, 3)]


class FakeSuite:
    """Night 2's jobs end with the return codes given, in order; every re-run leaves the clean state."""

    def __init__(self, returncodes: list[int], kills: int) -> None:
        self.returncodes, self.seed, self.options, self.spark = list(returncodes), 7, {"kills": kills}, None
        self.kill_points: list[str] = []

    def reference(self):
        return SimpleNamespace(days=DAYS, writes={DAYS[1]: WRITES}, state_after={DAYS[1]: {}})

    def warehouse_after(self, day, name):
        return SimpleNamespace(paths=SimpleNamespace(warehouse="unused"))

    def nightly_process(self, cfg, day, kill_at):
        self.kill_points.append(kill_at)
        return subprocess.CompletedProcess([], self.returncodes.pop(0), "", "boom")

    def state(self, cfg):
        return {}


def run_row(monkeypatch, returncodes: list[int], kills: int):
    monkeypatch.setattr(rows_runs, "run_nightly", lambda *a: None)
    monkeypatch.setattr(rows_runs, "duplicate_ids", lambda *a: 0)
    monkeypatch.setattr(rows_runs.checksums, "state_differences", lambda a, b: [])
    suite = FakeSuite(returncodes, kills)
    return rows_runs.kill_and_rerun(suite), suite


def test_a_kill_point_after_the_job_finished_is_drawn_again(monkeypatch) -> None:
    killed = -signal.SIGKILL
    result, suite = run_row(monkeypatch, [killed, 0, killed, killed], kills=3)
    assert result.passed
    assert len(suite.kill_points) == 4 and result.data["missed"] == [suite.kill_points[1]]
    # the missed point's stage (the second, silver) is drawn again
    assert [k.split(":")[0] for k in suite.kill_points] == ["ingest", "silver", "silver", "gold"]
    assert result.figure.startswith("3/3 SIGKILLed nights") and "1 drawn again" in result.figure


def test_a_job_failing_otherwise_fails_the_row(monkeypatch) -> None:
    result, _ = run_row(monkeypatch, [-signal.SIGKILL, 1, -signal.SIGKILL], kills=3)
    assert not result.passed and "exit 1" in result.detail


def test_kill_points_that_never_land_fail_the_row(monkeypatch) -> None:
    result, suite = run_row(monkeypatch, [0] * 2, kills=2)
    assert not result.passed and len(suite.kill_points) == 2 and result.data["kills"] == []
