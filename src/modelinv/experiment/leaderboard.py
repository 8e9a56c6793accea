"""Leaderboard: per defense (and strength) and metric, the attacks ranked by their mean over seeds."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from typing import Any

from modelinv.metrics import METRICS


@dataclass(frozen=True)
class Entry:
    scope: str  # "data/model: defense(params)"
    metric: str
    rank: int
    attack: str
    mean: float
    std: float
    seeds: int
    target_test_acc: float


def defense_label(row: dict[str, Any]) -> str:
    """'none', or the defense name with its parameters, e.g. 'laplace-noise(scale=0.5)'."""
    if not row.get("defense"):
        return "none"
    params = row.get("defense_params") or {}
    if isinstance(params, str):
        params = json.loads(params)
    return f"{row['defense']}({', '.join(f'{k}={v}' for k, v in sorted(params.items()))})" if params else row["defense"]


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def leaderboard(rows: list[dict[str, Any]], metrics: list[str] | None = None) -> list[Entry]:
    """Rank attacks within each (data, model, defense) group for every registered metric present in the rows.

    Rows that differ only in seed are pooled (mean and sample standard deviation); the best attack,
    by the metric's own direction (higher PSNR, lower knn_dist), gets rank 1."""
    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for row in rows:
        scope = f"{row['data']}/{row['model']}: {defense_label(row)}"
        for name in metrics or [m for m in METRICS.names() if m in row]:
            if isinstance(row.get(name), (int, float)):
                groups.setdefault((scope, name), {}).setdefault(row["attack"], []).append(row)
    entries = []
    for (scope, name), by_attack in sorted(groups.items()):
        stats = []
        for attack, mine in by_attack.items():
            mean, std = mean_std([r[name] for r in mine])
            stats.append((attack, mean, std, len(mine), statistics.mean(r["target_test_acc"] for r in mine)))
        stats.sort(key=lambda s: -s[1] if METRICS.get(name).higher_is_better else s[1])
        entries += [Entry(scope, name, i + 1, a, m, s, n, acc) for i, (a, m, s, n, acc) in enumerate(stats)]
    return entries
