"""No raw IP or user agent leaves bronze (CONTRACT section 5).

Silver keeps a truncated IP (/24 for IPv4, /48 for IPv6) and, when a key is
configured, a keyed hash of the user agent; the bot verdict is kept beside them.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def truncate_ip(ip: Column) -> Column:
    """'203.0.113.77' -> '203.0.113.0/24'; '2001:db8:a:b::1' -> '2001:db8:a::/48'; else null."""
    v4 = ip.rlike(r"^\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?$")  # a ":port" suffix is dropped with the host
    v4_prefix = F.concat(F.regexp_extract(ip, r"^(\d{1,3}\.\d{1,3}\.\d{1,3})\.", 1), F.lit(".0/24"))
    # Hex groups of 1-4 digits, at most one "::", at most 8 groups: anything else
    # (an IPv4 with a port, garbage) gives null rather than a leaky "prefix".
    group = "[0-9A-Fa-f]{1,4}"
    full = rf"^({group}:){{7}}{group}$"
    compressed = rf"^(({group}:){{0,6}}{group})?::(({group}:){{0,6}}{group})?$"
    is_v6 = (ip.rlike(full) | ip.rlike(compressed)) & (F.size(F.split(ip, ":")) <= 9)
    # Expand '::' so the first three groups are the real /48 prefix.
    halves = F.split(F.lower(ip), "::", 2)
    left = F.filter(F.split(F.element_at(halves, 1), ":"), lambda g: g != "")
    right = F.when(F.size(halves) > 1, F.filter(F.split(F.element_at(halves, 2), ":"), lambda g: g != "")) \
        .otherwise(F.array().cast("array<string>"))
    missing = F.greatest(F.lit(0), 8 - F.size(left) - F.size(right))
    groups = F.concat(left, F.array_repeat(F.lit("0"), missing), right)
    head = F.slice(groups, 1, 3)
    v6_prefix = F.concat(F.array_join(F.transform(head, lambda g: F.regexp_replace(g, "^0+(?=.)", "")), ":"),
                         F.lit("::/48"))
    return F.when(v4, v4_prefix).when(is_v6 & (F.size(head) == 3), v6_prefix)


KEY_COLUMN = "__hash_key"


def with_hash_key(df: DataFrame, key: str | None) -> DataFrame:
    """Attach the secret key as a broadcast one-row column.

    As data rather than a literal, the key never appears in query plans, the
    Spark UI or event logs (a plan shows ``LocalTableScan [__hash_key]``, not its value).
    """
    key_df = df.sparkSession.createDataFrame([(key,)], f"{KEY_COLUMN} string")
    return df.crossJoin(F.broadcast(key_df))


def keyed_hash(value: Column, key: Column) -> Column:
    """SHA-256 of key || 0x00 || value; null when the value or the key is null."""
    return F.when(value.isNotNull() & key.isNotNull(), F.sha2(F.concat(key, F.lit("\x00"), value), 256))
