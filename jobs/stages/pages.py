"""The night page (``reports/dt=<date>/night.html``) and the index of nights (``reports/index.html``), written
beside each run report; what they show is pipelines/night_page.py. The index is rebuilt from
``reports/nights.json`` (one line of figures per night), so writing it reads one small file, not every report."""
from __future__ import annotations

import json
import logging
import os
from datetime import date, timedelta

from pyspark.sql import SparkSession

from jobs.runtime import anomalies, storage
from jobs.runtime.layout import Warehouse
from pipelines import night_page
from pipelines.config import AppConfig

log = logging.getLogger("ctr.pages")

# title -> history metric; a title ending in " %" is a rate
TRENDS = {"impressions landed": "run_report.impressions_raw", "valid impressions": "run_report.impressions_valid",
          "CTR %": "rates.ctr", "bot share %": "rates.bot_share", "clicks landed": "run_report.clicks_raw",
          "viewable share %": "rates.viewable_share"}


def href(target: str, page_dir: str) -> str:
    """A link from a page in ``page_dir`` to ``target``: relative when both are local paths, else the URI."""
    local = lambda p: "://" not in p or p.startswith("file://")
    if local(target) and local(page_dir):
        return os.path.relpath(target.removeprefix("file://"), page_dir.removeprefix("file://"))
    return target


def links(cfg: AppConfig, report: dict, page_dir: str) -> dict[str, str]:
    out = {"run report (JSON)": "run_report.json", "summary": "summary.md", "all nights": "../index.html"}
    docs = next((g.get("data_docs") for g in (report.get("quality") or {}).values() if g.get("data_docs")), None)
    if docs:
        out["Data Docs"] = href(docs, page_dir)
    training = report.get("training") or {}
    if training.get("experiment_url"):
        out["MLflow experiment"] = training["experiment_url"]
    elif cfg.train.mlflow_ui_url:
        out["MLflow (make mlflow-ui)"] = cfg.train.mlflow_ui_url
    return out


def night_entry(report: dict, error: str | None) -> dict:
    drift = report.get("drift") or {}
    flags = sum(len((g.get("anomalies") or {}).get("flags", [])) for g in (report.get("quality") or {}).values())
    valid = report.get("impressions_valid")
    return {"status": night_page.status(report, error), "page": f"dt={report['date']}/night.html",
            "impressions": report.get("impressions_raw"),
            "ctr": report["impressions_clicked"] / valid if valid else None, "flags": flags,
            "drifted": (drift.get("flagged") or 0) + (drift.get("warned") or 0),
            "note": (error or "").splitlines()[0][:160] if error else ""}


def write_pages(spark: SparkSession, cfg: AppConfig, day: date, report: dict, error: str | None = None) -> str:
    """Write the night's page and the index; returns the page's URI."""
    wh = Warehouse(cfg.paths.warehouse)
    page_dir = wh.report_dir(day)
    history = anomalies.read_history(spark, wh, day + timedelta(days=1), cfg.monitoring.trend_nights)
    trends = {title: sorted(history.get(metric, [])) for title, metric in TRENDS.items()}
    flagged: dict[str, list[date]] = {}
    for title, metric in TRENDS.items():
        for g in (report.get("quality") or {}).values():
            if any(f["metric"] == metric for f in (g.get("anomalies") or {}).get("flags", [])):
                flagged.setdefault(title, []).append(day)
    page = f"{page_dir}/night.html"
    storage.write_text(spark, page, night_page.night_html(report, trends, links(cfg, report, page_dir), flagged,
                                                          error))
    index_uri = f"{wh.root}/reports/nights.json"
    nights = json.loads(storage.read_text(spark, index_uri)) if storage.exists(spark, index_uri) else {}
    nights[day.isoformat()] = night_entry(report, error)
    storage.write_json(spark, index_uri, nights)
    storage.write_text(spark, f"{wh.root}/reports/index.html", night_page.index_html(nights))
    return page
