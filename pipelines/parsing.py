"""Raw landing lines -> typed bronze rows, or a quarantine reason.

One JSON parse per line (the line wrapped as ``{"v":<line>,"<sentinel>":{}}``,
into map<string,string> for ``v``, which keeps every key, known or not; only a
line whose wrapped form does not parse is parsed a second time, alone, to tell
"more after the object" from "not JSON"); types are then checked on the raw
text with built-ins. A line gets the
first reason that applies, in this order:

    truncated_file (a line of a compressed file cut short, or its unreadable
    rest), empty_line, line_too_long, invalid_utf8, invalid_json (including a
    JSON value that is not an object, duplicate keys, and anything after the
    object, such as a second record), missing_field (absent,
    null or empty required field), wrong_type, bad_timestamp (not RFC 3339),
    invalid_value (outside the contract's domain), timestamp_out_of_range
    (event_ts implausibly far from the arrival day).

Leniency the contract allows ("may accept more, never less"): a leading UTF-8
BOM is stripped; numbers and booleans given as JSON strings ("3", "true") are
accepted; ids given as JSON numbers are read as their text.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.config import IngestConfig
from pipelines.schemas import Field, StreamSpec

RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
INT_TEXT = r"^-?\d{1,18}$"
NUMBER_TEXT = r"^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$"
DATE_TEXT = r"^\d{4}-\d{2}-\d{2}$"
REPLACEMENT_CHAR = "\ufffd"  # what an upstream lossy decoder leaves where bytes were invalid


def parsed_map(value: Column) -> Column:
    """The line as map<string,string>, or null when it is not one JSON object."""
    return F.from_json(without_bom(value), "map<string,string>")


def without_bom(value: Column) -> Column:
    return F.regexp_replace(value, "^\ufeff", "")


# Spark's JSON reader stops after the first value and ignores what follows, so
# '{"id":"a"}{"id":"b"}' (two records without a newline) would parse as one.
# Wrapping the line as '{"v":<line>,"<sentinel>":{}}' makes trailing content a
# syntax error, or an extra key of the wrapper ('{"id":"a"},"b":{}'); a line that
# itself holds the sentinel could forge the ending.
LINE_END_SENTINEL = "__ctr_line_end__"


def wrapped_parse(value: Column) -> Column:
    """The wrapped line as map<string, map<string,string>>: exactly the keys ``v`` (the line as a map) and the
    sentinel when the line is one JSON object and nothing else; null or other keys otherwise."""
    return F.from_json(F.concat(F.lit('{"v":'), without_bom(value), F.lit(f',"{LINE_END_SENTINEL}":{{}}}}')),
                       "map<string,map<string,string>>")


def one_parse(value: Column, wrapped: Column) -> tuple[Column, Column]:
    """(the line as map<string,string> or null, whether the line holds more than one JSON value) from the wrapped
    parse; the line is parsed alone only where the wrapper does not hold exactly ``v`` and the sentinel (the
    rare broken line)."""
    ended = (F.coalesce(F.size(wrapped), F.lit(0)) == 2) & F.element_at(wrapped, F.lit(LINE_END_SENTINEL)).isNotNull()
    # ended with a null v: the line is JSON null, which parses alone to null too
    parsed = F.when(ended, F.element_at(wrapped, F.lit("v"))).otherwise(parsed_map(value))
    return parsed, ~ended | (F.instr(value, LINE_END_SENTINEL) > 0)


def has_duplicate_keys(m: Column) -> Column:
    return F.size(F.map_keys(m)) != F.size(F.array_distinct(F.map_keys(m)))


def raw_value(m: Column, name: str) -> Column:
    """A field's raw text; JSON null and absent both give null."""
    return F.element_at(m, F.lit(name))


def is_missing(raw: Column) -> Column:
    return raw.isNull() | (F.trim(raw) == "")


def is_wrong_type(raw: Column, kind: str) -> Column:
    present = raw.isNotNull()
    if kind == "string":
        bad = raw.rlike(r"^\s*[\{\[]")  # an object or array where text belongs
    elif kind == "int":
        bad = ~raw.rlike(INT_TEXT) | raw.try_cast("int").isNull()  # includes values past the int range
    elif kind == "number":
        bad = ~raw.rlike(NUMBER_TEXT)
    elif kind == "bool":
        bad = ~F.lower(raw).isin("true", "false")
    else:  # timestamps and dates are judged by is_bad_time
        bad = F.lit(False)
    return present & bad


def is_bad_time(raw: Column, kind: str) -> Column:
    if kind == "timestamp":
        ok = raw.rlike(RFC3339) & F.try_to_timestamp(F.upper(raw)).isNotNull()
    elif kind == "date":
        ok = raw.rlike(DATE_TEXT) & raw.try_cast("date").isNotNull()
    else:
        return F.lit(False)
    return raw.isNotNull() & ~ok


def typed(raw: Column, kind: str) -> Column:
    if kind == "int":
        return raw.try_cast("int")
    if kind == "number":
        return raw.try_cast("double")
    if kind == "bool":
        return F.lower(raw) == "true"
    if kind == "timestamp":
        return F.try_to_timestamp(F.upper(raw))  # RFC 3339 allows a lowercase "t" and "z"
    if kind == "date":
        return raw.try_cast("date")
    return raw


def _first_field(conditions: list[tuple[str, Column]]) -> Column:
    """Comma-separated names of the fields whose condition holds."""
    flagged = F.array(*[F.when(cond, F.lit(name)) for name, cond in conditions])
    return F.array_join(F.filter(flagged, lambda x: x.isNotNull()), ",")


def _any(conditions: list[tuple[str, Column]]) -> Column:
    result = F.lit(False)
    for _, cond in conditions:
        result = result | F.coalesce(cond, F.lit(False))
    return result


def _domain_violation(f: Field, value: Column) -> Column:
    if f.domain is None:
        return F.lit(False)
    return value.isNotNull() & ~F.coalesce(F.expr(f.domain.format(c=f"`__typed_{f.name}`")), F.lit(False))


def classify_lines(lines: DataFrame, spec: StreamSpec, cfg: IngestConfig) -> DataFrame:
    """Parse and judge landing lines.

    In: value (the raw line), source_file, dt (arrival date), hour (arrival hour),
    optionally file_error (why the line's file is refused as a whole).
    Out: dt, hour, source_file, raw_line, record_id, reason, detail, extra
    (unknown fields), and one typed column per field of ``spec``. ``reason`` is
    null for a well-formed record.
    """
    known = F.array(*[F.lit(n) for n in spec.names])
    # Parse once into a map (one_parse); __parsed is null for a line that is not a JSON object,
    # __m also for an object with a repeated key.
    df = lines.withColumn("__wrapped", wrapped_parse(F.col("value")))
    parsed, trailing = one_parse(F.col("value"), F.col("__wrapped"))
    df = df.withColumn("__parsed", parsed).withColumn(
        "__m", F.when(~has_duplicate_keys(F.col("__parsed")), F.col("__parsed"))).withColumn(
        "__trailing", F.col("__m").isNotNull() & trailing)
    raw = {f.name: raw_value(F.col("__m"), f.name) for f in spec.fields}
    df = df.select("*", *[typed(raw[f.name], f.kind).alias(f"__typed_{f.name}") for f in spec.fields])

    missing = [(f.name, is_missing(raw[f.name])) for f in spec.fields if f.required]
    wrong = [(f.name, is_wrong_type(raw[f.name], f.kind)) for f in spec.fields]
    bad_time = [(f.name, is_bad_time(raw[f.name], f.kind)) for f in spec.fields]
    invalid = [(f.name, _domain_violation(f, F.col(f"__typed_{f.name}"))) for f in spec.fields]
    value = F.col("value")
    is_json_null = F.col("__parsed").isNull()
    # Lines read from a compressed file cut short carry file_error (jobs/ingest.py): the whole file is refused.
    file_error = F.col("file_error") if "file_error" in lines.columns else F.lit(None).cast("string")
    reason = (
        F.when(file_error.isNotNull(), "truncated_file")
        .when(F.trim(F.regexp_replace(value, "^\ufeff", "")) == "", "empty_line")
        .when(F.octet_length(value) > cfg.max_line_bytes, "line_too_long")
        .when(~F.is_valid_utf8(value) | (F.instr(value, REPLACEMENT_CHAR) > 0), "invalid_utf8")
        .when(is_json_null, "invalid_json")
        .when(F.col("__m").isNull(), "invalid_json")
        .when(F.col("__trailing"), "invalid_json")
        .when(_any(missing), "missing_field")
        .when(_any(wrong), "wrong_type")
        .when(_any(bad_time), "bad_timestamp")
        .when(_any(invalid), "invalid_value")
    )
    detail = (
        F.when(file_error.isNotNull(), file_error)
        .when(F.octet_length(value) > cfg.max_line_bytes,
               F.format_string("line of %d bytes", F.octet_length(value)))
        .when(is_json_null, F.lit("not a JSON object"))
        .when(F.col("__m").isNull(), F.lit("duplicate key"))
        .when(F.col("__trailing"), F.lit("more after the JSON object"))
        .when(_any(missing), _first_field(missing))
        .when(_any(wrong), _first_field(wrong))
        .when(_any(bad_time), _first_field(bad_time))
        .when(_any(invalid), _first_field(invalid))
    )
    if spec.event_time:
        ts = F.col("__typed_event_ts")
        earliest = F.col("dt").cast("timestamp") - F.make_interval(days=F.lit(cfg.max_event_lag_days))
        latest = F.date_add(F.col("dt"), 1).cast("timestamp") + F.make_interval(
            mins=F.lit(cfg.max_clock_skew_minutes))
        out_of_range = (ts < earliest) | (ts >= latest)
        reason = reason.when(out_of_range, "timestamp_out_of_range")
        detail = detail.when(out_of_range, F.concat(F.lit("event_ts "), raw["event_ts"]))

    extra = F.map_filter(F.col("__m"), lambda k, _v: ~F.array_contains(known, k))
    return df.select(
        "dt", "hour", "source_file",
        F.col("value").alias("raw_line"),
        raw_value(F.col("__m"), spec.id_field).alias("record_id"),
        reason.alias("reason"),
        detail.alias("detail"),
        F.when(F.size(extra) > 0, extra).alias("extra"),
        *[F.col(f"__typed_{f.name}").alias(f.name) for f in spec.fields],
    )


def bronze_rows(classified: DataFrame, spec: StreamSpec, ingested_at: Column) -> DataFrame:
    """Well-formed records: the typed fields, unknown extras, provenance, arrival partition."""
    return classified.where(F.col("reason").isNull()).select(
        *spec.names,
        "extra",
        F.col("source_file").alias("_source_file"),
        F.xxhash64("raw_line").alias("_line_hash"),
        ingested_at.alias("_ingested_at"),
        "hour",
        "dt",
    )


def quarantine_rows(classified: DataFrame, spec: StreamSpec, ingested_at: Column) -> DataFrame:
    """Malformed records with the raw line, where it came from and why."""
    return classified.where(F.col("reason").isNotNull()).select(
        F.lit(spec.name).alias("stream"),
        "record_id",
        "reason",
        "detail",
        "raw_line",
        "source_file",
        ingested_at.alias("_ingested_at"),
        "hour",
        "dt",
    )


def likely_renames(unknown: Iterable[str], spec: StreamSpec) -> dict[str, str]:
    """Unknown field -> the contract field it differs from only in case or separators (``inViewMs``,
    ``In-View-Ms`` for ``in_view_ms``): most likely a producer renamed it.

    Unknown fields are kept in bronze's ``extra`` and ignored after it (CONTRACT 1),
    so a renamed optional field reads as absent (null) downstream; this is how the
    run report names that instead of letting it pass silently.
    """
    def norm(name: str) -> str:
        return re.sub(r"[^0-9a-z]", "", name.lower())

    known = {norm(n): n for n in spec.names}
    return {u: known[norm(u)] for u in sorted(unknown) if u not in spec.names and norm(u) in known}
