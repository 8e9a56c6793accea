"""benchmarks/text.py's canary tables from synthetic stored rows: exposure and extraction intervals stay in
their ranges (0 <= exposure <= log2 |R|, 0 <= extracted share <= 1) where the plain t interval leaves them."""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import text as bench  # noqa: E402

from modelinv.report.aggregate import interval  # noqa: E402


def rows(attack: str, values: list[float], count: int = 16) -> list[dict]:
    detail = "exposure_by_repetitions" if attack == "canary-exposure" else "extraction_by_repetitions"
    extra = {"space": {"'pin '+4": 10**4}} if attack == "canary-exposure" else {}
    return [{"attack": attack, "seed": seed, "attack_details": {detail: {str(count): v}, **extra}} for seed, v in enumerate(values)]


def test_exposure_and_extraction_intervals_are_clipped_to_their_ranges():
    top = math.log2(10**4)  # rank 1 of 10,000 candidates
    exposure = [top, top - 0.5, top - 2.0]
    assert interval(exposure).high > top  # the plain t interval leaves the range: what the clipping is for
    clipped = bench.by_count(rows("canary-exposure", exposure), 16)
    assert clipped.high == top and clipped.low == interval(exposure).low and clipped.mean == interval(exposure).mean

    never = [0.1, 3.0, 0.2]
    assert interval(never).low < 0
    assert bench.by_count(rows("canary-exposure", never, count=0), 0).low == 0.0

    extracted = [1.0, 1.0, 0.25]
    assert interval(extracted).high > 1
    share = bench.by_count(rows("extraction", extracted), 16)
    assert share.high == 1.0 and 0.0 <= share.low < share.mean


def test_exposure_bounds_follow_the_largest_candidate_space():
    assert bench.exposure_bounds([{"attack_details": {"space": {"a": 10**3, "b": 10**5}}}]) == (0.0, math.log2(10**5))
