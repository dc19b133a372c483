"""Figures a person looks at: reliability diagram, per-decile calibration, feature importance.

Each returns a matplotlib Figure; the job logs it (pipelines never write).
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd


def reliability(deciles: pd.DataFrame, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 5))
    top = float(max(deciles["predicted"].max(), deciles["actual"].max())) * 1.05
    ax.plot([0, top], [0, top], color="grey", linestyle="--", label="perfect")
    ax.plot(deciles["predicted"], deciles["actual"], marker="o", label="deciles")
    ax.set(xlabel="mean predicted CTR", ylabel="actual CTR", title=f"Reliability: {title}",
           xlim=(0, top), ylim=(0, top))
    ax.legend()
    fig.tight_layout()
    return fig


def decile_calibration(deciles: pd.DataFrame, overall: float, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(deciles["decile"].astype(str), deciles["ratio"])
    ax.axhline(1.0, color="grey", linestyle="--")
    ax.set(xlabel="decile of predicted CTR", ylabel="predicted / actual",
           title=f"Calibration by decile: {title} (overall {overall:.3f})")
    fig.tight_layout()
    return fig


def importance(scores: dict[str, float], title: str, top: int = 25) -> plt.Figure:
    items = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    fig, ax = plt.subplots(figsize=(6, max(2.5, 0.3 * len(items) + 1)))
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set(xlabel="importance", title=f"Feature importance: {title}")
    fig.tight_layout()
    return fig
