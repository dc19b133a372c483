"""Deterministic randomness as Spark columns.

Every draw is a hash of (seed, salt, row keys), never ``rand()``: the same seed
gives the same data however Spark partitions the work, on a laptop or a cluster.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

_BITS = 53
_MASK = (1 << _BITS) - 1


def uniform(seed: int, salt: str, *keys: Column | str) -> Column:
    """A uniform draw in [0, 1) fixed by seed, salt and the row's keys."""
    h = F.xxhash64(F.lit(seed), F.lit(salt), *keys)
    return h.bitwiseAND(F.lit(_MASK)).cast("double") / float(1 << _BITS)


def normal(seed: int, salt: str, *keys: Column | str) -> Column:
    """A standard normal draw (Box-Muller on two hashed uniforms)."""
    u1 = uniform(seed, salt + ":1", *keys)
    u2 = uniform(seed, salt + ":2", *keys)
    return F.sqrt(-2.0 * F.log(1.0 - u1)) * F.cos(2.0 * math.pi * u2)


def pick(u: Column, values: Sequence, weights: Sequence[float]) -> Column:
    """The value whose cumulative-weight bucket holds ``u``."""
    total = float(sum(weights))
    expr = None
    cumulative = 0.0
    for value, weight in zip(values[:-1], weights[:-1]):
        cumulative += weight / total
        expr = F.when(u < cumulative, F.lit(value)) if expr is None else expr.when(u < cumulative, F.lit(value))
    last = F.lit(values[-1])
    return last if expr is None else expr.otherwise(last)


def index(u: Column, n: int | Column, skew: float = 1.0) -> Column:
    """An integer in [0, n); skew > 1 makes low indexes (hot keys) much more likely."""
    return F.least(F.floor(F.pow(u, F.lit(skew)) * n), F.lit(n) - 1 if isinstance(n, int) else n - 1).cast("long")


def sigmoid(x: Column) -> Column:
    return 1.0 / (1.0 + F.exp(-x))
