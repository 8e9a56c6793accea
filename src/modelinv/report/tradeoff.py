"""The privacy-utility trade-off of one defense swept over strengths, rendered from a results store's rows:
per strength, target accuracy and each attack's success (mean and 95% interval over seeds), beside the
trivial answer (the attacker's mean image, or the most common attribute value) scored the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelinv.attacks.goals import goal
from modelinv.report.aggregate import Interval, groups, metric_interval
from modelinv.report.markdown import table
from modelinv.report.plots import tradeoff_figure

TRIVIAL = "mean-public"
"""The trivial answer of image attacks shown beside the attack (see experiment.runner.trivial_answers)."""


def strength(row: dict[str, Any], param: str) -> Any:
    """The swept parameter's value of a row; None for the undefended reference."""
    return None if not row.get("defense") else (row.get("defense_params") or {}).get(param)


def trivial(row: dict[str, Any], metric: str) -> float | None:
    """The row's trivial answer scored by `metric`: its stored baseline, or for attribute attacks the majority guess."""
    if metric == "attr_acc":
        return row.get("attr_baseline_acc")
    if metric == "attr_advantage":
        return 0.0
    return ((row.get("baselines") or {}).get(TRIVIAL) or {}).get(metric)


def series(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(attack, metric) pairs that measure attack success, in the order the attacks were configured."""
    pairs: list[tuple[str, str]] = []
    for row in rows:
        for metric in goal(row["goal"]).success:
            if isinstance(row.get(metric), (int, float)) and (row["attack"], metric) not in pairs:
                pairs.append((row["attack"], metric))
    return pairs


def by_strength(rows: list[dict[str, Any]], param: str) -> dict[Any, dict[str, Interval | None]]:
    """One record per strength (undefended first): intervals over seeds of target accuracy, epsilon where
    reported, each attack's success and its trivial answer. Accuracy is computed once per trained target and
    seed (every attack of one seed shares it), so it is pooled over seeds only."""
    out: dict[Any, dict[str, Interval | None]] = {}
    for value, mine in sorted(groups(rows, lambda r: strength(r, param)).items(), key=lambda kv: (kv[0] is not None, kv[0] or 0)):
        per_seed = list(groups(mine, lambda r: r["seed"]).values())
        entry = {
            "target_acc": metric_interval([s[0] for s in per_seed], "target_test_acc"),
            "epsilon": metric_interval([s[0] for s in per_seed], "epsilon"),
        }
        for attack, metric in series(rows):
            runs = [r for r in mine if r["attack"] == attack]
            entry[f"{attack} {metric}"] = metric_interval(runs, metric)
            entry[f"{attack} {metric} trivial"] = metric_interval(runs, metric, lambda r, m=metric: trivial(r, m))
        out[value] = entry
    return out


def markdown(rows: list[dict[str, Any]], defense: str, param: str, scenario: str) -> str:
    """tradeoff.md: the table, with the thread count and seeds it rests on."""
    records = by_strength(rows, param)
    columns = ["target_acc"] + (["epsilon"] if any(e["epsilon"] is not None for e in records.values()) else [])
    for attack, metric in series(rows):
        columns += [f"{attack} {metric}", f"{attack} {metric} trivial"]
    seeds = sorted({r["seed"] for r in rows})
    threads = sorted({r.get("threads") for r in rows}, key=str)
    lines = [
        f"# Trade-off: {defense} by {param}",
        "",
        f"{scenario}; seeds {seeds} ({len(seeds)} per row), torch threads {threads}. Cells: mean [95% t interval over seeds]; "
        f"'trivial' is the same metric for the attacker's mean image (reconstruction, class) or the most common value (attributes). "
        "Two rows differ only where their intervals do not overlap.",
        "",
    ]
    body = [["none" if k is None else k] + [e.get(c) for c in columns] for k, e in records.items()]
    return "\n".join(lines) + table([param, *columns], body)


def plot(rows: list[dict[str, Any]], defense: str, param: str, values: list[Any], path: Path) -> None:
    """Target accuracy against each attack-success metric, one panel each; the undefended model as a star."""
    records = by_strength(rows, param)
    panels = []
    for attack, metric in series(rows):
        key = f"{attack} {metric}"
        swept = [(e[key].mean, e["target_acc"].mean, f"{k:g}") for k, e in records.items() if k is not None and e[key] is not None]
        reference = (records[None][key].mean, records[None]["target_acc"].mean) if None in records and records[None][key] else None
        panels.append((key, {defense: swept}, reference))
    tradeoff_figure(panels, f"{defense}: {param} in {values}", path)
