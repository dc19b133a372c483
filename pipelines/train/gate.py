"""The champion gate: which of a run's models competes, and when it may replace the registered champion."""
from __future__ import annotations

import math

# Ablation models (xgboost_entity_only, xgboost_contextual_only, ...) are named with this prefix: they measure
# what a feature group is worth and are logged, never registered.
ABLATION_PREFIX = "xgboost_"


def contender(ne_by_family: dict[str, float]) -> str:
    """The one model of a run that competes for champion: the lowest test NE, ablation models excluded."""
    competing = {f: ne for f, ne in ne_by_family.items() if not f.startswith(ABLATION_PREFIX)}
    if not competing:
        raise ValueError(f"no model competes for champion among {sorted(ne_by_family)} (ablation models never do)")
    return min(competing, key=competing.get)


def champion_not_scored(version: str, error: Exception) -> tuple[bool, str]:
    """(promote?, why) when the champion cannot be scored on the new model's test days: it stays."""
    return False, f"champion v{version} could not be scored on these test days ({error}); left in place"


def decide_promotion(new: dict[str, float], champion: dict[str, float] | None,
                     tolerance: float, first_tolerance: float) -> tuple[bool, str]:
    """(promote?, why). Both metric dicts must come from the same test days.

    A new model replaces a champion only if its overall calibration (predicted over
    actual clicks) is within ``tolerance`` of 1 and its normalized entropy is no worse
    than the champion's. The first model, with no champion to beat, must beat a
    constant (NE below 1) with calibration within ``first_tolerance``: a model that
    beats the average CTR is better than nothing to score with, and the reason says
    when its calibration is outside ``tolerance``, so the next model must meet it.
    """
    calib = new.get("calibration", math.nan)
    if not math.isfinite(calib):
        return False, "calibration (predicted/actual clicks on the test days) is not a number"
    if not math.isfinite(new.get("ne", math.nan)):
        return False, "normalized entropy is not a number"
    # 1e-12: 1.02 - 1.0 is 0.020000000000000018 in floating point, and exactly 2% is within 2%.
    within = abs(calib - 1.0) <= tolerance + 1e-12
    if champion is None:
        if new["ne"] >= 1.0:
            return False, f"no champion yet, but NE {new['ne']:.5f} does not beat a constant CTR (NE 1.0)"
        if abs(calib - 1.0) > first_tolerance + 1e-12:
            return False, (f"no champion yet, but calibration {calib:.4f} is not within {first_tolerance:.0%} of "
                           f"1.0 (predicted/actual clicks on the test days)")
        return True, (f"no champion yet; NE {new['ne']:.5f} < 1, calibration {calib:.4f}"
                      + ("" if within else f" (outside the {tolerance:.0%} a later model must meet)"))
    if not within:
        return False, (f"calibration {calib:.4f} is not within {tolerance:.0%} of 1.0 "
                       f"(predicted/actual clicks on the test days)")
    if new["ne"] > champion["ne"]:
        return False, f"NE {new['ne']:.5f} is worse than the champion's {champion['ne']:.5f} on the same test days"
    return True, (f"NE {new['ne']:.5f} <= champion's {champion['ne']:.5f} on the same test days, "
                  f"calibration {calib:.4f} within {tolerance:.0%}")
