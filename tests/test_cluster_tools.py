"""Cluster tooling without a cluster: the --py-files zip, and scripts/cluster.sh when nothing runs."""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_zip = _load("build_zip")


def test_zip_holds_every_module_of_jobs_and_pipelines_and_nothing_else(tmp_path):
    out = tmp_path / "ctr_jobs.zip"
    build_zip.build(out)
    names = set(zipfile.ZipFile(out).namelist())
    expected = {p.relative_to(ROOT).as_posix() for pkg in ("jobs", "pipelines") for p in (ROOT / pkg).rglob("*.py")
                if "__pycache__" not in p.parts}
    assert names == expected
    assert {"jobs/__init__.py", "pipelines/train/__init__.py", "jobs/dev/generator/__init__.py",
            "pipelines/train/lgbm_barrier.py"} <= names


def test_zip_is_byte_identical_when_built_twice(tmp_path):
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    build_zip.build(first)
    build_zip.build(second)
    assert first.read_bytes() == second.read_bytes()


def test_executor_imports_the_code_from_the_zip(tmp_path):
    """As an executor does: the zip first on sys.path, run from an unrelated directory.

    The virtualenv may hold an editable install pointing at some checkout; a module missing
    from the zip would quietly come from there, so the test checks where each came from.
    """
    out = tmp_path / "ctr_jobs.zip"
    build_zip.build(out)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "import jobs.runtime.layout, pipelines.train.scorers, jobs.dev.generator.world; "
            "print(jobs.runtime.layout.__file__); print(pipelines.train.scorers.__file__); "
            "print(jobs.dev.generator.world.__file__)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert all(line.startswith(str(out) + os.sep) for line in done.stdout.split()), done.stdout


def test_zip_refuses_a_package_folder_without_init(tmp_path):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "__init__.py").write_text("")
    (tmp_path / "pipelines" / "train").mkdir(parents=True)
    (tmp_path / "pipelines" / "__init__.py").write_text("")
    (tmp_path / "pipelines" / "train" / "xgb.py").write_text("")
    with pytest.raises(ValueError, match="no __init__.py"):
        build_zip.build(tmp_path / "out.zip", root=tmp_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster(command: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLUSTER_DIR": str(tmp_path / "cluster"), "CLUSTER_UI_PORT": str(_free_port())}
    return subprocess.run([str(ROOT / "scripts" / "cluster.sh"), command], env=env, capture_output=True,
                          text=True, timeout=60)


def test_status_of_a_cluster_that_is_not_running_says_so_with_exit_3(tmp_path):
    done = _cluster("status", tmp_path)
    assert done.returncode == 3
    assert done.stdout.startswith("cluster down: no master answers on http://127.0.0.1:")


def test_down_with_nothing_running_stops_nothing_and_succeeds(tmp_path):
    done = _cluster("down", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["worker-2 not running", "worker-1 not running", "master not running"]


def test_unknown_command_is_a_usage_error(tmp_path):
    done = _cluster("restart", tmp_path)
    assert done.returncode == 2
    assert "usage:" in done.stderr
