"""Row 10: hostile arguments and config are refused before Spark starts, with exit code 2 and nothing written.

Every invocation runs a real entry point's ``main(argv)`` in this process, with
``get_spark`` replaced in each job module by a stub that records the call and
raises: a refused case must return 2, say why on stderr and never reach it. A
few valid invocations must reach it (else the harness, not the validation,
would be refusing), and a handful of hostile ones run as real processes to show
exit code 2 at process level. Every path a case names points into
``<root>/row10``, which must hold the same files afterwards.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.reliability.common import Result, Suite
from bench.reliability.hostile_cases import hostile_cases, valid_controls, write_fixtures
from jobs.runtime.config import REPO_ROOT

JOB_MODULES = ("nightly", "ingest", "silver", "gold", "training_set", "train", "score", "generate_logs", "restore")


class SparkStarted(RuntimeError):
    """The stub get_spark: reaching it means the case got past validation."""


@dataclass
class Outcome:
    code: int | None
    stderr: str
    spark_calls: int

    @property
    def refused(self) -> bool:
        return self.code == 2 and "error" in self.stderr.lower() and self.spark_calls == 0


def entry_points() -> dict:
    """Entry name -> main(argv); restore.py only where this tree has it."""
    mains = {}
    for name in JOB_MODULES:
        try:
            mains[name] = importlib.import_module(f"jobs.{name}").main
        except ImportError:
            continue
    mains["dates"] = importlib.import_module("jobs.dates").main
    return mains


@contextlib.contextmanager
def spark_blocked(calls: list):
    """Replace get_spark wherever a job module bound it; record each call and raise."""
    def stub(*args, **kwargs):
        calls.append(args)
        raise SparkStarted("get_spark reached")

    names = [f"jobs.{n}" for n in JOB_MODULES] + ["jobs.runtime.spark"]
    modules = [m for m in (sys.modules.get(n) for n in names) if m is not None]
    saved = {m: m.get_spark for m in modules if hasattr(m, "get_spark")}
    for module in saved:
        module.get_spark = stub
    try:
        yield
    finally:
        for module, fn in saved.items():
            module.get_spark = fn


def run_in_process(main, argv: tuple[str, ...], calls: list) -> Outcome:
    before, err = len(calls), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse inside jobs/dates.py exits by itself
            code = exit_.code if isinstance(exit_.code, int) else 2
        except Exception as crash:
            code, err = None, io.StringIO(f"crashed: {type(crash).__name__}: {crash}")
    return Outcome(code, err.getvalue(), len(calls) - before)


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def process_cases(fx: dict) -> list[tuple[str, list[str]]]:
    """A few hostile invocations as real processes: (label, command)."""
    py, jobs = sys.executable, REPO_ROOT / "jobs"
    where = ["--landing", str(fx["landing"]), "--warehouse", str(fx["warehouse"]), "--log-level", "INFO"]
    cases = [
        ("nightly --date 2025-02-30", [py, str(jobs / "nightly.py"), "--date", "2025-02-30", *where]),
        ("nightly --warehouse ../x", [py, str(jobs / "nightly.py"), "--date", "2025-03-01", *where,
                                      "--warehouse", "../x"]),
        ("nightly --config !!python/object/apply", [py, str(jobs / "nightly.py"), "--date", "2025-03-01", *where,
                                                    "--config", str(fx["yaml"]["tag_object_apply"])]),
        ("nightly --config <a FIFO>", [py, str(jobs / "nightly.py"), "--date", "2025-03-01", *where,
                                       "--config", str(fx["fifo"])]),
        ("train --table outside data_root", [py, str(jobs / "train.py"), *where, "--config", str(fx["data_root_yaml"]),
                                             "--table", "/etc/ctr"]),
        ("dates --start after --end", [py, str(jobs / "dates.py"), "--start", "2025-03-02", "--end", "2025-03-01"]),
    ]
    make_ok = subprocess.run(["make", "-q", ".venv/.installed"], cwd=REPO_ROOT, capture_output=True).returncode == 0
    if make_ok:  # only when make would not reinstall the venv first
        cases.append(("make backfill DATE=garbage", ["make", "--no-print-directory", "backfill", "DATE=garbage",
                                                     f"WAREHOUSE={fx['warehouse']}", f"LANDING={fx['landing']}"]))
    return cases


def run_processes(fx: dict, cwd: Path) -> tuple[list[str], list[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYSPARK_PYTHON": sys.executable}
    ok, bad = [], []
    for label, cmd in process_cases(fx):
        started = time.monotonic()
        try:
            out = subprocess.run(cmd, cwd=REPO_ROOT if cmd[0] == "make" else cwd, env=env, capture_output=True,
                                 text=True, timeout=90)
            code, err = out.returncode, out.stderr + out.stdout
        except subprocess.TimeoutExpired:
            code, err = None, "timed out after 90s"
        spark_started = "ctr.spark" in err or "== nightly" in err or "Setting default log level" in err
        seconds = time.monotonic() - started
        if code == 2 and "error" in err.lower() and not spark_started:
            ok.append(f"{label} ({seconds:.1f}s)")
        else:
            bad.append(f"{label}: exit {code}, {err.strip()[-160:]!r}")
    return ok, bad


def hostile_arguments(suite: Suite) -> Result:
    base = suite.fresh_dir("row10")
    fx = write_fixtures(base)
    cases, controls = hostile_cases(fx), valid_controls(fx)
    mains, calls = entry_points(), []
    cases = [c for c in cases if c.entry in mains]
    before = tree(fx["sandbox_root"])
    refused, accepted, kinds = 0, [], Counter()
    cwd = Path.cwd()
    logging.disable(logging.CRITICAL)  # 300 refusals would otherwise each log an error line
    try:
        os.chdir(fx["cwd"])  # a relative path that got through would land here
        with spark_blocked(calls):
            for case in cases:
                out = run_in_process(mains[case.entry], case.argv, calls)
                kinds[case.kind] += 1
                if out.refused:
                    refused += 1
                else:
                    accepted.append(f"[{case.kind}] {case.entry} {case.label}: exit {out.code}, "
                                    f"spark {'reached' if out.spark_calls else 'not reached'}, "
                                    f"{out.stderr.strip()[-120:]!r}")
            control_out = [(c, run_in_process(mains[c.entry], c.argv, calls)) for c in controls]
    finally:
        os.chdir(cwd)
        logging.disable(logging.NOTSET)
    ok_controls = sum(o.spark_calls == 1 or (c.entry == "dates" and o.code == 0) for c, o in control_out)
    bad_controls = [f"{c.entry} {c.label}: exit {o.code} {o.stderr.strip()[-160:]!r}"
                    for c, o in control_out if not (o.spark_calls == 1 or (c.entry == "dates" and o.code == 0))]
    proc_ok, proc_bad = run_processes(fx, fx["cwd"])
    after = tree(fx["sandbox_root"])
    written = sorted(after - before)
    distinct = len({(c.entry, c.argv) for c in cases})
    passed = (not accepted and not bad_controls and not proc_bad and not written
              and distinct == len(cases) >= 300)
    figure = (f"{refused}/{len(cases)} rejected before Spark, exit 2, {len(written)} files written; "
              f"{len(proc_ok)}/{len(proc_ok) + len(proc_bad)} as processes")
    detail = ("; ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
              + f"; entry points {', '.join(sorted({c.entry for c in cases}))}"
              + f"; {ok_controls}/{len(controls)} valid controls reached Spark"
              + (f"; ACCEPTED: {' | '.join(accepted[:12])}" if accepted else "")
              + (f"; CONTROLS REFUSED: {' | '.join(bad_controls)}" if bad_controls else "")
              + (f"; PROCESSES: {' | '.join(proc_bad)}" if proc_bad else "")
              + (f"; WRITTEN: {', '.join(written[:10])}" if written else "")
              + ("" if distinct == len(cases) else f"; only {distinct} distinct invocations"))
    return Result(10, "", passed, figure, detail,
                  data={"cases": len(cases), "refused": refused, "by_kind": dict(kinds), "accepted": accepted,
                        "controls": len(controls), "controls_reaching_spark": ok_controls,
                        "processes": proc_ok, "process_failures": proc_bad, "written": written})

