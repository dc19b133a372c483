"""The feature catalog: one row per declared feature, rendered as Markdown and as a self-contained HTML page.

Pure: the stage (jobs/stages/catalog.py) gathers the figures - first snapshot with
data, null and default shares in the last training set, importance and ablation
value in the champion's run - and hands them in as plain dicts.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date

from pipelines.declarations import SAME_DAY, SOURCES, SUM_SOURCE, Declarations


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    owner: str
    since: date
    entity: str           # group (key columns), or "context"
    operation: str        # e.g. "rate of clicks (viewable)"
    window: str           # "7 d", "longest window", "same day", "-"
    source: str
    type: str
    first_data: date | None
    null_share: float | None
    default_share: float | None
    importance: float | None       # share of the champion's total importance
    ablations: tuple[tuple[str, float], ...]   # (ablation without it, its NE minus the full model's)


def entries(decl: Declarations, first_data: dict[str, date], shares: dict[str, tuple[float, float | None]],
            importance: dict[str, float], ablation_value: dict[str, list[tuple[str, float]]]) -> list[Entry]:
    """Every declared feature, in the training set's order of groups, with what is known of it.

    ``first_data``: group -> first as-of day whose snapshot holds a key of it; ``shares``:
    feature -> (null share, default share) in the last training set; ``importance``:
    feature -> raw importance in the champion (normalised here to shares of the total);
    ``ablation_value``: feature -> [(ablation that left it out, NE change)].
    """
    total = sum(importance.values()) or 1.0
    out = []
    for g in decl.groups:
        keys = f"{g.name} ({' x '.join(g.keys)})"
        for a in g.aggregations:
            operation = f"{a.op} of {a.input}" + (f" ({a.filter})" if a.filter else "")
            for name in a.names:
                window = (f"{next(w for w, n in a.windows.items() if n == name)} d" if a.windows else
                          "same day" if (a.op, a.input, a.filter) in SAME_DAY else "longest window")
                null, default = shares.get(name, (None, None))
                source = SUM_SOURCE if a.op == "sum" else SOURCES[a.input]
                out.append(Entry(name, a.description, g.owner, a.since or g.since, keys, operation, window,
                                 source, "double", first_data.get(g.name), null, default,
                                 importance.get(name, 0.0) / total if importance else None,
                                 tuple(ablation_value.get(name, ()))))
    for c in decl.context:
        null, default = shares.get(c.name, (None, None))
        out.append(Entry(c.name, c.description, c.owner, c.since, "context", f"{c.op} of {c.input}", "-",
                         SOURCES[c.input], "double", None, null, default,
                         importance.get(c.name, 0.0) / total if importance else None,
                         tuple(ablation_value.get(c.name, ()))))
    return out


def _share(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _ablations(e: Entry) -> str:
    return ", ".join(f"{name} {delta:+.4f}" for name, delta in e.ablations) or "-"


COLUMNS = ("feature", "description", "entity", "operation", "window", "source", "type", "owner", "since",
           "first data", "null", "default", "importance", "NE without it")


def _cells(e: Entry) -> list[str]:
    return [e.name, e.description, e.entity, e.operation, e.window, e.source, e.type, e.owner, str(e.since),
            str(e.first_data or "-"), _share(e.null_share), _share(e.default_share), _share(e.importance),
            _ablations(e)]


def markdown(rows: list[Entry], about: list[str]) -> str:
    """The catalog as a Markdown page: what it was built from, then one table row per feature."""
    lines = ["# Feature catalog", "", *[f"- {a}" for a in about], "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(e)) + " |" for e in rows]
    return "\n".join(lines) + "\n"


STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;
vertical-align:top}th{background:#f3f3f3;position:sticky;top:0}td.n{text-align:right;white-space:nowrap}
code{font-size:13px}td.d{min-width:18em}td.w{white-space:nowrap}.bar{background:#4a7bd0;height:10px;display:inline-block;vertical-align:middle;margin-right:4px}
tr:hover td{background:#fafaf0}.muted{color:#777}"""


def html_page(rows: list[Entry], about: list[str]) -> str:
    """The catalog as one HTML page with inline CSS and CSS bars: readable offline, no external asset."""
    top = max((e.importance or 0.0 for e in rows), default=0.0) or 1.0
    body = []
    for e in rows:
        c = [html.escape(x) for x in _cells(e)]
        bar = (f'<span class="bar" style="width:{80 * (e.importance or 0) / top:.0f}px"></span>'
               if e.importance is not None else "")
        body.append(f"<tr><td class=w><code>{c[0]}</code></td><td class=d>{c[1]}</td><td>{c[2]}</td><td>{c[3]}</td>"
                    f"<td class=w>{c[4]}</td><td class=muted>{c[5]}</td><td>{c[6]}</td><td>{c[7]}</td>"
                    f"<td class=w>{c[8]}</td><td class=w>{c[9]}</td><td class=n>{c[10]}</td><td class=n>{c[11]}</td>"
                    f"<td class=n>{bar}{c[12]}</td><td class=w>{c[13]}</td></tr>")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    items = "".join(f"<li>{html.escape(a)}</li>" for a in about)
    return (f"<!doctype html><html><head><meta charset=utf-8><title>Feature catalog</title><style>{STYLE}</style>"
            f"</head><body><h1>Feature catalog</h1><ul>{items}</ul><table><thead><tr>{head}</tr></thead><tbody>"
            + "\n".join(body) + "</tbody></table></body></html>\n")
