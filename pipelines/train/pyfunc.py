"""The MLflow pyfunc wrapper: a CtrModel whose ``predict`` returns calibrated click probabilities."""
from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

from pipelines.train.scorers import CtrModel


class CalibratedCtr(mlflow.pyfunc.PythonModel):
    def __init__(self, model: CtrModel) -> None:
        self.model = model

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        return self.model.predict(model_input)
