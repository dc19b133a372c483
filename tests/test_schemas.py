"""pipelines/schemas.py is the one source of every table's columns: the suites in expectations/ agree with it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.schemas import ALL_STREAMS, QUARANTINE_COLUMNS, TABLES, bronze_columns, columns, ddl_names

ROOT = Path(__file__).resolve().parents[1]
SUITES = sorted((ROOT / "expectations").glob("*.json"))
SPARK_TYPE = {"StringType": "string", "TimestampType": "timestamp", "DateType": "date", "BooleanType": "boolean",
              "IntegerType": "int", "LongType": "long", "DoubleType": "double", "BinaryType": "binary"}
CONTRACT_KIND = {"string": "string", "int": "int", "number": "double", "bool": "boolean", "timestamp": "timestamp",
                 "date": "date"}


def schema_of(suite: Path) -> dict[str, str] | None:
    """column -> DDL type of the table a suite checks (None: a suite of no fixed-schema table)."""
    layer, _, name = suite.stem.partition("_")
    if f"{layer}/{name}" in TABLES:
        return dict(part.strip().split(" ", 1) for part in TABLES[f"{layer}/{name}"].split(","))
    if layer == "bronze" and name == "quarantine":
        return {c: None for c in QUARANTINE_COLUMNS}
    if layer == "bronze" and name in ALL_STREAMS:
        kinds = {f.name: CONTRACT_KIND[f.kind] for f in ALL_STREAMS[name].fields}
        return {c: kinds.get(c) for c in bronze_columns(name)}
    return None


@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.stem)
def test_a_suites_columns_and_types_are_the_schemas(suite):
    schema = schema_of(suite)
    if schema is None:
        pytest.skip(f"{suite.name} checks a table without a fixed schema (features, training set, report)")
    for e in json.loads(suite.read_text())["expectations"]:
        kwargs = e["kwargs"]
        if e["type"] == "expect_table_columns_to_match_ordered_list":
            assert kwargs["column_list"] == list(schema), f"{suite.name}: column list differs from the schema"
        elif e["type"] == "expect_column_values_to_be_of_type" and schema.get(kwargs["column"]):
            assert SPARK_TYPE[kwargs["type_"]] == schema[kwargs["column"]], f"{suite.name}: {kwargs['column']}"


def test_every_fixed_schema_table_has_a_suite_that_lists_its_columns():
    listed = {s.stem.replace("_", "/", 1) for s in SUITES if any(
        e["type"] == "expect_table_columns_to_match_ordered_list" for e in json.loads(s.read_text())["expectations"])}
    unchecked = set(TABLES) - listed
    # written unvalidated by design: conversion partials and priors go back with the gold gate, monitoring is a report
    assert unchecked == {"gold/entity_day", "gold/conversion_day", "gold/priors", "gold/score_monitoring"}


def test_columns_reads_the_ddl_in_order():
    assert columns("silver/conversion_labels") == ["impression_id", "event_date", "converted", "conversion_ts",
                                                   "closed_on"]
    assert bronze_columns("clicks")[-6:] == ["extra", "_source_file", "_line_hash", "_ingested_at", "hour", "dt"]


def test_ddl_names_keep_commas_inside_types():
    assert ddl_names("id string, price decimal(10,2), extra map<string,string>, s struct<a:int,b:string>, dt date") \
        == ["id", "price", "extra", "s", "dt"]
