"""Declared features: conf/features.yaml read, checked, and compiled into what gold and the training set compute.

A feature group is an entity (its key columns) and its aggregations; an aggregation is
an operation on an input, with an optional filter, over windows - each window's
feature named in the declaration itself, so grep finds every feature in conf:

    groups:
      user:
        keys: [user_id]
        description: ...
        owner: ...
        since: 2025-03-01
        aggregations:
          - {op: rate, input: clicks, windows: {1: f_user_ctr_1d, 7: f_user_ctr_7d}, description: ...}
          - {op: last_seen, input: clicks, name: f_user_hours_since_click, description: ...}
    context:
      f_hour: {op: hour_of_day, input: event_ts, description: ..., owner: ..., since: ...}

Gold builds every window from daily partials (pipelines/features.py), so an operation
is declarable only where those partials hold what it needs: OPERATIONS lists each
(op, input, filter) and the snapshot column it reads. Anything else is refused with
the feature's name, the file and the line, before Spark starts.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from pipelines import schemas

# (op, input, filter) -> snapshot column prefix (windowed ops: <prefix>_<w>d) or snapshot column
WINDOWED = {
    ("count", "impressions", None): "imps",
    ("count", "impressions", "measured"): "measured",
    ("count", "impressions", "viewable"): "viewable",
    ("count", "clicks", None): "clicks",
    ("count", "clicks", "viewable"): "viewable_clicks",
    ("count", "conversions", None): "conv",
    ("rate", "clicks", None): "ctr",            # clicks / impressions, Beta-smoothed
    ("rate", "clicks", "viewable"): "vctr",     # viewable clicks / viewable impressions, Beta-smoothed
    ("distinct_count", "user_id", None): "users",  # HLL sketches merged over the window
}
# sum: any numeric column of the labels (pipelines/schemas.py, silver/labels), with or without a filter; its daily
# partial is sum_<input>[_<filter>] and its windows sum_<input>[_<filter>]_<w>d (sum_column).
SUMMABLE = tuple(sorted(c for c, t in schemas.ddl_types(schemas.ddl("silver/labels")).items()
                        if t in ("int", "bigint", "long", "double", "float")))
LAST_SEEN = {("last_seen", "impressions", None): "last_impression_ts", ("last_seen", "clicks", None): "last_click_ts"}
SAME_DAY = {("same_day_count", "impressions", None): "impressions earlier on the row's own day"}
CONTEXT = {("value", "position"): "position", ("hour_of_day", "event_ts"): "event_ts"}
OPERATIONS = ("count", "sum", "rate", "distinct_count", "last_seen", "same_day_count")
INPUTS = ("impressions", "clicks", "conversions", "user_id")
FILTERS = ("viewable", "measured")
# Where each input's daily partials come from (the catalog's "source").
SUM_SOURCE = "gold/entity_day (silver/labels)"
SOURCES = {"impressions": "gold/entity_day (silver/labels)", "clicks": "gold/entity_day (silver/labels)",
           "user_id": "gold/entity_day (silver/labels, HLL sketch)",
           "conversions": "gold/conversion_day (silver/conversion_labels)",
           "position": "silver/labels", "event_ts": "silver/labels"}
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def sum_column(inp: str, flt: str | None) -> str:
    """The partial (and, with _<w>d, snapshot) column of a declared sum: sum_in_view_ms, sum_in_view_ms_viewable."""
    return f"sum_{inp}" + (f"_{flt}" if flt else "")


class DeclarationError(ValueError):
    """A declaration a user must fix; the message names the file, the line and the feature."""


@dataclass(frozen=True)
class Aggregation:
    op: str
    input: str
    filter: str | None
    windows: dict[int, str]      # window days -> feature name (windowed ops); empty otherwise
    name: str | None             # the one feature of last_seen / same_day_count
    description: str
    since: date | None           # when it is newer than its group
    line: int

    @property
    def names(self) -> list[str]:
        return [self.name] if self.name else [self.windows[w] for w in sorted(self.windows)]


@dataclass(frozen=True)
class FeatureGroup:
    name: str
    keys: tuple[str, ...]
    description: str
    owner: str
    since: date
    aggregations: tuple[Aggregation, ...]
    line: int

    @property
    def fingerprint(self) -> str:
        """What the group's stored data depends on, as a short hash: its keys, and whether its partials carry user
        sketches, and the sums its partials carry. Gold's partials and snapshots hold every count of a key whatever
        is declared, so a new count or rate of an existing group needs no backfill; new keys, a new distinct_count
        or a new sum do."""
        shape: dict[str, Any] = {"keys": list(self.keys),
                                 "users_sketch": any(a.op == "distinct_count" for a in self.aggregations)}
        if self.sums:   # only when declared: the groups without one keep the fingerprints they were stored with
            shape["sums"] = list(self.sums)
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def sums(self) -> tuple[str, ...]:
        """The daily partial columns of the group's declared sums (sum_<input>[_<filter>]), sorted."""
        return tuple(sorted({sum_column(a.input, a.filter) for a in self.aggregations if a.op == "sum"}))


@dataclass(frozen=True)
class ContextFeature:
    name: str
    op: str
    input: str
    description: str
    owner: str
    since: date
    line: int


@dataclass(frozen=True)
class Declarations:
    path: str
    groups: tuple[FeatureGroup, ...]
    context: tuple[ContextFeature, ...]


@dataclass(frozen=True)
class HistoryFeature:
    """One training column read from a group's snapshot: windowed (``window``) or a last-seen recency."""
    name: str
    group: str
    column: str            # the snapshot column (ctr_7d, last_click_ts)
    rate: str | None       # ctr | vctr: a key without history gets its prior mean
    window: int | None


# ---- reading, with line numbers ------------------------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    """A safe loader whose mappings remember the line of each key (as ``__lines__``)."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> dict:
    out = loader.construct_mapping(node, deep=True)
    out["__lines__"] = {loader.construct_object(k, deep=True): k.start_mark.line + 1 for k, _ in node.value}
    out["__line__"] = node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read(path: Path, windows_days: tuple[int, ...], key_columns: tuple[str, ...]) -> Declarations:
    """Read and check a declarations file; raises DeclarationError naming file, line and feature."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DeclarationError(f"cannot read feature declarations {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise DeclarationError(f"feature declarations {path} are not UTF-8 text") from None
    return loads(text, str(path), windows_days, key_columns)


def loads(text: str, path: str, windows_days: tuple[int, ...], key_columns: tuple[str, ...]) -> Declarations:
    """Check declarations given as YAML text (``path`` names them in errors)."""
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no Python tags
    except (yaml.YAMLError, ValueError, RecursionError) as err:
        raise DeclarationError(f"{path} is not valid YAML: {err}") from None
    return parse(data, path, windows_days, key_columns)


def parse(data: Any, path: str, windows_days: tuple[int, ...], key_columns: tuple[str, ...]) -> Declarations:
    """Check the declarations read from ``path`` against gold's windows and the entity key columns."""
    where = _Where(path)
    top = where.mapping(data, "top level", {"groups", "context"}, required={"groups"})
    groups_raw = where.mapping(top["groups"], "groups", None, line=where.line(top, "groups"))
    groups = tuple(_group(where, name, raw, windows_days, key_columns, where.line(groups_raw, name))
                   for name, raw in _items(groups_raw))
    where.check(bool(groups), where.line(top, "groups"), "groups", "declare at least one feature group")
    context_raw = where.mapping(top.get("context") or {}, "context", None, line=where.line(top, "context"))
    context = tuple(_context(where, name, raw, where.line(context_raw, name)) for name, raw in _items(context_raw))
    seen: dict[str, int] = {}
    for name, line in [(n, a.line) for g in groups for a in g.aggregations for n in a.names] + \
                      [(c.name, c.line) for c in context]:
        where.check(name not in seen, line, name, f"name clash: {name!r} is already declared on line {seen.get(name)}")
        seen[name] = line
    return Declarations(path, groups, context)


def _items(raw: dict) -> list[tuple[Any, Any]]:
    return [(k, v) for k, v in raw.items() if k not in ("__lines__", "__line__")]


class _Where:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, line: int | None, what: str, problem: str) -> None:
        at = f"{self.path}:{line}" if line else self.path
        raise DeclarationError(f"{at}: {what}: {problem}")

    def check(self, ok: bool, line: int | None, what: str, problem: str) -> None:
        if not ok:
            self.fail(line, what, problem)

    @staticmethod
    def line(raw: Any, key: str) -> int | None:
        return raw.get("__lines__", {}).get(key) if isinstance(raw, dict) else None

    def mapping(self, raw: Any, what: str, allowed: set[str] | None, required: set[str] = frozenset(),
                line: int | None = None) -> dict:
        self.check(isinstance(raw, dict), line, what, f"must be a mapping, got {type(raw).__name__}")
        keys = {k for k, _ in _items(raw)}
        if allowed is not None:
            for key in sorted(keys - allowed, key=str):
                self.fail(self.line(raw, key), what, f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
        for key in sorted(required - keys):
            self.fail(raw.get("__line__"), what, f"missing {key!r}")
        return raw

    def text(self, raw: dict, key: str, what: str) -> str:
        value = raw.get(key)
        self.check(isinstance(value, str) and bool(value.strip()), self.line(raw, key) or raw.get("__line__"), what,
                   f"{key} must be a non-empty text")
        return value.strip()

    def day(self, raw: dict, key: str, what: str) -> date:
        value = raw.get(key)
        self.check(isinstance(value, date), self.line(raw, key) or raw.get("__line__"), what,
                   f"{key} must be a date YYYY-MM-DD, got {value!r}")
        return value


def _group(where: _Where, name: Any, raw: Any, windows_days: tuple[int, ...], key_columns: tuple[str, ...],
           line: int | None) -> FeatureGroup:
    what = f"group {name}"
    where.check(isinstance(name, str) and bool(NAME.match(name)), line, what, "a group name is lower_snake_case")
    raw = where.mapping(raw, what, {"keys", "description", "owner", "since", "aggregations"},
                        required={"keys", "description", "owner", "since", "aggregations"}, line=line)
    keys = raw["keys"]
    where.check(isinstance(keys, list) and bool(keys) and len(set(map(str, keys))) == len(keys),
                where.line(raw, "keys"), what, "keys must be a list of distinct key columns")
    for key in keys:
        where.check(key in key_columns, where.line(raw, "keys"), what,
                    f"key {key!r} is not an entity key column (choose from {', '.join(key_columns)})")
    aggs_raw = raw["aggregations"]
    where.check(isinstance(aggs_raw, list) and bool(aggs_raw), where.line(raw, "aggregations"), what,
                "aggregations must be a non-empty list")
    aggs = tuple(_aggregation(where, name, i + 1, tuple(keys), a, windows_days, where.line(raw, "aggregations"))
                 for i, a in enumerate(aggs_raw))
    return FeatureGroup(name, tuple(keys), where.text(raw, "description", what), where.text(raw, "owner", what),
                        where.day(raw, "since", what), aggs, line or raw["__line__"])


def _aggregation(where: _Where, group: str, number: int, keys: tuple[str, ...], raw: Any,
                 windows_days: tuple[int, ...], list_line: int | None) -> Aggregation:
    line = raw.get("__line__") if isinstance(raw, dict) else list_line
    raw = where.mapping(raw, f"group {group}, aggregation {number}",
                        {"op", "input", "filter", "windows", "name", "description", "since"},
                        required={"op", "input", "description"}, line=line)
    op, inp, flt = raw["op"], raw["input"], raw.get("filter")
    label = raw.get("name") or next((v for _, v in _items(raw.get("windows") or {})), None) or f"{op}({inp})"
    what = f"feature {label} (group {group})"
    where.check(op in OPERATIONS, line, what, f"unknown operation {op!r} (choose from {', '.join(OPERATIONS)})")
    if op == "sum":
        where.check(inp in SUMMABLE, line, what, f"unknown source column {inp!r}: sum takes a numeric column of "
                                                 f"silver/labels (choose from {', '.join(SUMMABLE)})")
    else:
        where.check(inp in INPUTS, line, what, f"unknown source column {inp!r} (choose from {', '.join(INPUTS)})")
    where.check(flt is None or flt in FILTERS, line, what,
                f"unknown filter {flt!r} (choose from {', '.join(FILTERS)}, or leave it out)")
    shape = (op, inp, flt)
    where.check(op == "sum" or shape in WINDOWED or shape in LAST_SEEN or shape in SAME_DAY, line, what,
                f"{op} of {inp}{f' ({flt})' if flt else ''} cannot be computed incrementally from gold's daily "
                f"partials (declarable: {_declarable()})")
    if shape == ("distinct_count", "user_id", None):
        where.check("user_id" not in keys, line, what, "a group keyed by user_id has one user per key: "
                                                       "distinct_count of user_id says nothing")
    if shape in SAME_DAY:
        # Behavioural-bot user-days leave the labels when they close, but a scorer counted their impressions:
        # only keys that hold the user lose exactly the rows they counted (docs/scoring.md).
        where.check("user_id" in keys, line, what, "same_day_count needs a group keyed by user_id: otherwise its "
                                                   "counts include behavioural-bot impressions at scoring and not "
                                                   "in training")
    description = where.text(raw, "description", what)
    since = where.day(raw, "since", what) if "since" in raw else None
    if op == "sum" or shape in WINDOWED:
        where.check("name" not in raw, line, what, "a windowed operation names one feature per window "
                                                   "(windows: {7: f_..._7d}), not name")
        windows = where.mapping(raw.get("windows"), f"{what}.windows", None, line=line)
        named: dict[int, str] = {}
        for w, name in _items(windows):
            at = where.line(windows, w) or line
            where.check(isinstance(w, int) and not isinstance(w, bool) and w >= 1, at, what,
                        f"window {w!r} must be a whole number of days")
            where.check(w <= max(windows_days), at, what,
                        f"window {w} d is longer than the {max(windows_days)} days of history gold keeps "
                        f"(the longest of gold.windows_days)")
            where.check(w in windows_days, at, what, f"window {w} d is not one gold computes "
                                                      f"(gold.windows_days: {list(windows_days)}); add it there")
            where.check(isinstance(name, str) and bool(NAME.match(name)), at, what,
                        f"feature name {name!r} must be lower_snake_case")
            named[w] = name
        where.check(bool(named), line, what, "windows must name at least one window")
        return Aggregation(op, inp, flt, named, None, description, since, line)
    where.check("windows" not in raw, line, what, f"{op} is not windowed: give it a name, not windows")
    name = raw.get("name")
    where.check(isinstance(name, str) and bool(NAME.match(name)), line, what,
                f"{op} needs name: a lower_snake_case feature name")
    return Aggregation(op, inp, flt, {}, name, description, since, line)


def _context(where: _Where, name: Any, raw: Any, line: int | None) -> ContextFeature:
    what = f"feature {name} (context)"
    where.check(isinstance(name, str) and bool(NAME.match(name)), line, what, "a feature name is lower_snake_case")
    raw = where.mapping(raw, what, {"op", "input", "description", "owner", "since"},
                        required={"op", "input", "description", "owner", "since"}, line=line)
    where.check((raw["op"], raw["input"]) in CONTEXT, line, what,
                f"unknown context feature {raw['op']} of {raw['input']} (declarable: "
                f"{', '.join(f'{o} of {i}' for o, i in CONTEXT)})")
    return ContextFeature(name, raw["op"], raw["input"], where.text(raw, "description", what),
                          where.text(raw, "owner", what), where.day(raw, "since", what), line or raw["__line__"])


def _declarable() -> str:
    shapes = [*WINDOWED, *LAST_SEEN, *SAME_DAY]
    return "; ".join(f"{op} of {inp}" + (f" ({flt})" if flt else "") for op, inp, flt in shapes) + \
        f"; sum of {' | '.join(SUMMABLE)} (any filter)"


def snapshot_prefix(a: Aggregation) -> str:
    """The snapshot column prefix of a windowed aggregation (its windows are <prefix>_<w>d)."""
    return sum_column(a.input, a.filter) if a.op == "sum" else WINDOWED[(a.op, a.input, a.filter)]


# ---- compiled: what gold and the training set compute ---------------------------------------------------------

def group_of(decl: Declarations, name: str) -> FeatureGroup | None:
    """The group named ``name``, or the group declaring the feature ``name``; None when neither."""
    return next((g for g in decl.groups if g.name == name or name in {n for a in g.aggregations for n in a.names}),
                None)


def entities(decl: Declarations) -> dict[str, tuple[str, ...]]:
    """Group name -> key columns: the entities gold keeps partials and snapshots of."""
    return {g.name: g.keys for g in decl.groups}


def distinct_users_for(decl: Declarations) -> tuple[str, ...]:
    """The groups whose partials carry an HLL sketch of their users (a distinct_count is declared)."""
    return tuple(g.name for g in decl.groups if any(a.op == "distinct_count" for a in g.aggregations))


def history_features(decl: Declarations) -> list[HistoryFeature]:
    """Every snapshot-read feature in training-set column order: per group, window by window, then recency."""
    out = []
    for g in decl.groups:
        windowed = [a for a in g.aggregations if a.windows]
        for w in sorted({w for a in windowed for w in a.windows}):
            for a in windowed:
                if w in a.windows:
                    prefix = snapshot_prefix(a)
                    out.append(HistoryFeature(a.windows[w], g.name, f"{prefix}_{w}d",
                                              prefix if a.op == "rate" else None, w))
        out += [HistoryFeature(a.name, g.name, LAST_SEEN[(a.op, a.input, a.filter)], None, None)
                for a in g.aggregations if a.op == "last_seen"]
    return out


def sums(decl: Declarations) -> dict[str, tuple[str, str | None, tuple[str, ...]]]:
    """Partial column of every declared sum (sum_column) -> (its input, its filter, the groups declaring it), the
    ``sums`` of pipelines/features.py."""
    out: dict[str, tuple[str, str | None, tuple[str, ...]]] = {}
    for g in decl.groups:
        for a in g.aggregations:
            if a.op == "sum":
                column = sum_column(a.input, a.filter)
                inp, flt, groups = out.get(column, (a.input, a.filter, ()))
                out[column] = (inp, flt, groups if g.name in groups else (*groups, g.name))
    return dict(sorted(out.items()))


def same_day_features(decl: Declarations) -> dict[str, str]:
    """Feature name -> group, for every same_day_count."""
    return {a.name: g.name for g in decl.groups for a in g.aggregations if a.op == "same_day_count"}


def trainer_mismatches(decl: Declarations, numeric_prefix: str, cross_marker: str, history_pattern: str) -> list[str]:
    """What the trainer would get wrong about the declared names (train.numeric_prefix, cross_marker,
    history_pattern: it picks features and forms ablations by name), one line per feature; empty when nothing."""
    history, out = re.compile(history_pattern), []
    for g in decl.groups:
        for a in g.aggregations:
            for name in a.names:
                at = f"{decl.path}:{a.line}: feature {name} (group {g.name})"
                if not name.startswith(numeric_prefix):
                    out.append(f"{at}: the name must start with train.numeric_prefix {numeric_prefix!r}, or the "
                               "trainer will not read it")
                if not history.search(name):
                    out.append(f"{at}: a history feature's name must match train.history_pattern "
                               f"{history_pattern!r} (e.g. end in _<w>d), or the ablations would count it as "
                               "contextual")
                if (cross_marker in name) != (len(g.keys) > 1):
                    out.append(f"{at}: the name must {'' if len(g.keys) > 1 else 'not '}contain train.cross_marker "
                               f"{cross_marker!r}: the group has {len(g.keys)} key column(s), and the entity_only "
                               "ablation tells cross-entity features by that marker")
    for c in decl.context:
        at = f"{decl.path}:{c.line}: feature {c.name} (context)"
        if not c.name.startswith(numeric_prefix):
            out.append(f"{at}: the name must start with train.numeric_prefix {numeric_prefix!r}")
        if history.search(c.name) or cross_marker in c.name:
            out.append(f"{at}: a contextual feature's name must neither match train.history_pattern "
                       f"{history_pattern!r} nor contain {cross_marker!r}")
    return out


def feature_columns(decl: Declarations) -> list[str]:
    """Every declared feature column, in the training set's order: history, context, same-day counts."""
    return [f.name for f in history_features(decl)] + [c.name for c in decl.context] + list(same_day_features(decl))
