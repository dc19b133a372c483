"""A test hook that kills the nightly job by SIGKILL at a chosen write (tests/test_resume.py).

Inert unless the environment sets ``CTR_TEST_KILL_AT=<stage>:<n>[:<seconds>]``:
then the process kills itself, as the OOM killer or a lost node would, just
before the n-th write of that stage of ``jobs/nightly.py`` (ingest, silver or
gold; a write is a Delta partition, a small file such as a report, metrics or
a gate's record, or a retention DELETE or VACUUM), or ``seconds`` after that
write began, i.e. in the middle of it or of what follows. Nothing can catch a
SIGKILL, so no ``finally`` or ``except`` runs: what the warehouse holds then is
what a re-run must cope with.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

ENV = "CTR_TEST_KILL_AT"
_state = {"stage": None, "writes": 0}


def enter(stage: str) -> None:
    """The nightly job starts ``stage``: writes are counted from here."""
    _state.update(stage=stage, writes=0)


def before_write(what: str) -> None:
    target = os.environ.get(ENV)
    if not target or _state["stage"] is None:
        return
    stage, n, *delay = target.split(":")
    if stage != _state["stage"]:
        return
    _state["writes"] += 1
    if _state["writes"] != int(n):
        return
    seconds = float(delay[0]) if delay else 0.0
    print(f"{ENV}: killing the job {seconds}s into {stage} write {n} ({what})", file=sys.stderr, flush=True)
    if seconds <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGKILL))
    timer.daemon = True
    timer.start()
