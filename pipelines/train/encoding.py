"""Category vocabularies: fitted on the train split only, stored inside the model, applied to raw values.

A categorical feature arrives raw: a string, or an integer such as a 64-bit hashed id.
Its vocabulary maps each value seen at least ``min_count`` times in the train split to
a code 1..n (most frequent first, ties by value, at most ``max_size`` codes); every
other value - rare, first seen after the train window, or null - is code 0. The
vocabulary travels inside the logged model (``CtrModel.vocabulary``), so a model scores
raw values the same way whatever vocabulary a later training set was built with.

Values are compared as text, the same on both paths: Spark's ``cast("string")`` in
training and ``_as_text`` in pandas at scoring (an integer is its decimal digits,
a boolean ``true``/``false``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, ByteType, IntegerType, LongType, ShortType, StringType

ENCODABLE = (StringType, ByteType, ShortType, IntegerType, LongType, BooleanType)
UNKNOWN = 0


class NotEncodable(ValueError):
    """A categorical column whose type has no stable text form (floats, dates, nested types)."""


def check_encodable(df: DataFrame, columns: tuple[str, ...]) -> None:
    """Raise NotEncodable naming the first categorical column of a type the vocabulary cannot hold."""
    types = {f.name: f.dataType for f in df.schema.fields}
    for c in columns:
        if not isinstance(types[c], ENCODABLE):
            raise NotEncodable(
                f"categorical column {c!r} is {types[c].simpleString()}; a category must be a string, integer or "
                f"boolean: cast it (or bucket it) in the table, or list it under train.numeric_features")


@dataclass(frozen=True)
class Vocabulary:
    """Per column: raw value (as text) -> code 1..n; anything else is 0."""
    codes: dict[str, dict[str, int]] = field(default_factory=dict)
    min_count: int = 1

    def size(self, column: str) -> int:
        return len(self.codes.get(column, {}))

    def encode_pandas(self, pdf: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``pdf`` whose vocabulary columns hold int64 codes."""
        out = pdf.copy()
        for c, table in self.codes.items():
            if c in out.columns:
                out[c] = _as_text(out[c]).map(table).fillna(UNKNOWN).astype(np.int64)
        return out


def _as_text(values: pd.Series) -> pd.Series:
    """Each value as Spark's cast to string would write it; null stays null (object dtype)."""
    present = values.notna()
    if pd.api.types.is_bool_dtype(values):
        text = values.map({True: "true", False: "false"})
    elif pd.api.types.is_integer_dtype(values):
        text = values.astype("Int64").astype("string")
    elif pd.api.types.is_float_dtype(values) and (values[present] == np.floor(values[present])).all():
        # An integer column with nulls arrives as float64 from Arrow/pandas: 7.0 is the category "7".
        text = values.astype("Int64").astype("string")
    else:
        text = values.map(lambda v: "true" if v is True else "false" if v is False else str(v))
    return text.astype(object).where(present, None)


def fit(train_rows: DataFrame, columns: tuple[str, ...], min_count: int, max_size: int) -> Vocabulary:
    """Count every value of ``columns`` in the train rows (one aggregation) and keep the frequent ones.

    The driver receives at most ``max_size`` values per column.
    """
    if not columns:
        return Vocabulary({}, min_count)
    pairs = F.array(*[F.struct(F.lit(c).alias("column"), F.col(c).cast("string").alias("value")) for c in columns])
    counts = (train_rows.select(F.explode(pairs).alias("p")).select("p.*").where(F.col("value").isNotNull())
              .groupBy("column", "value").agg(F.count(F.lit(1)).alias("n"))
              .where(F.col("n") >= F.lit(min_count)))
    order = Window.partitionBy("column").orderBy(F.col("n").desc(), F.col("value").asc())
    ranked = counts.withColumn("code", F.row_number().over(order)).where(F.col("code") <= F.lit(max_size))
    codes: dict[str, dict[str, int]] = {c: {} for c in columns}
    for r in ranked.select("column", "value", "code").collect():
        codes[r["column"]][r["value"]] = int(r["code"])
    return Vocabulary(codes, min_count)


def encode(df: DataFrame, vocab: Vocabulary) -> DataFrame:
    """``df`` with each vocabulary column replaced by its int code (0 unknown), same column order.

    One broadcast join per column against the (small) vocabulary; never multiplies rows,
    since a value has one code.
    """
    if not vocab.codes:
        return df
    spark = df.sparkSession
    rows = [(c, v, code) for c, table in vocab.codes.items() for v, code in table.items()]
    table = spark.createDataFrame(rows, "column string, value string, code int")
    out = df
    for c in vocab.codes:
        codes = table.where(F.col("column") == c).select(F.col("value").alias(f"__v_{c}"),
                                                         F.col("code").alias(f"__code_{c}"))
        out = out.join(F.broadcast(codes), on=F.col(c).cast("string") == F.col(f"__v_{c}"), how="left")
    return out.select(*[F.coalesce(F.col(f"__code_{c}"), F.lit(UNKNOWN)).cast("int").alias(c) if c in vocab.codes
                        else F.col(c) for c in df.columns])
