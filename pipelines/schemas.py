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


# The tables this pipeline writes with a fixed schema: path under the warehouse -> Spark DDL, in column
# order. The one source: the stages create their tables from it, the transforms' outputs are checked
# against it and expectations/*.json column lists are tested against it (tests/test_schemas.py).
# Bronze tables are each stream's contract fields (above) followed by BRONZE_PROVENANCE.
BRONZE_PROVENANCE = ("extra", "_source_file", "_line_hash", "_ingested_at", "hour", "dt")
QUARANTINE_COLUMNS = ("stream", "record_id", "reason", "detail", "raw_line", "source_file", "_ingested_at", "hour",
                      "dt")
TABLES = {
    "silver/impressions": (
        "impression_id string, event_ts timestamp, event_date date, user_id string, ad_id string, "
        "publisher_id string, position int, device_type string, country string, ip_prefix string, "
        "ua_hash string, bot_pattern string, is_exploration boolean, viewable_pct double, "
        "in_view_ms int, creative_type string, is_measured boolean, is_viewable boolean, "
        "fate string, fate_detail string, dt date"),
    "silver/clicks": (
        "click_id string, impression_id string, event_ts timestamp, event_date date, user_id string, "
        "dwell_ms int, ip_prefix string, ua_hash string, bot_pattern string, imp_event_ts timestamp, "
        "delay_s double, fate string, fate_detail string, dt date"),
    "silver/click_resolutions": (
        "click_id string, impression_id string, event_ts timestamp, event_date date, "
        "user_id string, dwell_ms int, ip_prefix string, ua_hash string, bot_pattern string, "
        "imp_event_ts timestamp, delay_s double, fate string, fate_detail string, "
        "orphan_dt date, dt date"),
    "silver/labels": (
        "impression_id string, event_ts timestamp, event_date date, user_id string, ad_id string, "
        "publisher_id string, position int, device_type string, country string, is_exploration boolean, "
        "creative_type string, in_view_ms int, is_measured boolean, is_viewable boolean, clicked boolean, "
        "click_id string, click_ts timestamp, converted boolean, arrival_dt date, closed_on date"),
    "silver/conversion_labels": (
        "impression_id string, event_date date, converted boolean, conversion_ts timestamp, closed_on date"),
    "silver/conversions": (
        "conversion_id string, event_ts timestamp, user_id string, ad_id string, click_id string, "
        "value double, type string, attributed_click_id string, attributed_impression_id string, "
        "fate string, dt date"),
    "gold/entity_day": (
        "entity string, key string, impressions long, measured long, viewable long, clicks long, "
        "viewable_clicks long, clicks_after_day long, viewable_clicks_after_day long, "
        "last_impression_ts timestamp, last_click_ts timestamp, "
        "last_click_ts_in_day timestamp, users_sketch binary, event_date date"),
    "gold/conversion_day": "entity string, key string, conversions long, event_date date",
    # written by gold beside each snapshot: the fitted Beta prior per entity, rate and window
    "gold/priors": ("entity string, rate string, window_days int, keys bigint, mean double, strength double, "
                    "alpha double, beta double, as_of_date date"),
    "gold/score_monitoring": (
        "event_date date, rows long, unlabelled long, coverage double, clicks long, "
        "predicted_clicks double, log_loss double, ne double, calibration double, auc double, "
        "deciles string, model_name string, model_version string, reference_ne double, warnings string, "
        "evaluated_on date"),
}


def ddl(table: str) -> str:
    """The Spark DDL of a table of TABLES (``silver/labels``)."""
    return TABLES[table]


def columns(table: str) -> list[str]:
    """The column names of a table of TABLES, in order."""
    return ddl_names(TABLES[table])


def ddl_names(text: str) -> list[str]:
    """The column names of a Spark DDL string, in order; commas inside ``decimal(10,2)`` or
    ``map<string,string>`` do not separate columns."""
    return list(ddl_types(text))


def ddl_types(text: str) -> dict[str, str]:
    """Column name -> its type as written (``int``, ``decimal(10,2)``), in order."""
    out, depth, start = {}, 0, 0
    for i, ch in enumerate(text + ","):
        if ch in "(<":
            depth += 1
        elif ch in ")>":
            depth -= 1
        elif ch == "," and depth == 0:
            name, _, kind = text[start:i].strip().partition(" ")
            out[name] = kind.strip()
            start = i + 1
    return out


def bronze_columns(stream: str) -> list[str]:
    """The columns of bronze/<stream>: its contract fields, then BRONZE_PROVENANCE."""
    return [*ALL_STREAMS[stream].names, *BRONZE_PROVENANCE]
