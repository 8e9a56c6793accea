"""Leaderboard: per (data, model, defense) scope and metric, the attacks ranked by their mean over seeds,
with 95% intervals; attacks whose intervals overlap the better ones share their rank."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from modelinv.metrics import METRICS
from modelinv.report.aggregate import groups, metric_interval, ranks, target_accuracy
from modelinv.results import defense_label


@dataclass(frozen=True)
class Entry:
    scope: str  # "data/model: defense(params)"
    metric: str
    rank: int
    attack: str
    mean: float
    low: float | None  # 95% t interval over seeds (None with one seed)
    high: float | None
    std: float
    seeds: int
    target_test_acc: float


def scope_of(row: dict[str, Any]) -> str:
    return f"{row['data']}/{row['model']}: {defense_label(row)}"


def leaderboard(rows: list[dict[str, Any]], metrics: list[str] | None = None) -> list[Entry]:
    """Rank attacks within each (data, model, defense) group for every registered metric present in the rows.

    Rows that differ only in seed are pooled (mean, sample standard deviation, 95% t interval); ranks
    follow the metric's own direction (higher PSNR, lower knn_dist) and are shared by attacks that are
    not distinguishable (report.aggregate.ranks). Within a rank, entries are listed best mean first. The
    undefended scope of each model comes before its defenses; target accuracy is the scope's, once per
    target (report.aggregate.target_accuracy), whichever attack it is beside.
    """
    entries = []
    position: dict[str, tuple] = {}
    for scope, mine in groups(rows, scope_of).items():
        position[scope] = (f"{mine[0]['data']}/{mine[0]['model']}", bool(mine[0].get("defense")), scope)
        accuracy = target_accuracy(mine)[0]
        for name in metrics or [m for m in METRICS.names() if any(m in r for r in mine)]:
            by_attack = groups([r for r in mine if isinstance(r.get(name), (int, float))], lambda r: r["attack"])
            if not by_attack:
                continue
            higher = METRICS.get(name).higher_is_better
            intervals = {a: metric_interval(rs, name) for a, rs in by_attack.items()}
            rank = ranks(intervals, higher)
            order = sorted(intervals, key=lambda a: (rank[a], -intervals[a].mean if higher else intervals[a].mean))
            for attack in order:
                iv, runs = intervals[attack], by_attack[attack]
                values = [r[name] for r in runs]
                entries.append(
                    Entry(
                        scope, name, rank[attack], attack, iv.mean, iv.low, iv.high,
                        statistics.stdev(values) if len(values) > 1 else 0.0, iv.k,
                        accuracy.mean if accuracy else float("nan"),
                    )
                )
    return sorted(entries, key=lambda e: (position[e.scope], e.metric))
