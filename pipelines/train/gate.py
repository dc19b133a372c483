"""The champion gate: when a newly trained model may replace the registered champion."""
from __future__ import annotations

import math


def decide_promotion(new: dict[str, float], champion: dict[str, float] | None,
                     tolerance: float = 0.02) -> tuple[bool, str]:
    """(promote?, why). Both metric dicts must come from the same test days.

    A new model becomes champion only if its overall calibration (predicted over
    actual clicks) is within ``tolerance`` of 1 and its normalized entropy is no
    worse than the champion's. The first model, with no champion to beat, must
    beat a constant instead (NE below 1): then it is promoted, so a new warehouse
    has something to score with after its first training.
    """
    calib = new.get("calibration", math.nan)
    # 1e-12: 1.02 - 1.0 is 0.020000000000000018 in floating point, and exactly 2% is within 2%.
    if not math.isfinite(calib) or abs(calib - 1.0) > tolerance + 1e-12:
        return False, (f"calibration {calib:.4f} is not within {tolerance:.0%} of 1.0 "
                       f"(predicted/actual clicks on the test days)")
    if not math.isfinite(new.get("ne", math.nan)):
        return False, "normalized entropy is not a number"
    if champion is None:
        if new["ne"] >= 1.0:
            return False, f"no champion yet, but NE {new['ne']:.5f} does not beat a constant CTR (NE 1.0)"
        return True, f"no champion yet; NE {new['ne']:.5f} < 1, calibration {calib:.4f}"
    if new["ne"] > champion["ne"]:
        return False, f"NE {new['ne']:.5f} is worse than the champion's {champion['ne']:.5f} on the same test days"
    return True, (f"NE {new['ne']:.5f} <= champion's {champion['ne']:.5f} on the same test days, "
                  f"calibration {calib:.4f} within {tolerance:.0%}")
