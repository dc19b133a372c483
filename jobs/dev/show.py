"""Print what a pipeline run produced and where to look (the end of `make demo`)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines.report import funnel_lines


def training_lines(t: dict) -> list[str]:
    """The training stage of one night, in a few lines."""
    if t["status"] != "trained":
        why = t.get("reason") or t.get("error") or "started, not finished"
        return [f"training: {t['status']}: {why}"]
    ts, reg = t["training_set"], t.get("registered")
    lines = [f"training: on {ts['path']} version {ts['version']} ({ts['first_day']} .. {ts['last_day']})"
             + (f"; {reg['model']} version {reg['version']} is {reg['alias']}" if reg else "")]
    for name, m in t["models"].items():
        lines.append(f"  {name:<20} NE {m['ne']:.4f}  AUC {m['auc']:.4f}  {m['run_url'] or 'run ' + m['run_id']}")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--landing", default="data/landing")
    p.add_argument("--warehouse", default="data/warehouse")
    a = p.parse_args()
    wh, landing = Path(a.warehouse).resolve(), Path(a.landing).resolve()
    reports = sorted(wh.glob("reports/dt=*/run_report.json"))
    if not reports:
        print(f"no run reports under {wh}/reports", file=sys.stderr)
        return 1
    expected_file = landing / "_truth" / "expected_counts.json"
    expected = json.loads(expected_file.read_text()) if expected_file.exists() else {}
    print("\n" + "=" * 78)
    for path in reports:
        report = json.loads(path.read_text())
        exp = expected.get(report["date"])
        check = ""
        if exp is not None:
            bad = [k for k, v in exp.items() if report.get(k) != v]
            check = "matches the generator's expected counts" if not bad else f"DIFFERS from expected on {bad}"
        print(f"\nRun report {report['date']}: {'balanced' if report['balanced'] else 'NOT BALANCED'}, {check}")
        gates = report.get("quality", {})
        if gates:
            print("   quality gates: " + ", ".join(
                f"{k} {'passed' if g['passed'] else 'FAILED'} in {g['seconds']:.1f}s"
                + (f" ({len(g['warnings'])} warnings)" if g["warnings"] else "") for k, g in gates.items()))
            for g in gates.values():
                for w in g["warnings"]:
                    print(f"     warning: {w}")
        for line in funnel_lines(report):
            print("   " + line)
        for line in training_lines(report["training"]) if "training" in report else []:
            print("   " + line)
        for line in score_lines(report):
            print("   " + line)
    print("\nWhere to look:")
    print(f"  landing logs        {landing}/{{impressions,clicks,conversions,dims}}/dt=*/...")
    print(f"  generator truth     {landing}/_truth/ (manifest, ground_truth, expected_counts.json)")
    for layer in ("bronze", "silver", "gold"):
        folder = wh / layer
        tables = sorted(p.name for p in folder.iterdir() if (p / "_delta_log").is_dir()) if folder.is_dir() else []
        if tables:
            print(f"  {layer + ' Delta tables':<19} {wh}/{layer}/{{{','.join(tables)}}}")
    print(f"  run reports         {wh}/reports/dt=*/run_report.json  (+ summary.md beside each)")
    if (wh / "reports" / "index.html").is_file():
        print(f"  night pages         {wh}/reports/index.html  (every night, newest first; night.html beside each "
              f"report: funnel, trends, anomalies, drift)")
    if (wh / "monitoring" / "metric_history" / "_delta_log").is_dir():
        print(f"  metric history      {wh}/monitoring/metric_history  (Delta; checks: expectations/anomalies.json)")
    gates = [g for path in reports for g in json.loads(path.read_text()).get("quality", {}).values()]
    if gates:
        docs, results = gates[-1]["data_docs"], gates[-1]["results"]
        runs = str(Path(gates[-1]["summary"]).parent.parent)
        print(f"  quality Data Docs   {docs}")
        print(f"  validation results  {results}  (GX JSON, one per suite and run)")
        print(f"  gate summaries      {runs}/dt=*/{{ingest,silver,gold}}.json")
    if (wh / "catalog" / "features.html").is_file():
        print(f"  feature catalog     {wh}/catalog/features.html  (+ features.md; make catalog rewrites it)")
    if any(json.loads(path.read_text()).get("training", {}).get("status") == "trained" for path in reports):
        print("  MLflow runs         make mlflow-ui, then the run links above (http://127.0.0.1:5000)")
    print("  query a table       .venv/bin/pyspark  then  spark.read.format('delta').load('<table path>')")
    for line in champion_lines([json.loads(path.read_text()) for path in reports]):
        print(line)
    print("=" * 78)
    return 0


def _figure(value: object, fmt: str = ".4f") -> str:
    return format(value, fmt) if isinstance(value, (int, float)) and value == value else "-"


def score_lines(report: dict) -> list[str]:
    """What the night scored and how the scores of the closed day did (jobs/score.py)."""
    out, s, m = [], report.get("scoring"), report.get("score_monitoring")
    if s and s.get("status") == "scored":
        out.append(f"scored: {s['rows']:,} impressions landed on {report['date']} with {s['model_name']} "
                   f"v{s['model_version']} ({s['family']}) -> {s['table']}")
    elif s and s.get("status") != "skipped":
        out.append(f"scoring {s['status']}: {s.get('error') or s.get('reason')}")
    if m and m.get("status") == "failed":
        out.append(f"monitoring of {m['event_date']}'s scores failed: {m['error']}")
    elif m:
        out.append(f"scores of {m['event_date']} against their labels: NE {_figure(m['ne'])}, calibration "
                   f"{_figure(m['calibration'])}, AUC {_figure(m['auc'])} ({m['rows']:,} rows, "
                   f"{m['coverage']:.0%} of the day's "
                   f"labels{'; partial: no warnings' if m['partial'] else ''})")
        out += [f"  warning: {w}" for w in m["warnings"]]
    return out


def champion_lines(reports: list[dict]) -> list[str]:
    """The newest night's registered model, with its test-day figures against the truth and its MLflow link."""
    trained = [r["training"] for r in reports if r.get("training", {}).get("status") == "trained"
               and r["training"].get("registered")]
    if not trained:
        return []
    t = trained[-1]
    reg = t["registered"]
    m = t["models"].get(reg["family"], {})
    share = m.get("achievable_share")
    return ["", f"Model: {reg['model']} version {reg['version']} ({reg['family']}) is {reg['alias']}: {reg['reason']}",
            f"  test day {t['training_set']['splits']['test'][0]}: NE {_figure(m.get('ne'))}, "
            f"calibration {_figure(m.get('calibration'))} (predicted/actual), AUC {_figure(m.get('auc'))}, "
            f"Bayes NE {_figure(m.get('bayes_ne'))}, share of achievable log-loss reduction {_figure(share, '.3f')}"
            + (f" ({int(m['truth_uncovered_rows'])} test rows without truth left out)"
               if m.get("truth_uncovered_rows") else ""),
            f"  MLflow: {m.get('run_url') or 'run ' + str(m.get('run_id'))}  (make mlflow-ui serves it)"]


if __name__ == "__main__":
    sys.exit(main())
