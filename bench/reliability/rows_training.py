"""Row 7: executor loss in distributed training, on a standalone cluster of this machine.

A master and two 1-core workers (scripts/cluster.sh with the row's own ports and
folder under ``--root``), a synthetic Delta training set, and ``jobs/train.py``
through ``spark-submit --master spark://...``, one family per job (XGBoost, then
LightGBM). Once both tasks of the family's barrier stage run, worker-1's executor
JVM is SIGKILLed, as a lost node's would be. Measured: seconds from the kill until
the failure shows (a FAILED stage in the driver's REST API, or the job exiting
non-zero) and until the job ends; a job still running ``HANG_SECONDS`` after the
kill is hung: killed, row failed. Then one job trains every family that failed and
must succeed (a job that Spark's own stage retry finished counts as retried).
Last, the MLflow store: no run left RUNNING; every registered version READY, from
a FINISHED run, its model readable and its gate tag set; and a failed attempt
changed neither versions nor aliases (jobs/train.py registers only after every run).
"""
from __future__ import annotations

import inspect
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from bench.reliability.common import Result, Suite
from jobs.runtime.config import REPO_ROOT

log = logging.getLogger("ctr.reliability")

ROWS = 60_000             # synthetic impressions over 7 days: 5 train, 1 validation, 1 test
FAMILIES = ("xgboost", "lightgbm")
SURFACE_SECONDS = 300     # the issue's bound: the failure shows within 5 minutes
HANG_SECONDS = 420        # a job still running this long after the kill is hung: killed, row failed
KILL_AFTER = 4.0          # seconds after both barrier tasks run: the peers are talking by then
# Enough rounds, and no early stop, that the barrier stage lasts well past the kill.
TRAIN = {"ablation": False, "num_rounds": 300, "early_stopping_rounds": 300, "learning_rate": 0.05}
# Small Spark: 2 shuffle partitions, and Delta's log replayed in 2 tasks, not 50.
SPARK = {"shuffle_partitions": 2, "conf": {"spark.databricks.delta.snapshotPartitions": "2",
                                          "spark.default.parallelism": "2"}}


def _call_site(module, needle: str) -> str:
    """``file.py:line`` of the statement holding ``needle``: how Spark names the stages it starts."""
    line = next(i for i, text in enumerate(inspect.getsource(module).splitlines(), 1) if needle in text)
    return f"{Path(module.__file__).name}:{line}"


def barrier_sites() -> dict[str, str]:
    """Each family's training stage by its call site. XGBoost's fit also starts SQL stages (the label
    count); its barrier stage is the one an RDD collect (PythonRDD) starts."""
    from pipelines.train import lgbm_barrier, xgb

    return {"xgboost": _call_site(xgb, "clf.fit("), "lightgbm": _call_site(lgbm_barrier, "barrier=True")}


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _ports(start: int, count: int) -> int:
    """The first port from ``start`` (step 10) with ``count`` consecutive free ones."""
    for base in range(start, start + 1000, 10):
        if all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} free ports from {start}")


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return json.load(r)
    except (OSError, ValueError):
        return None


class Cluster:
    """scripts/cluster.sh with the row's own folder and ports, so a user's cluster is left alone."""

    def __init__(self, state: Path):
        self.state = state
        self.master_port = _ports(17077, 1)
        self.ui_port = _ports(18080, 3)   # master UI, then one per worker
        self.url = f"spark://127.0.0.1:{self.master_port}"
        self.env = {**os.environ, "CLUSTER_DIR": str(state), "CLUSTER_MASTER_PORT": str(self.master_port),
                    "CLUSTER_UI_PORT": str(self.ui_port), "CLUSTER_WORKER_MEMORY": "2g",
                    "PY": sys.executable}

    def _script(self, verb: str) -> None:
        done = subprocess.run([str(REPO_ROOT / "scripts" / "cluster.sh"), verb], env=self.env,
                              capture_output=True, text=True, timeout=180)
        log.info("cluster.sh %s (exit %d): %s", verb, done.returncode, (done.stdout + done.stderr).strip()[-600:])
        if done.returncode != 0:
            raise RuntimeError(f"cluster.sh {verb} failed: {(done.stdout + done.stderr).strip()[-300:]}")

    def up(self) -> None:
        self._script("up")

    def down(self) -> None:
        self._script("down")

    def executor_pid(self, worker: str) -> int | None:
        """The executor JVM that ``worker`` started (its working folder is under the worker's work dir)."""
        work = str(self.state / "work" / worker)
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"CoarseGrainedExecutorBackend" in args and os.readlink(f"/proc/{pid}/cwd").startswith(work):
                    return int(pid)
            except OSError:
                continue
        return None


def _descendants(pid: int) -> list[int]:
    children = {}
    for p in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            ppid = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(p))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Submit:
    """One ``jobs/train.py`` through spark-submit in client mode, logs in ``log_path``, its UI on its own port."""

    def __init__(self, cluster: Cluster, base: Path, models: list[str], tag: str):
        self.ui = _ports(14040, 1)
        overlay = base / f"{tag}.yaml"
        overlay.write_text(yaml.safe_dump({"spark": SPARK, "train": {**TRAIN, "models": models}}))
        jars = ",".join(sorted(str(p) for p in (REPO_ROOT / ".cache" / "jars").glob("*.jar")))
        bin_dir = Path(sys.executable).parent
        args = [str(bin_dir / "spark-submit"), "--master", cluster.url, "--deploy-mode", "client",
                "--driver-memory", "2g", "--executor-memory", "1g", "--executor-cores", "1",
                "--total-executor-cores", "2",
                *[a for kv in ("spark.driver.host=127.0.0.1", "spark.driver.bindAddress=127.0.0.1",
                               f"spark.pyspark.python={sys.executable}", "spark.log.level=WARN",
                               f"spark.ui.port={self.ui}", "spark.port.maxRetries=0") for a in ("--conf", kv)],
                "--jars", jars, "--py-files", str(base / "ctr_jobs.zip"),
                str(REPO_ROOT / "jobs" / "train.py"), "--env", "cluster", "--config", str(overlay),
                "--landing", str(base / "landing"), "--warehouse", str(base / "warehouse")]
        env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable,
               "PYSPARK_DRIVER_PYTHON": sys.executable, "PYTHONPATH": str(REPO_ROOT),
               "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlruns' / 'mlflow.db'}"}
        self.log_path = base / f"{tag}.log"
        self.out = self.log_path.open("w")
        self.proc = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.app: str | None = None

    def stages(self) -> list[dict]:
        api = f"http://127.0.0.1:{self.ui}/api/v1/applications"
        if self.app is None:
            apps = _get(api) or []
            self.app = apps[0]["id"] if apps else None
        return (_get(f"{api}/{self.app}/stages") or []) if self.app else []

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.out.close()

    def tail(self, lines: int = 6) -> str:
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(t.strip() for t in text[-lines:])[-400:]


def _is_training(stage: dict, family: str, site: str) -> bool:
    name, details = stage.get("name", ""), stage.get("details", "")
    return name.endswith("/" + site) and (family != "xgboost" or "PythonRDD" in details)


def _barrier(stages: list[dict], family: str, site: str) -> dict | None:
    """The family's training stage, once both its tasks run."""
    return next((s for s in stages if s.get("status") == "ACTIVE" and _is_training(s, family, site)
                 and s.get("numTasks") == 2 and s.get("numActiveTasks") == 2), None)


def killed_attempt(cluster: Cluster, base: Path, family: str) -> dict:
    """Submit, SIGKILL worker-1's executor while the barrier stage runs, and time what follows."""
    job = Submit(cluster, base, [family], f"{family}-killed")
    out: dict = {"log": str(job.log_path)}
    site = barrier_sites()[family]
    try:
        started, stage = time.monotonic(), None
        while time.monotonic() - started < 400 and job.proc.poll() is None:
            stage = _barrier(job.stages(), family, site)
            if stage:
                break
            time.sleep(0.5)
        if stage is None:
            out.update(error=f"barrier stage never ran with both tasks (exit {job.proc.poll()}): {job.tail()}")
            return out
        time.sleep(KILL_AFTER)
        pid = cluster.executor_pid("worker-1")
        if pid is None or job.proc.poll() is not None:
            out.update(error=f"nothing to kill: executor pid {pid}, job exit {job.proc.poll()}")
            return out
        orphans = _descendants(pid)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        out.update(stage=stage["stageId"], executor_pid=pid, submitted_s_before=round(killed - started, 1))
        log.info("%s: SIGKILLed executor JVM %d (worker-1) in stage %d", family, pid, stage["stageId"])
        failed_at, reason, stages = None, "", []
        while time.monotonic() - killed < HANG_SECONDS and job.proc.poll() is None:
            stages = job.stages() or stages
            bad = [s for s in stages if s.get("status") == "FAILED"]
            if bad and failed_at is None:
                failed_at, reason = time.monotonic(), bad[0].get("failureReason", "")
            time.sleep(1)
        code = job.proc.poll()
        ended = time.monotonic()
        if code is None:
            out.update(hung=True, exit=None)
        else:
            out.update(hung=False, exit=code)
            if code != 0 and failed_at is None:
                failed_at = ended
        out.update(surfaced_s=None if failed_at is None else round(failed_at - killed, 1),
                   ended_s=round(ended - killed, 1), reason=reason.strip().splitlines()[0][:200] if reason else "",
                   attempts=sorted({(s["stageId"], s["attemptId"], s["status"]) for s in stages
                                    if _is_training(s, family, site)}),
                   tail=job.tail())
        time.sleep(2)
        left = [p for p in orphans if _alive(p)]
        for p in left:   # the killed executor's Python workers, if any outlived it
            os.kill(p, signal.SIGKILL)
        out["orphans"] = len(left)
        return out
    finally:
        job.stop()


def clean_attempt(cluster: Cluster, base: Path, models: list[str]) -> dict:
    job = Submit(cluster, base, models, "retry")
    try:
        started = time.monotonic()
        code = job.wait(HANG_SECONDS)
        return {"exit": code, "seconds": round(time.monotonic() - started, 1), "tail": job.tail(),
                "log": str(job.log_path)}
    finally:
        job.stop()


def registry(base: Path) -> dict:
    """What the MLflow store holds: runs by status, versions with what is wrong with each, the aliases."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{base / 'mlruns' / 'mlflow.db'}"
    if not (base / "mlruns" / "mlflow.db").exists():
        return {"runs": {}, "versions": [], "aliases": {}}
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    runs: dict[str, str] = {}
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            runs[run.info.run_id] = run.info.status
    versions, aliases = [], {}
    try:
        model = client.get_registered_model("ctr")
        aliases = dict(model.aliases or {})
        found = client.search_model_versions("name='ctr'")
    except MlflowException:
        found = []
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for v in sorted(found, key=lambda v: int(v.version)):
        wrong = []
        if v.status != "READY":
            wrong.append(f"status {v.status}")
        if runs.get(v.run_id) != "FINISHED":
            wrong.append(f"run {v.run_id} {runs.get(v.run_id, 'missing')}")
        if "gate" not in (v.tags or {}):
            wrong.append("no gate tag")
        try:
            mlflow.models.get_model_info(f"models:/ctr/{v.version}")
        except Exception as err:
            wrong.append(f"model files unreadable ({type(err).__name__})")
        versions.append({"version": v.version, "run_id": v.run_id, "wrong": wrong})
    return {"runs": runs, "versions": versions, "aliases": {k: str(x) for k, x in aliases.items()}}


def training_set(suite: Suite, base: Path) -> None:
    from jobs.dev.synthetic import synthetic_training_set

    frame = synthetic_training_set(ROWS, days=7, seed=suite.seed % 1000)
    (suite.spark.createDataFrame(frame.drop(columns=["p_click"])).repartition(2)
     .write.format("delta").save(str(base / "warehouse" / "gold" / "training_set")))


def executor_loss(suite: Suite) -> Result:
    base = suite.fresh_dir("row7")
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "build_zip.py"), str(base / "ctr_jobs.zip")],
                   check=True, capture_output=True)
    training_set(suite, base)
    cluster = Cluster(base / "cluster")
    data: dict = {"rows": ROWS, "train": TRAIN, "sites": barrier_sites(), "families": {}}
    problems: list[str] = []
    try:
        cluster.up()
        for family in FAMILIES:
            before = registry(base)
            kill = killed_attempt(cluster, base, family)
            after = registry(base)
            entry = {"killed": kill}
            if kill.get("error") or kill.get("hung"):
                problems.append(f"{family}: " + (kill.get("error") or f"hung {HANG_SECONDS}s after the kill"))
            elif kill["surfaced_s"] is None or kill["surfaced_s"] > SURFACE_SECONDS:
                problems.append(f"{family}: failure not visible within {SURFACE_SECONDS}s (exit {kill['exit']})")
            if kill.get("exit") not in (None, 0) and (after["versions"], after["aliases"]) != (
                    before["versions"], before["aliases"]):
                problems.append(f"{family}: the failed attempt changed the registry "
                                f"({before['aliases']} -> {after['aliases']})")
            data["families"][family] = entry
        # One retry trains both families (each submission costs minutes on two shared cores); a family
        # whose killed job Spark itself finished needs none.
        again = [f for f in FAMILIES if data["families"][f]["killed"].get("exit") != 0]
        if again:
            data["retry"] = clean_attempt(cluster, base, again)
            if data["retry"]["exit"] != 0:
                problems.append(f"retry of {again}: exit {data['retry']['exit']}: {data['retry']['tail']}")
    finally:
        try:
            cluster.down()
        except Exception as err:
            problems.append(f"cluster down: {err}")
    store = registry(base)
    data["registry"] = store
    running = [r for r, s in store["runs"].items() if s not in ("FINISHED", "FAILED")]
    half = [v for v in store["versions"] if v["wrong"]]
    if running:
        problems.append(f"{len(running)} run(s) not FINISHED/FAILED")
    if half:
        problems.append(f"half-registered: {half}")
    figure = "; ".join(_family_figure(f, e["killed"], data.get("retry")) for f, e in data["families"].items())
    figure += f"; {len(half)} half-registered models, {len(running)} runs left RUNNING"
    return Result(7, "", not problems, figure, "; ".join(problems)[:600], data=data)


def _family_figure(family: str, kill: dict, retry: dict | None) -> str:
    name = {"xgboost": "XGBoost", "lightgbm": "LightGBM"}[family]
    if kill.get("error"):
        return f"{name}: no kill ({kill['error'][:60]})"
    if kill.get("hung"):
        return f"{name}: HUNG {HANG_SECONDS} s after kill"
    seen = f"{kill['surfaced_s']:.0f} s" if kill["surfaced_s"] is not None else "never"
    if kill["exit"] == 0:
        return f"{name}: stage failed {seen} after kill, Spark's retry finished at {kill['ended_s']:.0f} s"
    ok = "retry OK" if retry and retry["exit"] == 0 else f"retry exit {retry and retry['exit']}"
    return f"{name}: failed {seen} after kill (exit {kill['exit']} at {kill['ended_s']:.0f} s), {ok}"
