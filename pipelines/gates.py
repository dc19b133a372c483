"""What each stage's quality gate checks: which suite guards which table, on which partition, against which volume
history, and what a failure rolls back with it.

The checks themselves are the suites, ``expectations/<suite>.json``; the one runner that
validates a plan and publishes or rolls back is ``jobs/runtime/quality.py:gate``. A stage
only asks here for its plan, records the versions before it writes
(``jobs/runtime/rollback.py:begin``) and hands the plan to the runner
(``jobs/runtime/quality.py:run_gate``). Tables are named by their path under the
warehouse (``silver/labels``), so this module knows no storage.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from pipelines.schemas import DIM_STREAMS, EVENT_STREAMS, TABLES


@dataclass(frozen=True)
class GatePlan:
    stage: str
    checked: Mapping[str, str]                  # suite -> table path under the warehouse
    partitions: Mapping[str, date] = field(default_factory=dict)   # suite -> partition checked (default: the date)
    unvalidated: Mapping[str, str] = field(default_factory=dict)   # written without a suite: rolled back with the rest
    volume_since: Mapping[str, date] = field(default_factory=dict)  # suite -> first partition comparable day over day
    report: bool = False                        # the run report is checked too (the run_report suite)


def ingest_gate() -> GatePlan:
    """Bronze events and the quarantine; the dimension snapshots have no suite but go back with them."""
    return GatePlan("ingest", {**{f"bronze_{s.name}": f"bronze/{s.name}" for s in EVENT_STREAMS},
                               "bronze_quarantine": "bronze/quarantine"},
                    unvalidated={f"bronze_{s.name}": f"bronze/{s.name}" for s in DIM_STREAMS})


def silver_gate(closed_event_day: date, closed_conversion_day: date) -> GatePlan:
    """Every silver table (the labels on the days this night closes) and the run report."""
    silver = [t for t in TABLES if t.startswith("silver/")]
    return GatePlan("silver", {f"silver_{t.removeprefix('silver/')}": t for t in silver},
                    partitions={"silver_labels": closed_event_day, "silver_conversion_labels": closed_conversion_day},
                    report=True)


_GOLD_CHECKED = {"gold_entity_day": "gold/entity_day", "gold_features": "gold/features"}
# The priors and conversion partials have no suite of their own (their inputs were gated in silver);
# a failed gate takes them back with the snapshot they belong to.
_GOLD_UNVALIDATED = {"gold_priors": "gold/priors", "gold_conversion_day": "gold/conversion_day"}


def gold_gate(event_day: date, first_partial_day: date | None, longest_window_days: int) -> GatePlan:
    """The closed day's partials and the snapshot as of the day after.

    A snapshot gains a day of history every night until its longest window is full, so its
    row count grows by design until then: only full snapshots (from the first partial day
    plus the longest window on) are compared day over day.
    """
    full_from = (first_partial_day or event_day) + timedelta(days=longest_window_days)
    return GatePlan("gold", _GOLD_CHECKED,
                    partitions={"gold_entity_day": event_day, "gold_features": event_day + timedelta(days=1)},
                    unvalidated=_GOLD_UNVALIDATED, volume_since={"gold_features": full_from})


def backfill_gate(event_day: date) -> GatePlan:
    """One backfilled day of a feature group: gold's checks on its partials and the snapshot after it, without the
    day-over-day volume comparison (the partition now holds another mix of groups)."""
    return GatePlan("backfill_feature", _GOLD_CHECKED,
                    partitions={"gold_entity_day": event_day, "gold_features": event_day + timedelta(days=1)},
                    unvalidated=_GOLD_UNVALIDATED, volume_since={name: date.max for name in _GOLD_CHECKED})


def training_set_gate(event_day: date) -> GatePlan:
    """One event day of a new training set (volumes undo the negative downsampling, in its suite)."""
    return GatePlan("training_set", {"gold_training_set": "gold/training_set"},
                    partitions={"gold_training_set": event_day})
