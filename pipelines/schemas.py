"""The record types of shared/CONTRACT.md section 2, as data.

Each stream names its fields, each field its kind and whether the contract
requires it. Kinds: string, int, number, bool, timestamp, date. ``domain`` is a
SQL predicate over the typed column (``{c}``) that a present value must satisfy.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    required: bool = False
    domain: str | None = None


@dataclass(frozen=True)
class StreamSpec:
    name: str
    fields: tuple[Field, ...]
    id_field: str
    event_time: bool  # event streams carry event_ts and its plausibility check

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]


def _f(name: str, kind: str = "string", required: bool = False, domain: str | None = None) -> Field:
    return Field(name, kind, required, domain)


IMPRESSIONS = StreamSpec("impressions", (
    _f("impression_id", required=True),
    _f("event_ts", "timestamp", required=True),
    _f("user_id", required=True),
    _f("ad_id", required=True),
    _f("publisher_id", required=True),
    _f("position", "int", domain="{c} >= 1"),
    _f("device_type"),
    _f("country"),
    _f("user_agent"),
    _f("ip"),
    _f("viewable_pct", "number", domain="{c} BETWEEN 0 AND 100"),
    _f("in_view_ms", "int", domain="{c} >= 0"),
    _f("is_exploration", "bool"),
), id_field="impression_id", event_time=True)

CLICKS = StreamSpec("clicks", (
    _f("click_id", required=True),
    _f("impression_id", required=True),
    _f("event_ts", "timestamp", required=True),
    _f("user_id", required=True),
    _f("user_agent"),
    _f("ip"),
    _f("dwell_ms", "int", domain="{c} >= 0"),
), id_field="click_id", event_time=True)

CONVERSIONS = StreamSpec("conversions", (
    _f("conversion_id", required=True),
    _f("event_ts", "timestamp", required=True),
    _f("user_id", required=True),
    _f("ad_id", required=True),
    _f("click_id"),
    _f("value", "number"),
    _f("type"),
), id_field="conversion_id", event_time=True)

USERS = StreamSpec("users", (
    _f("user_id", required=True),
    _f("segment"),
    _f("device_type"),
    _f("geo"),
    _f("created_at", "timestamp"),
), id_field="user_id", event_time=False)

ADS = StreamSpec("ads", (
    _f("ad_id", required=True),
    _f("campaign_id"),
    _f("creative_type", domain="{c} IN ('banner', 'video', 'native')"),
    _f("category"),
), id_field="ad_id", event_time=False)

CAMPAIGNS = StreamSpec("campaigns", (
    _f("campaign_id", required=True),
    _f("advertiser_id"),
    _f("objective"),
    _f("budget", "number", domain="{c} >= 0"),
    _f("start_date", "date"),
    _f("end_date", "date"),
), id_field="campaign_id", event_time=False)

PUBLISHERS = StreamSpec("publishers", (
    _f("publisher_id", required=True),
    _f("name"),
    _f("category"),
    _f("domain"),
), id_field="publisher_id", event_time=False)

EVENT_STREAMS = (IMPRESSIONS, CLICKS, CONVERSIONS)
DIM_STREAMS = (USERS, ADS, CAMPAIGNS, PUBLISHERS)
ALL_STREAMS = {s.name: s for s in EVENT_STREAMS + DIM_STREAMS}
