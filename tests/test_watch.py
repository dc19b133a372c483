"""The nightly watch's pure parts (pipelines/watch.py): anomaly statistics against a history, drift measures."""
from __future__ import annotations

import math
from datetime import date, timedelta

import pytest

from pipelines import watch

D = date(2025, 3, 31)   # a Monday


def nights(values: list[float], last: date = D - timedelta(days=1)) -> list[tuple[date, float]]:
    """``values`` as the nights ending at ``last`` (oldest first)."""
    return [(last - timedelta(days=len(values) - 1 - i), v) for i, v in enumerate(values)]


def test_change_delta_and_z_against_the_trailing_nights():
    history = {"run_report.impressions_raw": nights([100, 102, 98, 100, 101, 99])}
    row, info = watch.anomaly_frame({"run_report.impressions_raw": 50.0}, history, D, 14, 5, 3)
    assert row["run_report.impressions_raw|change"] == pytest.approx(50 / 100 - 1)
    assert row["run_report.impressions_raw|delta"] == pytest.approx(-50)
    spread = math.sqrt(sum((v - 100) ** 2 for v in [100, 102, 98, 100, 101, 99]) / 6)
    assert row["run_report.impressions_raw|z"] == pytest.approx((50 - 100) / spread)
    assert info["run_report.impressions_raw"] == {"value": 50.0, "history": 6, "seasonal": False, "median": 100.0,
                                                  "judged": True, "change": pytest.approx(-0.5), "delta": -50.0,
                                                  "z": pytest.approx((50 - 100) / spread)}


def test_too_little_history_gives_no_statistic():
    row, info = watch.anomaly_frame({"rates.ctr": 0.5}, {"rates.ctr": nights([0.03] * 4)}, D, 14, 5, 3)
    assert row == {"rates.ctr|change": None, "rates.ctr|delta": None, "rates.ctr|z": None}
    assert info["rates.ctr"]["history"] == 4


def test_only_nights_inside_the_window_and_before_today_count():
    series = nights([1000] * 5, last=D - timedelta(days=20)) + nights([10] * 5) + [(D, 99999.0)]
    row, info = watch.anomaly_frame({"m.x": 10.0}, {"m.x": series}, D, 14, 5, 99)
    assert info["m.x"]["history"] == 5 and row["m.x|change"] == 0.0


def test_a_constant_history_has_no_z_but_a_delta():
    # a null share that was always 0: z is undefined, the delta names the jump
    row, _ = watch.anomaly_frame({"bronze_impressions.null_share_country": 1.0},
                                 {"bronze_impressions.null_share_country": nights([0.0] * 7)}, D, 14, 5, 3)
    assert row == {"bronze_impressions.null_share_country|change": None,
                   "bronze_impressions.null_share_country|delta": 1.0,
                   "bronze_impressions.null_share_country|z": None}


def test_the_same_weekday_is_the_baseline_once_enough_weeks_exist():
    # Mondays carry twice the traffic: against the trailing nights a normal Monday looks like +100%,
    # against the last three Mondays it is normal.
    days = [(D - timedelta(days=k), 200.0 if (D - timedelta(days=k)).weekday() == 0 else 100.0)
            for k in range(21, 0, -1)]
    row, info = watch.anomaly_frame({"v.x": 200.0}, {"v.x": days}, D, 14, 5, 3)
    assert info["v.x"]["seasonal"] and info["v.x"]["history"] == 3 and row["v.x|change"] == 0.0
    row, info = watch.anomaly_frame({"v.x": 200.0}, {"v.x": days}, D, 14, 5, 4)   # only 3 Mondays: trailing
    assert not info["v.x"]["seasonal"] and row["v.x|change"] == pytest.approx(1.0)


def test_a_z_waits_for_a_week_of_trailing_nights_a_relative_change_does_not():
    # the drills' young warehouse: five weekdays of ~24.6k, then the first Saturday at 20.8k (-16%)
    weekdays = [24287.0, 24631.0, 24703.0, 24396.0, 25100.0]
    saturday = date(2025, 3, 8)
    history = {"run_report.impressions_raw": nights(weekdays, last=saturday - timedelta(days=1))}
    row, _ = watch.anomaly_frame({"run_report.impressions_raw": 20752.0}, history, saturday, 14, 5, 3,
                                 z_min_history=7)
    assert row["run_report.impressions_raw|change"] == pytest.approx(20752 / 24631 - 1)   # judged: inside -30%
    assert row["run_report.impressions_raw|z"] is None   # five weekdays' spread would make it -13.7
    row, _ = watch.anomaly_frame({"run_report.impressions_raw": 20752.0}, history, saturday, 14, 5, 3)
    assert row["run_report.impressions_raw|z"] == pytest.approx(-13.71, abs=0.01)
    week = {"run_report.impressions_raw": nights([*weekdays, 20752.0, 20689.0], last=date(2025, 3, 9))}
    row, _ = watch.anomaly_frame({"run_report.impressions_raw": 24500.0}, week, date(2025, 3, 10), 14, 5, 3,
                                 z_min_history=7)
    assert -5 < row["run_report.impressions_raw|z"] < 5   # a Monday against a whole week


def test_an_entity_volume_that_vanished_counts_as_zero_other_metrics_do_not():
    history = {"publisher_volume.p1": nights([50.0] * 6), "publisher_volume.p2": nights([40.0] * 6),
               "bronze_clicks.null_share_ip": nights([0.1] * 6)}
    row, info = watch.anomaly_frame({"publisher_volume.p1": 50.0}, history, D, 14, 5, 3, ("publisher_volume",))
    assert info["publisher_volume.p2"]["value"] == 0.0 and row["publisher_volume.p2|change"] == -1.0
    assert "bronze_clicks.null_share_ip|delta" not in row


def test_top_volumes_keeps_last_nights_top_entities():
    counts = [("a", 10), ("b", 30), ("c", 20), ("d", 1)]
    assert watch.top_volumes(counts, 2) == {"b": 30, "c": 20}
    assert watch.top_volumes(counts, 2, also=["d", "gone"]) == {"b": 30, "c": 20, "d": 1}


def test_report_rates_are_shares_of_their_own_totals():
    report = {"impressions_raw": 200, "impressions_valid": 100, "impressions_clicked": 5, "impressions_measured": 80,
              "impressions_viewable": 40, "impressions_bot_declared": 6, "impressions_bot_behavioural": 4,
              "impressions_duplicate": 2, "impressions_malformed": 8, "clicks_raw": 0,
              "ingest": {"lines": {"impressions": 200, "clicks": 0},
                         "quarantined_by_reason": {"impressions": {"invalid_json": 8}, "clicks": {"empty_line": 0}}}}
    assert watch.report_rates(report) == {
        "ctr": 0.05, "viewable_share": 0.5, "measured_share": 0.8, "bot_share": 0.05, "duplicate_share": 0.01,
        "impressions_malformed_share": 0.04, "clicks_malformed_share": None, "clicks_orphan_share": None,
        "clicks_attributed_share": None, "quarantine_share_impressions_invalid_json": 0.04}


def test_metric_rows_keep_finite_numbers_only():
    from decimal import Decimal

    rows = watch.metric_rows(D, "silver", {"a": {"x": 1, "y": None, "z": float("nan"), "w": True, "v": 2.5,
                                                 "d": Decimal("0.25")}})
    assert rows == [(D, "silver", "a", "d", 0.25), (D, "silver", "a", "v", 2.5), (D, "silver", "a", "x", 1.0)]


def test_psi_of_known_distributions():
    assert watch.psi([10, 10], [10, 10]) == 0.0
    # (0.2 - 0.5) ln(0.2/0.5) + (0.8 - 0.5) ln(0.8/0.5)
    assert watch.psi([50, 50], [20, 80]) == pytest.approx(-0.3 * math.log(0.4) + 0.3 * math.log(1.6))
    # an empty bin is floored, not infinite
    assert math.isfinite(watch.psi([100, 0], [0, 100])) and watch.psi([100, 0], [0, 100]) > 5


def test_jensen_shannon_is_bounded_by_one():
    assert watch.jensen_shannon([1, 1, 0], [1, 1, 0]) == 0.0
    assert watch.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    assert 0 < watch.jensen_shannon([3, 1], [1, 3]) < 1


def test_bins_and_levels():
    assert watch.quantile_edges([0.5, None, 0.1, 0.5, float("nan"), 0.9]) == [0.3, 0.7]
    assert watch.quantile_edges([3.0, 3.0]) == []
    edges = [0.2, 0.5]
    assert [watch.bin_index(v, edges) for v in (None, 0.1, 0.2, 0.3, 0.9)] == [0, 1, 1, 2, 3]
    assert [watch.drift_level(v, 0.1, 0.2) for v in (None, 0.05, 0.15, 0.25)] == ["n/a", "ok", "warn", "flag"]


def test_numpy_binning_agrees_with_bin_index():
    import numpy as np

    values = [None, 0.1, 0.2, 0.2, 0.3, 0.5, 0.9, float("nan")]
    edges = [0.2, 0.5]
    expected = [0] * 4
    for v in values:
        expected[watch.bin_index(v, edges)] += 1
    as_array = np.array([np.nan if v is None else v for v in values], dtype="float64")
    assert watch.numeric_counts(as_array, edges) == expected == [2, 3, 2, 1]
    # integer counts: bins centred on the values at the quantiles, the edges between them
    edges, counts = watch.numeric_profile(np.array([0, 0, 0, 1, 1, 2, 2, 5, np.nan]), 4)
    assert edges == [0.5, 1.5] and counts == [1, 3, 2, 3]


def test_a_shared_value_that_moves_a_hair_is_no_drift():
    """The prior mean every key without history gets is re-fitted nightly: 0.0300 tonight, 0.0301 before."""
    import numpy as np

    rng = np.random.default_rng(1)
    reference = np.concatenate([np.full(600, 0.0300), rng.uniform(0.0, 0.2, 400)])
    tonight = np.concatenate([np.full(600, 0.0301), rng.uniform(0.0, 0.2, 400)])
    edges, counts = watch.numeric_profile(reference, 10)
    assert watch.psi(counts, watch.numeric_counts(tonight, edges)) < 0.05
    shifted = np.concatenate([np.full(600, 0.15), rng.uniform(0.0, 0.2, 400)])
    assert watch.psi(counts, watch.numeric_counts(shifted, edges)) > 0.2


def test_category_profile_keeps_the_top_values_and_pools_the_rest():
    values, counts = watch.category_profile(["a", "b", "a", None, "c", "a", "b", "d"], 2)
    assert values == ["a", "b"] and counts == [1, 3, 2, 2]
    assert watch.category_counts(["b", "z", None], values) == [1, 0, 1, 1]


def test_a_lumpy_rate_whose_values_moved_a_hair_is_ok_a_moved_feature_is_flagged():
    """Four days of a smoothed rate (each day its own point mass: the prior mean of keys without history) against
    a fifth day's: PSI is large, the values moved a hundredth of a standard deviation - not drift. A position one
    slot lower everywhere moved most of a standard deviation and is flagged; a feature that became half missing
    is flagged on its missing share though its present values did not move."""
    import numpy as np

    rng = np.random.default_rng(3)
    spread = rng.uniform(0.0, 0.2, 4000)
    reference = np.concatenate([np.full(1500, 0.0300 + i * 0.0002) for i in range(4)] + [spread])
    tonight = np.concatenate([np.full(6000, 0.0303), spread])
    edges, counts = watch.numeric_profile(reference, 10)
    psi = watch.psi(counts, watch.numeric_counts(tonight, edges))
    (rq, sd), (cq, _) = watch.quantile_profile(reference), watch.quantile_profile(tonight)
    moved = watch.shift(rq, cq, sd)
    assert psi > 0.2 and moved < 0.02
    assert watch.numeric_level(psi, moved, 0.0, 0.1, 0.2, 0.1) == "ok"
    positions = rng.integers(1, 6, 5000).astype("float64")
    (pq, psd), (lq, _) = watch.quantile_profile(positions), watch.quantile_profile(positions + 1)
    assert watch.shift(pq, lq, psd) == pytest.approx(1 / positions.std(), rel=0.02)
    pe, pc = watch.numeric_profile(positions, 10)
    assert watch.numeric_level(watch.psi(pc, watch.numeric_counts(positions + 1, pe)), watch.shift(pq, lq, psd),
                               0.0, 0.1, 0.2, 0.1) == "flag"
    assert watch.numeric_level(0.5, 0.0, 0.5, 0.1, 0.2, 0.1) == "flag"   # half missing, values unchanged
    assert watch.shift([], lq, psd) is None and watch.shift([2.0, 2.0], [2.0, 3.0], 0.0) == 0.5


def test_windows_not_yet_full_in_the_train_window_are_filling_not_drift():
    from types import SimpleNamespace

    from jobs.stages.watch import feature_drift, filling_windows, lookback_days

    spec = {"history_start": "2025-03-03", "train_days": ["2025-03-07", "2025-03-10"], "features": {
        "f_user_imps_28d": {"kind": "numeric", "counts": [0, 50, 50], "edges": [1.0], "quantiles": [0.0, 2.0],
                            "sd": 1.0},
        "f_user_imps_1d": {"kind": "numeric", "counts": [0, 50, 50], "edges": [1.0], "quantiles": [0.0, 2.0],
                           "sd": 1.0},
        "c_country": {"kind": "categorical", "counts": [0, 90, 10], "values": ["US"]}}}
    windows = {"f_user_imps_28d": 28, "f_user_imps_1d": 1, "f_user_last_seen": None}
    # the first train day had 4 days of events behind it, 3 in its snapshot (lag 1): a 1-day window was full
    assert filling_windows(spec, windows, 1) == {"f_user_imps_28d"}
    assert filling_windows({**spec, "history_start": None}, windows, 1) == set()
    # a recency feature (hours since the last event within the longest window) fills like that window
    recency = [SimpleNamespace(name="f_user_hours_since_click", window=None), SimpleNamespace(name="f_x_1d", window=1)]
    assert lookback_days(recency, 28) == {"f_user_hours_since_click": 28, "f_x_1d": 1}
    mon = SimpleNamespace(drift_warn=0.1, drift_flag=0.2, drift_min_shift=0.1)
    counts = {"f_user_imps_28d": [0, 5, 95], "f_user_imps_1d": [0, 5, 95], "c_country": [0, 10, 90]}
    quantiles = {"f_user_imps_28d": [3.0, 9.0], "f_user_imps_1d": [3.0, 9.0]}
    out = feature_drift(spec, counts, quantiles, mon, filling_windows(spec, windows, 1))
    assert [(d["feature"], d["level"]) for d in out] == [("f_user_imps_1d", "flag"), ("c_country", "flag"),
                                                        ("f_user_imps_28d", "filling")]   # flags first, largest first
    assert out[0]["shift"] == 5.0 and out[0]["value"] == out[2]["value"] > out[1]["value"] > 0.2


def test_a_feature_that_differs_every_train_day_is_judged_beyond_that_day_to_day_drift():
    """A one-day rate around a prior re-fitted nightly: each train day is its own point mass, and so is tonight.
    Against the whole window tonight looks drifted, but no more than each train day did: ok. A country that
    arrives blank tonight (missing) never moved inside the window: flagged."""
    from datetime import date
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd

    from jobs.stages.watch import counts_like, feature_drift, profile

    rng = np.random.default_rng(5)
    days = [date(2025, 3, d) for d in (7, 8, 9, 10)]
    train = pd.DataFrame({"event_date": np.repeat(days, 1000),
                          "f_ad_ctr_1d": np.concatenate([np.full(1000, 0.025 + 0.005 * i) for i in range(4)]),
                          # a rate of a few coarse keys whose level wanders from day to day
                          "f_pub_ctr_1d": np.concatenate([rng.choice([0.02, 0.03, 0.05], 1000) + 0.004 * (i % 2)
                                                          for i in range(4)]),
                          "f_position": rng.integers(1, 6, 4000).astype(float),
                          "c_country": rng.choice(["US", "DE", "FR"], 4000)})
    numeric = ["f_ad_ctr_1d", "f_pub_ctr_1d", "f_position"]
    spec = {"features": profile(train, numeric, ["c_country"], 10, 5, train["event_date"])}
    own = spec["features"]
    assert own["f_ad_ctr_1d"]["day_to_day"] > 1 and own["c_country"]["day_to_day"] < 0.01
    assert own["f_pub_ctr_1d"]["day_to_day_shift"] > 0.2 > own["f_position"]["day_to_day_shift"]
    tonight = pd.DataFrame({"f_ad_ctr_1d": np.full(1000, 0.0305), "c_country": [None] * 1000,
                            "f_pub_ctr_1d": rng.choice([0.02, 0.03, 0.05], 1000) + 0.006,
                            "f_position": rng.integers(2, 7, 1000).astype(float)})   # every slot one lower
    quantiles = {c: watch.quantile_profile(tonight[c].to_numpy())[0] for c in numeric}
    mon = SimpleNamespace(drift_warn=0.1, drift_flag=0.2, drift_min_shift=0.1)
    out = {d["feature"]: d for d in feature_drift(spec, counts_like(tonight, spec["features"]), quantiles, mon)}
    assert out["f_ad_ctr_1d"]["value"] > 1 and out["f_ad_ctr_1d"]["level"] == "ok"
    # the coarse rate moved about as far as its train days moved from each other: not drift
    assert out["f_pub_ctr_1d"]["value"] > 0.2 and out["f_pub_ctr_1d"]["level"] == "ok"
    assert out["f_position"]["level"] == "flag"
    assert out["c_country"]["level"] == "flag" and out["c_country"]["missing_share"] == 1.0


def test_a_trend_is_drawn_inside_its_chart_whatever_the_scale_of_its_values():
    """The horizontal padding is not the values' margin: volumes in the tens of thousands once put every point
    hundreds of pixels to the right, off the chart, and a CTR's points on top of the axis labels."""
    import re
    from datetime import date, timedelta

    from pipelines.night_page import line_chart

    first = date(2025, 3, 3)
    for values in ([24287.0, 20752.0, 25135.0], [0.031, 0.038, 0.033]):
        points = [(first + timedelta(days=i), v) for i, v in enumerate(values)]
        svg = line_chart("t", points, points[-1][0])
        xs = [float(x) for x in re.findall(r'cx="([0-9.]+)"', svg)]
        assert xs == sorted(xs) and 34 <= xs[0] and xs[-1] <= 340 - 8
