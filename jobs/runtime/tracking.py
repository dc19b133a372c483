"""MLflow plumbing for jobs: where the store lives, one run per model, the guarded registry.

Default store: SQLite at <repo>/mlruns/mlflow.db with artifacts in
<repo>/mlruns/artifacts, created on first use; MLFLOW_TRACKING_URI points
elsewhere (a server, Databricks, another file).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from jobs.runtime.config import REPO_ROOT
from pipelines.train import plots
from pipelines.train.metrics import calibration_deciles
from pipelines.train.pyfunc import CalibratedCtr
from pipelines.train.scorers import CtrModel, importance

log = logging.getLogger("ctr.tracking")

MLRUNS = REPO_ROOT / "mlruns"


def default_tracking_uri() -> str:
    return f"sqlite:///{MLRUNS / 'mlflow.db'}"


def setup(experiment: str) -> str:
    """Point MLflow at the store and the experiment; returns the tracking URI."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    location = None
    if uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).parent
        folder.mkdir(parents=True, exist_ok=True)
        # A SQLite store has no artifact root of its own (MLflow would use ./mlruns of
        # whatever directory it runs in): keep artifacts beside the database.
        location = (folder / "artifacts").as_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    return uri


def log_model_run(model: CtrModel, name: str, params: dict[str, Any], metrics: dict[str, float],
                  curves: dict[str, list[float]], test: pd.DataFrame, example: pd.DataFrame,
                  dataset: Any, tags: dict[str, str]) -> tuple[str, str]:
    """One MLflow run: params, curves per round, metrics, plots, the calibrated model; returns (run_id, model_uri).

    ``test`` holds label and calibrated ``p`` of the evaluated test rows.
    """
    # Inside a caller's run (make bench-quality's parent run) each model is a child run.
    with mlflow.start_run(run_name=name, nested=mlflow.active_run() is not None) as run:
        mlflow.set_tags({"family": model.family, **tags})
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_input(dataset, context="training")
        now = int(time.time() * 1000)
        steps = [Metric(key, float(v), now, i) for key, vals in curves.items() for i, v in enumerate(vals)]
        for at in range(0, len(steps), 1000):
            MlflowClient().log_batch(run.info.run_id, metrics=steps[at: at + 1000])
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
        deciles = calibration_deciles(test["label"].to_numpy(), test["p"].to_numpy())
        mlflow.log_table(deciles, "calibration_deciles.json")
        for figure, file in ((plots.reliability(deciles, name), "reliability.png"),
                             (plots.decile_calibration(deciles, metrics["calibration"], name),
                              "calibration_deciles.png"),
                             (plots.importance(importance(model), name), "feature_importance.png")):
            mlflow.log_figure(figure, file)
            plots.plt.close(figure)
        mlflow.log_dict({"numeric": list(model.features.numeric), "categorical": list(model.features.categorical)},
                        "features.json")
        signature = infer_signature(example, model.predict(example))
        info = mlflow.pyfunc.log_model(name="model", python_model=CalibratedCtr(model), signature=signature,
                                       input_example=example, code_paths=[str(REPO_ROOT / "pipelines")])
        return run.info.run_id, info.model_uri


def champion_model(registered: str) -> tuple[CtrModel, str] | None:
    """The CtrModel behind alias ``champion`` and its version, or None when there is none.

    Only "no such registered model" and "no champion alias on it" mean none; any other
    registry or tracking failure (a server down, a broken store) is raised, so a job never
    mistakes a hiccup for an empty registry and promotes a model on calibration alone.
    """
    client = MlflowClient()
    try:
        model = client.get_registered_model(registered)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    if "champion" not in (model.aliases or {}):
        return None
    version = client.get_model_version_by_alias(registered, "champion")
    loaded = mlflow.pyfunc.load_model(f"models:/{registered}@champion")
    return loaded.unwrap_python_model().model, version.version


def register(model_uri: str, registered: str, promote: bool, reason: str, run_id: str) -> str:
    """Register a finished run's model; alias champion or challenger; the reason goes on the version."""
    version = mlflow.register_model(model_uri, registered, tags={"run_id": run_id}).version
    client = MlflowClient()
    client.set_model_version_tag(registered, version, "gate", json.dumps({"promoted": promote, "reason": reason}))
    client.set_registered_model_alias(registered, "champion" if promote else "challenger", version)
    log.info("%s version %s is %s: %s", registered, version, "champion" if promote else "challenger", reason)
    return version
