"""Aggregation over seeds, once for every table: mean and 95% interval, and comparisons a reviewer accepts.

A result row is one seed of one setting. Rows that differ only in seed are pooled; the interval is
Student's t interval of the mean over seeds, mean +- t_{0.975, k-1} s / sqrt(k) for k seeds with
sample standard deviation s (k >= 2; one seed has no interval), clipped to the range the metric's values lie in
(`Metric.bounds`: an accuracy's interval stops at 0 and 1, a distance's at 0), since their mean lies there too;
clipping never makes two overlapping intervals disjoint, so it changes no verdict. Two settings are called different
only when their intervals do not overlap, a conservative rule (non-overlapping 95% intervals imply a
difference at well below the 5% level); otherwise they are "not distinguishable".
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable

from scipy.special import stdtrit  # the t quantile (scipy.stats.t.ppf's own), without importing scipy.stats (1-3 s)

from modelinv.metrics import METRICS

CONFIDENCE = 0.95
UNBOUNDED = (-math.inf, math.inf)
# columns of a result row that are not registered metrics but have a range: the deployed target's and the judge's
# accuracy; DP-SGD's measured epsilon and noise multiplier, and the queries an attack made, are never negative
COLUMN_BOUNDS = {
    "target_test_acc": (0.0, 1.0),
    "evaluator_test_acc": (0.0, 1.0),
    "epsilon": (0.0, math.inf),
    "noise_multiplier": (0.0, math.inf),
    "queries": (0.0, math.inf),
}


@dataclass(frozen=True)
class Interval:
    """Mean over `k` seeds with its two-sided 95% t interval [low, high] (both None for one seed)."""

    mean: float
    low: float | None
    high: float | None
    k: int

    @property
    def half_width(self) -> float | None:
        return None if self.low is None else (self.high - self.mean)

    def overlaps(self, other: Interval) -> bool:
        """True when the two intervals share a point, or either is undefined (one seed)."""
        if self.low is None or other.low is None:
            return True
        return self.low <= other.high and other.low <= self.high

    def text(self) -> str:
        """'13.1 [12.8, 13.4]' (mean [95% interval]) or '13.1 (1 seed)'."""
        if self.low is None:
            return f"{fmt(self.mean)} (1 seed)"
        return f"{fmt(self.mean)} [{fmt(self.low)}, {fmt(self.high)}]"


def interval(values: Iterable[float], confidence: float = CONFIDENCE, bounds: tuple[float, float] = UNBOUNDED) -> Interval:
    """The mean of per-seed `values` and its t interval, clipped to `bounds` (the range the values lie in).

    Shape: a sequence of k floats (one per seed) -> Interval.
    Example: interval([1.0, 2.0, 3.0]) -> Interval(mean=2.0, low=-0.484, high=4.484, k=3);
    interval([1.0, 2.0, 3.0], bounds=(0, 3)) -> Interval(mean=2.0, low=0, high=3, k=3).
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("interval of no values")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Interval(mean, None, None, 1)
    half = stdtrit(len(values) - 1, 0.5 + confidence / 2) * statistics.stdev(values) / math.sqrt(len(values))
    return Interval(mean, max(mean - half, bounds[0]), min(mean + half, bounds[1]), len(values))


def bounds_of(metric: str) -> tuple[float, float]:
    """The range of a registered metric's values (`Metric.bounds`) or of a row column in COLUMN_BOUNDS; else unbounded."""
    if metric in METRICS:
        return METRICS.get(metric).bounds
    return COLUMN_BOUNDS.get(metric, UNBOUNDED)


def compare(a: Interval, b: Interval, higher_is_better: bool = True) -> str:
    """'better', 'worse' or 'not distinguishable': a against b, by non-overlap of the intervals."""
    if a.overlaps(b):
        return "not distinguishable"
    return "better" if (a.mean > b.mean) == higher_is_better else "worse"


def groups(rows: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], Hashable]) -> dict[Hashable, list[dict[str, Any]]]:
    """Rows grouped by `key(row)`, groups and rows in first-seen order."""
    out: dict[Hashable, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(key(row), []).append(row)
    return out


def metric_interval(
    rows: list[dict[str, Any]], metric: str, value: Callable[[dict[str, Any]], Any] | None = None, bounds: tuple[float, float] | None = None
) -> Interval | None:
    """The interval over the rows (one per seed) of `metric`, or of `value(row)` (e.g. the metric of a trivial answer),
    clipped to `bounds`, by default the metric's range (`bounds_of`): a `value` that rescales or subtracts must pass
    its own; None when no row has a number.

    Rows whose value is None (a metric undefined for the setting, e.g. top-5 of 5 classes) are left out."""
    get = value or (lambda r: r.get(metric))
    numbers = [get(r) for r in rows]
    numbers = [v for v in numbers if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)]
    return interval(numbers, bounds=bounds_of(metric) if bounds is None else bounds) if numbers else None


def scaled_interval(rows: list[dict[str, Any]], metric: str, scale: float) -> Interval | None:
    """metric_interval of `metric` x `scale` (e.g. accuracies in percent, scale 100), clipped to the metric's range x scale.

    Example: scaled_interval([{"attack_acc_top1": 1.0}, {"attack_acc_top1": 0.9}], "attack_acc_top1", 100).high -> 100."""
    low, high = (b * scale for b in bounds_of(metric))
    return metric_interval(rows, metric, lambda r: None if r.get(metric) is None else r[metric] * scale, (min(low, high), max(low, high)))


def spread(rows: list[dict[str, Any]], metric: str) -> str | None:
    """'74 (20-128)': the mean and the range over the rows of a cost such as `seconds`, for which a t interval
    means little (one seed trains what the others load from the cache; a range never goes below zero).

    Example: spread([{"seconds": 20.0}, {"seconds": 74.0}, {"seconds": 128.0}], "seconds") -> '74 (20-128)'."""
    numbers = [r.get(metric) for r in rows]
    numbers = [float(v) for v in numbers if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)]
    if not numbers:
        return None
    mean = fmt(statistics.fmean(numbers))
    return mean if len(numbers) == 1 or min(numbers) == max(numbers) else f"{mean} ({fmt(min(numbers))}-{fmt(max(numbers))})"


def ranks(intervals: dict[str, Interval], higher_is_better: bool) -> dict[str, int]:
    """Rank of each entry: 1 + the number of entries clearly better than it (non-overlapping intervals).

    Entries not distinguishable from the best share rank 1, and so do exact ties; with one seed no
    interval exists, so every entry ranks 1 (one seed cannot order attacks)."""
    return {name: 1 + sum(compare(other, iv, higher_is_better) == "better" for other in intervals.values()) for name, iv in intervals.items()}


def fmt(value: Any) -> str:
    """A number with 3 significant digits, trailing zeros of an exponent form dropped (2.3e-04, 0.912, 13.1,
    4.2e+04); None (a metric undefined here,
    e.g. top-5 of 5 classes, or a value not measured) as 'n/a'."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e4 or magnitude < 1e-3:
        mantissa, exponent = f"{value:.2e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"
    return f"{value:.3g}" if magnitude < 100 else f"{value:.1f}"


def target_accuracy(rows: list[dict[str, Any]]) -> tuple[Interval | None, float]:
    """Target test accuracy of one setting: the interval over seeds of each seed's accuracy, and the largest
    spread between runs of one seed.

    Every run measures the accuracy of the model it attacked. Without an output defense the runs of one seed
    share the trained target and agree exactly; an output defense that draws noise (Laplace, Gaussian) is
    evaluated with fresh noise in each run, so the runs of one seed differ slightly (the spread). Each seed
    counts once, with the mean of its runs, so a table shows one accuracy per target whichever attack it is beside."""
    per_seed = groups([r for r in rows if isinstance(r.get("target_test_acc"), (int, float))], lambda r: r.get("seed"))
    means = [statistics.fmean(r["target_test_acc"] for r in runs) for runs in per_seed.values()]
    spread = max((max(r["target_test_acc"] for r in runs) - min(r["target_test_acc"] for r in runs) for runs in per_seed.values()), default=0.0)
    return (interval(means, bounds=COLUMN_BOUNDS["target_test_acc"]) if means else None), spread
