"""Model training: features, calibration, metrics, the GBDT families and the champion gate.

Pure functions over DataFrames, numpy arrays and config values; jobs/train.py
does every read, write and MLflow call.
"""
