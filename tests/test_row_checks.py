"""Row expectations compiled into one aggregation count exactly the rows GX's semantics call unexpected."""
from __future__ import annotations

import pytest

from pipelines.quality import metric_frame
from pipelines.row_checks import compile_suite, with_shares


def exp(t: str, **kwargs) -> dict:
    return {"type": t, "kwargs": kwargs, "meta": {"severity": "critical"}}


SUITE = [
    exp("expect_table_columns_to_match_set", column_set=["id", "x", "a", "b", "kind"]),
    exp("expect_column_values_to_not_be_null", column="id"),
    exp("expect_column_values_to_be_between", column="x", min_value=0, max_value=1),
    exp("expect_column_values_to_be_between", column="x", min_value=0, max_value={"$PARAMETER": "hi"},
        strict_max=True),
    exp("expect_column_values_to_be_in_set", column="kind", value_set=["k1", "k2"], mostly=0.5),
    exp("expect_column_pair_values_a_to_be_greater_than_b", column_A="a", column_B="b", or_equal=True),
    exp("expect_table_row_count_to_be_between", min_value=1),
]


def test_each_check_counts_the_rows_gx_calls_unexpected(spark):
    df = spark.createDataFrame([
        ("i1", 0.0, 2, 1, "k1"),       # breaks nothing
        (None, 1.0, 1, 1, "k9"),       # null id; x == 1 breaks only the strict bound; kind not in set
        ("i3", 1.5, 1, 2, None),       # x out of both ranges; a < b; a null kind is not checked
        ("i4", None, None, 3, "k2"),   # a null x or a is not checked
    ], "id string, x double, a int, b int, kind string")
    compiled = compile_suite(SUITE, {"hi": 1.0})
    assert [e["type"] for e in compiled.schema] == ["expect_table_columns_to_match_set"]
    row = with_shares(metric_frame(df, [], {}, compiled.aggregates).first().asDict(), compiled)
    assert row == {
        "rows": 4,
        "id: null rows": 1,
        "x: out-of-range rows": 1,
        "x: out-of-range rows'": 2,
        "kind: not-in-set rows": 1,
        "kind: not-in-set rows (rows checked)": 3,
        "kind: not-in-set passing share": pytest.approx(2 / 3),
        "rows breaking a >= b": 1,
    }
    limits = {e["kwargs"]["column"]: e["kwargs"] for e in compiled.expectations}
    assert limits["kind: not-in-set passing share"]["min_value"] == pytest.approx(0.5)
    assert limits["id: null rows"]["max_value"] == 0 and limits["rows"] == {"column": "rows", "min_value": 1}


def test_a_check_on_a_missing_column_is_listed_not_compiled():
    compiled = compile_suite(SUITE, {"hi": 1.0}, columns=["id", "a", "b", "kind"])
    assert compiled.missing == ["expect_column_values_to_be_between cannot run: column x is missing"] * 2
    assert not any(name.startswith("x:") for name in compiled.aggregates)


def test_an_unsupported_row_expectation_or_a_missing_parameter_is_a_clear_error():
    with pytest.raises(ValueError, match="not supported by the one-pass gate"):
        compile_suite([exp("expect_column_values_to_match_regex", column="id", regex="^i")], {})
    with pytest.raises(ValueError, match=r"kwargs \['stirct_max'\] are not supported"):
        compile_suite([exp("expect_column_values_to_be_between", column="x", max_value=1, stirct_max=True)], {})
    with pytest.raises(ValueError, match="cannot both be null"):
        compile_suite([exp("expect_column_values_to_be_between", column="x")], {})
    with pytest.raises(ValueError, match="parameter 'hi' has no value"):
        compile_suite([exp("expect_column_values_to_be_between", column="x", max_value={"$PARAMETER": "hi"})], {})


def test_every_suite_in_expectations_compiles(tiny_cfg):
    """A suite with a kwarg or type the one-pass gate does not honour fails here, not on a night."""
    from datetime import date

    from jobs.runtime.quality import SUITES_DIR, _parameters, load_suite
    from pipelines.quality import split_suite

    params = _parameters(tiny_cfg, date(2025, 3, 2), date(2025, 3, 2))
    for path in sorted(SUITES_DIR.glob("*.json")):
        rows, _ = split_suite(load_suite(path.stem), [])
        compiled = compile_suite(rows, params)
        assert len(compiled.schema) + len(compiled.expectations) == len(rows), path.name
