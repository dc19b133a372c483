"""The night page and the index of nights: self-contained HTML (inline CSS and SVG, no external asset), so they
render where the pipeline runs, offline. Pure: the job gathers the run report, the trends and the links."""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from pipelines.report import CLICK_OUTCOMES, IMPRESSION_OUTCOMES

CSS = """
body{font:14px/1.45 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;
color:#1f2328;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 10px;border-bottom:1px solid #eaeef2;text-align:left}
th{background:#f6f8fa;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600;font-size:12px}
.ok{background:#1a7f37}.warn{background:#bf8700}.failed{background:#cf222e}.na{background:#6e7781}
.muted{color:#656d76}.grid{display:flex;flex-wrap:wrap;gap:18px}.card{border:1px solid #d0d7de;border-radius:6px;
padding:10px 12px}a{color:#0969da}ul{margin:4px 0;padding-left:20px}code{background:#f6f8fa;padding:1px 4px}
"""
LEVEL_COLOUR = {"ok": "#1a7f37", "warn": "#bf8700", "flag": "#cf222e", "n/a": "#6e7781"}


def esc(value: Any) -> str:
    return html.escape(str(value))


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"
    return str(value)


def status(report: Mapping[str, Any], error: str | None = None) -> str:
    """failed (an error, a failed gate, unbalanced counts, a failed training or scoring), warn (warnings,
    anomaly or drift flags) or ok."""
    gates = report.get("quality") or {}
    sections = [report.get(k) or {} for k in ("training", "scoring", "score_monitoring")]
    if error or report.get("balanced") is False or any(not g.get("passed", True) for g in gates.values()) \
            or any(s.get("status") == "failed" for s in sections):
        return "failed"
    drift = report.get("drift") or {}
    if any(g.get("warnings") for g in gates.values()) or drift.get("flagged") or drift.get("warned") \
            or (report.get("score_monitoring") or {}).get("warnings") \
            or (drift.get("scores") or {}).get("level") in ("warn", "flag"):
        return "warn"
    return "ok"


def badge(state: str) -> str:
    label = {"ok": "OK", "warn": "WARNINGS", "failed": "FAILED"}.get(state, state.upper())
    return f'<span class="badge {state if state in ("ok", "warn", "failed") else "na"}">{label}</span>'


def hbars(rows: Sequence[tuple[str, float, str]], width: int = 560, colour: str = "#0969da") -> str:
    """Horizontal bars: (label, value, text shown after the bar)."""
    top = max((v for _, v, _ in rows), default=0) or 1
    h = 20
    out = [f'<svg width="{width + 330}" height="{h * len(rows) + 4}" role="img">']
    for i, (label, value, text) in enumerate(rows):
        y = i * h + 2
        w = max(1.0, width * value / top) if value else 0
        out.append(f'<text x="0" y="{y + 14}" font-size="12">{esc(label)}</text>'
                   f'<rect x="170" y="{y + 3}" width="{w:.1f}" height="{h - 6}" fill="{colour}" rx="2"/>'
                   f'<text x="{176 + w:.1f}" y="{y + 14}" font-size="12" fill="#444">{esc(text)}</text>')
    out.append("</svg>")
    return "".join(out)


def line_chart(title: str, points: Sequence[tuple[date, float]], today: date, percent: bool = False,
               flagged: Sequence[date] = ()) -> str:
    """A small trend: one line over the nights, tonight's point ringed, flagged nights red."""
    w, h, pad = 340, 130, 34
    shown = lambda v: f"{v:.2%}" if percent else fmt(float(v))
    if not points:
        return f'<div class="card"><b>{esc(title)}</b><div class="muted">no history yet</div></div>'
    days = [d for d, _ in points]
    lo_d, hi_d = min(days), max(days)
    vals = [v for _, v in points]
    lo, hi = min(vals), max(vals)
    margin = (hi - lo) * 0.1 if hi > lo else (abs(hi) * 0.1 or 1.0)   # a flat series sits mid-chart
    lo, hi = lo - margin, hi + margin
    span_d = max(1, (hi_d - lo_d).days)
    xy = [(pad + (w - pad - 8) * (d - lo_d).days / span_d, h - 22 - (h - 34) * (v - lo) / (hi - lo))
          for d, v in points]
    path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(xy))
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{4.5 if d == today else 2.5}" '
        f'fill="{"#cf222e" if d in flagged else "#0969da"}" stroke="{"#1f2328" if d == today else "none"}">'
        f'<title>{d}: {esc(shown(v))}</title></circle>'
        for (x, y), (d, v) in zip(xy, points))
    last = dict(points).get(today)
    tonight = esc(shown(last)) if last is not None else "n/a"
    return (f'<div class="card"><b>{esc(title)}</b> <span class="muted">tonight {tonight}</span><br>'
            f'<svg width="{w}" height="{h}" role="img">'
            f'<line x1="{pad}" y1="{h - 22}" x2="{w - 8}" y2="{h - 22}" stroke="#d0d7de"/>'
            f'<text x="0" y="14" font-size="10" fill="#656d76">{esc(shown(hi))}</text>'
            f'<text x="0" y="{h - 24}" font-size="10" fill="#656d76">{esc(shown(lo))}</text>'
            f'<text x="{pad}" y="{h - 6}" font-size="10" fill="#656d76">{lo_d}</text>'
            f'<text x="{w - 70}" y="{h - 6}" font-size="10" fill="#656d76">{hi_d}</text>'
            f'<path d="{path}" fill="none" stroke="#0969da" stroke-width="1.5"/>{dots}</svg></div>')


def _funnel(r: Mapping[str, Any]) -> str:
    imp = [(k.removeprefix("impressions_"), float(r.get(k, 0)), f"{r.get(k, 0):,}") for k in IMPRESSION_OUTCOMES]
    clk = [(k.removeprefix("clicks_"), float(r.get(k, 0)), f"{r.get(k, 0):,}") for k in CLICK_OUTCOMES]
    valid = r.get("impressions_valid") or 0
    extra = [("measured", float(r.get("impressions_measured", 0)), f"{r.get('impressions_measured', 0):,}"),
             ("viewable", float(r.get("impressions_viewable", 0)), f"{r.get('impressions_viewable', 0):,}"),
             ("clicked", float(r.get("impressions_clicked", 0)),
              f"{r.get('impressions_clicked', 0):,} ({r.get('impressions_clicked', 0) / valid:.2%} of valid)"
              if valid else "0")]
    return (f"<p>{r.get('impressions_raw', 0):,} impressions and {r.get('clicks_raw', 0):,} clicks landed; "
            f"balanced: <b>{'yes' if r.get('balanced') else 'NO'}</b></p>"
            + hbars(imp + extra) + hbars(clk, colour="#8250df"))


def _gates(report: Mapping[str, Any]) -> str:
    gates = report.get("quality") or {}
    if not gates:
        return '<p class="muted">no gate ran</p>'
    rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{badge('ok' if g.get('passed') else 'failed')}</td>"
        f"<td class='n'>{len(g.get('warnings', []))}</td><td class='n'>{fmt(g.get('seconds'))}</td>"
        f"<td class='n'>{(g.get('anomalies') or {}).get('checked', '')}</td></tr>" for k, g in gates.items())
    notes = "".join(f"<li><b>{esc(k)}</b> {'FAILED' if t == 'failure' else 'warning'}: {esc(x)}</li>"
                    for k, g in gates.items() for t, items in (("failure", g.get("failures", [])),
                                                              ("warning", g.get("warnings", []))) for x in items)
    return ("<table><tr><th>stage</th><th>gate</th><th>warnings</th><th>seconds</th><th>anomaly checks</th></tr>"
            f"{rows}</table>" + (f"<ul>{notes}</ul>" if notes else ""))


def _anomalies(report: Mapping[str, Any]) -> str:
    gates = report.get("quality") or {}
    flags = [(k, f) for k, g in gates.items() for f in (g.get("anomalies") or {}).get("flags", [])]
    short = sorted({m for g in gates.values() for m in (g.get("anomalies") or {}).get("too_little_history", [])})
    out = ""
    if flags:
        out += ("<table><tr><th>stage</th><th>metric</th><th>tonight</th><th>baseline median</th><th>statistic</th>"
                "<th>severity</th></tr>" + "".join(
                    f"<tr><td>{esc(k)}</td><td><code>{esc(f['metric'])}</code></td><td class='n'>{fmt(f['value'])}"
                    f"</td><td class='n'>{fmt(f['median'])}</td><td>{esc(f['stat'])} {fmt(f['observed'], 3)}</td>"
                    f"<td>{badge('failed' if f['severity'] == 'critical' else 'warn')}</td></tr>" for k, f in flags)
                + "</table>")
    else:
        out += "<p>No anomaly against the metric history.</p>"
    if short:
        out += (f'<p class="muted">{len(short)} checked metric(s) have too little history to judge yet (their checks '
                f'passed): {esc(", ".join(short[:12]))}{" ..." if len(short) > 12 else ""}</p>')
    return out


def _drift(report: Mapping[str, Any], shown: int = 25) -> str:
    drift = report.get("drift")
    if not drift:
        return '<p class="muted">not measured tonight</p>'
    out = ""
    scores = drift.get("scores")
    if scores:
        out += (f"<p>Champion v{esc(scores.get('model_version'))} scores: "
                + (f"PSI {fmt(scores['psi'], 3)} against its scores of the last {scores['reference_nights']} nights "
                   f"{badge({'ok': 'ok', 'warn': 'warn', 'flag': 'failed'}[scores['level']])}"
                   if scores.get("status") == "measured" else esc(scores.get("status"))) + "</p>")
    if drift.get("status") != "measured":
        return out + f'<p class="muted">feature drift skipped: {esc(drift.get("reason"))}</p>'
    ref = drift["reference"]
    out += (f"<p>{len(drift['features'])} features on {drift['rows']:,} of tonight's landed impressions against "
            f"{ref['rows']:,} rows of training set v{esc(ref['training_set_version'])}'s train window "
            f"({esc(' .. '.join(ref['train_days']))}): {drift['flagged']} flagged, {drift['warned']} warned"
            + (f", {drift['filling']} not judged (their windows were not yet full in the train window)"
               if drift.get("filling") else "") + ". A feature is judged beyond the drift its train days showed "
            "against each other (own); a numeric one also needs its values to have moved beyond that by the "
            "configured share of a standard deviation (shift), or its missing share to have moved.</p>")
    rows = []
    for f in drift["features"][:shown]:
        w = min(300, 300 * f["value"] / 0.5)
        colour = LEVEL_COLOUR.get(f["level"], "#6e7781")
        rows.append(f"<tr><td><code>{esc(f['feature'])}</code></td><td>{esc(f['measure'])}</td>"
                    f"<td class='n'>{f['value']:.3f}</td><td class='n'>{fmt(f.get('day_to_day'), 3)}</td>"
                    f"<td><svg width='304' height='12'><rect width='{w:.1f}' "
                    f"height='12' fill='{colour}' rx='2'/></svg></td><td>{esc(f['level'])}</td>"
                    f"<td class='n'>{fmt(f.get('shift'), 3)}</td>"
                    f"<td class='n'>{fmt(f.get('missing_share'), 3)}</td></tr>")
    more = len(drift["features"]) - shown
    return (out + "<table><tr><th>feature</th><th>measure</th><th>value</th><th>own</th><th>(bar: 0 .. 0.5)</th>"
            "<th>level</th><th>shift (sd)</th><th>missing share</th></tr>" + "".join(rows) + "</table>"
            + (f'<p class="muted">{more} more features, all below the ones shown: run_report.json "drift"</p>'
               if more > 0 else ""))


def _stage_times(report: Mapping[str, Any]) -> str:
    times = report.get("stage_seconds") or {}
    gates = report.get("quality") or {}
    return hbars([(k, float(v), f"{v:.1f} s" + (f" (gate {gates[k]['seconds']:.1f} s)" if k in gates else ""))
                  for k, v in times.items()], colour="#1a7f37") if times else '<p class="muted">not recorded</p>'


def _other(report: Mapping[str, Any]) -> str:
    items = []
    tr = report.get("training") or {}
    if tr:
        items.append(f"training: {esc(tr.get('status'))}" + (f" ({esc(tr.get('reason'))})" if tr.get("reason") else ""))
    for key in ("scoring", "score_monitoring"):
        s = report.get(key)
        if s:
            items.append(f"{key.replace('_', ' ')}: " + esc(", ".join(
                f"{k} {fmt(v)}" for k, v in s.items() if isinstance(v, (int, float, str)) and k in (
                    "status", "rows", "model_version", "ne", "calibration", "auc", "event_date", "reason"))))
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>" if items else ""


def night_html(report: Mapping[str, Any], trends: Mapping[str, Sequence[tuple[date, float]]],
               links: Mapping[str, str], flagged: Mapping[str, Sequence[date]] | None = None,
               error: str | None = None) -> str:
    """One night's page. ``trends``: title -> (night, value) points (percent when the title ends with '%');
    ``links``: label -> href; ``flagged``: title -> the nights a check flagged that metric."""
    day = date.fromisoformat(report["date"])
    state = status(report, error)
    charts = "".join(line_chart(t.removesuffix(" %"), pts, day, t.endswith(" %"), (flagged or {}).get(t, ()))
                     for t, pts in trends.items())
    link_html = " · ".join(f'<a href="{esc(h)}">{esc(k)}</a>' for k, h in links.items())
    err = f'<p style="color:#cf222e"><b>The night stopped:</b> {esc(error)}</p>' if error else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Night {day} - {state}</title>"
            f"<style>{CSS}</style></head><body><h1>Night {day} {badge(state)}</h1>"
            f'<div class="muted">{link_html}</div>{err}'
            f"<h2>Funnel</h2>{_funnel(report) if 'impressions_raw' in report else '<p class=muted>not reached</p>'}"
            f"<h2>Trends (last nights)</h2><div class='grid'>{charts}</div>"
            f"<h2>Anomalies against the metric history</h2>{_anomalies(report)}"
            f"<h2>Quality gates</h2>{_gates(report)}"
            f"<h2>Drift</h2>{_drift(report)}"
            f"<h2>Stage times</h2>{_stage_times(report)}{_other(report)}</body></html>")


def index_html(nights: Mapping[str, Mapping[str, Any]]) -> str:
    """The list of nights, newest first: ``nights`` maps a date to its status, headline figures and page href."""
    rows = []
    for d in sorted(nights, reverse=True):
        n = nights[d]
        ctr = "n/a" if n.get("ctr") is None else f"{n['ctr']:.2%}"
        rows.append(f"<tr><td><a href='{esc(n['page'])}'>{esc(d)}</a></td><td>{badge(n['status'])}</td>"
                    f"<td class='n'>{fmt(n.get('impressions'))}</td><td class='n'>{ctr}</td>"
                    f"<td class='n'>{n.get('flags', 0)}</td><td class='n'>{n.get('drifted', 0)}</td>"
                    f"<td>{esc(n.get('note', ''))}</td></tr>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Nights</title><style>{CSS}</style></head>"
            "<body><h1>Nights</h1><table><tr><th>night</th><th>status</th><th>impressions landed</th><th>CTR</th>"
            "<th>anomaly flags</th><th>drifted features</th><th>note</th></tr>" + "".join(rows)
            + "</table></body></html>")
