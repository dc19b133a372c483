"""A test hook that kills the nightly job by SIGKILL at a chosen write (tests/test_resume.py).

Inert unless the environment sets ``CTR_TEST_KILL_AT=<stage>:<n>[:<seconds>]``:
then the process kills itself, as the OOM killer or a lost node would, just
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

REPO_ROOT = Path(__file__).resolve().parents[2]

ENV = "CTR_TEST_KILL_AT"
WRITES_LOG_ENV = "CTR_TEST_WRITES_LOG"  # a file: every counted write is appended as "<stage>\t<n>\t<what>"
_state = {"stage": None, "writes": 0}


def enter(stage: str) -> None:
    """The nightly job starts ``stage``: writes are counted from here."""
    _state.update(stage=stage, writes=0)


def before_write(what: str) -> None:
    target, log_to = os.environ.get(ENV), os.environ.get(WRITES_LOG_ENV)
    if not (target or log_to) or _state["stage"] is None:
        return
    _state["writes"] += 1
    if log_to:  # where a kill can land: the reliability suite draws its kills from this list
        with open(log_to, "a", encoding="utf-8") as f:
            f.write(f"{_state['stage']}\t{_state['writes']}\t{what}\n")
    if not target:
        return
    stage, n, *delay = target.split(":")
    if stage != _state["stage"] or _state["writes"] != int(n):
        return
    seconds = float(delay[0]) if delay else 0.0
    print(f"{ENV}: killing the job {seconds}s into {stage} write {n} ({what})", file=sys.stderr, flush=True)
    if seconds <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGKILL))
    timer.daemon = True
    timer.start()


def nightly_process(day, landing: str, warehouse: str, configs: list[str], kill_at: str | None = None,
                    timeout: float = 1800, extra_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``python -m jobs.nightly`` for ``day`` as its own process, optionally killing itself at ``kill_at``.

    Started in a session of its own, so the JVM it started dies with it, as when a
    scheduler kills a job; a run past ``timeout`` seconds is killed the same way.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYSPARK_PYTHON": sys.executable}
    env.pop(ENV, None)
    if kill_at:
        env[ENV] = kill_at
    args = [sys.executable, "-m", "jobs.nightly", "--date", str(day), "--landing", landing, "--warehouse", warehouse,
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
