"""Feature declarations (conf/features.yaml): parsing, every refusal with file, line and feature, compilation."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.runtime.config import REPO_ROOT, ConfigError, load_config
from pipelines import declarations
from pipelines.declarations import DeclarationError
from pipelines.features import ENTITY_KEY_COLUMNS

GOOD = """\
groups:
  user:
    keys: [user_id]
    description: the user's history
    owner: team-a
    since: 2025-01-01
    aggregations:
      - {op: count, input: impressions, description: views, windows: {1: f_user_imps_1d, 7: f_user_imps_7d}}
      - {op: rate, input: clicks, filter: viewable, description: vctr, windows: {7: f_user_vctr_7d}}
      - {op: last_seen, input: clicks, name: f_user_hours_since_click, description: recency}
      - {op: same_day_count, input: impressions, name: f_user_imps_today, description: fatigue, since: 2025-02-01}
  ad_x_country:
    keys: [ad_id, country]
    description: the ad in a country
    owner: team-b
    since: 2025-01-01
    aggregations:
      - {op: distinct_count, input: user_id, description: reach, windows: {28: f_ad_x_country_users_28d}}
      - {op: count, input: conversions, description: conversions, windows: {7: f_ad_x_country_conv_7d}}
context:
  f_hour: {op: hour_of_day, input: event_ts, description: hour, owner: team-a, since: 2025-01-01}
"""


def load(text: str) -> declarations.Declarations:
    return declarations.loads(text, "features.yaml", (1, 7, 28), ENTITY_KEY_COLUMNS)


def test_declarations_compile_into_groups_snapshot_columns_and_training_order():
    d = load(GOOD)
    assert declarations.entities(d) == {"user": ("user_id",), "ad_x_country": ("ad_id", "country")}
    assert declarations.distinct_users_for(d) == ("ad_x_country",)
    assert declarations.same_day_features(d) == {"f_user_imps_today": "user"}
    assert [(f.name, f.group, f.column, f.rate, f.window) for f in declarations.history_features(d)] == [
        ("f_user_imps_1d", "user", "imps_1d", None, 1),
        ("f_user_imps_7d", "user", "imps_7d", None, 7),
        ("f_user_vctr_7d", "user", "vctr_7d", "vctr", 7),
        ("f_user_hours_since_click", "user", "last_click_ts", None, None),
        ("f_ad_x_country_conv_7d", "ad_x_country", "conv_7d", None, 7),
        ("f_ad_x_country_users_28d", "ad_x_country", "users_28d", None, 28)]
    assert declarations.feature_columns(d)[-2:] == ["f_hour", "f_user_imps_today"]
    user = d.groups[0]
    assert (user.owner, str(user.since), str(user.aggregations[3].since)) == ("team-a", "2025-01-01", "2025-02-01")


def test_the_shipped_declarations_keep_every_feature_name_gold_built_before_them():
    """conf/features.yaml restates the features the pipeline built from code before declarations: same names,
    same order (the training set's columns and the models trained on them depend on both)."""
    cfg = load_config("local")
    entities = ["user", "ad", "campaign", "advertiser", "publisher", "user_x_category", "user_x_publisher",
                "publisher_x_category", "segment_x_category", "user_x_ad"]
    with_users = {"ad", "campaign", "advertiser", "publisher"}
    recency = {"user": "f_user_hours_since_click", "user_x_ad": "f_user_x_ad_hours_since_impression"}
    before = []
    for e in entities:
        for w in (1, 7, 28):
            before += [f"f_{e}_{s}_{w}d" for s in ("imps", "clicks", "ctr", "vctr", "users")
                       if s != "users" or e in with_users]
        before += [recency[e]] if e in recency else []
    # declared after them (docs/training.md "At the defaults"): the category pair's rate, a denser cross
    added = ["f_pubcat_x_category_ctr_1d", "f_pubcat_x_category_imps_7d", "f_pubcat_x_category_ctr_7d",
             "f_pubcat_x_category_vctr_7d", "f_pubcat_x_category_imps_28d", "f_pubcat_x_category_ctr_28d",
             "f_pubcat_x_category_vctr_28d"]
    before += [*added, "f_position", "f_hour", "f_user_imps_today", "f_user_x_ad_imps_today"]
    assert declarations.feature_columns(cfg.gold.features) == before
    assert cfg.gold.entities["pubcat_x_category"] == ("publisher_category", "ad_category")
    assert cfg.gold.entities["segment_x_category"] == ("segment", "ad_category")


@pytest.mark.parametrize("change, message", [
    (("input: impressions, description: views", "input: impresions, description: views"),
     r"features.yaml:8: feature f_user_imps_1d \(group user\): unknown source column 'impresions'"),
    (("keys: [ad_id, country]", "keys: [ad_id, planet]"),
     r"features.yaml:\d+: group ad_x_country: key 'planet' is not an entity key column"),
    (("{28: f_ad_x_country_users_28d}", "{90: f_ad_x_country_users_90d}"),
     r"features.yaml:18: feature f_ad_x_country_users_90d .*: window 90 d is longer than the 28 days of history"),
    (("{7: f_user_vctr_7d}", "{14: f_user_vctr_14d}"),
     r"features.yaml:9: .*window 14 d is not one gold computes \(gold.windows_days: \[1, 7, 28\]\)"),
    (("op: count, input: conversions", "op: median, input: conversions"),
     r"features.yaml:19: feature f_ad_x_country_conv_7d .*: unknown operation 'median'"),
    (("op: count, input: conversions", "op: sum, input: conversions"),
     r"features.yaml:19: feature f_ad_x_country_conv_7d .*: unknown source column 'conversions': sum takes a "
     r"numeric column of silver/labels \(choose from in_view_ms, position\)"),
    (("op: count, input: conversions", "op: sum, input: device_type"),
     r"features.yaml:19: .*unknown source column 'device_type': sum takes a numeric column"),
    (("op: count, input: conversions, description: conversions, windows: {7: f_ad_x_country_conv_7d}",
      "op: sum, input: position, description: slots, name: f_ad_x_country_slots"),
     r"features.yaml:19: feature f_ad_x_country_slots .*: a windowed operation names one feature per window"),
    (("op: distinct_count, input: user_id", "op: rate, input: user_id"),
     r"feature f_ad_x_country_users_28d .*: rate of user_id cannot be computed incrementally from gold's daily"),
    (("op: count, input: conversions", "op: count, input: conversions, filter: viewable"),
     r"count of conversions \(viewable\) cannot be computed incrementally"),
    (("name: f_user_imps_today", "name: f_user_hours_since_click"),
     r"features.yaml:11: f_user_hours_since_click: name clash: 'f_user_hours_since_click' is already declared "
     r"on line 10"),
    (("f_hour: {op", "f_user_imps_1d: {op"),
     r"features.yaml:21: f_user_imps_1d: name clash: 'f_user_imps_1d' is already declared on line 8"),
    (("    owner: team-b\n", ""), r"features.yaml:13: group ad_x_country: missing 'owner'"),
    (("since: 2025-02-01", "since: soon"), r"feature f_user_imps_today \(group user\): since must be a date"),
    (("keys: [user_id]", "keys: [country]"),
     r"f_user_imps_today \(group user\): same_day_count needs a group keyed by user_id"),
    (("keys: [ad_id, country]", "keys: [user_id, country]"),
     r"f_ad_x_country_users_28d .*: a group keyed by user_id has one user per key"),
    (("name: f_user_hours_since_click", "windows: {7: f_user_last_7d}"),
     r"last_seen is not windowed: give it a name, not windows"),
    (("      - {op: count, input: conv", "      - {op: count, colour: red, input: conv"),
     r"features.yaml:19: group ad_x_country, aggregation 2: unknown key 'colour'"),
    (("context:", "contexts:"), r"features.yaml:20: top level: unknown key 'contexts'"),
])
def test_a_bad_declaration_is_refused_naming_file_line_feature_and_problem(change, message):
    old, new = change
    assert old in GOOD
    with pytest.raises(DeclarationError, match=message):
        load(GOOD.replace(old, new, 1))


def test_a_declared_sum_is_windowed_under_its_own_partial_column_and_changes_only_its_groups_fingerprint():
    sums = GOOD.replace("      - {op: count, input: conversions,",
                        "      - {op: sum, input: in_view_ms, filter: viewable, description: time in view,\n"
                        "         windows: {1: f_ad_x_country_view_ms_1d, 7: f_ad_x_country_view_ms_7d}}\n"
                        "      - {op: count, input: conversions,")
    before, after = load(GOOD), load(sums)
    assert declarations.sums(before) == {}
    assert declarations.sums(after) == {"sum_in_view_ms_viewable": ("in_view_ms", "viewable", ("ad_x_country",))}
    assert [(f.name, f.column, f.rate, f.window) for f in declarations.history_features(after)
            if "view_ms" in f.name] == [("f_ad_x_country_view_ms_1d", "sum_in_view_ms_viewable_1d", None, 1),
                                        ("f_ad_x_country_view_ms_7d", "sum_in_view_ms_viewable_7d", None, 7)]
    # its group's stored data lacks the sum (a backfill is due); the other group's data is as it was
    assert before.groups[0].fingerprint == after.groups[0].fingerprint
    assert before.groups[1].fingerprint != after.groups[1].fingerprint
    assert after.groups[1].sums == ("sum_in_view_ms_viewable",)


def test_names_are_checked_against_what_the_trainer_infers_from_them():
    tr = load_config("local").train
    check = lambda text: declarations.trainer_mismatches(load(text), tr.numeric_prefix, tr.cross_marker,
                                                         tr.history_pattern)
    assert check(GOOD) == []
    for old, new, message in [
        ("1: f_user_imps_1d,", "1: user_imps_1d,",
         r"features.yaml:8: feature user_imps_1d \(group user\): the name must start with train.numeric_prefix 'f_'"),
        ("f_user_imps_7d}", "f_user_imps_week}", r"feature f_user_imps_week .*must match train.history_pattern"),
        ("f_ad_x_country_conv_7d", "f_adcountry_conv_7d", r"f_adcountry_conv_7d .*must contain train.cross_marker"),
        ("f_hour:", "f_hour_7d:", r"feature f_hour_7d \(context\): a contextual feature's name must neither match"),
    ]:
        got = check(GOOD.replace(old, new, 1))
        assert len(got) == 1 and re.search(message, got[0]), got
    # a user's own table trains under its own settings: the config still loads
    assert load_config("local", [], {"train": {"numeric_prefix": "num_"}}).train.numeric_prefix == "num_"


def test_settings_that_moved_into_declarations_point_there():
    for section, key in (("gold", "entities"), ("training_set", "stats"), ("training_set", "same_day")):
        with pytest.raises(ConfigError, match=rf"{section}.{key} is no longer a setting: declare it in the feature "
                                              r"declarations \(gold.features_file"):
            load_config("local", [], {section: {key: ["user"]}})


def test_a_job_with_a_bad_declaration_exits_2_before_spark(tmp_path):
    bad = tmp_path / "features.yaml"
    bad.write_text(GOOD.replace("{28: f_ad_x_country_users_28d}", "{90: f_ad_x_country_users_90d}"))
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(f"gold:\n  features_file: {bad}\n")
    run = subprocess.run([sys.executable, str(Path(REPO_ROOT) / "jobs" / "gold.py"), "--date", "2025-03-02",
                          "--config", str(overlay)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "window 90 d is longer than the 28 days of history gold keeps" in run.stderr
    assert "SparkSession" not in run.stderr and "Traceback" not in run.stderr


def test_the_catalog_lists_every_declared_feature_even_before_any_data():
    from datetime import date

    from pipelines import catalog

    d = load(GOOD)
    rows = catalog.entries(d, {"user": date(2025, 3, 2)}, {"f_user_imps_1d": (0.0, 0.25)},
                           {"f_user_imps_1d": 3.0, "f_hour": 1.0}, {"f_ad_x_country_conv_7d": [("entity_only", 0.01)]})
    assert [r.name for r in rows] == [n for g in d.groups for a in g.aggregations for n in a.names] + ["f_hour"]
    md = catalog.markdown(rows, ["declarations: features.yaml"])
    assert "| f_user_imps_1d | views | user (user_id) | count of impressions | 1 d | gold/entity_day (silver/labels) " \
           "| double | team-a | 2025-01-01 | 2025-03-02 | 0.0% | 25.0% | 75.0% | - |" in md
    assert "| f_user_imps_today | fatigue | user (user_id) | same_day_count of impressions | same day |" in md
    assert "| 2025-02-01 | 2025-03-02 | - | - | 0.0% | - |" in md        # its own since; no share known
    assert "| entity_only +0.0100 |" in md
    page = catalog.html_page(rows, ["about <this>"])
    assert all(f"<code>{r.name}</code>" in page for r in rows) and "about &lt;this&gt;" in page
    assert "<script" not in page and "src=" not in page and "://" not in page
