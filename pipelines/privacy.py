"""No raw IP or user agent leaves bronze (CONTRACT section 5).

Silver keeps a truncated IP (/24 for IPv4, /48 for IPv6) and, when a key is
configured, a keyed hash of the user agent; the bot verdict is kept beside them.
"""
from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def truncate_ip(ip: Column) -> Column:
    """'203.0.113.77' -> '203.0.113.0/24'; '2001:db8:a:b::1' -> '2001:db8:a::/48'; else null."""
    v4 = ip.rlike(r"^\d{1,3}(\.\d{1,3}){3}$")
    v4_prefix = F.concat(F.regexp_extract(ip, r"^(\d{1,3}\.\d{1,3}\.\d{1,3})\.", 1), F.lit(".0/24"))
    is_v6 = ip.contains(":") & ip.rlike(r"^[0-9A-Fa-f:.]+$")
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


def keyed_hash(value: Column, key: str | None) -> Column:
    """HMAC-style SHA-256 of a value under a secret key; null when no key is configured."""
    if not key:
        return F.lit(None).cast("string")
    return F.when(value.isNotNull(), F.sha2(F.concat(F.lit(key), F.lit("\x00"), value), 256))
