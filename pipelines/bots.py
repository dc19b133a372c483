"""Invalid traffic: declared bots (GIVT) and behavioural bots (SIVT)."""
from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def matched_bot_pattern(user_agent: Column, patterns: Sequence[str]) -> Column:
    """The first configured pattern found (case-insensitively) in the user agent, or null.

    Patterns are plain substrings, so a list of thousands (an IAB-style list)
    needs no regex escaping; a null user agent matches nothing.
    """
    lowered = F.lower(user_agent)
    hits = F.filter(F.array(*[F.lit(p.lower()) for p in patterns]), lambda p: F.instr(lowered, p) > 0)
    return F.when(F.size(hits) > 0, F.element_at(hits, 1))


def behavioural_bot_user_days(impressions: DataFrame, clicks: DataFrame, max_impressions: int,
                              max_clicks: int) -> DataFrame:
    """User-days over the daily impression or click limit.

    In: impressions and clicks, each with user_id and event_date (duplicates and
    malformed records already removed). Out: user_id, event_date, impressions,
    clicks, sivt_reason - one row per user-day over a limit.
    """
    counts = (impressions.select("user_id", "event_date", F.lit(1).alias("i"), F.lit(0).alias("c"))
              .unionByName(clicks.select("user_id", "event_date", F.lit(0).alias("i"), F.lit(1).alias("c")))
              .groupBy("user_id", "event_date")
              .agg(F.sum("i").alias("impressions"), F.sum("c").alias("clicks")))
    over_impressions = F.col("impressions") > max_impressions
    over_clicks = F.col("clicks") > max_clicks
    reason = (F.when(over_impressions, F.format_string("%d impressions > %d", "impressions", F.lit(max_impressions)))
              .when(over_clicks, F.format_string("%d clicks > %d", "clicks", F.lit(max_clicks))))
    return counts.where(over_impressions | over_clicks).select(
        "user_id", "event_date", "impressions", "clicks", reason.alias("sivt_reason"))


def counted_events(events: DataFrame, is_duplicate: Column) -> DataFrame:
    """The events a user-day's counts include: everything that landed but duplicates (declared-bot
    traffic counts too: a user is judged on all its traffic). Out: user_id, event_date."""
    return events.where(~is_duplicate).select("user_id", "event_date")


def bot_user_days_among(judged: DataFrame, impressions: DataFrame, clicks: DataFrame, max_impressions: int,
                        max_clicks: int) -> DataFrame:
    """behavioural_bot_user_days for the user-days in ``judged`` only (user_id, event_date), counted over the
    given events (counted_events of everything known), so a night judges just the user-days it touched."""
    keys = ["user_id", "event_date"]
    return behavioural_bot_user_days(impressions.join(judged, keys, "left_semi"),
                                     clicks.join(judged, keys, "left_semi"), max_impressions, max_clicks)
