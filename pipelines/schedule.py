"""When the nightly job trains: the ``train.schedule`` setting and the date rule.

    off                 never (train by hand: jobs/training_set.py, then jobs/train.py)
    daily               every night
    weekly:<days>       nights whose date is one of these weekdays: weekly:sun, weekly:mon,thu

The date is the nightly run's ``--date`` (the arrival date), so a backfill trains
on exactly the nights a daily scheduler would have. Whether enough closed days
exist for the splits is a separate question (jobs/stages/nightly_training.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class TrainingSchedule:
    text: str                  # as written, normalised: off, daily, weekly:mon,thu
    weekdays: frozenset[int]   # date.weekday() of the nights that train; empty = off


def _weekday(name: str) -> int:
    key = name.strip().lower()
    for i, full in enumerate(DAY_NAMES):
        if key in (WEEKDAYS[i], full.lower()):
            return i
    raise ValueError(f"{name.strip()!r} is not a weekday (use {', '.join(WEEKDAYS)})")


def parse_schedule(text: str) -> TrainingSchedule:
    """``off``, ``daily`` or ``weekly:<day>[,<day>...]``; raises ValueError naming what is wrong."""
    value = text.strip().lower()
    if value == "off":
        return TrainingSchedule("off", frozenset())
    if value == "daily":
        return TrainingSchedule("daily", frozenset(range(7)))
    kind, sep, days = value.partition(":")
    if kind.strip() != "weekly":
        raise ValueError(f"{text!r} is not a schedule: use off, daily or weekly:<day> (e.g. weekly:sun)")
    if not sep or not days.strip():
        raise ValueError(f"{text!r} names no weekday: write weekly:<day>, e.g. weekly:sun or weekly:mon,thu")
    weekdays = frozenset(_weekday(d) for d in days.split(","))
    return TrainingSchedule("weekly:" + ",".join(WEEKDAYS[i] for i in sorted(weekdays)), weekdays)


def training_due(schedule: TrainingSchedule, day: date) -> bool:
    return day.weekday() in schedule.weekdays


def not_due_reason(schedule: TrainingSchedule, day: date) -> str:
    if not schedule.weekdays:
        return "train.schedule is off"
    return f"train.schedule is {schedule.text} and {day.isoformat()} is a {DAY_NAMES[day.weekday()]}"
