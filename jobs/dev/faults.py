"""A kill harness: the nightly job, killed by SIGKILL at a chosen write (tests/test_resume.py, bench/reliability).

Not production code: ``python -m jobs.dev.faults <jobs/nightly.py arguments>`` runs
jobs/nightly.py with an observer (jobs/runtime/hooks.py) that, when the environment
sets ``CTR_TEST_KILL_AT=<stage>:<n>[:<seconds>]``, kills the process, as the OOM killer or a lost node would, just
before the n-th write of that stage of ``jobs/nightly.py`` (ingest, silver or
gold; a write is a Delta partition, a small file such as a report, metrics or
a gate's record, or a retention DELETE or VACUUM), or ``seconds`` after that
write began, i.e. in the middle of it or of what follows. Nothing can catch a
SIGKILL, so no ``finally`` or ``except`` runs: what the warehouse holds then is
what a re-run must cope with. ``CTR_TEST_WRITES_LOG=<file>`` lists the writes
instead (stage, number, what), so kills can be drawn from every stage.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from jobs.runtime import hooks

REPO_ROOT = Path(__file__).resolve().parents[2]

ENV = "CTR_TEST_KILL_AT"
WRITES_LOG_ENV = "CTR_TEST_WRITES_LOG"  # a file: every counted write is appended as "<stage>\t<n>\t<what>"


class Killer:
    """Counts the writes of each stage; logs them and kills the process at the chosen one."""

    def __init__(self, target: str | None, log_to: str | None):
        self.target, self.log_to = target, log_to
        self.current, self.writes = None, 0

    def stage(self, name: str) -> None:
        self.current, self.writes = name, 0

    def write(self, what: str) -> None:
        if self.current is None:
            return
        self.writes += 1
        if self.log_to:  # where a kill can land: the reliability suite draws its kills from this list
            with open(self.log_to, "a", encoding="utf-8") as f:
                f.write(f"{self.current}\t{self.writes}\t{what}\n")
        if not self.target:
            return
        stage, n, *delay = self.target.split(":")
        if stage != self.current or self.writes != int(n):
            return
        seconds = float(delay[0]) if delay else 0.0
        print(f"{ENV}: killing the job {seconds}s into {stage} write {n} ({what})", file=sys.stderr, flush=True)
        if seconds <= 0:
            os.kill(os.getpid(), signal.SIGKILL)
        timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()


def install() -> None:
    """Watch this process's night when the environment asks for a kill or a write log; otherwise nothing."""
    target, log_to = os.environ.get(ENV), os.environ.get(WRITES_LOG_ENV)
    if target or log_to:
        hooks.add(Killer(target, log_to))


def nightly_process(day, landing: str, warehouse: str, configs: list[str], kill_at: str | None = None,
                    timeout: float = 1800, extra_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``python -m jobs.dev.faults`` (jobs/nightly.py) for ``day`` as its own process, optionally killed at ``kill_at``.

    Started in a session of its own, so the JVM it started dies with it, as when a
    scheduler kills a job; a run past ``timeout`` seconds is killed the same way.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYSPARK_PYTHON": sys.executable}
    env.pop(ENV, None)
    if kill_at:
        env[ENV] = kill_at
    args = [sys.executable, "-m", "jobs.dev.faults", "--date", str(day), "--landing", landing, "--warehouse", warehouse,
            *[a for c in configs for a in ("--config", c)], "--log-level", "WARNING", *extra_args]
    proc = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\n{ENV}: killed after the {timeout:.0f}s timeout"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def main(argv: list[str] | None = None) -> int:
    from jobs import nightly

    install()
    return nightly.main(argv)


if __name__ == "__main__":
    sys.exit(main())
