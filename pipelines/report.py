"""The run report of CONTRACT section 4: counts, their balance, and a readable funnel."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

IMPRESSION_OUTCOMES = ["impressions_malformed", "impressions_duplicate", "impressions_bot_declared",
                       "impressions_bot_behavioural", "impressions_valid"]
CLICK_OUTCOMES = ["clicks_malformed", "clicks_duplicate", "clicks_orphan", "clicks_invalid_dwell",
                  "clicks_invalid_time", "clicks_out_of_window", "clicks_on_bot_traffic", "clicks_repeat",
                  "clicks_attributed"]
CONTRACT_KEYS = (["impressions_raw"] + IMPRESSION_OUTCOMES + ["impressions_measured", "impressions_viewable",
                                                              "clicks_raw"] + CLICK_OUTCOMES
                 + ["impressions_clicked"])
CLICK_FATE_KEY = {"orphan": "clicks_orphan", "invalid_dwell": "clicks_invalid_dwell",
                  "invalid_time": "clicks_invalid_time", "out_of_window": "clicks_out_of_window",
                  "on_bot_traffic": "clicks_on_bot_traffic", "repeat": "clicks_repeat",
                  "attributed": "clicks_attributed", "duplicate": "clicks_duplicate"}


def contract_counts(impression_fates: Mapping[str, int], click_fates: Mapping[str, int], malformed: Mapping[str, int],
                    measured: int, viewable: int, clicked: int) -> dict[str, int]:
    """The contract's keys from per-fate counts of one arrival date's records."""
    counts = {k: 0 for k in CONTRACT_KEYS}
    counts["impressions_malformed"] = int(malformed.get("impressions", 0))
    counts["clicks_malformed"] = int(malformed.get("clicks", 0))
    for fate, n in impression_fates.items():
        counts[f"impressions_{fate}"] += int(n)
    for fate, n in click_fates.items():
        counts[CLICK_FATE_KEY[fate]] += int(n)
    counts["impressions_raw"] = sum(counts[k] for k in IMPRESSION_OUTCOMES)
    counts["clicks_raw"] = sum(counts[k] for k in CLICK_OUTCOMES)
    counts.update(impressions_measured=int(measured), impressions_viewable=int(viewable),
                  impressions_clicked=int(clicked))
    return counts


def balance_errors(report: Mapping[str, Any], sources: Mapping[str, Mapping[str, int]]) -> list[str]:
    """Every way the counts fail to add up; empty when the report balances.

    ``sources`` holds record counts taken independently of the decisions, by
    what counted them (for example ``{"ingest read": {...}, "bronze + quarantine
    hold": {...}}``), so a record lost or doubled between stages shows here.
    """
    errors = []
    for stream, outcomes in (("impressions", IMPRESSION_OUTCOMES), ("clicks", CLICK_OUTCOMES)):
        total = sum(report[k] for k in outcomes)
        if total != report[f"{stream}_raw"]:
            errors.append(f"{stream}_raw = {report[f'{stream}_raw']} but its outcomes add up to {total}")
        for source, counts in sources.items():
            if stream in counts and counts[stream] != report[f"{stream}_raw"]:
                errors.append(f"{source} {counts[stream]} {stream} lines but the report accounts for "
                              f"{report[f'{stream}_raw']}")
    if not report["impressions_viewable"] <= report["impressions_measured"] <= report["impressions_valid"]:
        errors.append("expected impressions_viewable <= impressions_measured <= impressions_valid")
    return errors


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:5.1f}%" if whole else "    -"


def funnel_lines(r: Mapping[str, Any]) -> list[str]:
    """A short human-readable funnel for the log and the summary page."""
    imp_raw, clk_raw = r["impressions_raw"], r["clicks_raw"]
    lines = [
        f"impressions landed   {imp_raw:>12,}",
        *[f"  - {k[len('impressions_'):]:<18}{r[k]:>12,}  {_pct(r[k], imp_raw)}" for k in IMPRESSION_OUTCOMES[:-1]],
        f"  = valid             {r['impressions_valid']:>12,}  {_pct(r['impressions_valid'], imp_raw)}",
        f"    measured          {r['impressions_measured']:>12,}  "
        f"{_pct(r['impressions_measured'], r['impressions_valid'])} of valid",
        f"    viewable          {r['impressions_viewable']:>12,}  "
        f"{_pct(r['impressions_viewable'], r['impressions_measured'])} of measured",
        f"    clicked           {r['impressions_clicked']:>12,}  "
        f"{_pct(r['impressions_clicked'], r['impressions_valid'])} CTR so far",
        f"clicks landed        {clk_raw:>12,}",
        *[f"  - {k[len('clicks_'):]:<18}{r[k]:>12,}  {_pct(r[k], clk_raw)}" for k in CLICK_OUTCOMES[:-1]],
        f"  = attributed        {r['clicks_attributed']:>12,}  {_pct(r['clicks_attributed'], clk_raw)}",
    ]
    resolved = r.get("orphans_resolved") or {}
    if resolved:
        lines.append("orphans resolved     " + ", ".join(f"{k} {v:,}" for k, v in sorted(resolved.items())))
    closed = r.get("closed_day")
    if closed:
        lines.append(f"labels closed for {closed['event_date']}: {closed['impressions']:,} impressions, "
                     f"{closed['clicked']:,} clicked ({_pct(closed['clicked'], closed['impressions']).strip()})"
                     f", {closed['reclassified_bot_behavioural']:,} reclassified as behavioural bots")
    conv = r.get("closed_conversions")
    if conv:
        lines.append(f"conversion labels closed for {conv['event_date']}: {conv['converted']:,} of "
                     f"{conv['impressions']:,} impressions converted")
    return lines
